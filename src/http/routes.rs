//! The route table: (method, path) to handler, in one match so the whole API reads at once.
//! A known path with another method is 405; anything else 404.

use warp::http::Method;

use super::request::Request;
use super::{admin, backups, bulk, cart, catalog, customers, orders, quarantine, response, sagas, webhooks};
use crate::error::AppError;
use crate::services::webhooks::Source;
use crate::services::Shop;

pub type Reply = Result<warp::reply::Response, AppError>;

/// Returns the route's label (for metrics) and the reply.
pub async fn dispatch(shop: &Shop, req: &Request) -> (&'static str, Reply) {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let m = &req.method;
    macro_rules! route {
        ($label:expr, $call:expr) => {
            ($label, $call.await)
        };
    }
    match (m.clone(), segments.as_slice()) {
        (Method::GET, ["healthz"]) => ("healthz", Ok(response::json(200, &serde_json::json!({ "status": "ok" })))),
        (Method::GET, ["metrics"]) => {
            ("metrics", Ok(response::text(200, shop.sagas.metrics_text(), "text/plain; version=0.0.4")))
        }

        (Method::POST, ["v1", "customers"]) => route!("customers.register", customers::register(shop, req)),
        (Method::POST, ["v1", "customers", "verify-email"]) => route!("customers.verify", customers::verify(shop, req)),
        (Method::POST, ["v1", "sessions"]) => route!("sessions.create", customers::login(shop, req)),
        (Method::DELETE, ["v1", "sessions", "current"]) => route!("sessions.delete", customers::logout(shop, req)),
        (Method::GET, ["v1", "me"]) => route!("me", customers::me(shop, req)),

        (Method::GET, ["v1", "categories"]) => route!("categories.list", catalog::list_categories(shop)),
        (Method::GET, ["v1", "products"]) => route!("products.list", catalog::list_products(shop, req)),
        (Method::GET, ["v1", "products", id]) => route!("products.get", catalog::get_product(shop, id)),

        (Method::GET, ["v1", "cart"]) => route!("cart.get", cart::get(shop, req)),
        (Method::POST, ["v1", "cart", "items"]) => route!("cart.add", cart::add(shop, req)),
        (Method::PATCH, ["v1", "cart", "items", line]) => route!("cart.update", cart::update(shop, req, line)),
        (Method::DELETE, ["v1", "cart", "items", line]) => route!("cart.remove", cart::remove(shop, req, line)),

        (Method::POST, ["webhooks", "payment"]) => {
            route!("webhooks.payment", webhooks::receive(shop, req, Source::Payment))
        }
        (Method::POST, ["webhooks", "carrier"]) => {
            route!("webhooks.carrier", webhooks::receive(shop, req, Source::Carrier))
        }
        (Method::POST, ["admin", "v1", "orders", id, "ship"]) => {
            route!("admin.orders.ship", orders::ship(shop, req, id))
        }
        (Method::POST, ["v1", "orders"]) => route!("orders.place", orders::place(shop, req)),
        (Method::GET, ["v1", "orders"]) => route!("orders.list", orders::list(shop, req)),
        (Method::GET, ["v1", "orders", id]) => route!("orders.get", orders::get(shop, req, id)),
        (Method::POST, ["v1", "orders", id, "cancel"]) => route!("orders.cancel", orders::cancel(shop, req, id)),
        (Method::GET, ["v1", "sagas", id]) => route!("sagas.get", orders::saga(shop, req, id)),

        (Method::GET, ["admin", "v1", "orders"]) => route!("admin.orders.list", orders::admin_list(shop, req)),
        (Method::GET, ["admin", "v1", "orders", id]) => route!("admin.orders.get", orders::admin_get(shop, req, id)),
        (Method::GET, ["admin", "v1", "sagas"]) => route!("admin.sagas.list", sagas::list(shop, req)),
        (Method::POST, ["admin", "v1", "sagas", "bulk-resume"]) => {
            route!("admin.sagas.bulk_resume", bulk::resume(shop, req))
        }
        (Method::POST, ["admin", "v1", "sagas", "bulk-abort"]) => {
            route!("admin.sagas.bulk_abort", bulk::abort(shop, req))
        }
        (Method::GET, ["admin", "v1", "bulk-actions"]) => route!("admin.bulk_actions.list", bulk::list(shop, req)),
        (Method::GET, ["admin", "v1", "bulk-actions", id]) => {
            route!("admin.bulk_actions.get", bulk::get(shop, req, id))
        }
        (Method::GET, ["admin", "v1", "sagas", id]) => route!("admin.sagas.get", sagas::get(shop, req, id)),
        (Method::POST, ["admin", "v1", "sagas", id, "resume"]) => {
            route!("admin.sagas.resume", sagas::resume(shop, req, id))
        }
        (Method::POST, ["admin", "v1", "sagas", id, "abort"]) => {
            route!("admin.sagas.abort", sagas::abort(shop, req, id))
        }
        (Method::GET, ["admin", "v1", "sagas", id, "abort-preview"]) => {
            route!("admin.sagas.abort_preview", sagas::abort_preview(shop, req, id))
        }
        (Method::GET, ["admin", "v1", "triage"]) => route!("admin.triage", sagas::triage(shop, req)),
        (Method::GET, ["admin", "v1", "retry-policies"]) => route!("admin.policies.list", sagas::policies(shop, req)),
        (Method::PUT, ["admin", "v1", "retry-policies", saga_type, step]) => {
            route!("admin.policies.set", sagas::set_policy(shop, req, saga_type, step))
        }

        (Method::GET, ["admin", "v1", "categories"]) => {
            route!("admin.categories.list", catalog::admin_list_categories(shop, req))
        }
        (Method::POST, ["admin", "v1", "categories"]) => {
            route!("admin.categories.create", catalog::create_category(shop, req))
        }
        (Method::POST, ["admin", "v1", "products"]) => {
            route!("admin.products.create", catalog::create_product(shop, req))
        }
        (Method::GET, ["admin", "v1", "products", id]) => {
            route!("admin.products.get", catalog::admin_get_product(shop, req, id))
        }
        (Method::PUT, ["admin", "v1", "products", id, "price"]) => {
            route!("admin.products.price", catalog::update_price(shop, req, id))
        }

        (Method::GET, ["admin", "v1", "inventory", id]) => {
            route!("admin.inventory.get", admin::inventory(shop, req, id))
        }
        (Method::POST, ["admin", "v1", "inventory", id, "restock"]) => {
            route!("admin.inventory.restock", admin::restock(shop, req, id))
        }
        (Method::POST, ["admin", "v1", "inventory", id, "reservations"]) => {
            route!("admin.inventory.reserve", admin::reserve(shop, req, id))
        }
        (Method::DELETE, ["admin", "v1", "inventory", id, "reservations", owner]) => {
            route!("admin.inventory.release", admin::release(shop, req, id, owner))
        }

        (Method::GET, ["admin", "v1", "stats"]) => route!("admin.stats", admin::stats(shop, req)),
        (Method::GET, ["admin", "v1", "events"]) => route!("admin.events", admin::events(shop, req)),
        (Method::GET, ["admin", "v1", "audit"]) => route!("admin.audit", admin::audit(shop, req)),
        (Method::GET, ["admin", "v1", "webhooks"]) => route!("admin.webhooks", admin::webhooks(shop, req)),
        (Method::POST, ["admin", "v1", "webhooks", source, id, "replay"]) => {
            route!("admin.webhooks.replay", webhooks::replay(shop, req, source, id))
        }
        (Method::GET, ["admin", "v1", "notifications"]) => {
            route!("admin.notifications", admin::notifications(shop, req))
        }

        (_, ["console", ..]) => crate::console::dispatch(shop, req).await,

        (Method::POST, ["admin", "v1", "backups"]) => route!("admin.backups.create", backups::create(shop, req)),

        (Method::GET, ["admin", "v1", "quarantine"]) => route!("admin.quarantine.list", quarantine::list(shop, req)),
        (Method::PUT, ["admin", "v1", "quarantine", kind, id]) => {
            route!("admin.quarantine.pause", quarantine::pause(shop, req, kind, id))
        }
        (Method::DELETE, ["admin", "v1", "quarantine", kind, id]) => {
            route!("admin.quarantine.release", quarantine::release(shop, req, kind, id))
        }

        (_, path) if known_path(path) => ("method_not_allowed", Err(AppError::MethodNotAllowed)),
        _ => ("not_found", Err(AppError::RouteNotFound(req.path.clone()))),
    }
}

fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["healthz"]
            | ["metrics"]
            | ["v1", "customers"]
            | ["v1", "customers", "verify-email"]
            | ["v1", "sessions"]
            | ["v1", "sessions", "current"]
            | ["v1", "me"]
            | ["v1", "categories"]
            | ["v1", "products"]
            | ["v1", "products", _]
            | ["v1", "cart"]
            | ["v1", "cart", "items"]
            | ["v1", "cart", "items", _]
            | ["admin", "v1", "categories"]
            | ["admin", "v1", "products"]
            | ["admin", "v1", "products", _]
            | ["admin", "v1", "products", _, "price"]
            | ["admin", "v1", "inventory", _]
            | ["admin", "v1", "inventory", _, "restock"]
            | ["admin", "v1", "inventory", _, "reservations"]
            | ["admin", "v1", "inventory", _, "reservations", _]
            | ["admin", "v1", "stats"]
            | ["webhooks", "payment"]
            | ["webhooks", "carrier"]
            | ["admin", "v1", "orders", _, "ship"]
            | ["v1", "orders"]
            | ["v1", "orders", _]
            | ["v1", "orders", _, "cancel"]
            | ["v1", "sagas", _]
            | ["admin", "v1", "orders"]
            | ["admin", "v1", "orders", _]
            | ["admin", "v1", "sagas"]
            | ["admin", "v1", "sagas", _]
            | ["admin", "v1", "bulk-actions"]
            | ["admin", "v1", "bulk-actions", _]
            | ["admin", "v1", "webhooks", _, _, "replay"]
            | ["admin", "v1", "sagas", _, "resume"]
            | ["admin", "v1", "sagas", _, "abort"]
            | ["admin", "v1", "sagas", _, "abort-preview"]
            | ["admin", "v1", "triage"]
            | ["admin", "v1", "retry-policies"]
            | ["admin", "v1", "retry-policies", _, _]
            | ["admin", "v1", "events"]
            | ["admin", "v1", "audit"]
            | ["admin", "v1", "notifications"]
            | ["admin", "v1", "webhooks"]
            | ["admin", "v1", "backups"]
            | ["admin", "v1", "quarantine"]
            | ["admin", "v1", "quarantine", _, _]
    )
}
