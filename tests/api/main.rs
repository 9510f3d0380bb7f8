//! Integration tests: every test spawns the real server (port 0, its own temp sled
//! directory) and talks to it over HTTP. One test binary for all of them.
//!
//! With `CARTWRIGHT_TEST_POSTGRES_URL` set (e.g. `postgres://cartwright:pw@127.0.0.1:25432/cartwright`,
//! what `eval "$(.ci/postgres.sh)"` sets), every server, in-process or the real binary, and
//! every store a test opens use the PostgreSQL backend in that database instead, each temp
//! directory standing for its own schema (`helpers::postgres_schema`), so restarts find
//! their data and tests share none. The few tests about sled's own files skip themselves,
//! printing `SKIPPED on postgres: <test> (<why>)` (`helpers::sled_only`). Unset or empty:
//! sled, nothing else needed.

mod helpers;

mod backup;
mod bulk;
mod caches;
mod cart;
mod catalog;
mod cluster;
mod cluster_crash;
mod concurrency;
mod connections;
mod console;
mod console_forms;
mod console_ops;
mod console_orders;
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
mod postgres_tls;
mod quarantine;
mod retention;
mod saga_data;
mod sagas;
mod sharing;
mod smtp;
mod startup;
mod storage;
mod throttle;
mod triage;
