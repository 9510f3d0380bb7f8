//! The durable saga engine. Definitions are data (`sagas/*.toml`); each instance is a
//! record in sled (the saga log) rewritten durably at every transition before the next
//! action; a coordinator actor per running saga drives it; timers are persisted
//! (`next_attempt_at`) and re-armed on start; every non-terminal saga resumes on start.
//!
//! - [`alerts`]: the admin's emails about STUCK sagas and sagas RETRYING too long.
//! - [`census`]: sagas by type and state, exactly, in memory; triage.
//! - [`definition`]: parsing and checking definitions.
//! - [`instance`]: the persisted instance and its views.
//! - [`indexes`]: a saga's listing entries, and building them for an older store.
//! - [`machine`]: the pure state machine (`transition(instance, input) -> action`).
//! - [`coordinator`]: the actor that persists, then acts.
//! - [`query`]: the operators' saga filter, a bounded walk of the narrowest index.
//! - [`engine`]: start, watch, recover, resume, abort, retry policies.
//! - [`metrics`]: the engine's Prometheus counters, histograms and gauges.
//! - [`shapes`]: the typed input and data of each saga, as stored.
//! - [`steps`]: the step handlers by name.
//! - [`versions`]: every definition version this build runs, checked against handlers and
//!   against the unfinished sagas at boot.

pub mod alerts;
pub mod census;
pub mod coordinator;
pub mod definition;
pub mod engine;
pub mod fold;
pub mod indexes;
pub mod instance;
pub mod machine;
pub mod metrics;
pub mod query;
pub mod shapes;
pub mod steps;
pub mod versions;

/// The saga layer's refusals, typed; defined with the one status and code mapping.
mod error;
pub use engine::SagaEngine;
pub use error::SagaError;
pub use instance::{SagaInstance, SagaState};
