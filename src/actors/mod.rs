//! Entity actors: one `Cart` per customer and one `InventoryItem` per product or variant,
//! each with its own mailbox (one writer per key). They are activated on first message
//! from their persisted state and passivated when idle; see [`registry`].

pub mod cart;
pub mod inventory;
pub mod order;
pub mod registry;
