//! The key layout, in one place. Each table is a sled tree; keys are big-endian so that
//! byte order is numeric order, and ids are UUIDv7 so that id order is creation order.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Table {
    /// customer id -> Customer
    Customers,
    /// lower-cased email -> customer id (16 bytes); enforces uniqueness
    CustomerEmails,
    /// sha256(session token) -> Session
    Sessions,
    /// sha256(verification token) -> customer id
    VerifyTokens,
    /// category id -> Category
    Categories,
    /// product id -> Product
    Products,
    /// item key (product id ++ variant id or zeros) -> StockRecord
    Stock,
    /// item key ++ owner id -> quantity (u32 BE)
    Reservations,
    /// customer id -> Cart
    Carts,
    /// seq (u64 BE) -> EventRecord
    Events,
    /// seq (u64 BE) -> AuditEntry
    Audit,
    /// entity_type \0 entity_id \0 seq -> () ; audit rows of one entity
    AuditByEntity,
    /// notification id -> Notification
    Outbox,
    /// next attempt (ms, i64 BE) ++ notification id -> () ; what the delivery worker owes
    OutboxDue,
    /// order id -> Order
    Orders,
    /// customer id ++ order id -> () ; a customer's orders in creation order
    OrdersByCustomer,
    /// saga id -> SagaInstance (the saga log)
    Sagas,
    /// saga id -> () ; sagas not yet terminal, resumed on start
    ActiveSagas,
    /// "saga_type/step" -> RetryPolicy ; operators may change them
    RetryPolicies,
    /// customer id ++ sha256(Idempotency-Key) ++ operation -> saga id
    Idempotency,
    /// payment authorization id -> order id (payment webhooks find orders by it)
    OrdersByAuthorization,
    /// tracking number -> order id (carrier webhooks; a number is used once)
    OrdersByTracking,
    /// source \0 event id -> WebhookEvent ; every webhook event, recorded before the answer
    WebhookEvents,
    /// expiry (ms, BE) ++ order id -> () ; unpaid orders' persisted expiry timers
    OrderExpiry,
    /// consumer name -> last event seq it handled (durable cursors over the event log)
    Cursors,
    /// created (ms, BE) ++ Idempotency key -> saga id ; written with the key, for its TTL
    IdempotencyByTime,
    /// finished (ms, BE) ++ saga id -> () ; written as a saga becomes terminal, for retention
    FinishedSagas,
    /// received (ms, BE) ++ source \0 event id -> () ; written with the event, for retention
    WebhookEventsByTime,
    /// status ++ order id -> () ; admin listing by status (see [`ListingFilter`])
    OrdersByStatus,
    /// state | type | type ++ state, then saga id -> () ; admin saga listings
    SagasByFilter,
    /// all | source | status | source ++ status, then received (ms, BE) ++ source \0 event id
    /// -> () ; admin webhook listings, in order of reception
    WebhooksByFilter,
    /// status | kind | status ++ kind, then notification id -> () ; admin outbox listings
    NotificationsByFilter,
    /// entity_type, then seq (u64 BE) -> () ; audit rows of one entity type
    AuditByType,
    /// index table name -> () ; an index being built from its main table (see `indexes`)
    IndexBuilds,
    /// kind (1 byte) ++ id -> QuarantineEntry ; keys an operator paused
    Quarantine,
    /// saga id ++ retrying since (ms, BE) -> notification id ; the alert sent for a saga that
    /// stays RETRYING, once per retry episode (see `saga::alerts`)
    SagaAlerts,
    /// owner kind (b'o' order, b'c' customer) ++ owner id ++ saga id -> () ; the sagas of one
    /// order or customer, written with the saga's first log write (see [`super::keys::saga_owner_prefix`])
    SagasByOwner,
    /// bulk action id -> BulkAction ; operators' bulk resumes and aborts, with their progress
    BulkActions,
    /// order id ++ event seq (u64 BE) -> () ; an order's domain events, written with each
    /// event (see `keys::order_event`)
    EventsByOrder,
    /// sha256(console session id) -> StaffSession ; operators signed in to the console
    StaffSessions,
    /// partition (u16 BE) ++ epoch (i64 BE) ++ seq (u64 BE) -> StagedEntry ; events, audit
    /// rows and notifications committed by a server that does not own the shared partition,
    /// waiting for its owner to move them into the logs (see `staged`)
    StagedLogs,
    /// seq (u64 BE) -> InvalidationEntry ; which cached record a write set changed, numbered
    /// in commit order by the shared partition's owner, polled by every server to drop its
    /// in-memory copies (see `invalidations`)
    CacheInvalidations,
}

