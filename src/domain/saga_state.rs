//! The state of a saga, as its log records it and the listings index it. The engine
//! (`saga/`) drives it; it lives here, below the store, because the store's listing
//! indexes and gauges read it too (the saga re-exports it as `saga::SagaState`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaState {
    Running,
    /// Waiting for the next attempt of its current step or compensation.
    Retrying,
    Compensating,
    Completed,
    /// A business failure (or exhausted retries), compensated.
    Failed,
    /// Needs an operator.
    Stuck,
    /// An operator aborted it; compensated.
    Aborted,
    /// Its current work touches a key an operator quarantined (`paused_on`): it waits,
    /// without using attempts, until the key is released (or an operator aborts it).
    Paused,
}

impl SagaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "RUNNING",
            SagaState::Retrying => "RETRYING",
            SagaState::Compensating => "COMPENSATING",
            SagaState::Completed => "COMPLETED",
            SagaState::Failed => "FAILED",
            SagaState::Stuck => "STUCK",
            SagaState::Aborted => "ABORTED",
            SagaState::Paused => "PAUSED",
        }
    }

    pub fn parse(s: &str) -> Option<SagaState> {
        use SagaState::*;
        [Running, Retrying, Compensating, Completed, Failed, Stuck, Aborted, Paused]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, SagaState::Completed | SagaState::Failed | SagaState::Aborted)
    }

    /// Terminal, or parked for an operator or a quarantine: nothing will happen without
    /// outside input.
    pub fn is_settled(self) -> bool {
        self.is_terminal() || matches!(self, SagaState::Stuck | SagaState::Paused)
    }
}
