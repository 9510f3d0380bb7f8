//! The NotificationHandler (SEQ-NOTIF-001): consumes the domain event log from a durable
//! cursor and turns events into queued notifications: `OrderShipped` -> the shipping email
//! with its tracking number, `OrderDelivered`, `OrderCancelled` -> the customer's emails,
//! `OutOfStock` and `WebhookNeedsReview` -> the admin's alerts. A batch's notifications and the cursor's new position
//! are one write, so every event yields its notifications exactly once, across crashes
//! too. A customer whose email cannot be found is logged and skipped.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::customers::CustomerService;
use super::ServiceError;
use crate::config::Settings;
use crate::domain::ids::CustomerId;
use crate::domain::partition::Owned;
use crate::store::{keys, EventRecord, Notification, Store, WriteSet};
use crate::whole;

const CONSUMER: &str = "notification_handler";
const BATCH: usize = 256;
/// The event types that become notifications; the rest are skipped without decoding.
const RELEVANT: [&str; 5] = ["OrderShipped", "OrderDelivered", "OrderCancelled", "OutOfStock", "WebhookNeedsReview"];
/// A stretch of events that produced nothing moves the stored cursor only this often
/// (re-reading them after a crash produces nothing either).
const IDLE_CURSOR_STRIDE: u64 = 4096;
const DEBOUNCE: Duration = Duration::from_millis(10);

pub struct NotificationHandler {
    store: Store,
    customers: CustomerService,
    settings: Arc<Settings>,
    poll: Duration,
    /// Where it has read up to, once loaded.
    cursor: std::sync::Mutex<Option<Cursor>>,
}

/// The handler's place in the log, good while this server's share is the one it was read
/// under: a server that gave up the shared partition and took it back reads the stored
/// cursor again (whoever held it meanwhile moved it on), never sends twice what was sent.
struct Cursor {
    share: Arc<Owned>,
    read: u64,
    /// What the store says.
    stored: u64,
}

impl NotificationHandler {
    pub fn new(store: Store, customers: CustomerService, settings: Arc<Settings>) -> NotificationHandler {
        let poll = Duration::from_millis(settings.notifications.poll_interval_ms.max(10));
        NotificationHandler { store, customers, settings, poll, cursor: std::sync::Mutex::new(None) }
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let signal = self.store.events_signal();
        loop {
            let woken = signal.notified();
            loop {
                match self.handle_batch().await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "notification handler pass failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.changed() => break,
            }
            // Under load events arrive with every commit; gather a few milliseconds' worth
            // per pass instead of waking for each.
            tokio::time::sleep(DEBOUNCE).await;
        }
    }

    /// Handles the next events after the cursor; returns how many it consumed.
    pub async fn handle_batch(&self) -> Result<usize, ServiceError> {
        // The event log and the cursor live in the shared partition: its owner reads on.
        let share = self.store.owned();
        if !share.has_shared() {
            return Ok(0);
        }
        let cached = match &*whole::lock(&self.cursor) {
            Some(c) if Arc::ptr_eq(&c.share, &share) => Some((c.read, c.stored)),
            _ => None,
        };
        let (read, stored) = match cached {
            Some(c) => c,
            None => {
                let c = self.store.load::<u64>(&keys::cursor(CONSUMER))?.unwrap_or(0);
                (c, c)
            }
        };
        let after = keys::event(read);
        let events = self.store.page::<EventRecord>(after.table(), Some(after.as_bytes()), BATCH)?;
        let Some(last) = events.last().map(|(_, e)| e.seq) else {
            *whole::lock(&self.cursor) = Some(Cursor { share, read, stored });
            return Ok(0);
        };
        let mut ws = WriteSet::new();
        for (_, event) in events.iter().filter(|(_, e)| RELEVANT.contains(&e.event_type.as_str())) {
            if let Some(n) = self.notification_for(event)? {
                ws = ws.notify(n);
            }
        }
        let stored = if !ws.is_empty() || last - stored >= IDLE_CURSOR_STRIDE {
            self.store.commit(ws.save(keys::cursor(CONSUMER), &last)).await?;
            last
        } else {
            stored
        };
        *whole::lock(&self.cursor) = Some(Cursor { share, read: last, stored });
        Ok(events.len())
    }

