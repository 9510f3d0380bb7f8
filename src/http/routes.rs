//! The route table: every (method, path pattern, label) with its handler, in one list so the
//! whole API reads at once. Dispatch, the 405 answer (with `Allow`) and the test that the
//! OpenAPI document lists the same routes ([`super::spec`]) all read this one table.
//!
//! Adding a route: one `route(...)` line here (literal paths before patterns that could also
//! match them: the first match wins), a `#[utoipa::path]` on its handler whose
//! `operation_id` is the label, and the handler's name in `paths(...)` in `spec/mod.rs`.

use futures::future::BoxFuture;
use warp::http::Method;

use super::request::Request;
use super::response::Reply;
use super::HttpError;
use super::{admin, backups, bulk, cart, catalog, customers, meta, orders, quarantine, sagas, spec, webhooks};
use crate::startup::Shop;

/// A handler gets the shop, the request and the path parameters (the `{...}` segments, in order).
type Handler = for<'a> fn(&'a Shop, &'a Request, &'a [&'a str]) -> BoxFuture<'a, Reply>;

pub struct Route {
    pub method: Method,
    /// The path as the OpenAPI document writes it: `/v1/products/{id}`.
    pub path: &'static str,
    /// The metrics label, also the operation's `operationId` in the document.
    pub label: &'static str,
    handler: Handler,
}

const fn route(method: Method, path: &'static str, label: &'static str, handler: Handler) -> Route {
    Route { method, path, label, handler }
}

use Method as M;

pub static ROUTES: &[Route] = &[
    route(M::GET, "/healthz", "healthz", |_, _, _| Box::pin(async { Ok(meta::health()) })),
    route(M::GET, "/metrics", "metrics", |s, _, _| Box::pin(async move { Ok(meta::metrics(s)) })),
    route(M::GET, "/openapi.json", "openapi", |_, _, _| Box::pin(async { Ok(spec::document_reply()) })),
    route(M::GET, "/docs", "docs", |_, _, _| Box::pin(async { Ok(spec::page_reply()) })),
    route(M::POST, "/v1/customers", "customers.register", |s, r, _| Box::pin(customers::register(s, r))),
    route(M::POST, "/v1/customers/verify-email", "customers.verify", |s, r, _| Box::pin(customers::verify(s, r))),
    route(M::POST, "/v1/sessions", "sessions.create", |s, r, _| Box::pin(customers::login(s, r))),
    route(M::DELETE, "/v1/sessions/current", "sessions.delete", |s, r, _| Box::pin(customers::logout(s, r))),
    route(M::GET, "/v1/me", "me", |s, r, _| Box::pin(customers::me(s, r))),
    route(M::GET, "/v1/categories", "categories.list", |s, _, _| Box::pin(catalog::list_categories(s))),
    route(M::GET, "/v1/products", "products.list", |s, r, _| Box::pin(catalog::list_products(s, r))),
    route(M::GET, "/v1/products/{id}", "products.get", |s, _, p| Box::pin(catalog::get_product(s, p[0]))),
    route(M::GET, "/v1/cart", "cart.get", |s, r, _| Box::pin(cart::get(s, r))),
    route(M::POST, "/v1/cart/items", "cart.add", |s, r, _| Box::pin(cart::add(s, r))),
    route(M::PATCH, "/v1/cart/items/{line_id}", "cart.update", |s, r, p| Box::pin(cart::update(s, r, p[0]))),
    route(M::DELETE, "/v1/cart/items/{line_id}", "cart.remove", |s, r, p| Box::pin(cart::remove(s, r, p[0]))),
    route(M::POST, "/webhooks/payment", "webhooks.payment", |s, r, _| Box::pin(webhooks::payment(s, r))),
    route(M::POST, "/webhooks/carrier", "webhooks.carrier", |s, r, _| Box::pin(webhooks::carrier(s, r))),
    route(M::POST, "/v1/orders", "orders.place", |s, r, _| Box::pin(orders::place(s, r))),
    route(M::GET, "/v1/orders", "orders.list", |s, r, _| Box::pin(orders::list(s, r))),
    route(M::GET, "/v1/orders/{id}", "orders.get", |s, r, p| Box::pin(orders::get(s, r, p[0]))),
    route(M::POST, "/v1/orders/{id}/cancel", "orders.cancel", |s, r, p| Box::pin(orders::cancel(s, r, p[0]))),
    route(M::GET, "/v1/sagas/{id}", "sagas.get", |s, r, p| Box::pin(orders::saga(s, r, p[0]))),
    route(M::GET, "/admin/v1/orders", "admin.orders.list", |s, r, _| Box::pin(orders::admin_list(s, r))),
    route(M::GET, "/admin/v1/orders/{id}", "admin.orders.get", |s, r, p| Box::pin(orders::admin_get(s, r, p[0]))),
    route(M::POST, "/admin/v1/orders/{id}/cancel", "admin.orders.cancel", |s, r, p| {
        Box::pin(orders::admin_cancel(s, r, p[0]))
    }),
    route(M::POST, "/admin/v1/orders/{id}/ship", "admin.orders.ship", |s, r, p| Box::pin(orders::ship(s, r, p[0]))),
    route(M::GET, "/admin/v1/orders/{id}/events", "admin.orders.events", |s, r, p| {
        Box::pin(orders::admin_events(s, r, p[0]))
    }),
    route(M::GET, "/admin/v1/sagas", "admin.sagas.list", |s, r, _| Box::pin(sagas::list(s, r))),
    route(M::POST, "/admin/v1/sagas/bulk-resume", "admin.sagas.bulk_resume", |s, r, _| Box::pin(bulk::resume(s, r))),
    route(M::POST, "/admin/v1/sagas/bulk-abort", "admin.sagas.bulk_abort", |s, r, _| Box::pin(bulk::abort(s, r))),
    route(M::GET, "/admin/v1/bulk-actions", "admin.bulk_actions.list", |s, r, _| Box::pin(bulk::list(s, r))),
    route(M::GET, "/admin/v1/bulk-actions/{id}", "admin.bulk_actions.get", |s, r, p| Box::pin(bulk::get(s, r, p[0]))),
    route(M::GET, "/admin/v1/triage", "admin.triage", |s, r, _| Box::pin(sagas::triage(s, r))),
    route(M::GET, "/admin/v1/cluster", "admin.cluster", |s, r, _| Box::pin(admin::cluster(s, r))),
    route(M::GET, "/admin/v1/sagas/{id}", "admin.sagas.get", |s, r, p| Box::pin(sagas::get(s, r, p[0]))),
    route(M::POST, "/admin/v1/sagas/{id}/resume", "admin.sagas.resume", |s, r, p| Box::pin(sagas::resume(s, r, p[0]))),
    route(M::POST, "/admin/v1/sagas/{id}/abort", "admin.sagas.abort", |s, r, p| Box::pin(sagas::abort(s, r, p[0]))),
    route(M::GET, "/admin/v1/sagas/{id}/abort-preview", "admin.sagas.abort_preview", |s, r, p| {
        Box::pin(sagas::abort_preview(s, r, p[0]))
    }),
    route(M::GET, "/admin/v1/retry-policies", "admin.policies.list", |s, r, _| Box::pin(sagas::policies(s, r))),
    route(M::PUT, "/admin/v1/retry-policies/{saga_type}/{step}", "admin.policies.set", |s, r, p| {
        Box::pin(sagas::set_policy(s, r, p[0], p[1]))
    }),
    route(M::GET, "/admin/v1/categories", "admin.categories.list", |s, r, _| {
        Box::pin(catalog::admin_list_categories(s, r))
    }),
    route(M::POST, "/admin/v1/categories", "admin.categories.create", |s, r, _| {
        Box::pin(catalog::create_category(s, r))
    }),
    route(M::POST, "/admin/v1/products", "admin.products.create", |s, r, _| Box::pin(catalog::create_product(s, r))),
    route(M::GET, "/admin/v1/products/{id}", "admin.products.get", |s, r, p| {
        Box::pin(catalog::admin_get_product(s, r, p[0]))
    }),
    route(M::PUT, "/admin/v1/products/{id}/price", "admin.products.price", |s, r, p| {
        Box::pin(catalog::update_price(s, r, p[0]))
    }),
    route(M::GET, "/admin/v1/inventory/{id}", "admin.inventory.get", |s, r, p| Box::pin(admin::inventory(s, r, p[0]))),
    route(M::POST, "/admin/v1/inventory/{id}/restock", "admin.inventory.restock", |s, r, p| {
        Box::pin(admin::restock(s, r, p[0]))
    }),
    route(M::POST, "/admin/v1/inventory/{id}/reservations", "admin.inventory.reserve", |s, r, p| {
        Box::pin(admin::reserve(s, r, p[0]))
    }),
    route(M::DELETE, "/admin/v1/inventory/{id}/reservations/{owner_id}", "admin.inventory.release", |s, r, p| {
        Box::pin(admin::release(s, r, p[0], p[1]))
    }),
    route(M::GET, "/admin/v1/stats", "admin.stats", |s, r, _| Box::pin(admin::stats(s, r))),
    route(M::GET, "/admin/v1/events", "admin.events", |s, r, _| Box::pin(admin::events(s, r))),
    route(M::GET, "/admin/v1/audit", "admin.audit", |s, r, _| Box::pin(admin::audit(s, r))),
    route(M::GET, "/admin/v1/webhooks", "admin.webhooks", |s, r, _| Box::pin(admin::webhooks(s, r))),
    route(M::GET, "/admin/v1/notifications", "admin.notifications", |s, r, _| Box::pin(admin::notifications(s, r))),
    route(M::POST, "/admin/v1/webhooks/{source}/{id}/replay", "admin.webhooks.replay", |s, r, p| {
        Box::pin(webhooks::replay(s, r, p[0], p[1]))
    }),
    route(M::POST, "/admin/v1/backups", "admin.backups.create", |s, r, _| Box::pin(backups::create(s, r))),
    route(M::GET, "/admin/v1/quarantine", "admin.quarantine.list", |s, r, _| Box::pin(quarantine::list(s, r))),
    route(M::PUT, "/admin/v1/quarantine/{kind}/{id}", "admin.quarantine.pause", |s, r, p| {
        Box::pin(quarantine::pause(s, r, p[0], p[1]))
    }),
    route(M::DELETE, "/admin/v1/quarantine/{kind}/{id}", "admin.quarantine.release", |s, r, p| {
        Box::pin(quarantine::release(s, r, p[0], p[1]))
    }),
];

impl Route {
    /// The path parameters when `segments` fit this route's pattern (a `{name}` segment
    /// matches any one segment). Every request is tried against the routes in turn, so a
    /// route that does not fit costs no allocation.
    pub(super) fn matches<'p>(&self, segments: &[&'p str]) -> Option<Vec<&'p str>> {
        if !self.fits(segments) {
            return None;
        }
        let pattern = self.path.trim_matches('/').split('/');
        Some(pattern.zip(segments).filter(|(want, _)| want.starts_with('{')).map(|(_, got)| *got).collect())
    }

    fn parameter_count(&self) -> usize {
        self.path.matches('{').count()
    }

    fn fits(&self, segments: &[&str]) -> bool {
        let mut pattern = self.path.trim_matches('/').split('/');
        let same = segments.iter().all(|got| pattern.next().is_some_and(|want| want.starts_with('{') || want == *got));
        same && pattern.next().is_none()
    }
}

