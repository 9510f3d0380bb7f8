//! Builds the application in dependency order, each layer only from the ones below it:
//!
//! 1. the store (opened by the caller), the cache invalidation log's end (where this
//!    server's caches start: `services::invalidations`) and the quarantine board read from it;
//! 2. the actor registries (carts, inventory items, orders), paused by that board;
//! 3. the entity services over them (catalog, inventory, carts, customers, orders);
//! 4. the saga engine, whose steps call those services ([`StepDeps`]);
//! 5. the operations that start or drive sagas (`operations`: webhooks, quarantine, bulk
//!    actions, expiry, retention);
//! 6. the [`Shop`] every request handler holds.
//!
//! The background workers ([`Workers`]) start once the engine has booted. Nothing below
//! this module builds anything above it: the services do not know the saga engine, and the
//! engine does not know the operations that drive it.

use std::sync::Arc;
use std::time::Duration;

use actix::ArbiterHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::cart::CartRegistry;
use crate::actors::inventory::InventoryRegistry;
use crate::actors::order::OrderRegistry;
use crate::actors::quarantine::QuarantineBoard;
use crate::actors::registry::{spawn_sweeper, Registry};
use crate::config::Settings;
use crate::domain::quarantine::{KeyKind, QuarantineKey};
use crate::gateways::email::{EmailTransport, FaultInjecting, LogTransport, SmtpTransport};
use crate::gateways::payment::{HttpGateway, LeaseGuarded, PaymentGateway, SimulatedGateway};
use crate::operations::expiry::ExpiryWorker;
use crate::operations::share::ShareWatch;
use crate::operations::{bulk, quarantine, retention, webhooks};
use crate::saga::alerts::RetryingWatch;
use crate::saga::engine::SagaOwners;
use crate::saga::steps::StepDeps;
use crate::saga::SagaEngine;
use crate::services::inventory::StockOwners;
use crate::services::notification_handler::NotificationHandler;
use crate::services::notifications::DeliveryWorker;
use crate::services::{cart, catalog, customers, invalidations, inventory, login_guard, logs, orders, token_hash};
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
    pub sagas: Arc<SagaEngine>,
    pub webhooks: webhooks::WebhookService,
    pub quarantine: quarantine::QuarantineService,
    pub bulk: bulk::BulkService,
    /// The console's sign-in sessions (in the store, answered from memory once read).
    pub console: Arc<crate::services::staff_sessions::Sessions>,
    /// Digests of the configured staff tokens, computed once.
    pub staff_tokens: StaffTokens,
    /// The caches of shared records, which the poller keeps coherent with other servers'
    /// writes (see `services::invalidations`).
    pub caches: invalidations::Caches,
}

pub struct StaffTokens {
    pub admin: [u8; 32],
    pub fulfillment: [u8; 32],
}

