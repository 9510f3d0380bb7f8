//! Operators and the saga engine: inspect, resume, abort, retry policies, recovery on start.

use serde_json::json;

use crate::helpers::*;

/// A checkout left RETRYING at authorize_payment (long backoff, flaky card).
async fn retrying_checkout(app: &TestApp) -> (Customer, String, String) {
    retrying_checkout_with(app, 5, 60_000, 2).await
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
    // Each failed attempt stays in the saga's history with its times and error; the one
    // that passed adds nothing.
    let failed = saga["failed_attempts"].as_array().unwrap();
    let seen: Vec<_> = failed.iter().map(|f| (f["work"].as_str(), f["attempt"].as_u64(), f["kind"].as_str())).collect();
    assert_eq!(
        seen,
        [
            (Some("authorize_payment"), Some(1), Some("transient")),
            (Some("authorize_payment"), Some(2), Some("transient"))
        ]
    );
    for f in failed {
        assert!(f["error"].as_str().unwrap().contains("simulated timeout"), "{f}");
        assert!(
            f["started_at"].is_string() && f["finished_at"].is_string() && f["duration_ms"].as_i64().unwrap() >= 0,
            "{f}"
        );
    }
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

    let out = tokio::task::block_in_place(|| cli(&app, &["abort-preview", &saga_id]));
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (preview["allowed"].as_bool(), preview["compensations"].as_array().map(Vec::len)),
        (Some(true), Some(2))
    );

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

// ----- hardening: point of no return, timers, orphans, versions -----

use cartwright::saga::coordinator::log_write;
use cartwright::saga::instance::{Phase, StepState};
use cartwright::saga::{SagaInstance, SagaState};
use cartwright::store::{Table, WriteSet};

fn saga_key(saga_id: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(saga_id).unwrap().as_bytes().to_vec()
}

/// Rewrites a saga's record as `park` leaves it, registered as unfinished or not.
async fn rewrite_saga(app: &mut TestApp, saga_id: &str, active: bool, park: impl FnOnce(&mut SagaInstance)) {
    let key = saga_key(saga_id);
    app.write_store(move |store| {
        let mut saga: SagaInstance = store.get(Table::Sagas, &key).unwrap().expect("saga in the log");
        let logged = saga.state;
        park(&mut saga);
        let ws = log_write(WriteSet::new(), &saga, Some(logged));
        if active {
            ws.put(Table::ActiveSagas, key, &0u32)
        } else {
            ws.delete(Table::ActiveSagas, key)
        }
    })
    .await;
}

/// As a failure at `step` leaves a saga: that step FAILED after one attempt, STUCK there.
fn stuck_at(step: usize) -> impl FnOnce(&mut SagaInstance) {
    move |saga| {
        saga.state = SagaState::Stuck;
        saga.phase = Phase::Forward;
        saga.cursor = step as u32;
        let w = &mut saga.steps[step].step;
        w.state = StepState::Failed;
        w.last_error = Some("inventory unavailable (retries exhausted)".into());
    }
}