    fn notification_for(&self, event: &EventRecord) -> Result<Option<Notification>, ServiceError> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let order = &data["order_id"];
        let (kind, subject, payload) = match event.event_type.as_str() {
            "OrderShipped" => (
                "order_shipped",
                format!("Your order {} has shipped: tracking number {}", str(order), str(&data["tracking_number"])),
                json!({ "order_id": order, "tracking_number": data["tracking_number"], "carrier": data["carrier"] }),
            ),
            "OrderDelivered" => {
                ("order_delivered", format!("Your order {} was delivered", str(order)), json!({ "order_id": order }))
            }
            "OrderCancelled" => (
                "order_cancelled",
                format!("Your order {} is cancelled", str(order)),
                json!({ "order_id": order, "reason": data["reason"] }),
            ),
            "WebhookNeedsReview" => {
                let to = &self.settings.notifications.admin_email;
                let subject = format!("Webhook {} needs review", str(&data["event_id"]));
                let mut payload = data.clone();
                payload["type"] = data["event_type"].clone();
                payload["event_seq"] = json!(event.seq);
                return Ok(Some(Notification::queued("needs_review_alert", to, subject, payload)));
            }
            "OutOfStock" => {
                let to = &self.settings.notifications.admin_email;
                let subject = format!("Out of stock: product {}", str(&data["product_id"]));
                let payload = json!({ "product_id": data["product_id"], "variant_id": data["variant_id"], "event_seq": event.seq });
                return Ok(Some(Notification::queued("out_of_stock_alert", to, subject, payload)));
            }
            _ => return Ok(None),
        };
        let customer = serde_json::from_value::<uuid::Uuid>(data["customer_id"].clone()).ok().map(CustomerId);
        let email = match customer {
            Some(id) => self.customers.get(id)?.map(|c| c.email),
            None => None,
        };
        let Some(email) = email else {
            tracing::error!(seq = event.seq, event = %event.event_type, "customer email not found; notification skipped");
            return Ok(None);
        };
        let mut payload = payload;
        payload["event_seq"] = json!(event.seq);
        Ok(Some(Notification::queued(kind, &email, subject, payload)))
    }
}

fn str(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::DomainEvent;
    use crate::domain::ids::{OrderId, ProductId, SagaId};

    #[tokio::test]
    async fn events_become_notifications_once_and_unknown_customers_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        settings.auth.argon2_memory_kib = 64;
        settings.auth.argon2_iterations = 1;
        let settings = Arc::new(settings);
        let store = Store::open(&settings.storage).unwrap();
        let handler =
            NotificationHandler::new(store.clone(), CustomerService::new(store.clone(), settings.clone()), settings);
        let shipped_to_nobody = DomainEvent::OrderShipped {
            order_id: OrderId::new(),
            customer_id: CustomerId::new(),
            tracking_number: "1Z".into(),
            carrier: None,
            saga_id: SagaId::new(),
        };
        let out_of_stock = DomainEvent::OutOfStock { product_id: ProductId::new(), variant_id: None };
        let irrelevant = DomainEvent::CustomerEmailVerified { customer_id: CustomerId::new() };
        store.commit(WriteSet::new().event(&shipped_to_nobody).event(&out_of_stock).event(&irrelevant)).await.unwrap();

        assert_eq!(handler.handle_batch().await.unwrap(), 3);
        assert_eq!(handler.handle_batch().await.unwrap(), 0, "consumed once");
        let outbox = store.page::<Notification>(crate::store::Table::Outbox, None, 10).unwrap();
        let kinds: Vec<&str> = outbox.iter().map(|(_, n)| n.kind.as_str()).collect();
        assert_eq!(kinds, ["out_of_stock_alert"], "the shipping email to an unknown customer is skipped");
        assert_eq!(store.load::<u64>(&keys::cursor(CONSUMER)).unwrap(), Some(3), "stored with the alert");

        // Another server held the shared partition for a while and handled the next event.
        let next = DomainEvent::OutOfStock { product_id: ProductId::new(), variant_id: None };
        store.commit(WriteSet::new().event(&next).save(keys::cursor(CONSUMER), &4u64)).await.unwrap();
        let count = crate::domain::partition::Partitions::DEFAULT;
        store.ownership().set(Owned::share(count, [crate::domain::partition::Partition(3)]));
        assert_eq!(handler.handle_batch().await.unwrap(), 0, "not the shared partition's owner");
        store.ownership().set(Owned::every(count));
        assert_eq!(handler.handle_batch().await.unwrap(), 0, "the stored cursor is read again: nothing new");
        assert_eq!(store.page::<Notification>(crate::store::Table::Outbox, None, 10).unwrap().len(), 1, "sent once");
        store.close().unwrap();
    }
}
