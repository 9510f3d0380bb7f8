//! The machine-readable contract: `/openapi.json`, the `/docs` page rendered from it, and the
//! 405 answer that names a path's methods. (That the document lists exactly the router's
//! routes is a unit test next to the route table: `http::spec::tests`.)

use crate::helpers::*;

async fn fetch(app: &TestApp, path: &str) -> (u16, String, String) {
    let resp = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    (status, content_type, resp.text().await.unwrap())
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_an_allow_header() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/v1/customers", "POST"),
        (reqwest::Method::GET, "/v1/cart/items/0190a5e0-0000-7000-8000-000000000001", "PATCH, DELETE"),
        (reqwest::Method::POST, "/v1/orders/0190a5e0-0000-7000-8000-000000000001", "GET"),
        (reqwest::Method::DELETE, "/v1/orders", "POST, GET"),
        (reqwest::Method::HEAD, "/healthz", "GET"),
        // A literal path is its own resource, not a saga id for /admin/v1/sagas/{id}.
        (reqwest::Method::GET, "/admin/v1/sagas/bulk-resume", "POST"),
        (reqwest::Method::OPTIONS, "/admin/v1/sagas/bulk-abort", "POST"),
    ] {
        let resp = app.client.request(method.clone(), format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        if method != reqwest::Method::HEAD {
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
            assert_eq!(body["error"]["details"]["allow"], allow);
        }
    }
    // An unknown path stays 404, without Allow.
    let resp = app.client.put(format!("{}/v1/nothing-here", app.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers().get("allow").is_none());
}

#[tokio::test]
async fn the_openapi_document_is_served_as_json() {
    let app = spawn_app().await;
    let (status, content_type, text) = fetch(&app, "/openapi.json").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let op = &doc["paths"]["/v1/cart/items"]["post"];
    assert_eq!(op["operationId"], "cart.add");
    assert_eq!(op["security"][0]["customer_token"], serde_json::json!([]));
    assert!(op["responses"]["409"]["description"].as_str().unwrap().contains("QUANTITY_EXCEEDS_STOCK"));
    assert_eq!(doc["components"]["securitySchemes"]["webhook_signature"]["name"], "Cartwright-Signature");
}

#[tokio::test]
async fn the_docs_page_lists_every_operation_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let (_, _, text) = fetch(&app, "/openapi.json").await;
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (status, content_type, page) = fetch(&app, "/docs").await;
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    for (path, item) in doc["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(page.contains(&format!("id=\"op-{id}\"")), "{path} ({id}) is not on the page");
        }
    }
    assert!(page.contains("Cartwright-Signature") && page.contains("ErrorBody"));
    assert!(!page.contains("<script") && !page.contains("://"), "the page must work offline");
}
