//! A request as handlers see it (the JSON API's and the console's), and parsing of its
//! parts into typed values.

use std::collections::HashMap;
use std::str::FromStr;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::http::{HeaderMap, Method};

use crate::error::InvalidInput;

/// The `Authorization: Bearer` token of `headers` (also read by a follower choosing where
/// to forward a request, before any [`Request`] exists).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The TCP peer: the client, or the reverse proxy in front of the server; for a request a
    /// follower forwarded, the client's address the follower signed (`http/relayed.rs`).
    /// (`X-Forwarded-For` is not trusted: any client can write it.)
    pub remote: Option<std::net::SocketAddr>,
}

impl Request {
    /// The JSON body as `T`; malformed JSON or a missing or wrong-typed field is
    /// 400 INVALID_REQUEST with `details.field` naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, InvalidInput> {
        if self.body.is_empty() {
            return Err(InvalidInput { message: "a JSON body is required".into(), field: None });
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let missing = inner.to_string();
            // serde reports a missing field at its parent's path; name the field itself.
            let field = match missing.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
                Some(name) if path == "." => name.to_string(),
                Some(name) => format!("{path}.{name}"),
                None if path == "." => String::new(),
                None => path,
            };
            InvalidInput { message: format!("invalid JSON body: {inner}"), field: (!field.is_empty()).then_some(field) }
        })?;
        // The deserializer stops after the first value: anything but whitespace after it
        // (`{"a":1} xyz`, `{}{}`) makes the body malformed, not silently half-read.
        de.end().map_err(|e| InvalidInput { message: format!("invalid JSON body: {e}"), field: None })?;
        Ok(value)
    }

    pub fn bearer(&self) -> Option<&str> {
        bearer(&self.headers)
    }

    /// An optional query parameter parsed as `T`; unparsable is 400 naming the parameter.
    pub fn query_param<T: FromStr>(&self, name: &str) -> Result<Option<T>, InvalidInput> {
        match self.query.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| InvalidInput::field(name, format!("query parameter {name} is not valid"))),
        }
    }

    /// `limit`, defaulting to `default`, within 1..=`max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, InvalidInput> {
        let limit = self.query_param::<usize>("limit")?.unwrap_or(default);
        if limit == 0 || limit > max {
            return Err(InvalidInput::field("limit", format!("limit must be 1 to {max}")));
        }
        Ok(limit)
    }
}

/// A path segment that must be an id; anything else means the resource cannot exist.
pub fn path_id<T: FromStr, E>(segment: &str, not_found: E) -> Result<T, E> {
    segment.parse().map_err(|_| not_found)
}
