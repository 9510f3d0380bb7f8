//! SEQ-INV-001 (restock) and SEQ-INV-002 (out-of-stock alert), and reservations (holds).

use serde_json::json;

use crate::helpers::*;

fn owner() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test]
async fn restock_adds_to_on_hand_with_event_and_audit() {
    let app = spawn_app().await;
    let id = app.product("5.00", 4).await;
    let (status, body) = app.restock(&id, json!({ "quantity": 6 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "product_id": id, "items": [{ "variant_id": null, "on_hand": 10, "reserved": 0, "available": 10 }] })
    );
    let restocked = app.events("InventoryRestocked").await;
    assert_eq!(restocked.len(), 1);
    assert_eq!(restocked[0]["data"]["quantity"], 6);
    let audit = app.audit("inventory", &id).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "inventory.restocked");
    assert_eq!(audit[0]["before"], json!({ "on_hand": 4, "reserved": 0 }));
    assert_eq!(audit[0]["after"], json!({ "on_hand": 10, "reserved": 0 }));
}

#[tokio::test]
async fn invalid_restock_quantities_change_nothing() {
    let app = spawn_app().await;
    let id = app.product("5.00", 4).await;
    for bad in [json!(0), json!(-3), json!(2.5), json!("7"), json!(null), json!(10_000_000_000u64)] {
        let (status, body) = app.restock(&id, json!({ "quantity": bad })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_QUANTITY")), "{bad}");
    }
    let (status, body) = app.restock(&id, json!({})).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("quantity")));
    assert_eq!(app.stock(&id).await["items"][0]["on_hand"], 4);
    assert!(app.events("InventoryRestocked").await.is_empty());
    assert!(app.audit("inventory", &id).await.is_empty());
}

#[tokio::test]
async fn restock_of_unknown_product_or_variant_is_refused() {
    let app = spawn_app().await;
    let missing = uuid::Uuid::now_v7();
    let (status, b) = app.restock(&missing.to_string(), json!({ "quantity": 1 })).await;
    assert_eq!((status, b["error"]["code"].as_str()), (404, Some("PRODUCT_NOT_FOUND")));
    let (status, _) = app.restock("not-a-uuid", json!({ "quantity": 1 })).await;
    assert_eq!(status, 404);

    let (id, variants) = app.product_with_variants("9.00", &[("S", 1), ("M", 1)]).await;
    let (status, b) = app.restock(&id, json!({ "quantity": 1 })).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("VARIANT_REQUIRED")));
    let (status, b) = app.restock(&id, json!({ "quantity": 1, "variant_id": missing })).await;
    assert_eq!((status, b["error"]["code"].as_str()), (404, Some("VARIANT_NOT_FOUND")));
    let (status, b) = app.restock(&id, json!({ "quantity": 4, "variant_id": variants[1] })).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["items"][0]["on_hand"], 1);
    assert_eq!(b["items"][1]["on_hand"], 5);

    // A variant id on a product without variants is not found either.
    let plain = app.product("1.00", 1).await;
    let (status, _) = app.restock(&plain, json!({ "quantity": 1, "variant_id": variants[0] })).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn restock_and_inventory_need_admin() {
    let app = spawn_app().await;
    let id = app.product("5.00", 4).await;
    let (status, _) =
        app.post(&format!("/admin/v1/inventory/{id}/restock"), Some(FULFILLMENT), json!({ "quantity": 1 })).await;
    assert_eq!(status, 403);
    let (status, _) = app.post(&format!("/admin/v1/inventory/{id}/restock"), None, json!({ "quantity": 1 })).await;
    assert_eq!(status, 401);
    // Fulfillment's token covers orders only.
    let (status, body) = app.get(&format!("/admin/v1/inventory/{id}"), Some(FULFILLMENT)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, body) = app.get(&format!("/admin/v1/inventory/{id}"), Some(ADMIN)).await;
    assert_eq!((status, &body["items"][0]["on_hand"]), (200, &json!(4)));
}