#[tokio::test]
async fn a_ship_order_saga_stuck_at_the_deduction_cannot_be_aborted() {
    let mut app = spawn_app().await;
    let (_, p, order) = app.pending_order(2).await;
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let (a, t) = (order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap());
    assert_eq!(app.capture("evt_pnr", a, t).await.0, 200);
    let (status, shipped) = app.ship(FULFILLMENT, &order_id, "1ZPNR").await;
    assert_eq!(status, 200, "{shipped}");
    let (_, sagas) = app.get("/admin/v1/sagas?type=ship_order", Some(ADMIN)).await;
    let saga_id = sagas["sagas"][0]["saga_id"].as_str().unwrap().to_string();
    // As a deduction that kept failing leaves it: SHIPPED, tracking number claimed, STUCK.
    rewrite_saga(&mut app, &saga_id, true, stuck_at(3)).await;
    assert_eq!(app.saga(&saga_id).await["state"], "STUCK");

    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "stuck" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("ABORT_NOT_ALLOWED")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("point of no return") && message.contains("/resume"), "{message}");
    let (status, preview) = app.get(&format!("/admin/v1/sagas/{saga_id}/abort-preview"), Some(ADMIN)).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!((preview["allowed"].as_bool(), preview["compensations"].clone()), (Some(false), json!([])));
    assert!(preview["reason"].as_str().unwrap().contains("mark_shipped"), "{preview}");

    // Nothing changed: still STUCK, the order SHIPPED, the tracking number still its own.
    let saga = app.saga(&saga_id).await;
    assert_eq!((saga["state"].as_str(), saga["abort_reason"].is_null()), (Some("STUCK"), true));
    assert_eq!(saga["steps"][1]["compensation"]["state"], "PENDING");
    let (_, now) = app.get(&format!("/admin/v1/orders/{order_id}"), Some(ADMIN)).await;
    assert_eq!((now["status"].as_str(), now["tracking_number"].as_str()), (Some("SHIPPED"), Some("1ZPNR")));
    let (_, _, other_order) = app.pending_order(1).await;
    let other_id = other_order["order_id"].as_str().unwrap();
    let (a2, t2) =
        (other_order["payment"]["authorization_id"].as_str().unwrap(), other_order["total"].as_str().unwrap());
    assert_eq!(app.capture("evt_pnr_2", a2, t2).await.0, 200);
    let (status, body) = app.ship(FULFILLMENT, other_id, "1ZPNR").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("TRACKING_NUMBER_IN_USE")), "{body}");

    // Forward is the way: resuming finishes it (deducting again is a no-op).
    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 200);
    app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(app.stock_of(&p).await, (8, 0));
}

#[tokio::test]
async fn a_place_order_saga_past_create_order_points_to_cancelling_the_order() {
    let mut app = spawn_app().await;
    let (_, p, order) = app.pending_order(1).await;
    let (saga_id, order_id) = (order["saga_id"].as_str().unwrap(), order["order_id"].as_str().unwrap());
    rewrite_saga(&mut app, saga_id, true, stuck_at(6)).await;
    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "x" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("ABORT_NOT_ALLOWED")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    let remedy = format!("POST /admin/v1/orders/{order_id}/cancel");
    assert!(message.contains(&remedy), "{message}");
    let (_, now) = app.get(&format!("/admin/v1/orders/{order_id}"), Some(ADMIN)).await;
    assert_eq!((now["status"].as_str(), now["payment"]["status"].as_str()), (Some("PENDING"), Some("AUTHORIZED")));

    // The remedy is the operator's to follow: the admin token cancels, fulfillment may not.
    let (status, body) = app.operator_cancel(FULFILLMENT, order_id, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    let (status, cancelled) = app.operator_cancel(ADMIN, order_id, Some("remedy-1")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(
        (cancelled["refund"]["status"].as_str(), cancelled["payment"]["status"].as_str()),
        (Some("VOIDED"), Some("VOIDED"))
    );
    assert_eq!(app.stock_of(&p).await, (10, 0), "the reservation is released");
    // A repeat with the same key answers the first outcome and starts nothing new.
    let (status, again) = app.operator_cancel(ADMIN, order_id, Some("remedy-1")).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("CANCELLED")), "{again}");
    let (_, sagas) = app.get("/admin/v1/sagas?type=cancel_order", Some(ADMIN)).await;
    assert_eq!(sagas["sagas"].as_array().unwrap().len(), 1, "{sagas}");
    let rows = app.audit("order", order_id).await;
    let cancels: Vec<_> = rows.iter().filter(|r| r["action"] == "order.cancel").collect();
    assert!(!cancels.is_empty() && cancels.iter().all(|r| r["actor"] == "admin:alice"), "{rows:?}");
}

