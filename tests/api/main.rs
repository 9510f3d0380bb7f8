//! Integration tests: every test spawns the real server (port 0, its own temp sled
//! directory) and talks to it over HTTP. One test binary for all of them.

mod helpers;

mod backup;
mod bulk;
mod cart;
mod catalog;
mod concurrency;
mod connections;
mod console;
mod console_ops;
mod contract;
mod crash;
mod customers;
mod durability;
mod expiry;
mod fake_gateway;
mod gateway;
mod hostile;
mod http;
mod inventory;
mod lifecycle;
mod listings;
mod mail_server;
mod order_events;
mod orders;
mod quarantine;
mod retention;
mod saga_data;
mod sagas;
mod smtp;
mod startup;
mod storage;
mod throttle;
mod triage;
