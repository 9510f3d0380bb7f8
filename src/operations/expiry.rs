//! Unpaid orders expire. Each order's timer is persisted with the order (`order_expiry`,
//! keyed by due time); this worker finds the due ones and starts the cancel_order saga for
//! each order still PENDING, with reason `payment_timeout`, under an idempotency key of its
//! own, so a timer fires exactly once, across restarts too. The saga cancels only a PENDING
//! order (checked inside the order's actor), so a capture that wins the race confirms the
//! order instead: never both.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::OperationError;
use crate::domain::ids::OrderId;
use crate::domain::order::OrderStatus;
use crate::domain::time::Timestamp;
use crate::saga::shapes::CancelOrderInput;
use crate::saga::SagaEngine;
use crate::services::orders::OrderService;
use crate::store::keys::{self, DueQueue};
use crate::store::{Store, WriteSet};

/// The unpaid orders' timers, by due time.
const QUEUE: DueQueue = DueQueue::OrderExpiry;

pub struct ExpiryWorker {
    store: Store,
    orders: OrderService,
    sagas: Arc<SagaEngine>,
    every: Duration,
}

impl ExpiryWorker {
    pub fn new(store: Store, orders: OrderService, sagas: Arc<SagaEngine>, every_ms: u64) -> ExpiryWorker {
        ExpiryWorker { store, orders, sagas, every: Duration::from_millis(every_ms.max(10)) }
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.expire_due().await {
                tracing::error!(error = %e, "order expiry pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.changed() => break,
            }
        }
    }

    /// Fires every timer due now; returns how many cancellations it started.
    pub async fn expire_due(&self) -> Result<usize, OperationError> {
        let now = Timestamp::now();
        let due = self.store.keys_in(&QUEUE.from(0), &QUEUE.from(now.0 + 1), 256)?;
        let mut started = 0;
        for key in due {
            let Ok(id) = uuid::Uuid::from_slice(keys::time_key_rest(&key)).map(OrderId) else { continue };
            if let Some(order) = self.orders.get_committed(id)?.filter(|o| o.status == OrderStatus::Pending) {
                let idempotency = keys::expiry_cancellation(id);
                let input = CancelOrderInput {
                    order_id: id,
                    customer_id: None,
                    reason: Some("payment_timeout".into()),
                    only_if_pending: true,
                };
                let saga = self.sagas.start(&input, Some(order.customer_id), Some(id), Some(idempotency)).await?;
                tracing::info!(order_id = %id, saga.id = %saga.saga_id, "unpaid order expired: cancelling");
                started += 1;
            }
            // Fired (or nothing left to do): the timer is spent.
            self.store.commit(WriteSet::new().remove(QUEUE.entry(&key))).await?;
        }
        Ok(started)
    }
}
