//! Where a request belongs, from its method, path and `Authorization` header alone (no
//! read): the partition of the id it names (an order's, a saga's) or of its customer's
//! session token, or partition 0's owner for what has no partition, or this server itself;
//! for a webhook, the order its body names, which a serving server reads (see
//! [`super::forward::Front::answerer`]).
//! A follower forwards a request to its home's owner ([`super::forward`]).
//!
//! Every route of the table ([`super::routes::ROUTES`]) has its rule in [`rule`]; a test
//! walks the table, so a new route cannot be forgotten. Records without a partition
//! (catalogue, customers, sessions, operators' tables) are written by partition 0's owner
//! ([`Home::Shared`]).

use warp::http::{HeaderMap, Method};

use super::routes;
use crate::domain::partition::{Affinity, Partition, Partitions};
use crate::operations::webhooks::Source;
use crate::server::request::bearer;
use crate::services::customers::session_affinity;

/// Where a request belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// The partition of this affinity (an id's last two bytes, or a session token's).
    Keyed(Affinity),
    /// Partition 0's owner: records without a partition, or a request whose partition only
    /// a read could tell.
    Shared,
    /// This server, whoever owns what: it describes this process.
    Local,
    /// A webhook from this source: the partition of the order its body names (which takes
    /// a read: see `Front::answerer`), partition 0's owner when none does.
    Webhook(Source),
    /// An operator's replay of a recorded webhook event (see [`replayed_webhook`]): the
    /// partition of the order the record names (a read), partition 0's owner when none does.
    WebhookReplay,
}

impl Home {
    /// The partition whose owner answers; `None`: this server does.
    pub fn partition(self, partitions: Partitions) -> Option<Partition> {
        match self {
            Home::Keyed(affinity) => Some(partitions.of_affinity(affinity)),
            Home::Shared | Home::Webhook(_) | Home::WebhookReplay => Some(Partition::SHARED),
            Home::Local => None,
        }
    }
}

/// How a route's home is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Local,
    Shared,
    /// The partition of the id that is the route's path parameter at this index.
    Id(usize),
    /// The partition the customer's session token carries.
    Session,
    /// The order a webhook from this source names.
    Webhook(Source),
    /// The order a recorded webhook event names.
    WebhookReplay,
}

/// The home of a request. Unknown paths, methods a path does not have and the console go
/// to partition 0's owner (which answers them as before: 404, 405, the console's pages).
pub fn home(method: &Method, path: &str, headers: &HeaderMap) -> Home {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&"console") {
        return console(method, &segments);
    }
    let Some(route) = routes::resource(&segments).find(|r| r.method == method) else {
        return Home::Shared;
    };
    let params = route.matches(&segments).unwrap_or_default();
    match rule(route.label) {
        Some(Rule::Local) => Home::Local,
        Some(Rule::Shared) | None => Home::Shared,
        Some(Rule::Webhook(source)) => Home::Webhook(source),
        Some(Rule::WebhookReplay) => Home::WebhookReplay,
        Some(Rule::Id(i)) => match params.get(i).and_then(|id| uuid::Uuid::parse_str(id).ok()) {
            Some(id) => Home::Keyed(Affinity::of(&id)),
            // Not an id: the handler refuses it wherever it runs.
            None => Home::Shared,
        },
        Some(Rule::Session) => match bearer(headers).and_then(session_affinity) {
            Some(affinity) => Home::Keyed(affinity),
            // A token from before the affinity (or none, or garbage): partition 0's owner
            // reads the session, and answers 401 for a bad one as before.
            None => Home::Shared,
        },
    }
}

/// The operators' console: their sessions, pages and lists are partition 0's owner's; an
/// action on one saga is its owner's, a webhook event's replay its order's owner's (the
/// console session and its origin check hold on any server).
fn console(method: &Method, segments: &[&str]) -> Home {
    match (method, segments) {
        (&Method::POST, ["console", "sagas", id, "resume" | "abort"]) => match uuid::Uuid::parse_str(id) {
            Ok(id) => Home::Keyed(Affinity::of(&id)),
            Err(_) => Home::Shared,
        },
        (&Method::POST, ["console", "webhooks", _, _, "replay"]) => Home::WebhookReplay,
        _ => Home::Shared,
    }
}