impl Table {
    pub const ALL: [Table; 42] = [
        Table::Customers,
        Table::CustomerEmails,
        Table::Sessions,
        Table::VerifyTokens,
        Table::Categories,
        Table::Products,
        Table::Stock,
        Table::Reservations,
        Table::Carts,
        Table::Events,
        Table::Audit,
        Table::AuditByEntity,
        Table::Outbox,
        Table::OutboxDue,
        Table::Orders,
        Table::OrdersByCustomer,
        Table::Sagas,
        Table::ActiveSagas,
        Table::RetryPolicies,
        Table::Idempotency,
        Table::OrdersByAuthorization,
        Table::OrdersByTracking,
        Table::WebhookEvents,
        Table::OrderExpiry,
        Table::Cursors,
        Table::IdempotencyByTime,
        Table::FinishedSagas,
        Table::WebhookEventsByTime,
        Table::OrdersByStatus,
        Table::SagasByFilter,
        Table::WebhooksByFilter,
        Table::NotificationsByFilter,
        Table::AuditByType,
        Table::IndexBuilds,
        Table::Quarantine,
        Table::SagaAlerts,
        Table::SagasByOwner,
        Table::BulkActions,
        Table::EventsByOrder,
        Table::StaffSessions,
        Table::StagedLogs,
        Table::CacheInvalidations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Customers => "customers",
            Table::CustomerEmails => "customer_emails",
            Table::Sessions => "sessions",
            Table::VerifyTokens => "verify_tokens",
            Table::Categories => "categories",
            Table::Products => "products",
            Table::Stock => "stock",
            Table::Reservations => "reservations",
            Table::Carts => "carts",
            Table::Events => "events",
            Table::Audit => "audit",
            Table::AuditByEntity => "audit_by_entity",
            Table::Outbox => "outbox",
            Table::OutboxDue => "outbox_due",
            Table::Orders => "orders",
            Table::OrdersByCustomer => "orders_by_customer",
            Table::Sagas => "sagas",
            Table::ActiveSagas => "active_sagas",
            Table::RetryPolicies => "retry_policies",
            Table::Idempotency => "idempotency",
            Table::OrdersByAuthorization => "orders_by_authorization",
            Table::OrdersByTracking => "orders_by_tracking",
            Table::WebhookEvents => "webhook_events",
            Table::OrderExpiry => "order_expiry",
            Table::Cursors => "cursors",
            Table::IdempotencyByTime => "idempotency_by_time",
            Table::FinishedSagas => "finished_sagas",
            Table::WebhookEventsByTime => "webhook_events_by_time",
            Table::OrdersByStatus => "orders_by_status",
            Table::SagasByFilter => "sagas_by_filter",
            Table::WebhooksByFilter => "webhooks_by_filter",
            Table::NotificationsByFilter => "notifications_by_filter",
            Table::AuditByType => "audit_by_type",
            Table::IndexBuilds => "index_builds",
            Table::Quarantine => "quarantine",
            Table::SagaAlerts => "saga_alerts",
            Table::SagasByOwner => "sagas_by_owner",
            Table::BulkActions => "bulk_actions",
            Table::EventsByOrder => "events_by_order",
            Table::StaffSessions => "staff_sessions",
            Table::StagedLogs => "staged_logs",
            Table::CacheInvalidations => "cache_invalidations",
        }
    }
}

