//! The seed's domain events. Each is appended to the event log in the same transaction as
//! the state change that emits it; on the wire it is `{"seq", "type", "at", "data"}`.

use serde::Serialize;

use super::ids::{CategoryId, CustomerId, LineId, OrderId, OwnerId, ProductId, SagaId, VariantId};
use super::money::Money;

/// What a checkout took from one cart line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TakenLine {
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    CustomerRegistered {
        customer_id: CustomerId,
        email: String,
    },
    CustomerEmailVerified {
        customer_id: CustomerId,
    },
    CategoryCreated {
        category_id: CategoryId,
        name: String,
    },
    ProductCreated {
        product_id: ProductId,
        name: String,
        price: Money,
        category_id: CategoryId,
        variant_ids: Vec<VariantId>,
    },
    ProductUpdated {
        product_id: ProductId,
        old_price: Money,
        new_price: Money,
    },
    InventoryInitialized {
        product_id: ProductId,
        variant_id: Option<VariantId>,
        on_hand: u64,
    },
    InventoryRestocked {
        product_id: ProductId,
        variant_id: Option<VariantId>,
        quantity: u32,
        on_hand: u64,
        available: u64,
    },
    InventoryReserved {
        product_id: ProductId,
        variant_id: Option<VariantId>,
        owner_id: OwnerId,
        quantity: u32,
        reserved: u64,
        available: u64,
    },
    InventoryReleased {
        product_id: ProductId,
        variant_id: Option<VariantId>,
        owner_id: OwnerId,
        quantity: u32,
        reserved: u64,
        available: u64,
    },
    InventoryDeducted {
        product_id: ProductId,
        variant_id: Option<VariantId>,
        owner_id: OwnerId,
        quantity: u32,
        on_hand: u64,
        reserved: u64,
    },
    OutOfStock {
        product_id: ProductId,
        variant_id: Option<VariantId>,
    },
    ItemAddedToCart {
        customer_id: CustomerId,
        line_id: LineId,
        product_id: ProductId,
        variant_id: Option<VariantId>,
        quantity: u32,
        line_quantity: u32,
    },
    CartQuantityUpdated {
        customer_id: CustomerId,
        line_id: LineId,
        old_quantity: u32,
        new_quantity: u32,
        capped: bool,
    },
    ItemRemovedFromCart {
        customer_id: CustomerId,
        line_id: LineId,
        product_id: ProductId,
        variant_id: Option<VariantId>,
    },
    /// Checkout `saga_id` took these quantities out of the cart (what its order holds);
    /// anything added meanwhile stays.
    CartCleared {
        customer_id: CustomerId,
        saga_id: SagaId,
        taken: Vec<TakenLine>,
    },
    OrderPlaced {
        order_id: OrderId,
        customer_id: CustomerId,
        total: Money,
        saga_id: SagaId,
    },
    OrderCancelled {
        order_id: OrderId,
        customer_id: CustomerId,
        reason: String,
        saga_id: SagaId,
    },
    OrderRefundUpdated {
        order_id: OrderId,
        status: String,
    },
    OrderConfirmed {
        order_id: OrderId,
        customer_id: CustomerId,
        event_id: String,
    },
    OrderShipped {
        order_id: OrderId,
        customer_id: CustomerId,
        tracking_number: String,
        carrier: Option<String>,
        saga_id: SagaId,
    },
    OrderDelivered {
        order_id: OrderId,
        customer_id: CustomerId,
        event_id: String,
    },
    /// A webhook that could not be applied and waits for an operator.
    WebhookNeedsReview {
        source: String,
        event_id: String,
        event_type: String,
        reason: String,
        order_id: Option<OrderId>,
    },
}

impl DomainEvent {
    /// `("ItemAddedToCart", {...})`: the log stores the name and the JSON data.
    pub fn split(&self) -> (String, String) {
        let v = serde_json::to_value(self).unwrap_or_default();
        let ty = v["type"].as_str().unwrap_or("Unknown").to_string();
        (ty, v["data"].to_string())
    }

    /// The order this event is part of the history of, if any: the event log is indexed by
    /// it (an order's events). Every variant is named so that a new one is decided here.
    /// Inventory and cart events name the checkout saga, not the order, and stay out.
    pub fn order_id(&self) -> Option<OrderId> {
        use DomainEvent::*;
        match self {
            OrderPlaced { order_id, .. }
            | OrderCancelled { order_id, .. }
            | OrderRefundUpdated { order_id, .. }
            | OrderConfirmed { order_id, .. }
            | OrderShipped { order_id, .. }
            | OrderDelivered { order_id, .. } => Some(*order_id),
            WebhookNeedsReview { order_id, .. } => *order_id,
            CustomerRegistered { .. }
            | CustomerEmailVerified { .. }
            | CategoryCreated { .. }
            | ProductCreated { .. }
            | ProductUpdated { .. }
            | InventoryInitialized { .. }
            | InventoryRestocked { .. }
            | InventoryReserved { .. }
            | InventoryReleased { .. }
            | InventoryDeducted { .. }
            | OutOfStock { .. }
            | ItemAddedToCart { .. }
            | CartQuantityUpdated { .. }
            | ItemRemovedFromCart { .. }
            | CartCleared { .. } => None,
        }
    }

