//! Operators and the saga engine: inspect, resume, abort, retry policies, recovery on start.

use serde_json::json;

use crate::helpers::*;

/// A checkout left RETRYING at authorize_payment (long backoff, flaky card).
async fn retrying_checkout(app: &TestApp) -> (Customer, String, String) {
    app.set_policy("place_order", "authorize_payment", 5, 60_000).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 2 })).await;
    let (status, body) = app.place_order(&c.token, "tok_flaky").await;
    assert_eq!(status, 202, "{body}");
    let saga_id = body["saga_id"].as_str().unwrap().to_string();
    app.saga_reaches(&saga_id, "RETRYING").await;
    (c, p, saga_id)
}

#[tokio::test]
async fn an_operator_sees_the_full_step_history() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, p, saga_id) = retrying_checkout(&app).await;
    let saga = app.saga(&saga_id).await;
    assert_eq!(saga["type"], "place_order");
    assert_eq!(saga["current_step"], "authorize_payment");
    let step = &saga["steps"][4];
    assert_eq!((step["state"].as_str(), step["attempts"].as_u64()), (Some("RUNNING"), Some(1)));
    assert!(step["last_error"].as_str().unwrap().contains("simulated timeout"));
    assert!(step["next_attempt_at"].is_string());
    assert_eq!(saga["steps"][2]["compensation"]["name"], "release_inventory");
    assert_eq!(saga["retry_policies"]["authorize_payment"]["initial_backoff_ms"], 60_000);
    assert_eq!(saga["input"]["payment_token"], "tok_flaky");
    assert_eq!(app.stock_of(&p).await, (5, 2));

    let (_, list) = app.get("/admin/v1/sagas?state=RETRYING&type=place_order", Some(ADMIN)).await;
    assert_eq!(list["sagas"].as_array().unwrap().len(), 1);
    let (_, none) = app.get("/admin/v1/sagas?type=cancel_order", Some(ADMIN)).await;
    assert!(none["sagas"].as_array().unwrap().is_empty());
    assert_eq!(app.get("/admin/v1/sagas?state=BOGUS", Some(ADMIN)).await.0, 400);
    assert_eq!(app.get("/admin/v1/sagas", Some(FULFILLMENT)).await.0, 403);
    let (status, body) = app.get(&format!("/admin/v1/sagas/{}", uuid::Uuid::now_v7()), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("SAGA_NOT_FOUND")));
}

#[tokio::test]
async fn resume_runs_a_retrying_step_now() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (c, p, saga_id) = retrying_checkout(&app).await;
    // The second attempt fails too (tok_flaky fails twice); resume again, then it passes.
    app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    app.saga_reaches(&saga_id, "RETRYING").await;
    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 200);
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["steps"][4]["attempts"], 3);
    assert_eq!(app.stock_of(&p).await, (5, 2));
    assert_eq!(app.get("/v1/orders", Some(&c.token)).await.1["orders"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn abort_compensates_and_ends_aborted() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (c, p, saga_id) = retrying_checkout(&app).await;
    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 400, "a reason is required");
    let (status, saga) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "fraud check" })).await;
    assert_eq!(status, 200, "{saga}");
    let saga = app.saga_reaches(&saga_id, "ABORTED").await;
    assert_eq!(saga["abort_reason"], "fraud check");
    assert_eq!(saga["steps"][2]["state"], "COMPENSATED");
    assert_eq!(app.stock_of(&p).await, (5, 0));
    assert!(app.get("/v1/orders", Some(&c.token)).await.1["orders"].as_array().unwrap().is_empty());
    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "again" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_SAGA_STATE")));
    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn retry_policies_are_listed_validated_and_changed() {
    let app = spawn_app().await;
    let (status, body) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["retry_policies"]["place_order"]["authorize_payment"]["max_attempts"], 4);
    assert_eq!(body["retry_policies"]["cancel_order"]["refund_payment"]["max_attempts"], 3);
    assert!(body["retry_policies"]["place_order"]["void_authorization"].is_object());

    app.set_policy("cancel_order", "refund_payment", 7, 250).await;
    let (_, body) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    assert_eq!(body["retry_policies"]["cancel_order"]["refund_payment"]["max_attempts"], 7);

    let put = |path: &'static str, body| app.put(path, Some(ADMIN), body);
    let good = json!({ "max_attempts": 3, "initial_backoff_ms": 10, "multiplier": 2.0, "max_backoff_ms": 100 });
    let (s, b) = put("/admin/v1/retry-policies/no_such_saga/x", good.clone()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("SAGA_NOT_FOUND")));
    let (s, b) = put("/admin/v1/retry-policies/place_order/no_such_step", good.clone()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("INVALID_RETRY_POLICY")));
    for bad in [
        json!({ "max_attempts": 0, "initial_backoff_ms": 10, "multiplier": 2.0, "max_backoff_ms": 100 }),
        json!({ "max_attempts": 3, "initial_backoff_ms": 10, "multiplier": 0.5, "max_backoff_ms": 100 }),
        json!({ "max_attempts": 3, "initial_backoff_ms": 100, "multiplier": 2.0, "max_backoff_ms": 10 }),
    ] {
        let (s, b) = put("/admin/v1/retry-policies/place_order/load_cart", bad).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("INVALID_RETRY_POLICY")));
    }
    let (s, _) = put("/admin/v1/retry-policies/place_order/load_cart", json!({ "max_attempts": "3" })).await;
    assert_eq!(s, 400);
    assert_eq!(app.put("/admin/v1/retry-policies/place_order/load_cart", Some(FULFILLMENT), good).await.0, 403);
}

