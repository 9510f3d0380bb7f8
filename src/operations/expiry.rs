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

/// Timers fired per pass at most.
const BATCH: usize = 256;

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

    /// Fires every timer due now of the orders this server owns (another server's are its
    /// own worker's) and whose sagas it has recovered (a partition just taken is its once
    /// its take-over is done); returns how many cancellations it started.
    pub async fn expire_due(&self) -> Result<usize, OperationError> {
        let ours = self.store.owned().and(&self.sagas.recovered());
        let now = Timestamp::now();
        let (mut from, end) = (QUEUE.from(0).as_bytes().to_vec(), QUEUE.from(now.0 + 1));
        let table = end.table();
        let mut due = Vec::new();
        // Passing over the others' timers, however many are due before this server's.
        while due.len() < BATCH {
            let page = self.store.keys_between(table, &from, end.as_bytes(), BATCH)?;
            let Some(last) = page.last() else { break };
            from = keys::successor(last);
            let full = page.len() == BATCH;
            due.extend(page.into_iter().filter(|key| Store::lies_in(table, key, &ours)));
            if !full {
                break;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::partition::{id_in, Owned, Partition, Partitions};

    /// A server with a share fires its own partitions' timers, however many of another's
    /// fall due before them, and leaves those to their owner.
    #[test]
    fn a_server_fires_only_its_partitions_timers_past_any_number_of_others() {
        crate::startup::with_shop(|store, shop| async move {
            let worker = ExpiryWorker::new(store.clone(), shop.orders.clone(), shop.sagas.clone(), 10);
            let due = Timestamp::now().plus_millis(-60_000).0;
            // No order behind them: a timer with nothing left to cancel is only spent.
            let theirs: Vec<_> = (0..300).map(|n| keys::order_expiry(due + n, OrderId(id_in(Partition(2))))).collect();
            let mine = keys::order_expiry(due + 300, OrderId(id_in(Partition(1))));
            let ws = theirs.iter().chain([&mine]).fold(WriteSet::new(), |ws, key| ws.save(key.clone(), &0u32));
            store.commit(ws).await.unwrap();

            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(1)]));
            assert_eq!(worker.expire_due().await.unwrap(), 0, "nothing to cancel");
            assert!(!store.exists(&mine).unwrap(), "its own timer, due after 300 others', is spent");
            for key in &theirs {
                assert!(store.exists(key).unwrap(), "another partition's timer is its owner's");
            }

            // Partition 2 taken: its timers are this server's once its sagas are recovered.
            let one = Owned::share(Partitions::DEFAULT, [Partition(1)]);
            shop.sagas.give_up(&one);
            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(1), Partition(2)]));
            worker.expire_due().await.unwrap();
            assert!(theirs.iter().all(|key| store.exists(key).unwrap()), "not before the take-over ends");
            shop.sagas.take_over(&Owned::share(Partitions::DEFAULT, [Partition(2)])).await.unwrap();
            for _ in 0..theirs.len().div_ceil(BATCH) {
                worker.expire_due().await.unwrap();
            }
            assert!(!theirs.iter().any(|key| store.exists(key).unwrap()), "then fired (spent: no order behind)");
        });
    }
}