    /// [`DomainEvent::order_id`] read back from a logged event's JSON data: an event
    /// concerns an order exactly when its data names one in `order_id` (the test below
    /// holds every variant to it). For indexing events logged before the index existed.
    pub fn order_in_data(data: &str) -> Option<OrderId> {
        #[derive(serde::Deserialize)]
        struct Named {
            order_id: Option<OrderId>,
        }
        serde_json::from_str::<Named>(data).ok()?.order_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_type_and_data() {
        let id = CustomerId::new();
        let (ty, data) = DomainEvent::CustomerEmailVerified { customer_id: id }.split();
        assert_eq!(ty, "CustomerEmailVerified");
        assert_eq!(data, format!("{{\"customer_id\":\"{id}\"}}"));
    }

    /// One event of every variant, with the order it names (if any).
    fn one_of_each(order: OrderId) -> Vec<DomainEvent> {
        use DomainEvent::*;
        let (customer_id, product_id, saga_id, line_id) =
            (CustomerId::new(), ProductId::new(), SagaId::new(), LineId::new());
        let (owner_id, variant_id, category_id) = (OwnerId::new(), Some(VariantId::new()), CategoryId::new());
        let (id, s) = (String::from("evt_1"), String::from("x"));
        vec![
            CustomerRegistered { customer_id, email: s.clone() },
            CustomerEmailVerified { customer_id },
            CategoryCreated { category_id, name: s.clone() },
            ProductCreated { product_id, name: s.clone(), price: Money::ZERO, category_id, variant_ids: vec![] },
            ProductUpdated { product_id, old_price: Money::ZERO, new_price: Money::ZERO },
            InventoryInitialized { product_id, variant_id, on_hand: 1 },
            InventoryRestocked { product_id, variant_id, quantity: 1, on_hand: 1, available: 1 },
            InventoryReserved { product_id, variant_id, owner_id, quantity: 1, reserved: 1, available: 0 },
            InventoryReleased { product_id, variant_id, owner_id, quantity: 1, reserved: 0, available: 1 },
            InventoryDeducted { product_id, variant_id, owner_id, quantity: 1, on_hand: 0, reserved: 0 },
            OutOfStock { product_id, variant_id },
            ItemAddedToCart { customer_id, line_id, product_id, variant_id, quantity: 1, line_quantity: 1 },
            CartQuantityUpdated { customer_id, line_id, old_quantity: 1, new_quantity: 2, capped: false },
            ItemRemovedFromCart { customer_id, line_id, product_id, variant_id },
            CartCleared { customer_id, saga_id, taken: vec![] },
            OrderPlaced { order_id: order, customer_id, total: Money::ZERO, saga_id },
            OrderCancelled { order_id: order, customer_id, reason: s.clone(), saga_id },
            OrderRefundUpdated { order_id: order, status: s.clone() },
            OrderConfirmed { order_id: order, customer_id, event_id: id.clone() },
            OrderShipped { order_id: order, customer_id, tracking_number: s.clone(), carrier: None, saga_id },
            OrderDelivered { order_id: order, customer_id, event_id: id.clone() },
            WebhookNeedsReview {
                source: s.clone(),
                event_id: id.clone(),
                event_type: s.clone(),
                reason: s.clone(),
                order_id: Some(order),
            },
            WebhookNeedsReview { source: s.clone(), event_id: id, event_type: s.clone(), reason: s, order_id: None },
        ]
    }

    #[test]
    fn an_events_order_is_the_one_its_logged_data_names() {
        let order = OrderId::new();
        let events = one_of_each(order);
        let mut order_events = Vec::new();
        for e in &events {
            let (ty, data) = e.split();
            assert_eq!(e.order_id(), DomainEvent::order_in_data(&data), "{ty}: {data}");
            if e.order_id().is_some() {
                assert_eq!(e.order_id(), Some(order));
                order_events.push(ty);
            }
        }
        let want = [
            "OrderPlaced",
            "OrderCancelled",
            "OrderRefundUpdated",
            "OrderConfirmed",
            "OrderShipped",
            "OrderDelivered",
            "WebhookNeedsReview",
        ];
        assert_eq!(order_events, want);
        assert_eq!(DomainEvent::order_in_data("null"), None);
    }
}