/// The source and event id (percent-decoded) of a replay's path, from the admin API or the
/// console; `None` for any other path or an unknown source.
pub fn replayed_webhook(path: &str) -> Option<(Source, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (source, raw) = match segments[..] {
        ["admin", "v1", "webhooks", source, id, "replay"] | ["console", "webhooks", source, id, "replay"] => {
            (source, id)
        }
        _ => return None,
    };
    let source = match source {
        "payment" => Source::Payment,
        "carrier" => Source::Carrier,
        _ => return None,
    };
    let query = format!("x={}", raw.replace('+', "%2B"));
    let id = form_urlencoded::parse(query.as_bytes()).next().map(|(_, v)| v.into_owned())?;
    Some((source, id))
}

/// Each route's rule, by its label; `None` for a label this table does not know (a test
/// fails on any route of the table that is missing here).
fn rule(label: &str) -> Option<Rule> {
    use Rule::{Id, Local, Session, Shared};
    Some(match label {
        // This process's own health and metrics.
        "healthz" | "metrics" => Local,
        // The API's description: the same everywhere, answered by partition 0's owner as
        // every follower's request was before.
        "openapi" | "docs" => Shared,
        // Customers and sessions have no partition: registering (an email's uniqueness),
        // verifying, logging in and out, and reading one's own record.
        "customers.register" | "customers.verify" | "sessions.create" | "sessions.delete" | "me" => Shared,
        // The catalogue has no partition.
        "categories.list" | "products.list" | "products.get" => Shared,
        // A customer's cart and orders live in the customer's partition.
        "cart.get" | "cart.add" | "cart.update" | "cart.remove" | "orders.place" | "orders.list" => Session,
        // Webhooks name a payment authorization or a tracking number: the order it stands
        // for is read from its index by a server that serves (see `Front::answerer`).
        "webhooks.payment" => Rule::Webhook(Source::Payment),
        "webhooks.carrier" => Rule::Webhook(Source::Carrier),
        // An order's id is minted in its customer's partition, a saga's in its order's.
        "orders.get" | "orders.cancel" | "sagas.get" => Id(0),
        "admin.orders.get" | "admin.orders.cancel" | "admin.orders.ship" | "admin.orders.events" => Id(0),
        "admin.sagas.get" | "admin.sagas.resume" | "admin.sagas.abort" | "admin.sagas.abort_preview" => Id(0),
        // Lists across every partition, bulk actions and their records, the cluster's view.
        "admin.orders.list" | "admin.sagas.list" | "admin.triage" | "admin.cluster" => Shared,
        "admin.sagas.bulk_resume" | "admin.sagas.bulk_abort" | "admin.bulk_actions.list" | "admin.bulk_actions.get" => {
            Shared
        }
        // Operators' tables.
        "admin.policies.list" | "admin.policies.set" => Shared,
        "admin.stats" | "admin.events" | "admin.audit" | "admin.webhooks" | "admin.notifications" => Shared,
        "admin.quarantine.list" | "admin.quarantine.pause" | "admin.quarantine.release" => Shared,
        // A replay names a webhook (source and id): the order its record names, read.
        "admin.webhooks.replay" => Rule::WebhookReplay,
        "admin.backups.create" => Shared,
        "admin.categories.list" | "admin.categories.create" => Shared,
        "admin.products.create" | "admin.products.get" | "admin.products.price" => Shared,
        // Stock is a variant's (in the body or query, not the path), and where stock lives
        // is decided with the calls a saga makes to another partition's stock (the second
        // half of step 2): until then partition 0's owner answers.
        "admin.inventory.get" | "admin.inventory.restock" | "admin.inventory.reserve" | "admin.inventory.release" => {
            Shared
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    const ORDER: &str = "01a2171c-069e-7033-8a4f-bfa6b3c9f9dd";

    fn bearer_of(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        headers
    }

    fn no_headers() -> HeaderMap {
        HeaderMap::new()
    }

    /// A path of `route` with every parameter set to `value`.
    fn path_of(route: &routes::Route, value: &str) -> String {
        route.path.split('/').map(|s| if s.starts_with('{') { value } else { s }).collect::<Vec<_>>().join("/")
    }

    #[test]
    fn every_route_of_the_table_has_a_rule() {
        let missing: Vec<&str> = routes::ROUTES.iter().map(|r| r.label).filter(|l| rule(l).is_none()).collect();
        assert!(missing.is_empty(), "routes without a home rule in http/home.rs: {missing:?}");
        for route in routes::ROUTES {
            // The path each route is reached at finds this very route's rule.
            let path = path_of(route, ORDER);
            let home = home(&route.method, &path, &bearer_of(&format!("cws_f9dd_{}", "ab".repeat(32))));
            let want = match rule(route.label) {
                Some(Rule::Local) => Home::Local,
                Some(Rule::Webhook(source)) => Home::Webhook(source),
                Some(Rule::WebhookReplay) => Home::WebhookReplay,
                Some(Rule::Id(_) | Rule::Session) => Home::Keyed(Affinity(0xf9dd)),
                _ => Home::Shared,
            };
            assert_eq!(home, want, "{} {}", route.method, route.path);
            if let Some(Rule::Id(i)) = rule(route.label) {
                assert!(i < route.path.matches('{').count(), "{}: no parameter {i}", route.label);
            }
        }
    }

    #[test]
    fn an_order_or_saga_path_belongs_to_its_ids_partition_for_every_count() {
        let id = uuid::Uuid::parse_str(ORDER).unwrap();
        for (method, path) in [
            (Method::GET, format!("/v1/orders/{ORDER}")),
            (Method::POST, format!("/v1/orders/{ORDER}/cancel")),
            (Method::GET, format!("/v1/sagas/{ORDER}")),
            (Method::GET, format!("/admin/v1/orders/{ORDER}")),
            (Method::POST, format!("/admin/v1/orders/{ORDER}/ship")),
            (Method::GET, format!("/admin/v1/orders/{ORDER}/events")),
            (Method::POST, format!("/admin/v1/sagas/{ORDER}/resume")),
            (Method::GET, format!("/admin/v1/sagas/{ORDER}/abort-preview")),
            (Method::GET, format!("/admin/v1/orders/{ORDER}/")),
        ] {
            let home = home(&method, &path, &no_headers());
            assert_eq!(home, Home::Keyed(Affinity::of(&id)), "{method} {path}");
            for count in [1, 2, 3, 16, 100, Partitions::MAX] {
                let partitions = Partitions::new(count).unwrap();
                assert_eq!(home.partition(partitions), Some(partitions.of(&id)), "{path} over {count}");
            }
        }
        let sixteen = Partitions::new(16).unwrap();
        assert_eq!(
            home(&Method::GET, &format!("/v1/orders/{ORDER}"), &no_headers()).partition(sixteen),
            Some(Partition(13))
        );
    }

    #[test]
    fn a_customers_cart_and_orders_follow_the_affinity_of_the_session_token() {
        let customer = crate::domain::ids::CustomerId(uuid::Uuid::parse_str(ORDER).unwrap());
        let token = crate::services::customers::session_token(customer);
        let sixteen = Partitions::new(16).unwrap();
        for (method, path) in [
            (Method::GET, "/v1/cart"),
            (Method::POST, "/v1/cart/items"),
            (Method::PATCH, "/v1/cart/items/line-1"),
            (Method::DELETE, "/v1/cart/items/line-1"),
            (Method::POST, "/v1/orders"),
            (Method::GET, "/v1/orders"),
        ] {
            let home = home(&method, path, &bearer_of(&token));
            assert_eq!(home, Home::Keyed(Affinity(0xf9dd)), "{method} {path}");
            assert_eq!(home.partition(sixteen), Some(sixteen.of(&customer.0)), "{method} {path}");
            let mut lower = HeaderMap::new();
            lower.insert("authorization", HeaderValue::from_str(&format!("bearer {token}")).unwrap());
            assert_eq!(super::home(&method, path, &lower), home, "as Request::bearer reads it");
        }
        let old = format!("cws_{}", "ab".repeat(32));
        for headers in [bearer_of(&old), bearer_of("cws_forged"), bearer_of(""), no_headers()] {
            assert_eq!(home(&Method::GET, "/v1/cart", &headers), Home::Shared, "{headers:?}");
        }
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_str(&format!("Basic {token}")).unwrap());
        assert_eq!(home(&Method::GET, "/v1/cart", &basic), Home::Shared, "not a bearer token");
        assert_eq!(
            home(&Method::GET, "/v1/me", &bearer_of(&token)),
            Home::Shared,
            "a customer's record has no partition"
        );
        assert_eq!(
            home(&Method::GET, &format!("/v1/orders/{ORDER}"), &bearer_of(&format!("cws_0000_{}", "ab".repeat(32)))),
            Home::Keyed(Affinity(0xf9dd)),
            "the order the path names, not the token"
        );
    }

    #[test]
    fn garbage_goes_to_partition_zero_and_never_panics() {
        let sixteen = Partitions::new(16).unwrap();
        for (method, path) in [
            (Method::GET, "/v1/orders/not-an-id".to_string()),
            (Method::GET, "/v1/orders/".to_string()),
            (Method::GET, "/admin/v1/sagas/%00%ff".to_string()),
            (Method::GET, "/admin/v1/orders/01a2171c-069e-7033-8a4f-bfa6b3c9f9d".to_string()),
            (Method::POST, format!("/v1/orders/{ORDER}/cancel/more")),
            (Method::PUT, format!("/v1/orders/{ORDER}")),
            (Method::GET, "/nothing/here".to_string()),
            (Method::GET, String::new()),
            (Method::GET, "/".to_string()),
            (Method::GET, "//////".to_string()),
            (Method::GET, "/console".to_string()),
            (Method::POST, format!("/console/orders/{ORDER}")),
            (Method::GET, format!("/{}", "é/".repeat(500))),
            (Method::from_bytes(b"BREW").unwrap(), "/v1/cart".to_string()),
            (Method::GET, "/healthz/more".to_string()),
            (Method::POST, "/healthz".to_string()),
        ] {
            let home = home(&method, &path, &bearer_of("cws_ffff_zz"));
            assert_eq!(home, Home::Shared, "{method} {path:?}");
            assert_eq!(home.partition(sixteen), Some(Partition(0)));
        }
    }

    #[test]
    fn health_and_metrics_are_this_servers_and_the_rest_of_the_shared_records_partition_zeros() {
        assert_eq!(home(&Method::GET, "/healthz", &no_headers()), Home::Local);
        assert_eq!(home(&Method::GET, "/metrics", &no_headers()), Home::Local);
        assert_eq!(Home::Local.partition(Partitions::DEFAULT), None);
        for (method, path) in [
            (Method::POST, "/v1/customers"),
            (Method::POST, "/v1/sessions"),
            (Method::GET, "/v1/products"),
            (Method::GET, "/admin/v1/orders"),
            (Method::POST, "/admin/v1/sagas/bulk-resume"),
            (Method::GET, "/admin/v1/cluster"),
            (Method::POST, "/admin/v1/backups"),
            (Method::GET, "/openapi.json"),
        ] {
            assert_eq!(
                home(&method, path, &bearer_of(&format!("cws_f9dd_{}", "ab".repeat(32)))),
                Home::Shared,
                "{path}"
            );
        }
        // The console's pages are partition 0's owner's; an action on a saga is the saga's.
        let id = uuid::Uuid::parse_str(ORDER).unwrap();
        assert_eq!(home(&Method::GET, &format!("/console/sagas/{ORDER}"), &no_headers()), Home::Shared);
        for action in ["resume", "abort"] {
            let path = format!("/console/sagas/{ORDER}/{action}");
            assert_eq!(home(&Method::POST, &path, &no_headers()), Home::Keyed(Affinity::of(&id)));
        }
        assert_eq!(home(&Method::POST, "/console/sagas/not-an-id/resume", &no_headers()), Home::Shared);
        for path in ["/admin/v1/webhooks/payment/evt%201/replay", "/console/webhooks/payment/evt%201/replay"] {
            assert_eq!(home(&Method::POST, path, &no_headers()), Home::WebhookReplay, "{path}");
            assert_eq!(replayed_webhook(path), Some((Source::Payment, "evt 1".to_string())));
        }
        assert_eq!(replayed_webhook("/admin/v1/webhooks/mail/evt/replay"), None, "no such source");
        assert_eq!(replayed_webhook("/console/webhooks/payment/evt"), None, "not a replay");
        // A webhook's order takes a read: partition 0's owner for a server that cannot.
        for (path, source) in [("/webhooks/payment", Source::Payment), ("/webhooks/carrier", Source::Carrier)] {
            assert_eq!(home(&Method::POST, path, &no_headers()), Home::Webhook(source));
            assert_eq!(Home::Webhook(source).partition(Partitions::DEFAULT), Some(Partition::SHARED));
        }
    }
}
