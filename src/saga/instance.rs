//! A saga instance as persisted: the saga log. Every transition rewrites this one record
//! (bounded: a handful of steps, short errors), durably, before the next action.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::definition::{OnExhausted, SagaDefinition};
use crate::domain::ids::{CustomerId, OrderId, SagaId};
use crate::domain::quarantine::QuarantineKey;
use crate::domain::time::Timestamp;
use crate::error::ErrorRecord;
use crate::retry::RetryPolicy;

/// Defined in the domain so the store can index sagas by state without the engine.
pub use crate::domain::saga_state::SagaState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Compensated,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "PENDING",
            StepState::Running => "RUNNING",
            StepState::Succeeded => "SUCCEEDED",
            StepState::Failed => "FAILED",
            StepState::Compensated => "COMPENSATED",
        }
    }
}

/// One unit of work (a step or a compensation) and its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub name: String,
    pub state: StepState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    /// The policy it runs with (refreshed from the operators' table at every failure).
    pub policy: RetryPolicy,
}

impl Work {
    fn new(name: &str, policy: RetryPolicy) -> Work {
        Work {
            name: name.to_string(),
            state: StepState::Pending,
            attempts: 0,
            last_error: None,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            policy,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Work,
    pub on_exhausted: OnExhausted,
    pub compensation: Option<Work>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Forward,
    Compensating,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaInstance {
    pub saga_id: SagaId,
    pub saga_type: String,
    pub definition_version: u32,
    pub state: SagaState,
    pub phase: Phase,
    /// The step whose work (forward, or its compensation) is current.
    pub cursor: u32,
    pub steps: Vec<StepRecord>,
    /// JSON text: what the saga was started with (typed: `saga::shapes`, `*Input`).
    pub input: String,
    /// JSON text: an object of the steps' outputs, merged in order (typed: `*Data`).
    pub data: String,
    /// The business error that made it fail (answered to the client).
    pub error: Option<ErrorRecord>,
    pub abort_requested: bool,
    pub abort_reason: Option<String>,
    /// Who may see it through the customer API.
    pub customer_id: Option<CustomerId>,
    pub order_id: Option<OrderId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The quarantined key it waits on: set exactly while the saga is PAUSED.
    pub paused_on: Option<QuarantineKey>,
    /// When the attempt in progress (or the last one) began.
    pub attempt_started_at: Option<Timestamp>,
    /// Every attempt that failed, oldest first (the last [`MAX_FAILED_ATTEMPTS`]): what an
    /// operator reads to see why a saga is where it is. Empty on the happy path, so a
    /// checkout's log writes carry nothing more.
    pub failed_attempts: Vec<FailedAttempt>,
}

/// Failed attempts kept per saga; older ones are dropped (the counts stay on each work).
pub const MAX_FAILED_ATTEMPTS: usize = 50;

/// One failed attempt of a step or compensation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub work: String,
    pub compensation: bool,
    /// Its number among the work's attempts (1 for the first).
    pub attempt: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    /// `transient`, `business` or `quarantined`.
    pub kind: String,
    pub error: String,
}

impl SagaInstance {
    /// Whether an attempt of the forward work `step` failed in a way that may have applied
    /// it (see [`Failure::Transient`](super::machine::Failure::Transient)`::uncertain`).
    pub fn may_have_applied(&self, step: &str) -> bool {
        self.failed_attempts.iter().any(|f| f.work == step && !f.compensation && f.kind == super::machine::UNCERTAIN)
    }
}

impl FailedAttempt {
    pub fn to_json(&self) -> Value {
        json!({
            "work": self.work,
            "compensation": self.compensation,
            "attempt": self.attempt,
            "started_at": self.started_at.map(Timestamp::rfc3339),
            "finished_at": self.finished_at.rfc3339(),
            "duration_ms": self.started_at.map(|s| (self.finished_at.0 - s.0).max(0)),
            "kind": self.kind,
            "error": self.error,
        })
    }
}

/// A new saga's id, in the partition of the order it is about (or else its customer's),
/// so the saga lives where its order's and cart's actors do (see [`crate::domain::partition`]).
fn home_of(order_id: Option<OrderId>, customer_id: Option<CustomerId>) -> SagaId {
    let fresh = uuid::Uuid::now_v7();
    match order_id.map(|o| o.0).or(customer_id.map(|c| c.0)) {
        Some(home) => SagaId(crate::domain::partition::alike(fresh, &home)),
        None => SagaId(fresh),
    }
}

impl SagaInstance {
    /// A new instance of `def`, not yet started, with the given policies.
    pub fn new(
        def: &SagaDefinition,
        policy: impl Fn(&str) -> RetryPolicy,
        input: Value,
        customer_id: Option<CustomerId>,
        order_id: Option<OrderId>,
    ) -> SagaInstance {
        let now = Timestamp::now();
        SagaInstance {
            saga_id: home_of(order_id, customer_id),
            saga_type: def.name.clone(),
            definition_version: def.version,
            state: SagaState::Running,
            phase: Phase::Forward,
            cursor: 0,
            steps: def
                .steps
                .iter()
                .map(|s| StepRecord {
                    step: Work::new(&s.name, policy(&s.name)),
                    on_exhausted: s.on_exhausted,
                    compensation: s.compensation.as_deref().map(|c| Work::new(c, policy(c))),
                })
                .collect(),
            input: input.to_string(),
            data: "{}".into(),
            error: None,
            abort_requested: false,
            abort_reason: None,
            customer_id,
            order_id,
            created_at: now,
            updated_at: now,
            paused_on: None,
            attempt_started_at: None,
            failed_attempts: Vec::new(),
        }
    }

    pub fn input_json(&self) -> Value {
        serde_json::from_str(&self.input).unwrap_or(Value::Null)
    }

    pub fn data_json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| json!({}))
    }

