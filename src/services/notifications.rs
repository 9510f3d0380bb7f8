//! The notification outbox's delivery worker. Notifications are queued in the same write as
//! their cause; this worker delivers what is due, oldest first, retries failures with
//! exponential backoff (3 retries by default), then marks them FAILED for an operator. A
//! failed delivery never touches the operation that queued it. Delivery is at-least-once:
//! a crash between sending and recording `SENT` sends again after the restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::NotificationSettings;
use crate::domain::time::Timestamp;
use crate::gateways::email::EmailTransport;
use crate::metrics;
use crate::retry::RetryPolicy;
use crate::store::keys::{self, DueQueue};
use crate::store::{notification_index, reindex, Notification, NotificationStatus, Store, StoreError, Table, WriteSet};

const BATCH: usize = 64;
/// What the worker owes, by due time.
const QUEUE: DueQueue = DueQueue::Outbox;

pub struct DeliveryWorker {
    store: Store,
    transport: Arc<dyn EmailTransport>,
    policy: RetryPolicy,
    poll_interval: Duration,
}

impl DeliveryWorker {
    pub fn new(store: Store, transport: Arc<dyn EmailTransport>, settings: &NotificationSettings) -> DeliveryWorker {
        DeliveryWorker {
            store,
            transport,
            policy: RetryPolicy {
                max_attempts: settings.max_retries + 1,
                initial_backoff_ms: settings.initial_backoff_ms,
                multiplier: settings.multiplier,
                max_backoff_ms: settings.max_backoff_ms,
            },
            poll_interval: Duration::from_millis(settings.poll_interval_ms.max(10)),
        }
    }

    /// Delivers until `stop` turns true; wakes on new notifications and on its poll interval.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let signal = self.store.outbox_signal();
        loop {
            let notified = signal.notified();
            if let Err(e) = self.deliver_due().await {
                tracing::error!(error = %e, "notification delivery pass failed");
            }
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("notification worker stopped");
    }

    /// One pass over what is due now; returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        // The outbox lives in the shared partition: its owner delivers it, once.
        if !self.store.owns_shared() {
            return Ok(0);
        }
        let mut attempted = 0;
        loop {
            let now = Timestamp::now();
            let due = self.store.keys_in(&QUEUE.from(0), &QUEUE.from(now.0 + 1), BATCH)?;
            if due.is_empty() {
                return Ok(attempted);
            }
            // What was read may be applied but not yet durable: never email about a change
            // a crash could still take back.
            self.store.barrier().await?;
            for key in due {
                self.attempt(&key).await?;
                attempted += 1;
            }
        }
    }

    async fn attempt(&self, due_entry: &[u8]) -> Result<(), StoreError> {
        let due = QUEUE.entry(due_entry);
        let Some(mut n) = self.store.get::<Notification>(Table::Outbox, keys::time_key_rest(due_entry))? else {
            return self.store.commit(WriteSet::new().remove(due)).await.map(drop);
        };
        if n.status != NotificationStatus::Queued {
            return self.store.commit(WriteSet::new().remove(due)).await.map(drop);
        }
        let span =
            tracing::info_span!("notification", id = %n.notification_id, kind = %n.kind, attempt = n.attempts + 1);
        let result = {
            let _e = span.enter();
            self.transport.send(&n)
        }
        .await;
        let listed_before = notification_index(&n);
        let now = Timestamp::now();
        n.attempts += 1;
        n.updated_at = now;
        let mut ws = WriteSet::new().remove(due);
        match result {
            Ok(()) => {
                metrics::NOTIFICATIONS.with_label_values(&["sent"]).inc();
                n.status = NotificationStatus::Sent;
                n.last_error = None;
            }
            Err(reason) => match self.policy.delay_after(n.attempts) {
                Some(delay) => {
                    metrics::NOTIFICATIONS.with_label_values(&["retry"]).inc();
                    tracing::warn!(parent: &span, error = %reason, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry");
                    n.last_error = Some(reason);
                    n.next_attempt_at = now.plus_millis(delay.as_millis() as i64);
                    ws = ws.save(keys::outbox_due(n.next_attempt_at.0, n.notification_id), &0u32);
                }
                None => {
                    metrics::NOTIFICATIONS.with_label_values(&["failed"]).inc();
                    tracing::error!(parent: &span, error = %reason, attempts = n.attempts, "delivery failed for good; left for manual review");
                    n.status = NotificationStatus::Failed;
                    n.last_error = Some(reason);
                }
            },
        }
        // A retry stays QUEUED and writes nothing here; SENT or FAILED moves its entries.
        ws = reindex(ws, Table::NotificationsByFilter, &listed_before, &notification_index(&n));
        ws = ws.save(keys::notification(n.notification_id), &n);
        self.store.commit(ws).await.map(drop)
    }
}
