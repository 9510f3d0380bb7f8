//! Alerts to the admin, through the outbox (email), when a saga needs an operator:
//! - it became STUCK: the coordinator queues the alert in the very write set of that
//!   transition, so a crash can neither lose it nor send it twice, and it comes again only
//!   if the saga becomes STUCK again (after a resume, say);
//! - it stays RETRYING longer than `alerts.retrying_after_secs`: a periodic check over the
//!   census (memory, not the store) queues the alert together with a marker keyed by the
//!   saga and the start of its retry episode (`Table::SagaAlerts`, a conditional put), so
//!   each episode alerts once, across restarts too.
//!
//! Each alert names the saga, its type, step and last error, and links to its console page.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::census::state_since;
use super::engine::SagaEngine;
use super::instance::{SagaInstance, SagaState};
use crate::config::Settings;
use crate::domain::time::Timestamp;
use crate::store::{keys, Notification, StoreError, WriteSet};

pub const STUCK_KIND: &str = "saga_stuck_alert";
pub const RETRYING_KIND: &str = "saga_retrying_alert";

/// The admin's alert about `saga` (STUCK, or RETRYING for too long).
pub fn alert(kind: &str, saga: &SagaInstance, settings: &Settings) -> Notification {
    let work = saga.current();
    let step = work.map(|w| w.name.as_str());
    let error = work.and_then(|w| w.last_error.as_deref());
    let link = format!("{}/console/sagas/{}", settings.server.public_url.trim_end_matches('/'), saga.saga_id);
    let since = state_since(saga);
    let subject = format!(
        "Saga {} {} is {} at {}{}",
        saga.saga_type,
        saga.saga_id,
        saga.state.as_str(),
        step.unwrap_or("?"),
        error.map(|e| format!(": {}", e.chars().take(120).collect::<String>())).unwrap_or_default()
    );
    let payload = json!({
        "saga_id": saga.saga_id,
        "type": saga.saga_type,
        "state": saga.state.as_str(),
        "step": step,
        "error": error,
        "attempts": work.map(|w| w.attempts),
        "since": since.rfc3339(),
        "order_id": saga.order_id,
        "console_url": link,
    });
    Notification::queued(kind, &settings.notifications.admin_email, subject, payload)
}

/// Whether a transition from `before` makes the saga STUCK: its write then carries the
/// STUCK alert (a saga read back STUCK on recovery is not such a transition).
pub fn became_stuck(saga: &SagaInstance, before: SagaState) -> bool {
    saga.state == SagaState::Stuck && before != SagaState::Stuck
}

/// The periodic check for sagas that stay RETRYING too long.
pub struct RetryingWatch {
    engine: Arc<SagaEngine>,
    settings: Arc<Settings>,
}

impl RetryingWatch {
    pub fn new(engine: Arc<SagaEngine>, settings: Arc<Settings>) -> RetryingWatch {
        RetryingWatch { engine, settings }
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.settings.alerts.check_interval_ms.max(10));
        loop {
            match self.check(Timestamp::now()).await {
                Ok(_) | Err(StoreError::Closed) => {}
                Err(e) => tracing::warn!(error = %e, "check of long-retrying sagas failed; the next one retries"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
        }
    }

    /// Alerts every saga RETRYING since `retrying_after_secs` before `now` that was not
    /// alerted for this episode yet; returns how many it alerted.
    pub async fn check(&self, now: Timestamp) -> Result<usize, StoreError> {
        let after_ms = i64::try_from(self.settings.alerts.retrying_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let store = self.engine.store();
        let mut alerted = 0;
        for (id, since) in self.engine.census().retrying_since(now.plus_millis(-after_ms)) {
            // The census follows durable transitions; the log says whether it still holds.
            let Some(saga) = store.load::<SagaInstance>(&keys::saga(id))? else { continue };
            if saga.state != SagaState::Retrying || state_since(&saga) != since {
                continue;
            }
            let key = keys::saga_alert(saga.saga_id, since.0);
            if store.exists(&key)? {
                continue;
            }
            let note = alert(RETRYING_KIND, &saga, &self.settings);
            let ws = WriteSet::new().save_new(key, &note.notification_id.0, "saga_alert").notify(note);
            match store.commit(ws).await {
                Ok(()) => alerted += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(alerted)
    }
}
