//! Cartwright: a commerce backend built as an actor-based workflow engine with durable sagas.
//!
//! Module map:
//! - [`domain`]: value types that parse at the edge (money, email, quantities) and pure
//!   aggregates (cart, inventory) that decide events and apply them.
//! - [`store`]: the only code touching sled: tables, versioned records, group commit.
//! - [`actors`]: one actix actor per cart and per inventory item, activated on demand and
//!   passivated when idle, through a sharded registry.
//! - [`services`]: the entities' services (customers, catalog, inventory, cart, orders,
//!   notifications), which the saga engine's steps call.
//! - [`operations`]: what starts or drives sagas (webhooks, quarantine, bulk actions, expiry,
//!   retention), above the engine.
//! - [`http`]: the warp front door: the JSON API, the operators' web console
//!   (server-rendered HTML under `/console`), and the one place every layer's error becomes
//!   the HTTP contract's status and code (`http::error`).
//! - [`error`]: what every layer's error is made of (a fault with its cause, bad input, a
//!   saga's recorded answer) and the trait through which layers record an answer.
//! - [`saga`]: the durable saga engine (definitions, log, coordinator, recovery, steps).
//! - [`gateways`]: the outside world (payment gateways, email transports).
//! - [`server`]: accepts connections and serves HTTP/1.1 with deadlines and a connection cap.
//! - [`backup`]: consistent backups of a running store, and restoring them.
//! - [`startup`]: builds everything in dependency order (entity services, saga engine, the
//!   operations driving sagas) into the `Shop` every handler holds, and the background workers.
//! - [`app`]: start-up and graceful shutdown; [`config`], [`telemetry`], [`metrics`].
#![forbid(unsafe_code)]
// This documentation is for the people who carry the code (`cargo doc --document-private-items`,
// which `.ci/run` builds with warnings denied): a module's docs naming its private parts is
// what they need, not a leak.
#![allow(rustdoc::private_intra_doc_links)]

pub mod actors;
pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gateways;
pub mod http;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod operations;
pub mod retry;
pub mod saga;
#[cfg(test)]
mod self_contained;
pub mod server;
pub mod services;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod whole;