#[tokio::test]
async fn policies_and_unfinished_sagas_survive_a_restart_and_timers_fire_after_it() {
    let mut app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    app.set_policy("place_order", "authorize_payment", 5, 800).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_flaky").await;
    assert_eq!(status, 202, "{body}");
    let saga_id = body["saga_id"].as_str().unwrap().to_string();
    app.saga_reaches(&saga_id, "RETRYING").await;

    app.restart().await;

    let (_, policies) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    assert_eq!(policies["retry_policies"]["place_order"]["authorize_payment"]["initial_backoff_ms"], 800);
    // The persisted timer was re-armed: the saga finishes without anyone touching it.
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    // One attempt before the restart; the in-process simulated gateway forgets its counters
    // with the process, so the flaky card fails twice more after it, then passes.
    assert_eq!(saga["steps"][4]["attempts"], 4);
    assert_eq!(app.stock_of(&p).await, (5, 1));
    assert_eq!(app.events("OrderPlaced").await.len(), 1);
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cartwright"))
        .arg("sagas")
        .args(args)
        .args(["--url", &app.url, "--token", ADMIN])
        .output()
        .expect("cli runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_cli_lists_shows_resumes_aborts_and_sets_policies() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, p, saga_id) = retrying_checkout(&app).await;
    let out = tokio::task::block_in_place(|| cli(&app, &["list", "--state", "RETRYING"]));
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&saga_id) && listed.contains("authorize_payment"), "{listed}");

    let out = tokio::task::block_in_place(|| cli(&app, &["show", &saga_id]));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "RETRYING");

    let out = tokio::task::block_in_place(|| {
        cli(
            &app,
            &[
                "policy",
                "set",
                "place_order",
                "authorize_payment",
                "--max-attempts",
                "9",
                "--initial-backoff-ms",
                "10",
                "--max-backoff-ms",
                "50",
            ],
        )
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tokio::task::block_in_place(|| cli(&app, &["policy", "list"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"max_attempts\": 9"));

    let out = tokio::task::block_in_place(|| cli(&app, &["abort", &saga_id, "--reason", "operator drill"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.saga_reaches(&saga_id, "ABORTED").await;
    assert_eq!(app.stock_of(&p).await, (5, 0));

    // API errors become a non-zero exit with the code.
    let out = tokio::task::block_in_place(|| cli(&app, &["resume", &saga_id]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_SAGA_STATE"));
}

#[tokio::test]
async fn saga_listing_paginates_oldest_first() {
    let app = spawn_app().await;
    let c = app.verified_customer().await;
    for _ in 0..3 {
        // Empty cart: each attempt is a short FAILED saga.
        assert_eq!(app.place_order(&c.token, "tok_visa").await.0, 422);
    }
    let (_, first) = app.get("/admin/v1/sagas?limit=2", Some(ADMIN)).await;
    let page1: Vec<String> =
        first["sagas"].as_array().unwrap().iter().map(|s| s["saga_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(page1.len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app.get(&format!("/admin/v1/sagas?limit=2&cursor={cursor}"), Some(ADMIN)).await;
    let page2 = second["sagas"].as_array().unwrap();
    assert_eq!(page2.len(), 1);
    assert!(!page1.contains(&page2[0]["saga_id"].as_str().unwrap().to_string()));
    assert!(second["next_cursor"].is_null());
    assert!(page1[0] < page1[1], "time-ordered ids, oldest first");
    assert_eq!(app.get("/admin/v1/sagas?limit=0", Some(ADMIN)).await.0, 400);
    assert_eq!(app.get("/admin/v1/sagas?cursor=nope", Some(ADMIN)).await.0, 400);
}
