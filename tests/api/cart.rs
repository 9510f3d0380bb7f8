//! SEQ-CART-001 (add), SEQ-CART-002 (update quantity), SEQ-CART-003 (remove).

use serde_json::{json, Value};

use crate::helpers::*;

fn line_id(cart: &Value, i: usize) -> String {
    cart["items"][i]["line_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn add_item_creates_a_line_then_adds_to_it() {
    let app = spawn_app().await;
    let id = app.product("19.90", 10).await;
    let c = app.customer().await;
    let (status, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 2 })).await;
    assert_eq!(status, 200, "{cart}");
    assert_eq!(cart["customer_id"], c.id.as_str());
    assert_eq!(cart["items"][0]["name"], "Dune");
    assert_eq!(cart["items"][0]["quantity"], 2);
    assert_eq!(cart["items"][0]["unit_price"], "19.90");
    assert_eq!(cart["items"][0]["subtotal"], "39.80");
    assert_eq!(cart["total_price"], "39.80");

    let (_, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 3 })).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["quantity"], 5);
    assert_eq!(cart["total_price"], "99.50");
    let added = app.events("ItemAddedToCart").await;
    assert_eq!(added.len(), 2);
    assert_eq!(added[1]["data"]["line_quantity"], 5);
    assert_eq!(app.cart(&c.token).await, cart);
}

#[tokio::test]
async fn stock_exceptions_leave_the_cart_unchanged() {
    let app = spawn_app().await;
    let empty = app.product("3.00", 0).await;
    let some = app.product("3.00", 4).await;
    let c = app.customer().await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": empty, "quantity": 1 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("OUT_OF_STOCK")));

    app.add_to_cart(&c.token, json!({ "product_id": some, "quantity": 3 })).await;
    let before = app.cart(&c.token).await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": some, "quantity": 2 })).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "QUANTITY_EXCEEDS_STOCK");
    assert_eq!(body["error"]["details"]["available"], 4);
    assert_eq!(app.cart(&c.token).await, before);
    assert_eq!(app.events("ItemAddedToCart").await.len(), 1);
}

#[tokio::test]
async fn variants_must_be_chosen_and_exist() {
    let app = spawn_app().await;
    let (id, variants) = app.product_with_variants("10.00", &[("S", 2), ("M", 2)]).await;
    let c = app.customer().await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 1 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("VARIANT_REQUIRED")));
    let (status, body) =
        app.add_to_cart(&c.token, json!({ "product_id": id, "variant_id": uuid::Uuid::now_v7(), "quantity": 1 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("VARIANT_NOT_FOUND")));
    let (status, cart) =
        app.add_to_cart(&c.token, json!({ "product_id": id, "variant_id": variants[1], "quantity": 2 })).await;
    assert_eq!(status, 200);
    assert_eq!(cart["items"][0]["name"], "T-shirt (M)");
    assert_eq!(cart["items"][0]["variant_id"], variants[1].as_str());
    // Another variant of the same product is another line.
    app.add_to_cart(&c.token, json!({ "product_id": id, "variant_id": variants[0], "quantity": 1 })).await;
    assert_eq!(app.cart(&c.token).await["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_add_requests_are_refused() {
    let app = spawn_app().await;
    let id = app.product("1.00", 5).await;
    let c = app.customer().await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": uuid::Uuid::now_v7(), "quantity": 1 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("PRODUCT_NOT_FOUND")));
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": "nope", "quantity": 1 })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("product_id")));
    for bad in [json!(0), json!(-2), json!(1.5), json!("2"), json!(null)] {
        let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": bad })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_QUANTITY")), "{bad}");
    }
    assert_eq!(app.cart(&c.token).await["items"], json!([]));
}

#[tokio::test]
async fn a_cart_is_bounded() {
    let app = spawn_app_with(|s| {
        s.cart.max_lines = 2;
        s.cart.max_line_quantity = 5;
    })
    .await;
    let c = app.customer().await;
    let ids = [app.product("1.00", 50).await, app.product("1.00", 50).await, app.product("1.00", 50).await];
    app.add_to_cart(&c.token, json!({ "product_id": ids[0], "quantity": 1 })).await;
    app.add_to_cart(&c.token, json!({ "product_id": ids[1], "quantity": 1 })).await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": ids[2], "quantity": 1 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("CART_FULL")));
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": ids[0], "quantity": 5 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_QUANTITY")));
}

