//! Saga calls between the servers of a cluster, and census calls (every server's triage
//! gathered for a cluster's, see [`CENSUS_PATH`]). A saga runs on the server that owns its
//! partition; an operator's resume or abort of a saga another server owns (a bulk action,
//! run by partition 0's owner, reaches sagas of every partition) is sent to that server,
//! whose engine answers it as it would have here: the saga after it, or its refusal (not
//! found, not in a state the input applies to, past its point of no return). A call to
//! [`PATH`] (see [`super::calls`] for how calls travel and are believed). Resuming or
//! aborting a saga again is refused by its state, never applied twice, so a call whose
//! answer was lost is reported as a failure of that saga, which the operator may retry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::calls::{self, Unanswered};
use super::forward::{Forwarder, Incoming};
use super::{ApiError, Front};
use crate::domain::ids::SagaId;
use crate::metrics;
use crate::saga::census::Counted;
use crate::saga::engine::{OperatorInput, SagaOwners};
use crate::saga::{SagaError, SagaInstance};

/// Where a server takes saga calls.
pub const PATH: &str = "/internal/v1/sagas";

/// Where a server answers its census (see [`crate::saga::census::Triage::of_cluster`]).
pub const CENSUS_PATH: &str = "/internal/v1/census";

/// How long a cluster's triage waits for another server's census: a server paused or gone
/// is named as unanswered rather than holding the operator's page.
const CENSUS_WAIT: Duration = Duration::from_secs(2);

/// A census call: it asks nothing but the server's census.
#[derive(Debug, Serialize, Deserialize)]
struct CensusCall {}

/// One operator's input for one saga, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Call {
    saga_id: Uuid,
    input: OperatorInput,
}

/// What the owner answers (200): the saga after the input, or its refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Done(Box<SagaInstance>),
    Refused(Refusal),
}

/// A refusal, as the owner's engine gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
enum Refusal {
    NotFound,
    InvalidState {
        message: String,
    },
    AbortNotAllowed {
        message: String,
    },
    /// Anything else the owner failed with (its log has the cause).
    Failed {
        message: String,
    },
}

impl Refusal {
    /// The owner's refusal to send back; `None` for a failure worth retrying (503).
    fn of(e: &SagaError) -> Option<Refusal> {
        Some(match e {
            SagaError::NotFound => Refusal::NotFound,
            SagaError::InvalidState(message) => Refusal::InvalidState { message: message.clone() },
            SagaError::AbortNotAllowed(message) => Refusal::AbortNotAllowed { message: message.clone() },
            SagaError::Fault(f) if f.is_transient() => return None,
            other => Refusal::Failed { message: other.to_string() },
        })
    }

    /// The refusal as the caller's engine would have had it here.
    fn into_error(self) -> SagaError {
        match self {
            Refusal::NotFound => SagaError::NotFound,
            Refusal::InvalidState { message } => SagaError::InvalidState(message),
            Refusal::AbortNotAllowed { message } => SagaError::AbortNotAllowed(message),
            Refusal::Failed { message } => SagaError::internal("the saga's owner failed", message),
        }
    }
}

/// The caller's side: sends an operator's input to the owner of the saga's partition.
pub struct SagaCalls(pub Arc<Forwarder>);

impl SagaOwners for SagaCalls {
    fn operate(&self, id: SagaId, input: OperatorInput) -> BoxFuture<'static, Result<SagaInstance, SagaError>> {
        let forwarder = self.0.clone();
        Box::pin(async move { call(&forwarder, id, input).await })
    }

    fn censuses(&self) -> BoxFuture<'static, (Vec<Counted>, Vec<String>)> {
        let forwarder = self.0.clone();
        Box::pin(async move { censuses(&forwarder).await })
    }
}