#[tokio::test]
async fn the_abort_preview_lists_exactly_the_compensations_the_abort_runs() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, p, saga_id) = retrying_checkout(&app).await;
    let (status, preview) = app.get(&format!("/admin/v1/sagas/{saga_id}/abort-preview"), Some(ADMIN)).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        preview,
        json!({ "allowed": true, "compensations": [
            { "step": "authorize_payment", "compensation": "void_authorization" },
            { "step": "reserve_inventory", "compensation": "release_inventory" },
        ] })
    );
    let (status, _) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "drill" })).await;
    assert_eq!(status, 200);
    let saga = app.saga_reaches(&saga_id, "ABORTED").await;
    let ran: Vec<(String, String)> = saga["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["compensation"]["state"] == "SUCCEEDED")
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["compensation"]["name"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(ran.len(), 2);
    assert!(ran.contains(&("authorize_payment".into(), "void_authorization".into())));
    assert!(ran.contains(&("reserve_inventory".into(), "release_inventory".into())));
    assert_eq!(app.stock_of(&p).await, (5, 0));
    let (_, after) = app.get(&format!("/admin/v1/sagas/{saga_id}/abort-preview"), Some(ADMIN)).await;
    assert_eq!(after["allowed"], false);
    assert!(after["reason"].as_str().unwrap().contains("ABORTED"), "{after}");
    let (status, body) = app.get(&format!("/admin/v1/sagas/{}/abort-preview", uuid::Uuid::now_v7()), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("SAGA_NOT_FOUND")));
    assert_eq!(app.get(&format!("/admin/v1/sagas/{saga_id}/abort-preview"), Some(FULFILLMENT)).await.0, 403);
}

#[tokio::test]
async fn resuming_a_retrying_saga_disarms_its_old_timer() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, _, saga_id) = retrying_checkout_with(&app, 3, 700, 1).await;
    let first = app.saga(&saga_id).await;
    let old_due = chrono::DateTime::parse_from_rfc3339(first["steps"][4]["next_attempt_at"].as_str().unwrap()).unwrap();

    // From now on a failure waits a minute; resume at once with fresh attempts.
    app.set_policy("place_order", "authorize_payment", 3, 60_000).await;
    let (status, _) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({ "reset_attempts": true })).await;
    assert_eq!(status, 200);
    // tok_flaky fails its second authorization too: RETRYING, one attempt since the reset.
    app.eventually("the resumed attempt failed", || async {
        let s = app.saga(&saga_id).await;
        s["state"] == "RETRYING"
            && s["steps"][4]["attempts"] == 1
            && s["steps"][4]["next_attempt_at"] != first["steps"][4]["next_attempt_at"]
    })
    .await;
    // Past the old timer's due time, it must not have run the step (a third authorization
    // would pass and complete the saga a minute early).
    let wait = old_due.timestamp_millis() - chrono::Utc::now().timestamp_millis() + 500;
    tokio::time::sleep(std::time::Duration::from_millis(wait.max(0) as u64)).await;
    let saga = app.saga(&saga_id).await;
    assert_eq!((saga["state"].as_str(), saga["steps"][4]["attempts"].as_u64()), (Some("RETRYING"), Some(1)), "{saga}");

    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 200);
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["steps"][4]["attempts"], 2);
}

