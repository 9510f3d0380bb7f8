//! Many writers on one key: no lost update, exact quantities, invariants at every moment.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn concurrent_restocks_of_one_item_lose_nothing() {
    let app = spawn_app().await;
    let id = app.product("1.00", 0).await;
    let results = join_all((1..=40u64).map(|q| app.restock(&id, json!({ "quantity": q })))).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    assert_eq!(app.stock(&id).await["items"][0]["on_hand"], (1..=40u64).sum::<u64>());
    assert_eq!(app.events("InventoryRestocked").await.len(), 40);
    assert_eq!(app.audit("inventory", &id).await.len(), 40);
}

#[tokio::test]
async fn concurrent_adds_to_one_cart_are_all_counted() {
    let app = spawn_app().await;
    let id = app.product("1.00", 1000).await;
    let c = app.customer().await;
    let results =
        join_all((0..40).map(|_| app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 1 })))).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let cart = app.cart(&c.token).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["quantity"], 40);
    assert_eq!(cart["total_price"], "40.00");
}

#[tokio::test]
async fn a_cart_line_never_exceeds_the_stock_it_was_checked_against() {
    let app = spawn_app().await;
    let id = app.product("1.00", 10).await;
    let c = app.customer().await;
    let results =
        join_all((0..30).map(|_| app.add_to_cart(&c.token, json!({ "product_id": id, "quantity": 1 })))).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused = results.iter().filter(|(s, b)| *s == 409 && b["error"]["code"] == "QUANTITY_EXCEEDS_STOCK").count();
    assert_eq!((ok, refused), (10, 20));
    assert_eq!(app.cart(&c.token).await["items"][0]["quantity"], 10);
}

#[tokio::test]
async fn concurrent_reserve_and_release_keep_the_invariant() {
    let app = spawn_app().await;
    let id = app.product("1.00", 20).await;
    let path = format!("/admin/v1/inventory/{id}/reservations");
    let owners: Vec<String> = (0..60).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let done = std::sync::atomic::AtomicBool::new(false);

    let watcher = async {
        let mut checks = 0;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            let item = &app.stock(&id).await["items"][0];
            let (on_hand, reserved, available) = (
                item["on_hand"].as_u64().unwrap(),
                item["reserved"].as_u64().unwrap(),
                item["available"].as_u64().unwrap(),
            );
            assert!(reserved <= on_hand && available == on_hand - reserved, "{item}");
            checks += 1;
        }
        checks
    };
    let writers = async {
        let reserves =
            join_all(owners.iter().map(|o| app.post(&path, Some(ADMIN), json!({ "owner_id": o, "quantity": 1 }))))
                .await;
        let won: Vec<&String> = owners.iter().zip(&reserves).filter(|(_, (s, _))| *s == 200).map(|(o, _)| o).collect();
        assert!(reserves.iter().all(|(s, b)| *s == 200 || b["error"]["code"] == "INSUFFICIENT_STOCK"));
        // Release half of the winners while others try again.
        let release_paths: Vec<String> = won.iter().take(10).map(|o| format!("{path}/{o}")).collect();
        let releases = join_all(release_paths.iter().map(|p| app.delete(p, Some(ADMIN))));
        let retries =
            join_all(owners.iter().map(|o| app.post(&path, Some(ADMIN), json!({ "owner_id": o, "quantity": 1 }))));
        let (_, _) = futures::join!(releases, retries);
        done.store(true, std::sync::atomic::Ordering::Release);
        won.len()
    };
    let (checks, won) = futures::join!(watcher, writers);
    assert_eq!(won, 20);
    assert!(checks > 0);
    let item = &app.stock(&id).await["items"][0];
    assert!(item["reserved"].as_u64().unwrap() <= 20);
    let reserved_events = app.events("InventoryReserved").await.len() as u64;
    let released_events = app.events("InventoryReleased").await.len() as u64;
    assert_eq!(item["reserved"].as_u64().unwrap(), reserved_events - released_events);
}