/// One filter of an admin listing: which index table holds it and which key prefix it is.
/// An index key is the prefix, then the listing's order key (an id, a seq, a reception
/// time and event key); the prefix is a family byte, then each filter value as its length
/// (u32 BE) and bytes, so that no value can run into the next one or into the order key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingFilter<'a> {
    OrderStatus(&'a str),
    SagaState(&'a str),
    SagaType(&'a str),
    SagaTypeState(&'a str, &'a str),
    /// Every webhook event, in order of reception.
    WebhookAll,
    WebhookSource(&'a str),
    WebhookStatus(&'a str),
    WebhookSourceStatus(&'a str, &'a str),
    NotificationStatus(&'a str),
    NotificationKind(&'a str),
    NotificationStatusKind(&'a str, &'a str),
    AuditType(&'a str),
}

impl ListingFilter<'_> {
    pub fn table(self) -> Table {
        use ListingFilter::*;
        match self {
            OrderStatus(_) => Table::OrdersByStatus,
            SagaState(_) | SagaType(_) | SagaTypeState(..) => Table::SagasByFilter,
            WebhookAll | WebhookSource(_) | WebhookStatus(_) | WebhookSourceStatus(..) => Table::WebhooksByFilter,
            NotificationStatus(_) | NotificationKind(_) | NotificationStatusKind(..) => Table::NotificationsByFilter,
            AuditType(_) => Table::AuditByType,
        }
    }

    /// Where this filter's entries begin in its table.
    pub fn prefix(self) -> Vec<u8> {
        use ListingFilter::*;
        let (family, parts): (u8, &[&str]) = match &self {
            OrderStatus(s) | SagaState(s) | WebhookSource(s) | NotificationStatus(s) | AuditType(s) => {
                (0, std::slice::from_ref(s))
            }
            SagaType(t) | WebhookStatus(t) | NotificationKind(t) => (1, std::slice::from_ref(t)),
            SagaTypeState(a, b) | WebhookSourceStatus(a, b) | NotificationStatusKind(a, b) => {
                return prefix_of(2, &[a, b]);
            }
            WebhookAll => (3, &[]),
        };
        prefix_of(family, parts)
    }

    /// The index key of the row whose order key is `order_key`.
    pub fn key(self, order_key: &[u8]) -> Vec<u8> {
        [self.prefix().as_slice(), order_key].concat()
    }
}

/// The inverse of a one-value filter's key (`SagaType`, `SagaState`...): its family byte, its
/// value and the order key after it; `None` for a key of another shape.
pub fn split_listing_key(key: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&family, rest) = key.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let value = rest.get(4..4 + len)?;
    Some((family, value, &rest[4 + len..]))
}

fn prefix_of(family: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = vec![family];
    for p in parts {
        k.extend_from_slice(&(p.len() as u32).to_be_bytes());
        k.extend_from_slice(p.as_bytes());
    }
    k
}

#[cfg(test)]
mod tests {
    use super::super::keys::webhook_order_key;
    use super::*;

    #[test]
    fn table_order_matches_discriminants() {
        for (i, t) in Table::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{}", t.name());
        }
    }

    #[test]
    fn listing_keys_group_by_filter_then_sort_by_order_key() {
        use ListingFilter::*;
        let (a, b) = ([1u8; 16], [2u8; 16]);
        // One filter's entries are contiguous and in id order.
        let k1 = OrderStatus("PENDING").key(&a);
        let k2 = OrderStatus("PENDING").key(&b);
        assert!(k1 < k2);
        assert!(k1.starts_with(&OrderStatus("PENDING").prefix()));
        assert!(!OrderStatus("CONFIRMED").key(&a).starts_with(&OrderStatus("PENDING").prefix()));
        assert_eq!(OrderStatus("PENDING").prefix(), [&[0u8][..], &7u32.to_be_bytes(), b"PENDING"].concat());
        // A value that is a prefix of another never shares its entries.
        assert!(!SagaType("place").key(&a).starts_with(&SagaType("place_order").prefix()));
        assert!(!SagaType("place_order").key(&a).starts_with(&SagaType("place").prefix()));
        // Families of one table never overlap, even for equal values.
        let families = [SagaState("x").prefix(), SagaType("x").prefix(), SagaTypeState("x", "x").prefix()];
        for (i, p) in families.iter().enumerate() {
            for (j, q) in families.iter().enumerate() {
                assert!(i == j || !p.starts_with(q), "{i} {j}");
            }
        }
        assert_eq!(SagaTypeState("t", "RUNNING").table(), Table::SagasByFilter);
        // Webhook order keys sort by reception time first.
        assert!(webhook_order_key(5, "zzz", "z") < webhook_order_key(6, "aaa", "a"));
        assert!(WebhookAll.key(&webhook_order_key(5, "p", "e")).starts_with(&WebhookAll.prefix()));
        assert_eq!(WebhookSourceStatus("payment", "processed").table(), Table::WebhooksByFilter);
        assert_eq!(AuditType("order").key(&9u64.to_be_bytes()).len(), 1 + 4 + 5 + 8);
        let key = SagaType("place_order").key(&a);
        assert_eq!(split_listing_key(&key), Some((SagaType("x").prefix()[0], &b"place_order"[..], &a[..])));
        assert_eq!(split_listing_key(&[1, 0, 0]), None);
    }
}
