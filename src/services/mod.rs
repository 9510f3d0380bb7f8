//! The services, thin: validate, talk to actors or the store, shape the answer. [`Shop`]
//! builds them (with the actor registries and the saga engine) and is what every request
//! handler holds.

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
use std::time::Duration;

use actix::ArbiterHandle;
use sha2::{Digest, Sha256};

use crate::actors::cart::CartRegistry;
use crate::actors::inventory::InventoryRegistry;
use crate::actors::order::OrderRegistry;
use crate::actors::registry::{spawn_sweeper, Registry};
use crate::config::Settings;
use crate::domain::quarantine::{KeyKind, QuarantineKey};
use crate::gateways::payment::PaymentGateway;
use crate::saga::steps::StepDeps;
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
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        arbiters: Vec<ArbiterHandle>,
        gateway: Arc<dyn PaymentGateway>,
    ) -> anyhow::Result<Shop> {
        let idle = Duration::from_secs(settings.actors.idle_timeout_secs.max(1));
        let board = quarantine::load_board(&store)?;
        let inventory_registry: Arc<InventoryRegistry> = Arc::new(
            Registry::new("inventory", arbiters.clone(), idle)
                .quarantined_by(board.clone(), |k| QuarantineKey::new(KeyKind::Inventory, k.product_id.0)),
        );
        let cart_registry: Arc<CartRegistry> = Arc::new(
            Registry::new("cart", arbiters.clone(), idle)
                .quarantined_by(board.clone(), |c| QuarantineKey::new(KeyKind::Cart, c.0)),
        );
        let order_registry: Arc<OrderRegistry> = Arc::new(
            Registry::new("order", arbiters.clone(), idle)
                .quarantined_by(board.clone(), |o| QuarantineKey::new(KeyKind::Order, o.0)),
        );
        spawn_sweeper(inventory_registry.clone());
        spawn_sweeper(cart_registry.clone());
        spawn_sweeper(order_registry.clone());
        let catalog = catalog::CatalogService::new(store.clone(), settings.clone());
        let inventory = inventory::InventoryService::new(store.clone(), inventory_registry, catalog.clone());
        let carts =
            cart::CartService::new(store.clone(), settings.clone(), cart_registry, catalog.clone(), inventory.clone());
        let customers = customers::CustomerService::new(store.clone(), settings.clone());
        login_guard::spawn_upkeep(customers.throttle());
        let orders = orders::OrderService::new(store.clone(), order_registry);
        let deps = StepDeps {
            settings: settings.clone(),
            store: store.clone(),
            customers: customers.clone(),
            catalog: catalog.clone(),
            inventory: inventory.clone(),
            carts: carts.clone(),
            orders: orders.clone(),
            gateway,
            quarantine: board.clone(),
        };
        let sagas = crate::saga::SagaEngine::new(store.clone(), deps, arbiters)?;
        retention::spawn_sweeper(
            store.clone(),
            Duration::from_secs(settings.auth.sweep_interval_secs),
            retention::Retention::from_settings(&settings),
            sagas.census().clone(),
        );
        let console = Arc::new(crate::console::Sessions::new(&settings));
        login_guard::spawn_upkeep(console.throttle());
        Ok(Shop {
            console,
            staff_tokens: StaffTokens {
                admin: token_hash(&settings.auth.admin_token),
                fulfillment: token_hash(&settings.auth.fulfillment_token),
            },
            webhooks: webhooks::WebhookService::new(store.clone(), settings.clone(), orders.clone(), sagas.clone()),
            quarantine: quarantine::QuarantineService::new(store.clone(), board, sagas.clone()),
            bulk: bulk::BulkService::new(store.clone(), sagas.clone(), settings.operator.bulk_max),
            customers,
            logs: logs::LogService::new(store.clone()),
            catalog,
            inventory,
            carts,
            orders,
            sagas,
            store,
            settings,
        })
    }

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
