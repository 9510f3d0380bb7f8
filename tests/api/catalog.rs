//! SEQ-PROD-001 (create product) and SEQ-PROD-002 (update price).

use serde_json::{json, Value};

use crate::helpers::*;

fn product_body(category_id: &str) -> Value {
    json!({ "name": "Dune", "description": "Desert planet", "price": "19.90", "category_id": category_id, "initial_stock": 7 })
}

#[tokio::test]
async fn create_product_initializes_inventory_and_records_event_and_audit() {
    let app = spawn_app().await;
    let category_id = app.category().await;
    let (status, p) = app.create_product(product_body(&category_id)).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["name"], "Dune");
    assert_eq!(p["price"], "19.90");
    assert_eq!(p["is_active"], true);
    assert_eq!(p["category_id"], category_id.as_str());
    assert_eq!(p["variants"], json!([]));
    let id = p["product_id"].as_str().unwrap();

    let stock = app.stock(id).await;
    assert_eq!(stock["items"], json!([{ "variant_id": null, "on_hand": 7, "reserved": 0, "available": 7 }]));
    let created = app.events("ProductCreated").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["data"]["product_id"], id);
    assert_eq!(app.events("InventoryInitialized").await[0]["data"]["on_hand"], 7);
    let audit = app.audit("product", id).await;
    assert_eq!(audit[0]["action"], "product.created");
    assert_eq!(audit[0]["actor"], "admin");

    let (status, public) = app.get(&format!("/v1/products/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(public["available"], 7);
}

#[tokio::test]
async fn product_with_variants_has_one_inventory_item_per_variant() {
    let app = spawn_app().await;
    let (id, variants) = app.product_with_variants("12.00", &[("S", 3), ("M", 0), ("L", 5)]).await;
    let stock = app.stock(&id).await;
    let items = stock["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (item, (vid, on_hand)) in items.iter().zip(variants.iter().zip([3, 0, 5])) {
        assert_eq!(item["variant_id"], vid.as_str());
        assert_eq!(item["on_hand"], on_hand);
    }
    let (_, public) = app.get(&format!("/v1/products/{id}"), None).await;
    assert_eq!(public["variants"][2]["available"], 5);
    assert_eq!(public["available"], 8);
}

#[tokio::test]
async fn invalid_prices_are_refused_and_nothing_is_created() {
    let app = spawn_app().await;
    let category_id = app.category().await;
    for bad in ["0.00", "-1.00", "19.999", "abc", "1e3", "", "99999999999999999999999"] {
        let mut body = product_body(&category_id);
        body["price"] = json!(bad);
        let (status, b) = app.create_product(body).await;
        assert_eq!((status, b["error"]["code"].as_str()), (422, Some("INVALID_PRICE")), "{bad}: {b}");
    }
    // A number instead of a decimal string is a wrong-typed field.
    let mut body = product_body(&category_id);
    body["price"] = json!(19.9);
    let (status, b) = app.create_product(body).await;
    assert_eq!((status, b["error"]["details"]["field"].as_str()), (400, Some("price")));
    assert!(app.events("ProductCreated").await.is_empty());
}

#[tokio::test]
async fn names_and_descriptions_are_checked_in_characters() {
    let app = spawn_app().await;
    let category_id = app.category().await;
    let create = |name: String, description: String| {
        let mut body = product_body(&category_id);
        body["name"] = json!(name);
        body["description"] = json!(description);
        app.create_product(body)
    };
    // 200 two-byte characters is exactly the limit.
    assert_eq!(create("é".repeat(200), "ok".into()).await.0, 201);
    assert_eq!(create("日本".to_string(), "ok".into()).await.0, 201);
    for name in ["x".to_string(), "é".repeat(201), "   ".to_string(), "bad\u{1}name".to_string()] {
        let (status, b) = create(name.clone(), "ok".into()).await;
        assert_eq!((status, b["error"]["code"].as_str()), (422, Some("INVALID_PRODUCT_NAME")), "{name:?}");
    }
    assert_eq!(create("Fine".into(), "ü".repeat(5000)).await.0, 201);
    let (status, b) = create("Fine".into(), "ü".repeat(5001)).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("DESCRIPTION_TOO_LONG")));
    assert_eq!(app.events("ProductCreated").await.len(), 3);
}

#[tokio::test]
async fn unknown_category_is_refused() {
    let app = spawn_app().await;
    let (status, b) = app.create_product(product_body(&uuid::Uuid::now_v7().to_string())).await;
    assert_eq!((status, b["error"]["code"].as_str()), (404, Some("CATEGORY_NOT_FOUND")));
    let (status, b) = app.create_product(product_body("not-a-uuid")).await;
    assert_eq!((status, b["error"]["details"]["field"].as_str()), (400, Some("category_id")));
    assert!(app.events("ProductCreated").await.is_empty());
}