#[tokio::test]
async fn a_running_saga_nobody_drives_can_be_resumed() {
    let mut app = spawn_app().await;
    let (c, _, order) = app.pending_order(1).await;
    let saga_id = order["saga_id"].as_str().unwrap().to_string();
    // As a coordinator that stopped after its log writes failed leaves it: RUNNING at
    // clear_cart, in the log, with no coordinator in memory.
    rewrite_saga(&mut app, &saga_id, false, |saga| {
        saga.state = SagaState::Running;
        saga.cursor = 6;
        saga.steps[6].step.state = StepState::Running;
        saga.steps[6].step.finished_at = None;
    })
    .await;
    assert_eq!(app.saga(&saga_id).await["state"], "RUNNING");
    let (status, body) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["steps"][6]["attempts"], 2);
    assert!(app.cart(&c.token).await["items"].as_array().unwrap().is_empty());
    // A saga that is driven (a live coordinator) is still refused.
    let (_, _, second) = app.pending_order(1).await;
    let (status, _) = app
        .post(&format!("/admin/v1/sagas/{}/resume", second["saga_id"].as_str().unwrap()), Some(ADMIN), json!({}))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn an_instance_of_an_older_definition_version_runs_to_the_end_after_an_upgrade() {
    let mut app = spawn_app().await;
    let (c, p, order) = app.pending_order(2).await;
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let customer: uuid::Uuid = c.id.parse().unwrap();
    let order_uuid: uuid::Uuid = order_id.parse().unwrap();
    let v1 = cartwright::saga::definition::embedded()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "cancel_order" && d.version == 1)
        .expect("cancel_order v1 ships");
    let saga = SagaInstance::new(
        &v1,
        |step| v1.policies()[step],
        json!({ "order_id": order_id, "customer_id": c.id, "reason": "changed my mind" }),
        Some(cartwright::domain::ids::CustomerId(customer)),
        Some(cartwright::domain::ids::OrderId(order_uuid)),
    );
    let saga_id = saga.saga_id.to_string();
    // Written by the older build: a cancel_order v1 that was running when it stopped.
    app.write_store(move |_| {
        let key = saga.saga_id.as_bytes().to_vec();
        log_write(WriteSet::new(), &saga, None).put(Table::ActiveSagas, key, &0u32)
    })
    .await;

    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["definition_version"], 1);
    let steps: Vec<&str> = saga["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps.last(), Some(&"notify_cancellation"));
    assert!(saga["steps"].as_array().unwrap().iter().all(|s| s["state"] == "SUCCEEDED"), "{saga}");
    let (_, now) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!((now["status"].as_str(), now["refund"]["status"].as_str()), (Some("CANCELLED"), Some("VOIDED")));
    assert_eq!(app.stock_of(&p).await, (10, 0));
    // The email comes from the OrderCancelled event, once.
    app.eventually("the cancellation email", || async {
        app.notifications("order_cancelled").await.iter().any(|n| n["payload"]["order_id"] == order_id.as_str())
    })
    .await;
    let emails = app.notifications("order_cancelled").await;
    assert_eq!(emails.iter().filter(|n| n["payload"]["order_id"] == order_id.as_str()).count(), 1);
}

#[tokio::test]
async fn checkout_takes_from_the_cart_only_what_the_order_holds() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (c, p, saga_id) = retrying_checkout(&app).await;
    // While the payment retries, the customer adds another product and one more of the first.
    let q = app.product("3.00", 5).await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": q, "quantity": 1 })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    assert_eq!(status, 200, "{body}");
    // tok_flaky fails once more, then passes.
    app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    app.saga_reaches(&saga_id, "RETRYING").await;
    app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["data"]["lines"][0]["quantity"], 2, "the order took the two units loaded");
    let mut left: Vec<(String, u64)> = app.cart(&c.token).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["product_id"].as_str().unwrap().to_string(), i["quantity"].as_u64().unwrap()))
        .collect();
    left.sort();
    let mut expected = vec![(p.clone(), 1), (q.clone(), 1)];
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn the_server_refuses_to_start_with_an_unfinished_saga_it_cannot_run() {
    let mut app = spawn_app().await;
    let v1 = cartwright::saga::definition::embedded()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "ship_order" && d.version == 1)
        .unwrap();
    let mut saga = SagaInstance::new(&v1, |step| v1.policies()[step], json!({}), None, None);
    // A step a later build dropped without keeping a handler for it.
    saga.steps[4].step.name = "notify_by_pigeon".into();
    let key = saga.saga_id.as_bytes().to_vec();
    let (k1, k2) = (key.clone(), key.clone());
    app.write_store_stopped(move |_| log_write(WriteSet::new(), &saga, None).put(Table::ActiveSagas, k1, &0u32)).await;
    let refused = app.try_start().await.unwrap_err();
    assert!(refused.contains("ship_order v1") && refused.contains("\"notify_by_pigeon\" has no handler"), "{refused}");
    // Once nothing unfinished needs it, the server starts.
    app.write_store_stopped(move |_| WriteSet::new().delete(Table::ActiveSagas, k2)).await;
    app.try_start().await.unwrap();
    assert_eq!(app.get("/healthz", None).await.0, 200);
}