    /// The work (step or compensation) the cursor points at.
    pub fn current(&self) -> Option<&Work> {
        let record = self.steps.get(self.cursor as usize)?;
        match self.phase {
            Phase::Forward => Some(&record.step),
            Phase::Compensating => record.compensation.as_ref(),
        }
    }

    pub fn current_mut(&mut self) -> Option<&mut Work> {
        let phase = self.phase;
        let record = self.steps.get_mut(self.cursor as usize)?;
        match phase {
            Phase::Forward => Some(&mut record.step),
            Phase::Compensating => record.compensation.as_mut(),
        }
    }

    /// The operator's view (docs/http-contract.md, operators: sagas).
    pub fn to_json(&self) -> Value {
        let work = |w: &Work| {
            json!({
                "name": w.name,
                "state": w.state.as_str(),
                "attempts": w.attempts,
                "last_error": w.last_error,
                "started_at": w.started_at.map(Timestamp::rfc3339),
                "finished_at": w.finished_at.map(Timestamp::rfc3339),
                "next_attempt_at": w.next_attempt_at.map(Timestamp::rfc3339),
            })
        };
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut j = work(&s.step);
                if let Some(c) = &s.compensation {
                    j["compensation"] = work(c);
                }
                j
            })
            .collect();
        let mut policies = serde_json::Map::new();
        for s in &self.steps {
            policies.insert(s.step.name.clone(), json!(s.step.policy));
            if let Some(c) = &s.compensation {
                policies.insert(c.name.clone(), json!(c.policy));
            }
        }
        json!({
            "saga_id": self.saga_id,
            "type": self.saga_type,
            "definition_version": self.definition_version,
            "state": self.state.as_str(),
            "current_step": self.current().map(|w| w.name.clone()),
            "created_at": self.created_at.rfc3339(),
            "updated_at": self.updated_at.rfc3339(),
            "input": self.input_json(),
            "data": self.data_json(),
            "steps": steps,
            "retry_policies": policies,
            "error": self.error.as_ref().map(error_json),
            "abort_reason": self.abort_reason,
            "order_id": self.order_id,
            "paused_on": self.paused_on.map(|k| json!({ "kind": k.kind.as_str(), "key": k.id })),
            "failed_attempts": self.failed_attempts.iter().map(FailedAttempt::to_json).collect::<Vec<_>>(),
        })
    }

    /// The customer's view (`GET /v1/sagas/{id}`).
    pub fn to_customer_json(&self) -> Value {
        let mut j = json!({ "saga_id": self.saga_id, "type": self.saga_type, "state": self.state.as_str() });
        if let Some(o) = self.order_id {
            j["order_id"] = json!(o);
        }
        if let Some(e) = &self.error {
            // Server-side failure text stays in the operator's view (`to_json`).
            j["error"] = error_json(&e.for_customer());
        }
        j
    }
}

