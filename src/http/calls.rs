//! Calls between the servers of a cluster: what one server asks of the owner of a
//! partition it does not own (a stock command: [`super::stock_calls`]; an operator's resume
//! or abort of a saga: [`super::saga_calls`]). A call is a `POST` of JSON to a path under
//! `/internal/v1/` at the owner's advertised URL, signed with the cluster's secret (see
//! [`super::relayed`]: caller, time, target, body; believed within a minute). It is not
//! part of the API: a server without a cluster, or a request without a valid signature,
//! answers it as an unknown route. A server that does not own what the call is about (any
//! more) answers 503 without applying anything, and the caller looks the owner up again
//! and calls once more; an owner that answers the call's outcome answers 200.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::http::Method;

use super::forward::{Forwarder, Incoming};
use super::{response, ApiError, Front};
use crate::domain::partition::Partition;
use crate::error::{Fault, InvalidInput};
use crate::metrics;
use crate::startup::Shop;

/// `<caller's node id> <Unix ms> <hex HMAC>` (see [`super::relayed::RelayKey::sign_call`]).
pub const CALL_HEADER: &str = "x-cartwright-call";

/// Times a call is sent when the server called does not own what it is about (ownership
/// moved) or could not be reached: each time to the owner looked up again.
const ATTEMPTS: u32 = 3;

/// Why a call has no answer.
#[derive(Debug)]
pub(super) enum Unanswered {
    /// Never applied: no server owns the partition, or none could be reached, in every try.
    NotSent,
    /// Sent to this owner, whose answer was lost: it may or may not have applied it.
    Lost(String),
    /// This owner answered with this status (neither the outcome nor "not mine").
    Failed(String, u16),
}

impl Unanswered {
    /// As the caller's services would fail: nothing applied, or nobody knows.
    pub(super) fn fault(&self, what: &str) -> Fault {
        match self {
            Unanswered::NotSent => Fault::Unavailable("the owner of these records could not be reached; retry"),
            Unanswered::Lost(owner) => {
                Fault::internal_text(format!("{owner} did not answer {what}: it may or may not be applied"))
            }
            Unanswered::Failed(owner, status) => Fault::internal_text(format!("{owner} answered {what} with {status}")),
        }
    }
}

/// Sends `body` to the owner of `partition` at `path`: the owner's 200 answer. `kind`
/// labels the calls in `cartwright_cluster_calls_total`.
pub(super) async fn send(
    forwarder: &Forwarder,
    kind: &str,
    partition: Partition,
    path: &str,
    body: Bytes,
) -> Result<Bytes, Unanswered> {
    let count = |outcome: &str| metrics::CLUSTER_CALLS.with_label_values(&[kind, outcome]).inc();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(forwarder.recheck() * (attempt - 1)).await;
        }
        let Some(owner) = forwarder.owner(partition).await else {
            count("no_owner");
            continue;
        };
        let url = format!("{}{path}", owner.advertise_url.trim_end_matches('/'));
        let answer = match forwarder.call(&url, path, body.clone()).await {
            Ok(answer) => answer,
            Err(e) if e.is_connect() => {
                count("unreachable");
                forwarder.forget_owners();
                continue;
            }
            Err(e) => {
                count("no_answer");
                forwarder.forget_owners();
                tracing::warn!(owner = %owner.node_id, kind, error = %e, "a call to another server got no answer");
                return Err(Unanswered::Lost(owner.node_id));
            }
        };
        match answer.status().as_u16() {
            200 => {
                let bytes = answer.bytes().await.map_err(|_| Unanswered::Lost(owner.node_id.clone()))?;
                count("answered");
                return Ok(bytes);
            }
            // Not (or no longer) the owner, or not serving yet: nothing applied.
            503 => {
                count("not_owner");
                forwarder.forget_owners();
            }
            status => {
                count("failed");
                return Err(Unanswered::Failed(owner.node_id, status));
            }
        }
    }
    Err(Unanswered::NotSent)
}

/// The owner's side: `None` when `req` is not a call to `path` signed with the cluster's
/// key (then it is routed like any other request: an unknown route); else the answer of
/// `run` with this server's shop and the call's body: 200 with its outcome, or its error
/// (503 for what is not this server's to answer).
pub(super) async fn answer<C, A, Fut>(
    front: &Front,
    req: &Incoming<'_>,
    path: &str,
    run: impl FnOnce(Arc<Shop>, C) -> Fut,
) -> Option<Result<warp::reply::Response, ApiError>>
where
    C: DeserializeOwned,
    A: Serialize,
    Fut: Future<Output = Result<A, ApiError>>,
{
    if req.path != path || req.method != Method::POST {
        return None;
    }
    let (key, header) = (front.relay_key()?, req.headers.get(CALL_HEADER)?);
    let caller = key.verify_call(header, path, &req.body, crate::domain::time::Timestamp::now().0)?;
    tracing::debug!(%caller, path, "a call from another server");
    let Some(shop) = front.shop() else {
        return Some(Err(Fault::Unavailable("the server is starting").into()));
    };
    let call: C = match serde_json::from_slice(&req.body) {
        Ok(call) => call,
        Err(e) => return Some(Err(InvalidInput::field("body", e.to_string()).into())),
    };
    Some(run(shop.clone(), call).await.map(|outcome| response::json(200, &outcome)))
}
