//! Entity actors: one `Cart` per customer, one `InventoryItem` per product or variant and
//! one `Order` per order, each with its own mailbox (one writer per key). They are activated on first message
//! from their persisted state and passivated when idle; see [`registry`]. Commands to a key an operator paused are
//! refused there too; see [`quarantine`]. What they refuse is an [`ActorError`]; what their messages fail with,
//! an [`ActorFailure`] (that refusal, the domain's, or the store's).

pub mod cart;
pub mod inventory;
pub mod order;
pub mod quarantine;
pub mod registry;

/// What the actors refuse; defined with the one status and code mapping.
mod error;
pub use error::{ActorError, ActorFailure};