#[tokio::test]
async fn holds_are_idempotent_per_owner_and_bounded_by_available() {
    let app = spawn_app().await;
    let id = app.product("5.00", 5).await;
    let path = format!("/admin/v1/inventory/{id}/reservations");
    let a = owner();
    let (status, body) = app.post(&path, Some(ADMIN), json!({ "owner_id": a, "quantity": 3 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0], json!({ "variant_id": null, "on_hand": 5, "reserved": 3, "available": 2 }));
    // The same owner again is a no-op.
    let (_, body) = app.post(&path, Some(ADMIN), json!({ "owner_id": a, "quantity": 3 })).await;
    assert_eq!(body["items"][0]["reserved"], 3);
    assert_eq!(app.events("InventoryReserved").await.len(), 1);

    let (status, body) = app.post(&path, Some(ADMIN), json!({ "owner_id": owner(), "quantity": 3 })).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "INSUFFICIENT_STOCK");
    assert_eq!(
        body["error"]["details"]["items"],
        json!([{ "product_id": id, "variant_id": null, "requested": 3, "available": 2 }])
    );

    let (status, body) = app.delete(&format!("{path}/{a}"), Some(ADMIN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["reserved"], 0);
    // Releasing again, or an unknown owner, is a no-op.
    assert_eq!(app.delete(&format!("{path}/{a}"), Some(ADMIN)).await.0, 200);
    assert_eq!(app.delete(&format!("{path}/{}", owner()), Some(ADMIN)).await.0, 200);
    assert_eq!(app.events("InventoryReleased").await.len(), 1);
}

#[tokio::test]
async fn out_of_stock_is_emitted_and_alerted_once_per_transition_to_zero() {
    let app = spawn_app().await;
    let id = app.product("5.00", 3).await;
    let path = format!("/admin/v1/inventory/{id}/reservations");
    let (first, second) = (owner(), owner());
    app.post(&path, Some(ADMIN), json!({ "owner_id": first, "quantity": 2 })).await;
    assert!(app.events("OutOfStock").await.is_empty());
    let (_, body) = app.post(&path, Some(ADMIN), json!({ "owner_id": second, "quantity": 1 })).await;
    assert_eq!(body["items"][0]["available"], 0);
    // Finding it at zero again is not a new transition.
    let (status, _) = app.post(&path, Some(ADMIN), json!({ "owner_id": owner(), "quantity": 1 })).await;
    assert_eq!(status, 409);
    let oos = app.events("OutOfStock").await;
    assert_eq!(oos.len(), 1);
    assert_eq!(oos[0]["data"]["product_id"], id.as_str());

    app.eventually("out-of-stock alert sent to the admin", || async {
        let alerts = app.notifications("out_of_stock_alert").await;
        alerts.len() == 1 && alerts[0]["status"] == "SENT" && alerts[0]["to"] == "ops@cartwright.local"
    })
    .await;

    // Back above zero, then to zero again: a second transition, a second alert.
    app.delete(&format!("{path}/{second}"), Some(ADMIN)).await;
    app.post(&path, Some(ADMIN), json!({ "owner_id": owner(), "quantity": 1 })).await;
    assert_eq!(app.events("OutOfStock").await.len(), 2);
    app.eventually("a second alert", || async { app.notifications("out_of_stock_alert").await.len() == 2 }).await;
}

#[tokio::test]
async fn a_failing_alert_is_retried_and_never_undoes_the_stock_change() {
    let app = spawn_app_with(|s| s.notifications.fail_first_attempts = 100).await;
    let id = app.product("5.00", 1).await;
    let (status, _) = app
        .post(
            &format!("/admin/v1/inventory/{id}/reservations"),
            Some(ADMIN),
            json!({ "owner_id": owner(), "quantity": 1 }),
        )
        .await;
    assert_eq!(status, 200);
    app.eventually("alert FAILED after retries", || async {
        app.notifications("out_of_stock_alert").await.iter().any(|n| n["status"] == "FAILED" && n["attempts"] == 4)
    })
    .await;
    assert_eq!(app.stock(&id).await["items"][0]["reserved"], 1);
}
