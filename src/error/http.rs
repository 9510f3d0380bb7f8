//! The HTTP front door's refusals before any handler runs, as a type (re-exported as
//! `http::HttpError`). Each becomes an [`AppError`](crate::error::AppError) (a status and a
//! code) in the parent module, which is why it is defined here rather than in `http/`.

/// A request refused by the front door: its body, its path or its method.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {timeout_ms} ms")]
    RequestTimeout { timeout_ms: u64 },
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// `allow` lists the path's methods, for the `Allow` header.
    #[error("method not allowed; this path takes {allow}")]
    MethodNotAllowed { allow: String },
    /// A follower has no leader to forward to (a takeover is under way); nothing was applied.
    #[error("no server leads the cluster right now (a takeover is under way); retry")]
    NoLeader,
    /// A request already forwarded once reached a server that does not lead: forwarded at
    /// most once, so it stops here, not applied.
    #[error("this server does not lead the cluster and forwards a request only once; retry")]
    NotLeader,
    /// The leader did not answer a forwarded request: it may or may not have applied it
    /// (retry with the same Idempotency-Key where the route takes one).
    #[error("the cluster's leader did not answer: {0}")]
    LeaderUnreachable(String),
}

impl HttpError {
    /// Whether the rest of the body was left unread, so the connection cannot carry another
    /// request.
    pub fn body_left_unread(&self) -> bool {
        matches!(self, HttpError::PayloadTooLarge { .. } | HttpError::RequestTimeout { .. })
    }
}