/// Returns the route's label (for metrics) and the reply. A known path with another method
/// is 405 naming the methods it has (`Allow`); anything else 404.
pub async fn dispatch(shop: &Shop, req: &Request) -> (&'static str, Reply) {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    // The operators' console: HTML pages and forms, not part of the JSON contract.
    if segments.first() == Some(&"console") {
        return super::console::dispatch(shop, req).await;
    }
    if let Some(route) = resource(&segments).find(|r| r.method == req.method) {
        let params = route.matches(&segments).unwrap_or_default();
        return (route.label, (route.handler)(shop, req, &params).await);
    }
    let mut allowed: Vec<&str> = Vec::new();
    for route in resource(&segments) {
        if !allowed.contains(&route.method.as_str()) {
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        ("not_found", Err(HttpError::RouteNotFound(req.path.clone()).into()))
    } else {
        ("method_not_allowed", Err(HttpError::MethodNotAllowed { allow: allowed.join(", ") }.into()))
    }
}

/// The routes of the resource a path names: the most literal patterns it fits, so that
/// `/admin/v1/sagas/bulk-resume` is that route's path, not a saga id for
/// `/admin/v1/sagas/{id}`. Two walks of the table, no allocation.
pub(super) fn resource<'a>(segments: &'a [&'a str]) -> impl Iterator<Item = &'static Route> + 'a {
    let fewest = ROUTES.iter().filter(|r| r.fits(segments)).map(Route::parameter_count).min();
    ROUTES.iter().filter(move |r| Some(r.parameter_count()) == fewest && r.fits(segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_their_segments_and_collect_parameters() {
        let release = ROUTES.iter().find(|r| r.label == "admin.inventory.release").unwrap();
        assert_eq!(release.matches(&["admin", "v1", "inventory", "p", "reservations", "o"]), Some(vec!["p", "o"]));
        assert_eq!(release.matches(&["admin", "v1", "inventory", "p", "reservations"]), None);
        assert_eq!(release.matches(&["admin", "v1", "inventory", "p", "other", "o"]), None);
        assert_eq!(release.matches(&["admin", "v1", "inventory", "p", "reservations", "o", "more"]), None);
        let health = ROUTES.iter().find(|r| r.label == "healthz").unwrap();
        assert_eq!(health.matches(&["healthz"]), Some(vec![]));
    }

    #[test]
    fn a_literal_path_is_its_own_resource_not_a_parameter_of_another() {
        let segments = ["admin", "v1", "sagas", "bulk-resume"];
        assert!(ROUTES.iter().any(|r| r.label == "admin.sagas.get" && r.fits(&segments)), "the pattern fits too");
        assert_eq!(resource(&segments).map(|r| r.label).collect::<Vec<_>>(), ["admin.sagas.bulk_resume"]);
        let saga = ["admin", "v1", "sagas", "01a2171c-069e-7033-8a4f-bfa6b3c9f9dd"];
        assert_eq!(resource(&saga).map(|r| r.label).collect::<Vec<_>>(), ["admin.sagas.get"]);
        assert_eq!(resource(&["nothing", "here"]).count(), 0);
    }

    #[test]
    fn no_two_routes_share_a_method_and_path() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{} {} twice", a.method, a.path);
                assert_ne!(a.label, b.label, "label used twice");
            }
        }
    }
}
