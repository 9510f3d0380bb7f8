//! The OpenAPI 3.1 document of the HTTP contract, generated from the code: `#[utoipa::path]`
//! on each handler, `ToSchema` derives on the request bodies the handlers parse, and the
//! answer shapes in [`schemas`]. Served at `GET /openapi.json`; `GET /docs` is a plain HTML
//! reference rendered from it on the server ([`page`]), which works offline.
//!
//! Adding a route is three small edits, and `tests::the_document_lists_exactly_the_routes`
//! fails until all three agree:
//! 1. its `route(...)` line in `routes.rs` (method, path, label);
//! 2. `#[utoipa::path(<method>, path = "<same path>", operation_id = "<label>", tag = "...",
//!    security(("admin_token" = [])), params(...), request_body = <its body type>,
//!    responses((status = 200, description = "...", body = doc::<Shape>),
//!    (status = 409, description = "`SOME_CODE`, `OTHER_CODE`")))]` on its handler: its own
//!    statuses, with the error codes each can carry in the description. Error statuses get
//!    the error body here ([`complete`]), as do the statuses every route of a kind shares
//!    (400 for a body or query, 401/403 for a token, 408/413 for a body, 500/503);
//! 3. the handler's path in `paths(...)` below.

mod page;
pub mod schemas;

use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::{admin, backups, bulk, cart, catalog, customers, meta, orders, quarantine, response, sagas, webhooks};

const DESCRIPTION: &str = include_str!("description.md");

#[derive(OpenApi)]
#[openapi(
    info(title = "Cartwright", description = DESCRIPTION),
    paths(
        meta::health,
        meta::metrics,
        document_reply,
        page_reply,
        customers::register,
        customers::verify,
        customers::login,
        customers::logout,
        customers::me,
        catalog::list_categories,
        catalog::list_products,
        catalog::get_product,
        cart::get,
        cart::add,
        cart::update,
        cart::remove,
        webhooks::payment,
        webhooks::carrier,
        orders::place,
        orders::list,
        orders::get,
        orders::cancel,
        orders::saga,
        orders::admin_list,
        orders::admin_get,
        orders::ship,
        orders::admin_cancel,
        orders::admin_events,
        sagas::list,
        bulk::resume,
        bulk::abort,
        bulk::list,
        bulk::get,
        sagas::triage,
        admin::cluster,
        sagas::get,
        sagas::resume,
        sagas::abort,
        sagas::abort_preview,
        sagas::policies,
        sagas::set_policy,
        catalog::admin_list_categories,
        catalog::create_category,
        catalog::create_product,
        catalog::admin_get_product,
        catalog::update_price,
        admin::inventory,
        admin::restock,
        admin::reserve,
        admin::release,
        admin::stats,
        admin::events,
        admin::audit,
        admin::webhooks,
        admin::notifications,
        backups::create,
        webhooks::replay,
        quarantine::list,
        quarantine::pause,
        quarantine::release,
    ),
    components(schemas(schemas::ErrorBody, schemas::ErrorObject)),
    tags(
        (name = "customers", description = "Register, verify the email, sessions"),
        (name = "catalogue", description = "Categories and products: public reads, admin writes"),
        (name = "cart", description = "The customer's cart"),
        (name = "orders", description = "Placing and cancelling orders (sagas), the customer's orders and sagas"),
        (name = "fulfillment", description = "Orders for fulfillment staff (fulfillment or admin token)"),
        (name = "inventory", description = "Stock, restocks and holds (admin)"),
        (name = "sagas", description = "Operators: sagas and retry policies (admin)"),
        (name = "operators", description = "Operators: event log, audit trail, outbox, webhooks, backups (admin)"),
        (name = "webhooks", description = "Signed callbacks from the payment gateway and the carrier"),
        (name = "meta", description = "Health, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The document as JSON text, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
        complete(&mut doc);
        serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub fn document_reply() -> warp::reply::Response {
    response::text(200, document().to_string(), "application/json")
}

/// A reference page rendered from this document (no scripts, no external assets).
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "meta",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub fn page_reply() -> warp::reply::Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let doc: Value = serde_json::from_str(document()).expect("the document is JSON");
        page::render(&doc)
    });
    response::text(200, page.clone(), "text/html; charset=utf-8")
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// What the derives leave to one place: the security schemes, the error body on every error
/// status, and the statuses that every route of a kind shares.
fn complete(doc: &mut Value) {
    doc["components"]["securitySchemes"] = security_schemes();
    unsigned_formats(doc);
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                empty_query_values_are_absent(op);
                optional_bodies(op);
                binary_bodies(op);
                camel_case_links(op);
                add_shared_statuses(op);
                add_error_bodies(op);
            }
        }
    }
}

