//! The services, thin: validate, talk to actors or the store, shape the answer. [`Shop`]
//! holds them (with the saga engine) for every request handler; `startup` builds it.

pub mod audit;
pub mod bulk;
pub mod cart;
pub mod catalog;
pub mod credential_sweep;
pub mod customers;
pub mod expiry;
pub mod inventory;
pub mod login_guard;
pub mod logs;
pub mod notification_handler;
pub mod notifications;
pub mod orders;
pub mod quarantine;
pub mod retention;
pub mod webhooks;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::store::Store;

/// Everything a request handler needs: settings, the store and the services.
pub struct Shop {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub customers: customers::CustomerService,
    pub catalog: catalog::CatalogService,
    pub inventory: inventory::InventoryService,
    pub carts: cart::CartService,
    pub logs: logs::LogService,
    pub orders: orders::OrderService,
    pub sagas: Arc<crate::saga::SagaEngine>,
    pub webhooks: webhooks::WebhookService,
    pub quarantine: quarantine::QuarantineService,
    pub bulk: bulk::BulkService,
    /// The console's sign-in sessions (in memory).
    pub console: Arc<crate::console::Sessions>,
    /// Digests of the configured staff tokens, computed once.
    pub staff_tokens: StaffTokens,
}

pub struct StaffTokens {
    pub admin: [u8; 32],
    pub fulfillment: [u8; 32],
}

impl Shop {
    /// Actors in memory: what passivation keeps bounded.
    pub fn active_actors(&self) -> serde_json::Value {
        serde_json::json!({
            "carts": self.carts.active(),
            "inventory_items": self.inventory.active(),
            "orders": self.orders.active(),
            "sagas": self.sagas.active(),
        })
    }
}

/// Tokens are stored only as their SHA-256, so a copy of the database grants nothing.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token: 32 bytes from the OS generator, hex, with a readable prefix.
pub fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A small set of async locks picked by key hash: serialises read-modify-write of records
/// that have no actor (customers, products) without one global lock.
pub struct Stripes {
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl Stripes {
    pub fn new(n: usize) -> Stripes {
        Stripes { locks: (0..n).map(|_| tokio::sync::Mutex::new(())).collect() }
    }

    pub async fn lock(&self, key: &[u8]) -> tokio::sync::MutexGuard<'_, ()> {
        let h = key.iter().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize));
        self.locks[h % self.locks.len()].lock().await
    }
}