impl Shop {
    /// What follows this shop's share of the partitions (see `operations::share`).
    pub fn share_watch(&self) -> ShareWatch {
        ShareWatch::new(
            self.carts.clone(),
            self.orders.clone(),
            self.inventory.clone(),
            self.sagas.clone(),
            self.store.ownership(),
        )
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

/// Layers 2 and 3: the services that own the shop's entities, over their actors.
struct Entities {
    catalog: catalog::CatalogService,
    inventory: inventory::InventoryService,
    carts: cart::CartService,
    customers: customers::CustomerService,
    orders: orders::OrderService,
}

/// The other servers of a cluster, as the shop calls them: for stock and sagas in the
/// partitions they own.
pub struct Owners {
    pub stock: Arc<dyn StockOwners>,
    pub sagas: Arc<dyn SagaOwners>,
}

/// Everything request handlers use, built bottom-up (see the module documentation).
/// Starts the tasks that keep it tidy (actor passivation, login throttle upkeep, retention
/// sweeps); the engine still has to [`SagaEngine::boot`] before serving.
pub fn shop(
    settings: Arc<Settings>,
    store: Store,
    arbiters: Vec<ArbiterHandle>,
    gateway: Arc<dyn PaymentGateway>,
    owners: Option<Owners>,
) -> anyhow::Result<Shop> {
    // Before anything is cached or read into the board: an entry after it is what changed since.
    let caches_since = crate::store::invalidations::end(&store)?;
    let board = quarantine::load_board(&store)?;
    let (stock_owners, saga_owners) = owners.map(|o| (o.stock, o.sagas)).unzip();
    let entities = entities(&settings, &store, &arbiters, &board, stock_owners);
    let deps = StepDeps {
        settings: settings.clone(),
        store: store.clone(),
        customers: entities.customers.clone(),
        catalog: entities.catalog.clone(),
        inventory: entities.inventory.clone(),
        carts: entities.carts.clone(),
        orders: entities.orders.clone(),
        gateway: Arc::new(LeaseGuarded::new(gateway, store.clone())),
        quarantine: board.clone(),
    };
    let sagas = SagaEngine::new(store.clone(), deps, arbiters, saga_owners)?;
    retention::spawn_sweeper(
        store.clone(),
        Duration::from_secs(settings.auth.sweep_interval_secs),
        retention::Retention::from_settings(&settings),
        sagas.census().clone(),
    );
    let console = Arc::new(crate::services::staff_sessions::Sessions::new(&settings, store.clone()));
    login_guard::spawn_upkeep(console.throttle());
    let Entities { catalog, inventory, carts, customers, orders } = entities;
    let caches = invalidations::Caches {
        since: caches_since,
        customers: customers.clone(),
        console: console.clone(),
        catalog: catalog.clone(),
        board: board.clone(),
        followers: vec![Arc::new(crate::saga::engine::EngineCaches(sagas.clone()))],
    };
    Ok(Shop {
        caches,
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

/// Runs `test` in an actix system with a shop ([`for_tests`]) over a fresh temporary
/// store, and closes the store after it.
#[cfg(test)]
pub(crate) fn with_shop<F: std::future::Future<Output = ()>>(test: impl FnOnce(Store, Shop) -> F) {
    actix::System::new().block_on(async move {
        let (_dir, store) = Store::temporary();
        let shop = for_tests(&store);
        test(store.clone(), shop).await;
        store.close().expect("the store closes");
    });
}

/// A shop over `store` with the default settings and the simulated gateway, on the current
/// actix arbiter: what unit tests of the layers above the services run against.
#[cfg(test)]
pub(crate) fn for_tests(store: &Store) -> Shop {
    let settings = Arc::new(Settings::load_layers(None, false).expect("the default settings"));
    let gateway = payment_gateway(&settings).expect("the simulated gateway");
    shop(settings, store.clone(), vec![actix::Arbiter::current()], gateway, None).expect("a shop builds")
}

fn entities(
    settings: &Arc<Settings>,
    store: &Store,
    arbiters: &[ArbiterHandle],
    board: &Arc<QuarantineBoard>,
    stock_owners: Option<Arc<dyn StockOwners>>,
) -> Entities {
    let idle = Duration::from_secs(settings.actors.idle_timeout_secs.max(1));
    let inventory_registry: Arc<InventoryRegistry> = Arc::new(
        Registry::new("inventory", arbiters.to_vec(), idle)
            .quarantined_by(board.clone(), |k| QuarantineKey::new(KeyKind::Inventory, k.product_id.0)),
    );
    let cart_registry: Arc<CartRegistry> = Arc::new(
        Registry::new("cart", arbiters.to_vec(), idle)
            .quarantined_by(board.clone(), |c| QuarantineKey::new(KeyKind::Cart, c.0)),
    );
    let order_registry: Arc<OrderRegistry> = Arc::new(
        Registry::new("order", arbiters.to_vec(), idle)
            .quarantined_by(board.clone(), |o| QuarantineKey::new(KeyKind::Order, o.0)),
    );
    spawn_sweeper(inventory_registry.clone());
    spawn_sweeper(cart_registry.clone());
    spawn_sweeper(order_registry.clone());
    let catalog = catalog::CatalogService::new(store.clone(), settings.clone());
    let inventory = inventory::InventoryService::new(store.clone(), inventory_registry, catalog.clone(), stock_owners);
    let carts =
        cart::CartService::new(store.clone(), settings.clone(), cart_registry, catalog.clone(), inventory.clone());
    let customers = customers::CustomerService::new(store.clone(), settings.clone());
    login_guard::spawn_upkeep(customers.throttle());
    let orders = orders::OrderService::new(store.clone(), order_registry);
    Entities { catalog, inventory, carts, customers, orders }
}

/// The background workers of a serving shop: notification delivery, unpaid-order expiry,
/// the event-log notification handler, the RETRYING watch, the mover of staged log
/// entries (`store::staged`), the cache invalidation poller and the watch over this
/// server's share of the partitions (`operations::share`). All stop on one signal.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn start(shop: &Shop) -> anyhow::Result<Workers> {
        let (settings, store) = (&shop.settings, &shop.store);
        let (stop, stop_rx) = watch::channel(false);
        let delivery = DeliveryWorker::new(store.clone(), transport(settings)?, &settings.notifications);
        let expiry = ExpiryWorker::new(
            store.clone(),
            shop.orders.clone(),
            shop.sagas.clone(),
            settings.orders.expiry_check_interval_ms,
        );
        let handler = NotificationHandler::new(store.clone(), shop.customers.clone(), settings.clone());
        let retrying = RetryingWatch::new(shop.sagas.clone(), settings.clone());
        let share = shop.share_watch();
        let tasks = vec![
            tokio::spawn(delivery.run(stop_rx.clone())),
            tokio::spawn(expiry.run(stop_rx.clone())),
            tokio::spawn(handler.run(stop_rx.clone())),
            tokio::spawn(retrying.run(stop_rx.clone())),
            tokio::spawn(shop.caches.poller(store.clone(), settings.cluster.cache_poll_ms).run(stop_rx.clone())),
            tokio::spawn(share.run(stop_rx.clone())),
            tokio::spawn(crate::store::staged::run_mover(store.clone(), stop_rx)),
        ];
        Ok(Workers { stop, tasks })
    }

    /// Signals every worker to stop and waits for each to finish what it was doing.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

pub fn payment_gateway(settings: &Settings) -> anyhow::Result<Arc<dyn PaymentGateway>> {
    Ok(match settings.payment.gateway.as_str() {
        "simulated" => Arc::new(SimulatedGateway::default()),
        "http" => Arc::new(HttpGateway::new(&settings.payment.http.base_url, settings.payment.http.timeout_ms)?),
        other => anyhow::bail!("payment.gateway = {other:?}: expected \"simulated\" or \"http\""),
    })
}

fn transport(settings: &Settings) -> anyhow::Result<Arc<dyn EmailTransport>> {
    let n = settings.notifications.fail_first_attempts;
    Ok(match settings.notifications.transport.as_str() {
        "log" => with_faults(LogTransport { from: settings.notifications.from.clone() }, n),
        "smtp" => with_faults(SmtpTransport::new(&settings.notifications).map_err(anyhow::Error::msg)?, n),
        other => anyhow::bail!("notifications.transport = {other:?}: expected \"log\" or \"smtp\""),
    })
}

fn with_faults<T: EmailTransport + 'static>(transport: T, fail_first_attempts: u32) -> Arc<dyn EmailTransport> {
    match fail_first_attempts {
        0 => Arc::new(transport),
        n => Arc::new(FaultInjecting { inner: transport, fail_first_attempts: n }),
    }
}
