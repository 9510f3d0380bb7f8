//! The HTTP front door (warp). One filter takes every request, reads its body within the
//! size limit, and hands it to [`routes::dispatch`]; errors become the HTTP contract's JSON once, in
//! [`response`]. No request, however malformed, can panic a handler: parsing happens here.

mod admin;
mod auth;
mod backups;
mod bulk;
mod calls;
mod cart;
mod catalog;
pub mod console;
mod customers;
mod forward;
mod home;
mod meta;
mod orders;
mod prefer;
mod quarantine;
mod relayed;
mod response;
mod routes;
mod saga_calls;
mod sagas;
mod spec;
mod stock_calls;
mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use warp::http::{HeaderMap, Method};
use warp::path::FullPath;
use warp::{Buf, Filter};

/// What the front door refuses; defined with the one status and code mapping.
pub mod error;
/// A request as handlers see it; the console reads the same one.
pub use crate::server::request::{self, Request};
pub use error::{ApiError, HttpError};
pub use forward::{Forwarder, Front, HOP_HEADER};
pub use relayed::{RelayKey, CLIENT_HEADER};
pub use saga_calls::SagaCalls;
pub use stock_calls::StockCalls;

use crate::error::{Answer, Fault, InvalidInput};
use crate::metrics;
use crate::server::ClientAddr;

/// The whole API as one warp filter, answered by `front` (this server, or the leader).
pub fn api(front: Arc<Front>) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(warp::ext::optional::<ClientAddr>())
        .then(
            move |method: Method,
                  path: FullPath,
                  raw_query: String,
                  headers: HeaderMap,
                  body,
                  peer: Option<ClientAddr>| {
                let front = front.clone();
                let remote = peer.map(|p| p.0);
                let head = Head { method, path: path.as_str().to_string(), raw_query, headers, remote };
                async move { handle(front, head, body).await }
            },
        )
}

/// A request before its body is read.
struct Head {
    method: Method,
    path: String,
    /// The query as sent (parsed only for a request this server answers itself).
    raw_query: String,
    headers: HeaderMap,
    /// The TCP peer (a proxy's address when behind one).
    remote: Option<SocketAddr>,
}

async fn handle<S, B>(front: Arc<Front>, head: Head, body: S) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let started = Instant::now();
    let Head { method, path, raw_query, headers, remote } = head;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", %method, %path, request_id = %request_id);
    let limit = front.server.max_body_bytes;
    let timeout_ms = front.server.body_read_timeout_ms;
    let result = async {
        // A client trickling (or stalling) its body must not hold the connection for ever.
        let body = tokio::time::timeout(Duration::from_millis(timeout_ms), read_body(body, &headers, limit)).await;
        let body = match body.unwrap_or(Err(HttpError::RequestTimeout { timeout_ms }.into())) {
            Ok(body) => body,
            Err(e) => return ("body", Err(e)),
        };
        let incoming =
            forward::Incoming { method: &method, path: &path, raw_query: &raw_query, headers: &headers, body, remote };
        if let Some(answer) = stock_calls::answer(&front, &incoming).await {
            return ("stock_call", answer);
        }
        if let Some(answer) = saga_calls::answer(&front, &incoming).await {
            return ("saga_call", answer);
        }
        match front.answerer_once_recovered(&incoming).await {
            forward::Answerer::Here(shop) => {
                let remote = front.client_address(&incoming, remote);
                let body = incoming.body;
                let query: HashMap<String, String> =
                    form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
                let req = Request { method, path, query, headers, body, remote };
                routes::dispatch(shop, &req).await
            }
            forward::Answerer::Owner(forwarder, partition) => forwarder.answer(incoming, partition).await,
            forward::Answerer::Starting => ("starting", Err(Fault::Unavailable("the server is starting").into())),
            forward::Answerer::Recovering(..) => (
                "recovering",
                Err(Fault::Unavailable("this server is still taking over the request's partition; retry").into()),
            ),
        }
    };
    let (route, result) = tracing::Instrument::instrument(result, span.clone()).await;
    let response = match result {
        Ok(reply) => reply,
        Err(e) => {
            let _e = span.enter();
            if e.status() >= 500 {
                tracing::error!(error = %e, "request failed");
            } else {
                tracing::debug!(code = e.code(), "request refused");
            }
            let mut response = response::error(&e);
            if let ApiError::Http(HttpError::MethodNotAllowed { allow }) = &e {
                if let Ok(v) = warp::http::HeaderValue::from_str(allow) {
                    response.headers_mut().insert(warp::http::header::ALLOW, v);
                }
            }
            if let Some(secs) = e.retry_after_secs() {
                response.headers_mut().insert(warp::http::header::RETRY_AFTER, secs.into());
            }
            if matches!(&e, ApiError::Http(refusal) if refusal.body_left_unread()) {
                response.headers_mut().insert("connection", warp::http::HeaderValue::from_static("close"));
            }
            response
        }
    };
    let status = response.status().as_u16();
    metrics::HTTP_REQUESTS.with_label_values(&[route, &status.to_string()]).inc();
    metrics::HTTP_SECONDS.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    let mut response = response;
    if let Ok(v) = warp::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// A refused body is still read (and dropped) up to this much, so that a client that is
/// still sending gets to read the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The body, refused with 413 once it passes `limit` (declared or streamed).
async fn read_body<S, B>(body: S, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut too_large = declared.is_some_and(|n| n > limit as u64);
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(HttpError::PayloadTooLarge { limit }.into());
    }
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| ApiError::from(InvalidInput { message: format!("could not read body: {e}"), field: None }))?;
        seen += chunk.remaining();
        too_large |= seen > limit;
        if seen > DRAIN_LIMIT {
            break;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            if !too_large {
                out.extend_from_slice(part);
            }
            let n = part.len();
            chunk.advance(n);
        }
    }
    if too_large {
        return Err(HttpError::PayloadTooLarge { limit }.into());
    }
    Ok(Bytes::from(out))
}

/// Replies with JSON and a status.
pub fn json(status: u16, value: &impl serde::Serialize) -> warp::reply::Response {
    response::json(status, value)
}
