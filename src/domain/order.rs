//! The Order aggregate and its state machine (SEQ-ORDER-001..005).
//! PENDING -> CONFIRMED (payment captured) -> SHIPPED -> DELIVERED;
//! PENDING | CONFIRMED -> CANCELLED. Anything else is INVALID_STATUS_TRANSITION.

use serde::{Deserialize, Serialize};

use super::events::DomainEvent;
use super::ids::{CustomerId, OrderId, ProductId, SagaId, VariantId};
use super::money::Money;
use super::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        [Self::Pending, Self::Confirmed, Self::Shipped, Self::Delivered, Self::Cancelled]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// The transitions the HTTP contract allows, and no others.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        match (self, next) {
            (Pending, Confirmed) | (Confirmed, Shipped) | (Shipped, Delivered) => true,
            (Pending, Cancelled) | (Confirmed, Cancelled) => true,
            (Pending, _) | (Confirmed, _) | (Shipped, _) | (Delivered, _) | (Cancelled, _) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    Authorized,
    Captured,
    Voided,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "AUTHORIZED",
            PaymentStatus::Captured => "CAPTURED",
            PaymentStatus::Voided => "VOIDED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundStatus {
    /// Cancelled; the void or refund is under way.
    Pending,
    Voided,
    Refunded,
    /// The gateway kept failing: an operator must finish it (resume the saga).
    PendingManual,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Voided => "VOIDED",
            RefundStatus::Refunded => "REFUNDED",
            RefundStatus::PendingManual => "PENDING_MANUAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn subtotal(&self) -> Money {
        self.unit_price.times(self.quantity)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub subtotal: Money,
    pub shipping_cost: Money,
    pub total: Money,
    pub shipping_address: ShippingAddress,
    pub authorization_id: String,
    pub payment_status: PaymentStatus,
    pub refund_status: Option<RefundStatus>,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    /// The place-order saga: also the owner of this order's inventory reservations.
    pub saga_id: SagaId,
    pub cancel_reason: Option<String>,
    /// The saga that cancelled it (a repeated cancel by the same saga is a no-op).
    pub cancelled_by: Option<SagaId>,
    /// The payment webhook event that confirmed it (its repeat is a duplicate, not an error).
    pub confirmed_by_event: Option<String>,
    /// The ship-order saga that shipped it.
    pub shipped_by: Option<SagaId>,
    /// The carrier webhook event that delivered it.
    pub delivered_by_event: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order is {from}; it cannot become {to}")]
    InvalidStatusTransition { from: &'static str, to: &'static str },
    /// Only a CONFIRMED order can be shipped (the status it is in).
    #[error("order is {0}; only a CONFIRMED order can be shipped")]
    NotShippable(&'static str),
    #[error("an order that is {0} cannot be cancelled")]
    CancellationNotAllowed(&'static str),
    #[error("captured {captured}, but the order total is {total}")]
    AmountMismatch { captured: Money, total: Money },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// `only_if_pending`: the engine's own expiry of an unpaid order must lose to a capture.
    Cancel {
        by: SagaId,
        reason: String,
        only_if_pending: bool,
    },
    SetRefund {
        status: RefundStatus,
    },
    /// Payment captured (webhook `event_id`): PENDING -> CONFIRMED.
    Confirm {
        event_id: String,
        amount: Money,
    },
    /// Fulfillment shipped it (saga `by`): CONFIRMED -> SHIPPED.
    Ship {
        by: SagaId,
        tracking_number: String,
        carrier: Option<String>,
    },
    /// The carrier delivered it (webhook `event_id`): SHIPPED -> DELIVERED.
    Deliver {
        event_id: String,
    },
}

/// What a command decided: events to persist, or "this exact command was already applied".
impl Order {
    fn transition(&self, to: OrderStatus) -> Result<(), OrderError> {
        if self.status.can_become(to) {
            Ok(())
        } else {
            Err(OrderError::InvalidStatusTransition { from: self.status.as_str(), to: to.as_str() })
        }
    }
}

impl Order {
    /// A new PENDING order with an authorized payment, placed by saga `saga_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn placed(
        order_id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderLine>,
        (subtotal, shipping_cost, total): (Money, Money, Money),
        shipping_address: ShippingAddress,
        authorization_id: String,
        saga_id: SagaId,
        at: Timestamp,
    ) -> Order {
        Order {
            order_id,
            customer_id,
            status: OrderStatus::Pending,
            items,
            subtotal,
            shipping_cost,
            total,
            shipping_address,
            authorization_id,
            payment_status: PaymentStatus::Authorized,
            refund_status: None,
            tracking_number: None,
            carrier: None,
            saga_id,
            cancel_reason: None,
            cancelled_by: None,
            confirmed_by_event: None,
            shipped_by: None,
            delivered_by_event: None,
            created_at: at,
            updated_at: at,
        }
    }

    /// Whether the order may be cancelled: before shipment only, and only while PENDING
    /// when the engine expires an unpaid order (a capture that got there first wins).
    pub fn cancellable(&self, only_if_pending: bool) -> Result<(), OrderError> {
        match self.status {
            OrderStatus::Shipped | OrderStatus::Delivered => {
                Err(OrderError::CancellationNotAllowed(self.status.as_str()))
            }
            OrderStatus::Confirmed if only_if_pending => Err(OrderError::InvalidStatusTransition {
                from: self.status.as_str(),
                to: OrderStatus::Cancelled.as_str(),
            }),
            OrderStatus::Pending | OrderStatus::Confirmed | OrderStatus::Cancelled => {
                self.transition(OrderStatus::Cancelled)
            }
        }
    }

    pub fn handle(&self, cmd: &OrderCommand) -> Result<Vec<DomainEvent>, OrderError> {
        match cmd {
            OrderCommand::Cancel { by, reason, only_if_pending } => {
                if self.cancelled_by == Some(*by) {
                    return Ok(Vec::new());
                }
                self.cancellable(*only_if_pending)?;
                Ok(vec![DomainEvent::OrderCancelled {
                    order_id: self.order_id,
                    customer_id: self.customer_id,
                    reason: reason.clone(),
                    saga_id: *by,
                }])
            }
            OrderCommand::Confirm { event_id, amount } => {
                if self.confirmed_by_event.as_ref() == Some(event_id) {
                    return Ok(Vec::new());
                }
                self.transition(OrderStatus::Confirmed)?;
                if *amount != self.total {
                    return Err(OrderError::AmountMismatch { captured: *amount, total: self.total });
                }
                Ok(vec![DomainEvent::OrderConfirmed {
                    order_id: self.order_id,
                    customer_id: self.customer_id,
                    event_id: event_id.clone(),
                }])
            }
            OrderCommand::Ship { by, tracking_number, carrier } => {
                if self.shipped_by == Some(*by) {
                    return Ok(Vec::new());
                }
                self.transition(OrderStatus::Shipped)?;
                Ok(vec![DomainEvent::OrderShipped {
                    order_id: self.order_id,
                    customer_id: self.customer_id,
                    tracking_number: tracking_number.clone(),
                    carrier: carrier.clone(),
                    saga_id: *by,
                }])
            }
            OrderCommand::Deliver { event_id } => {
                if self.delivered_by_event.as_ref() == Some(event_id) {
                    return Ok(Vec::new());
                }
                self.transition(OrderStatus::Delivered)?;
                Ok(vec![DomainEvent::OrderDelivered {
                    order_id: self.order_id,
                    customer_id: self.customer_id,
                    event_id: event_id.clone(),
                }])
            }
            OrderCommand::SetRefund { status } => {
                if self.refund_status == Some(*status) {
                    return Ok(Vec::new());
                }
                Ok(vec![DomainEvent::OrderRefundUpdated {
                    order_id: self.order_id,
                    status: status.as_str().to_string(),
                }])
            }
        }
    }

    pub fn apply(&mut self, event: &DomainEvent, at: Timestamp) {
        match event {
            DomainEvent::OrderCancelled { reason, saga_id, .. } => {
                self.status = OrderStatus::Cancelled;
                self.cancel_reason = Some(reason.clone());
                self.cancelled_by = Some(*saga_id);
                self.refund_status.get_or_insert(RefundStatus::Pending);
            }
            DomainEvent::OrderConfirmed { event_id, .. } => {
                self.status = OrderStatus::Confirmed;
                self.payment_status = PaymentStatus::Captured;
                self.confirmed_by_event = Some(event_id.clone());
            }
            DomainEvent::OrderShipped { tracking_number, carrier, saga_id, .. } => {
                self.status = OrderStatus::Shipped;
                self.tracking_number = Some(tracking_number.clone());
                self.carrier = carrier.clone();
                self.shipped_by = Some(*saga_id);
            }
            DomainEvent::OrderDelivered { event_id, .. } => {
                self.status = OrderStatus::Delivered;
                self.delivered_by_event = Some(event_id.clone());
            }
            DomainEvent::OrderRefundUpdated { status, .. } => {
                let status = match status.as_str() {
                    "VOIDED" => RefundStatus::Voided,
                    "REFUNDED" => RefundStatus::Refunded,
                    "PENDING_MANUAL" => RefundStatus::PendingManual,
                    _ => RefundStatus::Pending,
                };
                self.refund_status = Some(status);
                match status {
                    RefundStatus::Voided => self.payment_status = PaymentStatus::Voided,
                    RefundStatus::Refunded => self.payment_status = PaymentStatus::Refunded,
                    RefundStatus::Pending | RefundStatus::PendingManual => {}
                }
            }
            _ => return,
        }
        self.updated_at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn only_the_listed_transitions_are_allowed() {
        let all = [Pending, Confirmed, Shipped, Delivered, Cancelled];
        let allowed: Vec<(OrderStatus, OrderStatus)> =
            all.iter().flat_map(|a| all.iter().map(move |b| (*a, *b))).filter(|(a, b)| a.can_become(*b)).collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Confirmed),
                (Pending, Cancelled),
                (Confirmed, Shipped),
                (Confirmed, Cancelled),
                (Shipped, Delivered)
            ]
        );
    }

    pub fn order(status: OrderStatus) -> Order {
        let address = ShippingAddress {
            name: "A".into(),
            line1: "1 Road".into(),
            city: "Town".into(),
            postal_code: "1".into(),
            country: "US".into(),
        };
        let zero = (Money::ZERO, Money::ZERO, Money::ZERO);
        let placed = Order::placed(
            OrderId::new(),
            CustomerId::new(),
            vec![],
            zero,
            address,
            "auth".into(),
            SagaId::new(),
            Timestamp::now(),
        );
        Order { status, ..placed }
    }

    #[test]
    fn webhook_commands_are_idempotent_per_event_and_follow_the_state_machine() {
        let mut o = order(Pending);
        let total = o.total;
        let confirm = OrderCommand::Confirm { event_id: "evt_1".into(), amount: total };
        let events = o.handle(&confirm).unwrap();
        events.iter().for_each(|e| o.apply(e, Timestamp::now()));
        assert_eq!((o.status, o.payment_status), (Confirmed, PaymentStatus::Captured));
        assert!(o.handle(&confirm).unwrap().is_empty(), "the same event again changes nothing");
        assert!(matches!(
            o.handle(&OrderCommand::Confirm { event_id: "evt_2".into(), amount: total }),
            Err(OrderError::InvalidStatusTransition { .. })
        ));
        assert!(matches!(
            o.handle(&OrderCommand::Deliver { event_id: "d".into() }),
            Err(OrderError::InvalidStatusTransition { .. })
        ));
        let mismatch =
            order(Pending).handle(&OrderCommand::Confirm { event_id: "e".into(), amount: Money::from_cents(1) });
        assert!(matches!(mismatch, Err(OrderError::AmountMismatch { .. })));
    }

    #[test]
    fn expiry_only_cancels_a_pending_order() {
        let expire =
            OrderCommand::Cancel { by: SagaId::new(), reason: "payment_timeout".into(), only_if_pending: true };
        assert!(matches!(order(Confirmed).handle(&expire), Err(OrderError::InvalidStatusTransition { .. })));
        assert_eq!(order(Pending).handle(&expire).unwrap().len(), 1);
    }

    #[test]
    fn cancel_rules() {
        let by = SagaId::new();
        let cancel = OrderCommand::Cancel { by, reason: "customer".into(), only_if_pending: false };
        for s in [Shipped, Delivered] {
            assert_eq!(order(s).handle(&cancel), Err(OrderError::CancellationNotAllowed(s.as_str())));
        }
        let mut o = order(Confirmed);
        let events = o.handle(&cancel).unwrap();
        events.iter().for_each(|e| o.apply(e, Timestamp::now()));
        assert_eq!((o.status, o.refund_status), (Cancelled, Some(RefundStatus::Pending)));
        // The same saga again is a no-op; another one is refused.
        assert!(o.handle(&cancel).unwrap().is_empty());
        assert!(matches!(
            o.handle(&OrderCommand::Cancel { by: SagaId::new(), reason: "again".into(), only_if_pending: false }),
            Err(OrderError::InvalidStatusTransition { .. })
        ));
    }
}