fn security_schemes() -> Value {
    let bearer = |description: &str| json!({ "type": "http", "scheme": "bearer", "description": description });
    json!({
        "customer_token": bearer("A customer's session token from `POST /v1/sessions` (a verified or unverified account)."),
        "admin_token": bearer("The admin token (`auth.admin_token`): every admin right."),
        "fulfillment_token": bearer("The fulfillment token (`auth.fulfillment_token`): may only list and read orders and ship them."),
        "webhook_signature": {
            "type": "apiKey",
            "in": "header",
            "name": "Cartwright-Signature",
            "description": "`t=<unix seconds>,v1=<hex>` where hex = HMAC-SHA256(secret, \"<t>.<raw body>\") and the secret \
                is `webhooks.payment_secret` or `webhooks.carrier_secret`. Up to 4 `v1=` entries (for rotating \
                secrets); a `t` older than `webhooks.tolerance_secs` is refused. Anything else: 401 `INVALID_SIGNATURE`, \
                nothing recorded.",
        },
    })
}

/// The server reads `?cursor=` as no cursor: an empty value of any query parameter is the
/// same as leaving it out, so the document allows it next to the parameter's own schema.
fn empty_query_values_are_absent(op: &mut Value) {
    for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
        let typed = p["schema"].get("format").is_some()
            || p["schema"].get("$ref").is_some()
            || p["schema"]["type"].as_str() != Some("string")
                && !p["schema"]["type"].as_array().is_some_and(|t| t.contains(&json!("string")));
        if p["in"] == "query" && typed {
            let own = p["schema"].take();
            p["schema"] = json!({ "anyOf": [own, { "type": "string", "maxLength": 0 }] });
        }
    }
}

/// utoipa writes an optional body (`Option<T>`) as "null or T", but the server reads an
/// *empty* body as "no options" and a JSON `null` as malformed: the body is T, not required.
fn optional_bodies(op: &mut Value) {
    let Some(body) = op.get_mut("requestBody") else { return };
    for content in body["content"].as_object_mut().into_iter().flatten().map(|(_, c)| c) {
        let Some(alternatives) = content["schema"]["oneOf"].as_array() else { continue };
        let null = json!({ "type": "null" });
        if alternatives.len() == 2 && alternatives.contains(&null) {
            let own = alternatives.iter().find(|a| **a != null).cloned().unwrap_or_default();
            content["schema"] = own;
            body["required"] = json!(false);
            return;
        }
    }
}

/// A file answer is bytes, not a JSON array of numbers (OpenAPI 3.1's spelling).
fn binary_bodies(op: &mut Value) {
    for response in op["responses"].as_object_mut().into_iter().flatten().map(|(_, r)| r) {
        if let Some(content) = response.get_mut("content").and_then(|c| c.get_mut("application/octet-stream")) {
            content["schema"] = json!({ "type": "string", "contentMediaType": "application/octet-stream" });
        }
    }
}

/// utoipa spells unsigned integer formats `u-int32`; the common spelling is `uint32`.
fn unsigned_formats(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(f)) = o.get_mut("format") {
                if let Some(bits) = f.strip_prefix("u-int") {
                    *f = format!("uint{bits}");
                }
            }
            o.values_mut().for_each(unsigned_formats);
        }
        Value::Array(a) => a.iter_mut().for_each(unsigned_formats),
        _ => {}
    }
}