pub fn error_json(e: &ErrorRecord) -> Value {
    json!({
        "code": e.code,
        "message": e.message,
        "details": serde_json::from_str::<Value>(&e.details).unwrap_or_else(|_| json!({})),
    })
}

/// Version 3 added the failed-attempt history (`attempt_started_at`, `failed_attempts`);
/// version 2 added `paused_on`. Older records read as never paused, with no history.
impl crate::store::Record for SagaInstance {
    const VERSION: u8 = 3;

    fn decode(table: crate::store::Table, bytes: &[u8]) -> Result<Self, crate::store::StoreError> {
        use crate::store::decode_version;
        match bytes.first() {
            Some(1) => decode_version::<SagaInstanceV1>(table, bytes, 1).map(|v| SagaInstanceV2::from(v).into()),
            Some(2) => decode_version::<SagaInstanceV2>(table, bytes, 2).map(SagaInstance::from),
            _ => decode_version(table, bytes, Self::VERSION),
        }
    }
}

/// A saga log record of version 2: [`SagaInstance`] without the failed-attempt history.
#[derive(Serialize, Deserialize)]
struct SagaInstanceV2 {
    saga_id: SagaId,
    saga_type: String,
    definition_version: u32,
    state: SagaState,
    phase: Phase,
    cursor: u32,
    steps: Vec<StepRecord>,
    input: String,
    data: String,
    error: Option<ErrorRecord>,
    abort_requested: bool,
    abort_reason: Option<String>,
    customer_id: Option<CustomerId>,
    order_id: Option<OrderId>,
    created_at: Timestamp,
    updated_at: Timestamp,
    paused_on: Option<QuarantineKey>,
}

impl From<SagaInstanceV2> for SagaInstance {
    fn from(v: SagaInstanceV2) -> SagaInstance {
        SagaInstance {
            saga_id: v.saga_id,
            saga_type: v.saga_type,
            definition_version: v.definition_version,
            state: v.state,
            phase: v.phase,
            cursor: v.cursor,
            steps: v.steps,
            input: v.input,
            data: v.data,
            error: v.error,
            abort_requested: v.abort_requested,
            abort_reason: v.abort_reason,
            customer_id: v.customer_id,
            order_id: v.order_id,
            created_at: v.created_at,
            updated_at: v.updated_at,
            paused_on: v.paused_on,
            attempt_started_at: None,
            failed_attempts: Vec::new(),
        }
    }
}