#[tokio::test]
async fn update_quantity_changes_the_line_and_zero_removes_it() {
    let app = spawn_app().await;
    let id = app.product("2.50", 10).await;
    let c = app.customer().await;
    let (_, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 1 })).await;
    let line = line_id(&cart, 0);
    let (status, cart) = app.patch(&format!("/v1/cart/items/{line}"), Some(&c.token), json!({ "quantity": 4 })).await;
    assert_eq!(status, 200, "{cart}");
    assert_eq!(cart["items"][0]["quantity"], 4);
    assert_eq!(cart["total_price"], "10.00");
    let updated = app.events("CartQuantityUpdated").await;
    assert_eq!(
        (updated[0]["data"]["old_quantity"].as_u64(), updated[0]["data"]["new_quantity"].as_u64()),
        (Some(1), Some(4))
    );

    let (status, cart) = app.patch(&format!("/v1/cart/items/{line}"), Some(&c.token), json!({ "quantity": 0 })).await;
    assert_eq!(status, 200);
    assert_eq!(cart["items"], json!([]));
    assert_eq!(app.events("ItemRemovedFromCart").await.len(), 1);
}

#[tokio::test]
async fn update_above_stock_caps_the_line_and_says_so() {
    let app = spawn_app().await;
    let id = app.product("2.00", 6).await;
    let c = app.customer().await;
    let (_, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 2 })).await;
    let line = line_id(&cart, 0);
    let (status, body) = app.patch(&format!("/v1/cart/items/{line}"), Some(&c.token), json!({ "quantity": 9 })).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "QUANTITY_EXCEEDS_STOCK");
    assert_eq!(body["error"]["details"]["available"], 6);
    assert_eq!(body["error"]["details"]["cart"]["items"][0]["quantity"], 6);
    assert_eq!(app.cart(&c.token).await["items"][0]["quantity"], 6);
    assert_eq!(app.events("CartQuantityUpdated").await[0]["data"]["capped"], true);
}

#[tokio::test]
async fn update_of_a_missing_line_is_item_not_found() {
    let app = spawn_app().await;
    let c = app.customer().await;
    for line in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_string()] {
        let (status, body) =
            app.patch(&format!("/v1/cart/items/{line}"), Some(&c.token), json!({ "quantity": 1 })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ITEM_NOT_FOUND")));
    }
    let id = app.product("2.00", 6).await;
    let (_, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 2 })).await;
    let line = line_id(&cart, 0);
    for bad in [json!(-1), json!(1.5), json!("3")] {
        let (status, body) =
            app.patch(&format!("/v1/cart/items/{line}"), Some(&c.token), json!({ "quantity": bad })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_QUANTITY")));
    }
    assert_eq!(app.cart(&c.token).await["items"][0]["quantity"], 2);
}

#[tokio::test]
async fn remove_item_is_idempotent() {
    let app = spawn_app().await;
    let id = app.product("2.00", 6).await;
    let c = app.customer().await;
    let (_, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 2 })).await;
    let line = line_id(&cart, 0);
    let (status, cart) = app.delete(&format!("/v1/cart/items/{line}"), Some(&c.token)).await;
    assert_eq!(status, 200);
    assert_eq!(cart["items"], json!([]));
    assert_eq!(cart["total_price"], "0.00");
    let (status, _) = app.delete(&format!("/v1/cart/items/{line}"), Some(&c.token)).await;
    assert_eq!(status, 200);
    assert_eq!(app.delete("/v1/cart/items/garbage", Some(&c.token)).await.0, 200);
    let removed = app.events("ItemRemovedFromCart").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["data"]["line_id"], line.as_str());
}

#[tokio::test]
async fn customers_never_see_or_touch_each_others_carts() {
    let app = spawn_app().await;
    let id = app.product("2.00", 6).await;
    let (alice, bob) = (app.customer().await, app.customer().await);
    let (_, cart) = app.add_to_cart(&alice.token, json!({ "product_id": id, "quantity": 2 })).await;
    let line = line_id(&cart, 0);
    let (status, _) = app.patch(&format!("/v1/cart/items/{line}"), Some(&bob.token), json!({ "quantity": 1 })).await;
    assert_eq!(status, 404);
    app.delete(&format!("/v1/cart/items/{line}"), Some(&bob.token)).await;
    assert_eq!(app.cart(&bob.token).await["items"], json!([]));
    assert_eq!(app.cart(&alice.token).await["items"][0]["quantity"], 2);
}

#[tokio::test]
async fn idle_carts_are_passivated_and_come_back_intact() {
    let app = spawn_app_with(|s| s.actors.idle_timeout_secs = 1).await;
    let id = app.product("2.00", 6).await;
    let c = app.customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 2 })).await;
    let carts = || async {
        let (_, stats) = app.get("/admin/v1/stats", Some(ADMIN)).await;
        stats["actors"]["carts"].as_u64().unwrap()
    };
    assert_eq!(carts().await, 1);
    app.eventually("cart actor passivated", || async { carts().await == 0 }).await;
    // Reactivated from the store with its state.
    let (_, cart) = app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 1 })).await;
    assert_eq!(cart["items"][0]["quantity"], 3);
}
