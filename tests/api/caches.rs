//! The caches of shared records across servers: every write of a record some server keeps
//! in memory names it in the cache invalidation log, which every serving server polls
//! (`services::invalidations`). Two servers do not serve one store at once yet, so these
//! tests read the log a server wrote, and show its own poller changes none of its answers.

use cartwright::domain::ids::{CustomerId, ProductId};
use cartwright::domain::quarantine::{KeyKind, QuarantineKey};
use cartwright::services::token_hash;
use cartwright::store::invalidations::{self, Invalidation};
use serde_json::json;

use crate::helpers::*;

/// A sign-out, a verification, a price change and a pause each log what they changed, in
/// the order they committed, numbered on across a restart (the server that opens the store
/// next goes on from its last entry, so no poller that passed a number sees it again).
#[tokio::test]
async fn writes_of_cached_records_are_logged_in_order_and_numbered_on_across_a_restart() {
    let mut app = spawn_app().await;
    let ada = app.verified_customer().await;
    let product = app.product("19.90", 5).await;
    let (status, body) =
        app.put(&format!("/admin/v1/products/{product}/price"), Some(ADMIN), json!({ "price": "24.50" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.delete("/v1/sessions/current", Some(&ada.token)).await.0, 200);
    assert_eq!(app.get("/v1/me", Some(&ada.token)).await.0, 401, "refused at once");

    app.restart().await;
    let kim = app.customer().await;
    let (status, body) =
        app.put(&format!("/admin/v1/quarantine/cart/{}", kim.id), Some(ADMIN), json!({ "reason": "chargeback" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.delete("/v1/sessions/current", Some(&kim.token)).await.0, 200);
    assert_eq!(app.get("/v1/me", Some(&ada.token)).await.0, 401, "still refused after the restart");
    assert_eq!(app.get("/v1/me", Some(&kim.token)).await.0, 401);

    let mut logged = Vec::new();
    app.write_store_stopped(|store| {
        logged = invalidations::after(store, 0, 100).unwrap();
        cartwright::store::WriteSet::new()
    })
    .await;
    let seqs: Vec<u64> = logged.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "consecutive, from the first, across the restart");
    let what: Vec<Invalidation> = logged.iter().map(|(_, e)| e.what).collect();
    let kim_id = CustomerId(kim.id.parse().unwrap());
    assert_eq!(
        what,
        [
            Invalidation::Customer(CustomerId(ada.id.parse().unwrap())),
            Invalidation::Product(ProductId(product.parse().unwrap())),
            Invalidation::Session(token_hash(&ada.token)),
            Invalidation::Quarantine(QuarantineKey::new(KeyKind::Cart, kim_id.0)),
            Invalidation::Session(token_hash(&kim.token)),
        ]
    );
}

/// The server applies its own writes' entries too (dropping copies it re-reads): a price
/// change and a sign-out answer as they did once its poller has passed them.
#[tokio::test]
async fn a_server_applying_its_own_invalidations_answers_as_before() {
    let app = spawn_app().await;
    let c = app.customer().await;
    let product = app.product("19.90", 5).await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": product, "quantity": 2 })).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        app.put(&format!("/admin/v1/products/{product}/price"), Some(ADMIN), json!({ "price": "24.50" })).await;
    assert_eq!(status, 200);
    let other = app.customer().await;
    assert_eq!(app.delete("/v1/sessions/current", Some(&other.token)).await.0, 200);
    app.eventually("the invalidations counted in the metrics", || async {
        let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
        text.lines().any(|l| l.starts_with("cartwright_cache_invalidations_applied_total ") && !l.ends_with(" 0"))
    })
    .await;
    // Whichever poll has run by now, the answers are the store's.
    for _ in 0..3 {
        assert_eq!(app.cart(&c.token).await["items"][0]["unit_price"], "24.50");
        assert_eq!(app.get("/v1/me", Some(&other.token)).await.0, 401);
        assert_eq!(app.get("/v1/me", Some(&c.token)).await.0, 200);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
}
