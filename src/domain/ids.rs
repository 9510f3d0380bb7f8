//! Identifiers. Time-ordered UUIDv7 so keys sort by creation (pagination follows it).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(
    /// A registered customer.
    CustomerId
);
id_type!(
    /// A catalogue product.
    ProductId
);
id_type!(
    /// One variant of a product (size, colour...), with its own stock.
    VariantId
);
id_type!(
    /// A catalogue category.
    CategoryId
);
id_type!(
    /// One line of a cart.
    LineId
);
id_type!(
    /// Whoever holds a reservation: a saga, an order, an operator's hold.
    OwnerId
);
id_type!(
    /// A queued notification.
    NotificationId
);
id_type!(
    /// An order.
    OrderId
);
id_type!(
    /// A saga instance (place-order, cancel-order...).
    SagaId
);

/// The inventory item a stock figure belongs to: a product, or one variant of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemKey {
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
}
