//! Responses: JSON with a status; errors as `{"error": {"code", "message", "details"}}`.

use warp::http::StatusCode;
use warp::Reply as _;

use super::ApiError;
use crate::error::Answer;

/// What every handler returns. It lives here, not in the route table, so that handlers depend on
/// this module and the table on the handlers, never the other way round; the front door turns
/// the error into [`error`]'s body.
pub type Reply = Result<warp::reply::Response, ApiError>;

pub fn json(status: u16, value: &impl serde::Serialize) -> warp::reply::Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub fn error(e: &ApiError) -> warp::reply::Response {
    json(e.status(), &e.body())
}

pub fn text(status: u16, body: String, content_type: &'static str) -> warp::reply::Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    warp::reply::with_status(warp::reply::with_header(body, "content-type", content_type), status).into_response()
}