/// utoipa 5 writes a link's fields in snake case; OpenAPI spells them in camel case.
fn camel_case_links(op: &mut Value) {
    for response in op["responses"].as_object_mut().into_iter().flatten().map(|(_, r)| r) {
        for link in response.get_mut("links").and_then(Value::as_object_mut).into_iter().flatten().map(|(_, l)| l) {
            let Some(link) = link.as_object_mut() else { continue };
            for (snake, camel) in
                [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
            {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_string(), v);
                }
            }
        }
    }
}

const INVALID_REQUEST: &str =
    "`INVALID_REQUEST`: malformed JSON (trailing data included), a missing or mistyped field or parameter (`details.field`)";

/// The operations that send a command to a cart, an order or a product's stock directly
/// (not through a saga, which parks PAUSED instead): refused while an operator has the key
/// paused.
const COMMANDS_TO_PAUSABLE_KEYS: [&str; 8] = [
    "cart.add",
    "cart.update",
    "cart.remove",
    "admin.inventory.restock",
    "admin.inventory.reserve",
    "admin.inventory.release",
    "webhooks.payment",
    "webhooks.carrier",
];

const KEY_QUARANTINED: &str =
    "`KEY_QUARANTINED`: an operator paused the cart, order or stock this changes; nothing was \
     applied (`details: {kind, key, reason}`, the reason also in `message`)";

fn add_shared_statuses(op: &mut Value) {
    let pausable = op["operationId"].as_str().is_some_and(|id| COMMANDS_TO_PAUSABLE_KEYS.contains(&id));
    let schemes: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|alternative| alternative.keys().cloned())
        .collect();
    let token = schemes.iter().any(|s| s.ends_with("_token"));
    let staff = schemes.iter().any(|s| s == "admin_token" || s == "fulfillment_token");
    let body = op.get("requestBody").is_some();
    let query = op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] != "path"));
    let meta = op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "meta"));
    let Some(responses) = op["responses"].as_object_mut() else { return };
    let mut add = |status: &str, description: &str| {
        responses.entry(status).or_insert_with(|| json!({ "description": description }));
    };
    if body || query {
        add("400", INVALID_REQUEST);
    }
    if token {
        add("401", "`UNAUTHENTICATED`: no or an unknown token");
    }
    if staff {
        add(
            "403",
            "`FORBIDDEN`: a valid token without the right (a customer's, or fulfillment's on an admin-only route)",
        );
    }
    if pausable {
        add("423", KEY_QUARANTINED);
    }
    if body {
        add("408", "`REQUEST_TIMEOUT`: the body did not arrive within `server.body_read_timeout_ms`");
        add("413", "`PAYLOAD_TOO_LARGE`: the body is over `server.max_body_bytes` (`details.limit_bytes`)");
    }
    if !meta {
        add("500", "`INTERNAL`: a server-side failure (its text is in the log, not here)");
        add("503", "`SHUTTING_DOWN`, `UNAVAILABLE`: not applied; retrying is safe");
        add(
            "502",
            "`LEADER_UNREACHABLE` (a cluster on PostgreSQL): this server forwarded the request to the leader, \
             which did not answer; it may have been applied: retry with the same `Idempotency-Key`",
        );
    }
}