#[tokio::test]
async fn aborting_a_checkout_whose_created_order_was_captured_refunds_instead_of_voiding() {
    let gw = crate::fake_gateway::FakeGateway::start(0, 1).await;
    let url = gw.url.clone();
    let mut app = spawn_app_with(move |s| {
        s.payment.gateway = "http".into();
        s.payment.http.base_url = url;
    })
    .await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_ok").await;
    assert_eq!(status, 201, "{order}");
    let (saga_id, order_id) = (order["saga_id"].as_str().unwrap(), order["order_id"].as_str().unwrap());
    let (auth, total) = (order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap());
    // As create_order leaves a checkout when its answer was lost: the order exists, the step
    // waits for another attempt (before the point of no return).
    rewrite_saga(&mut app, saga_id, true, |saga| {
        saga.state = SagaState::Retrying;
        saga.cursor = 5;
        let w = &mut saga.steps[5].step;
        w.state = StepState::Running;
        w.last_error = Some("timeout".into());
        w.next_attempt_at = Some(cartwright::domain::time::Timestamp::now().plus_millis(600_000));
        saga.steps[6].step.state = StepState::Pending;
        saga.steps[6].step.attempts = 0;
    })
    .await;
    // Meanwhile the gateway captured the order.
    assert_eq!(app.capture("evt_captured", auth, total).await.0, 200);

    let (_, preview) = app.get(&format!("/admin/v1/sagas/{saga_id}/abort-preview"), Some(ADMIN)).await;
    let first = &preview["compensations"][0];
    assert_eq!(
        (first["step"].as_str(), first["compensation"].as_str()),
        (Some("create_order"), Some("cancel_created_order"))
    );
    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "drill" })).await;
    assert_eq!(status, 200, "{body}");
    app.saga_reaches(saga_id, "ABORTED").await;
    let (_, now) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!(
        (now["status"].as_str(), now["payment"]["status"].as_str(), now["refund"]["status"].as_str()),
        (Some("CANCELLED"), Some("REFUNDED"), Some("REFUNDED"))
    );
    let ledger = gw.ledger.lock().unwrap();
    assert_eq!(ledger.refunds[auth].len(), 1);
    assert!(!ledger.voids.contains_key(auth), "a captured payment is never voided");
}

#[tokio::test]
async fn aborting_a_running_saga_nobody_drives_picks_it_up_then_aborts_it() {
    let mut app = spawn_app().await;
    let (c, _, order) = app.pending_order(1).await;
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let current = cartwright::saga::definition::embedded()
        .unwrap()
        .into_iter()
        .filter(|d| d.name == "cancel_order")
        .max_by_key(|d| d.version)
        .unwrap();
    let saga = SagaInstance::new(
        &current,
        |step| current.policies()[step],
        json!({ "order_id": order_id, "customer_id": c.id, "reason": "changed my mind" }),
        None,
        None,
    );
    let saga_id = saga.saga_id.to_string();
    // RUNNING at its first step in the log, and nothing driving it.
    let mut saga = saga;
    saga.steps[0].step.state = StepState::Running;
    saga.steps[0].step.attempts = 1;
    app.write_store(move |_| log_write(WriteSet::new(), &saga, None)).await;

    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "not wanted" })).await;
    assert_eq!(status, 200, "{body}");
    let saga = app.saga_reaches(&saga_id, "ABORTED").await;
    assert_eq!(saga["steps"][0]["state"], "SUCCEEDED");
    assert_eq!(saga["steps"][1]["state"], "PENDING", "aborted before the point of no return");
    let (_, now) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!(now["status"], "PENDING");
}