/// Asks every other server holding partitions for its census, all at once; the censuses
/// that came, and the node ids of the servers that did not answer within [`CENSUS_WAIT`].
async fn censuses(forwarder: &Forwarder) -> (Vec<Counted>, Vec<String>) {
    let others = forwarder.other_owners().await;
    let asked = others.iter().map(|owner| async move {
        let url = format!("{}{CENSUS_PATH}", owner.advertise_url.trim_end_matches('/'));
        let body = Bytes::from_static(b"{}");
        let answer = tokio::time::timeout(CENSUS_WAIT, async {
            let answer = forwarder.call(&url, CENSUS_PATH, body).await.ok()?;
            if answer.status() != 200 {
                return None;
            }
            serde_json::from_slice::<Counted>(&answer.bytes().await.ok()?).ok()
        })
        .await;
        let outcome = if matches!(answer, Ok(Some(_))) { "answered" } else { "no_answer" };
        metrics::CLUSTER_CALLS.with_label_values(&["census", outcome]).inc();
        answer.ok().flatten().ok_or_else(|| owner.node_id.clone())
    });
    let mut counted = Vec::new();
    let mut unanswered = Vec::new();
    for answer in futures::future::join_all(asked).await {
        match answer {
            Ok(census) => counted.push(census),
            Err(node) => {
                tracing::warn!(node = %node, "a server did not answer its census: the triage lacks its sagas");
                unanswered.push(node);
            }
        }
    }
    (counted, unanswered)
}

async fn call(forwarder: &Forwarder, id: SagaId, input: OperatorInput) -> Result<SagaInstance, SagaError> {
    let body = serde_json::to_vec(&Call { saga_id: id.0, input })
        .map_err(|e| SagaError::internal("encoding a saga call", e))?;
    let partition = forwarder.partitions().of(&id.0);
    let answer = calls::send(forwarder, "saga", partition, PATH, Bytes::from(body))
        .await
        .map_err(|unanswered: Unanswered| SagaError::from(unanswered.fault("an operator's input to a saga")))?;
    match serde_json::from_slice(&answer).map_err(|e| SagaError::internal("decoding a saga call's answer", e))? {
        Answer::Done(saga) => Ok(*saga),
        Answer::Refused(refusal) => Err(refusal.into_error()),
    }
}

/// The owner's side: a signed call for a saga this server owns, run by its engine. `None`
/// when the request is not a saga call (then it is routed like any other).
pub(super) async fn answer(front: &Front, req: &Incoming<'_>) -> Option<Result<warp::reply::Response, ApiError>> {
    if req.path == CENSUS_PATH {
        let counted = |shop: Arc<crate::startup::Shop>, _: CensusCall| async move { Ok(shop.sagas.counted_here()) };
        return calls::answer(front, req, CENSUS_PATH, counted).await;
    }
    calls::answer(front, req, PATH, |shop, call: Call| async move {
        match shop.sagas.operate_here(SagaId(call.saga_id), call.input).await {
            Ok(saga) => Ok(Answer::Done(Box::new(saga))),
            Err(e) => Refusal::of(&e).map(Answer::Refused).ok_or_else(|| e.into()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_and_its_refusals_cross_the_wire_as_the_caller_would_have_had_them_here() {
        let call = Call { saga_id: Uuid::now_v7(), input: OperatorInput::Abort { reason: "stuck".into() } };
        assert_eq!(serde_json::from_slice::<Call>(&serde_json::to_vec(&call).unwrap()).unwrap(), call);
        let refusals = [
            SagaError::NotFound,
            SagaError::InvalidState("the saga is COMPLETED".into()),
            SagaError::AbortNotAllowed("past its point of no return: cancel the order".into()),
        ];
        for refused in refusals {
            let wire = serde_json::to_vec(&Answer::Refused(Refusal::of(&refused).unwrap())).unwrap();
            let Answer::Refused(back) = serde_json::from_slice(&wire).unwrap() else { panic!("a refusal") };
            assert_eq!(format!("{:?}", back.into_error()), format!("{refused:?}"));
        }
        let unavailable = SagaError::from(crate::error::Fault::Unavailable("retry"));
        assert_eq!(Refusal::of(&unavailable), None, "a failure worth retrying is a 503, not a refusal");
    }
}
