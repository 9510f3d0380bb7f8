//! Value types and pure rules. Everything here parses at the edge (an invalid `Email`,
//! `Money` or `Quantity` cannot exist past `http/`) and nothing here does I/O: aggregates
//! decide (`handle` returns events) and apply (`apply` mutates), so they are unit-tested
//! without actix or sled.

pub mod cart;
pub mod email;
pub mod events;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod order;
pub mod partition;
pub mod password;
pub mod product;
pub mod quantity;
pub mod quarantine;
pub mod saga_state;
pub mod text;
pub mod time;