/// Every 4xx and 5xx answers the error object; 429 says when to come back.
fn add_error_bodies(op: &mut Value) {
    let Some(responses) = op["responses"].as_object_mut() else { return };
    for (status, response) in responses.iter_mut() {
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        if response.get("content").is_none() {
            response["content"] =
                json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } });
        }
        if status == "429" || status == "503" {
            let mut headers = Map::new();
            headers.insert(
                "Retry-After".into(),
                json!({ "description": "Seconds to wait (429 always; 503 `SERVER_BUSY`)", "schema": { "type": "integer" } }),
            );
            response["headers"] = Value::Object(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::routes;

    fn doc() -> Value {
        serde_json::from_str(document()).unwrap()
    }

    /// (METHOD, path, label) of every route; (METHOD, path, operationId) of every operation.
    #[test]
    fn the_document_lists_exactly_the_routes() {
        let routed: BTreeSet<(String, String, String)> =
            routes::ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string(), r.label.to_string())).collect();
        let doc = doc();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if METHODS.contains(&method.as_str()) {
                    let id = op["operationId"].as_str().unwrap_or_default().to_string();
                    documented.insert((method.to_uppercase(), path.clone(), id));
                }
            }
        }
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes not in the document: {missing:?}; in the document without a route: {extra:?}"
        );
    }

    #[test]
    fn it_is_openapi_3_1_with_the_error_object_and_every_auth_scheme() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let error = &doc["components"]["schemas"]["ErrorObject"];
        for field in ["code", "message", "details"] {
            assert!(error["properties"].get(field).is_some(), "error object lacks {field}");
        }
        let schemes = &doc["components"]["securitySchemes"];
        for name in ["customer_token", "admin_token", "fulfillment_token", "webhook_signature"] {
            assert!(schemes.get(name).is_some(), "no {name} scheme");
        }
        assert_eq!(schemes["webhook_signature"]["name"], "Cartwright-Signature");
    }

    /// Every operation names its security the way its handler checks it, and every error
    /// status carries the error body.
    #[test]
    fn operations_declare_auth_and_error_bodies() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let secured = op.get("security").is_some();
                let public = path.starts_with("/v1/products")
                    || path.starts_with("/v1/categories")
                    || ["/v1/customers", "/v1/customers/verify-email", "/v1/sessions"].contains(&path.as_str())
                    || ["/healthz", "/metrics", "/openapi.json", "/docs"].contains(&path.as_str());
                assert_eq!(secured, !(public && !(path == "/v1/sessions" && method == "delete")), "{method} {path}");
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.as_str() >= "400" {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }

    /// Completing the document adds nothing empty (a `null` where an object belongs).
    #[test]
    fn no_member_is_null() {
        fn walk(v: &Value, at: &str) {
            match v {
                Value::Null => panic!("null at {at}"),
                Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{at}/{i}"))),
                Value::Object(o) => o.iter().for_each(|(k, v)| walk(v, &format!("{at}/{k}"))),
                _ => {}
            }
        }
        walk(&doc(), "");
    }

    /// An optional body is the body's own schema, not required (an empty body is no options).
    #[test]
    fn optional_bodies_are_not_required_and_not_null() {
        let doc = doc();
        let body = &doc["paths"]["/v1/orders/{id}/cancel"]["post"]["requestBody"];
        assert_eq!(body["required"], false);
        assert_eq!(body["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/CancelOrder");
        assert!(!document().contains("u-int"));
    }

    /// Every link names an operation of the document (as `operationId`, the OpenAPI spelling).
    #[test]
    fn links_lead_to_operations_that_exist() {
        let doc = doc();
        let ids: BTreeSet<&str> = routes::ROUTES.iter().map(|r| r.label).collect();
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        let target = link["operationId"].as_str().unwrap_or_default();
                        assert!(ids.contains(target), "link {name} leads to {target:?}");
                        assert!(link.get("operation_id").is_none() && link.get("request_body").is_none());
                        links += 1;
                    }
                }
            }
        }
        assert!(links >= 10, "{links} links");
    }

    /// The contract's error codes, each documented on at least one operation.
    #[test]
    fn every_error_code_of_the_contract_is_documented() {
        let text = document();
        // Every code the one mapping answers (http::error::CODES, checked against the mapping),
        // but AMOUNT_MISMATCH: a capture of another amount is kept for review (202
        // `needs_review`), never refused with it.
        let codes = crate::http::error::CODES.iter().filter(|c| **c != "AMOUNT_MISMATCH");
        for code in codes {
            assert!(text.contains(&format!("`{code}`")), "{code} is not in the document");
        }
    }

    #[test]
    fn commands_to_a_key_an_operator_can_pause_answer_423() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        let mut found = 0;
        for op in doc["paths"].as_object().unwrap().values().flat_map(|p| p.as_object().unwrap().values()) {
            let id = op["operationId"].as_str().unwrap_or_default();
            let answers_423 = op["responses"].get("423").is_some();
            assert_eq!(answers_423, COMMANDS_TO_PAUSABLE_KEYS.contains(&id), "{id}");
            if answers_423 {
                found += 1;
                let schema = &op["responses"]["423"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{id}");
            }
        }
        assert_eq!(found, COMMANDS_TO_PAUSABLE_KEYS.len(), "every listed operation exists");
    }
}