#[tokio::test]
async fn bad_stock_figures_are_invalid_quantity() {
    let app = spawn_app().await;
    let category_id = app.category().await;
    for bad in [json!(-1), json!(1.5), json!("3")] {
        let mut body = product_body(&category_id);
        body["initial_stock"] = bad.clone();
        let (status, b) = app.create_product(body).await;
        assert_eq!((status, b["error"]["code"].as_str()), (422, Some("INVALID_QUANTITY")), "{bad}");
    }
}

#[tokio::test]
async fn price_update_is_audited_evented_and_shown_in_carts_on_next_view() {
    let app = spawn_app().await;
    let id = app.product("19.90", 10).await;
    let customer = app.customer().await;
    let (status, _) = app.add_to_cart(&customer.token, json!({ "product_id": id, "quantity": 2 })).await;
    assert_eq!(status, 200);

    let (status, p) = app.put(&format!("/admin/v1/products/{id}/price"), Some(ADMIN), json!({ "price": "24.5" })).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["price"], "24.50");

    let updated = app.events("ProductUpdated").await;
    assert_eq!(updated[0]["data"], json!({ "product_id": id, "old_price": "19.90", "new_price": "24.50" }));
    let audit = app.audit("product", &id).await;
    let change = audit.iter().find(|a| a["action"] == "product.price_changed").unwrap();
    assert_eq!((&change["before"], &change["after"]), (&json!({ "price": "19.90" }), &json!({ "price": "24.50" })));

    let cart = app.cart(&customer.token).await;
    assert_eq!(cart["items"][0]["unit_price"], "24.50");
    assert_eq!(cart["items"][0]["subtotal"], "49.00");
    assert_eq!(cart["total_price"], "49.00");
}

#[tokio::test]
async fn price_update_errors_change_nothing() {
    let app = spawn_app().await;
    let id = app.product("19.90", 1).await;
    let (status, b) =
        app.put(&format!("/admin/v1/products/{id}/price"), Some(ADMIN), json!({ "price": "0.001" })).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("INVALID_PRICE")));
    let missing = uuid::Uuid::now_v7();
    let (status, b) =
        app.put(&format!("/admin/v1/products/{missing}/price"), Some(ADMIN), json!({ "price": "1.00" })).await;
    assert_eq!((status, b["error"]["code"].as_str()), (404, Some("PRODUCT_NOT_FOUND")));
    let (status, _) = app.put("/admin/v1/products/not-a-uuid/price", Some(ADMIN), json!({ "price": "1.00" })).await;
    assert_eq!(status, 404);
    let (_, p) = app.get(&format!("/v1/products/{id}"), None).await;
    assert_eq!(p["price"], "19.90");
    assert!(app.events("ProductUpdated").await.is_empty());
}

#[tokio::test]
async fn catalogue_administration_needs_the_admin_token() {
    let app = spawn_app().await;
    let category_id = app.category().await;
    let customer = app.customer().await;
    let (status, b) = app.post("/admin/v1/products", None, product_body(&category_id)).await;
    assert_eq!((status, b["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let (status, b) = app.post("/admin/v1/products", Some(&customer.token), product_body(&category_id)).await;
    assert_eq!((status, b["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, _) = app.post("/admin/v1/products", Some(FULFILLMENT), product_body(&category_id)).await;
    assert_eq!(status, 403);
    assert!(app.events("ProductCreated").await.is_empty());
}

#[tokio::test]
async fn product_listing_paginates_in_creation_order() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.product("1.00", 1).await);
    }
    let (status, page1) = app.get("/v1/products?limit=3", None).await;
    assert_eq!(status, 200);
    let got: Vec<&str> =
        page1["products"].as_array().unwrap().iter().map(|p| p["product_id"].as_str().unwrap()).collect();
    assert_eq!(got, ids[..3].iter().map(String::as_str).collect::<Vec<_>>());
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/v1/products?limit=3&cursor={cursor}"), None).await;
    let got: Vec<&str> =
        page2["products"].as_array().unwrap().iter().map(|p| p["product_id"].as_str().unwrap()).collect();
    assert_eq!(got, ids[3..].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(app.get("/v1/products?limit=0", None).await.0, 400);
    assert_eq!(app.get("/v1/products?cursor=zzz", None).await.0, 400);
    let (status, b) = app.get(&format!("/v1/products/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!((status, b["error"]["code"].as_str()), (404, Some("PRODUCT_NOT_FOUND")));
}