/// A saga log record of version 1: [`SagaInstance`] without `paused_on`.
#[derive(Serialize, Deserialize)]
struct SagaInstanceV1 {
    saga_id: SagaId,
    saga_type: String,
    definition_version: u32,
    state: SagaState,
    phase: Phase,
    cursor: u32,
    steps: Vec<StepRecord>,
    input: String,
    data: String,
    error: Option<ErrorRecord>,
    abort_requested: bool,
    abort_reason: Option<String>,
    customer_id: Option<CustomerId>,
    order_id: Option<OrderId>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<SagaInstanceV1> for SagaInstanceV2 {
    fn from(v: SagaInstanceV1) -> SagaInstanceV2 {
        SagaInstanceV2 {
            saga_id: v.saga_id,
            saga_type: v.saga_type,
            definition_version: v.definition_version,
            state: v.state,
            phase: v.phase,
            cursor: v.cursor,
            steps: v.steps,
            input: v.input,
            data: v.data,
            error: v.error,
            abort_requested: v.abort_requested,
            abort_reason: v.abort_reason,
            customer_id: v.customer_id,
            order_id: v.order_id,
            created_at: v.created_at,
            updated_at: v.updated_at,
            paused_on: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Answer, Fault};
    use crate::services::ServiceError;

    #[test]
    fn a_saga_lives_in_the_partition_of_its_order_else_of_its_customer() {
        let def = &crate::saga::definition::embedded().unwrap()[0];
        let p = crate::domain::partition::Partitions::new(64).unwrap();
        let (order, customer) = (OrderId::new(), CustomerId::new());
        let of = |o, c| SagaInstance::new(def, |_| RetryPolicy::NONE, json!({}), c, o).saga_id.0;
        assert_eq!(p.of(&of(Some(order), Some(customer))), p.of(&order.0));
        assert_eq!(p.of(&of(None, Some(customer))), p.of(&customer.0));
        assert_ne!(of(Some(order), None), of(Some(order), None), "each saga its own id");
    }

    #[test]
    fn the_customer_view_hides_internal_error_text_the_operator_view_keeps() {
        let def = &crate::saga::definition::embedded().unwrap()[0];
        let mut saga = SagaInstance::new(def, |_| RetryPolicy::NONE, json!({}), None, None);
        saga.state = SagaState::Failed;
        saga.error = Some(Fault::internal_text("saga field lines: invalid type at /srv/secret").record());
        let customer = saga.to_customer_json();
        assert_eq!(customer["error"]["code"], "INTERNAL");
        assert_eq!(customer["error"]["message"], "internal error");
        assert!(!customer.to_string().contains("/srv/secret"), "{customer}");
        assert!(saga.to_json()["error"]["message"].as_str().unwrap().contains("/srv/secret"));

        saga.error = Some(ServiceError::from(crate::services::orders::CheckoutError::EmptyCart).record());
        assert_eq!(saga.to_customer_json()["error"]["message"], "the cart is empty");
    }

    #[test]
    fn older_records_read_as_never_paused_without_history_and_version_3_round_trips() {
        use crate::store::{Record, Table};
        let def = &crate::saga::definition::embedded().unwrap()[0];
        let mut saga = SagaInstance::new(def, |_| RetryPolicy::NONE, json!({"a": 1}), None, None);
        saga.state = SagaState::Stuck;
        let v1 = SagaInstanceV1 {
            saga_id: saga.saga_id,
            saga_type: saga.saga_type.clone(),
            definition_version: saga.definition_version,
            state: saga.state,
            phase: saga.phase,
            cursor: saga.cursor,
            steps: saga.steps.clone(),
            input: saga.input.clone(),
            data: saga.data.clone(),
            error: None,
            abort_requested: false,
            abort_reason: None,
            customer_id: None,
            order_id: None,
            created_at: saga.created_at,
            updated_at: saga.updated_at,
        };
        let mut bytes = vec![1u8];
        bytes.extend(bincode::serde::encode_to_vec(&v1, bincode::config::standard()).unwrap());
        assert_eq!(SagaInstance::decode(Table::Sagas, &bytes).unwrap(), saga);

        saga.state = SagaState::Paused;
        saga.paused_on = Some(QuarantineKey::new(crate::domain::quarantine::KeyKind::Inventory, uuid::Uuid::now_v7()));
        let v2 = SagaInstanceV2::from(v1);
        let v2 = SagaInstanceV2 { state: saga.state, paused_on: saga.paused_on, ..v2 };
        let mut bytes = vec![2u8];
        bytes.extend(bincode::serde::encode_to_vec(&v2, bincode::config::standard()).unwrap());
        assert_eq!(SagaInstance::decode(Table::Sagas, &bytes).unwrap(), saga, "version 2: no history");

        saga.attempt_started_at = Some(Timestamp(5));
        saga.failed_attempts.push(FailedAttempt {
            work: "reserve_inventory".into(),
            compensation: false,
            attempt: 1,
            started_at: Some(Timestamp(5)),
            finished_at: Timestamp(9),
            kind: "transient".into(),
            error: "timeout".into(),
        });
        let encoded = saga.encode();
        assert_eq!(encoded[0], 3);
        assert_eq!(SagaInstance::decode(Table::Sagas, &encoded).unwrap(), saga);
    }
}
