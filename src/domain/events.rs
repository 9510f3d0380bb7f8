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
}
