//! Operators at scale: the saga filters, bulk resume and abort (dry run, background action,
//! cap, progress, audit), the operator audit trail, webhook replay, and the CLI's bulk commands.

use serde_json::{json, Value};

use crate::helpers::*;

/// A cancel_order saga STUCK at refund_payment (tok_refund_flaky fails its first three
/// voids, the refund step has three attempts); returns (customer, order id, saga id).
async fn stuck_cancel(app: &TestApp) -> (Customer, String, String) {
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_refund_flaky").await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let (status, cancelled) = app.cancel_order(&c.token, &order_id).await;
    assert_eq!((status, cancelled["refund"]["status"].as_str()), (200, Some("PENDING_MANUAL")), "{cancelled}");
    let (_, list) = app.get(&format!("/admin/v1/sagas?type=cancel_order&order_id={order_id}"), Some(ADMIN)).await;
    let saga_id = list["sagas"][0]["saga_id"].as_str().expect("the order's cancel saga").to_string();
    app.saga_reaches(&saga_id, "STUCK").await;
    (c, order_id, saga_id)
}

fn ids(list: &Value) -> Vec<String> {
    list["sagas"].as_array().unwrap().iter().map(|s| s["saga_id"].as_str().unwrap().to_string()).collect()
}

async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = app.get(&format!("/admin/v1/sagas?{query}"), Some(ADMIN)).await;
    assert_eq!(status, 200, "{query}: {body}");
    ids(&body)
}

async fn bulk(app: &TestApp, action: &str, body: Value) -> (u16, Value) {
    app.post(&format!("/admin/v1/sagas/bulk-{action}"), Some(ADMIN), body).await
}

#[tokio::test]
async fn each_saga_filter_narrows_the_list() {
    let app = spawn_app().await;
    let (c, order_id, stuck) = stuck_cancel(&app).await;
    let place = app.saga(&stuck).await["order_id"].clone();
    assert_eq!(place, json!(order_id));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let other = app.verified_customer().await;
    assert_eq!(app.place_order(&other.token, "tok_visa").await.0, 422, "empty cart: a FAILED saga");
    let all = listed(&app, "").await;
    assert_eq!(all.len(), 3, "place, cancel, failed place");
    let failed = all[2].clone();

    assert_eq!(listed(&app, "state=STUCK").await, [stuck.as_str()]);
    assert_eq!(listed(&app, "type=cancel_order").await, [stuck.as_str()]);
    assert_eq!(listed(&app, "state=STUCK&step=refund_payment").await, [stuck.as_str()]);
    assert!(listed(&app, "step=release_inventory").await.is_empty());
    assert_eq!(listed(&app, "error=SIMULATED%20503%20on%20VOID").await, [stuck.as_str()]);
    assert_eq!(listed(&app, "error=empty_cart").await, [failed.as_str()]);
    assert_eq!(listed(&app, &format!("order_id={order_id}")).await, all[..2]);
    assert_eq!(listed(&app, &format!("customer_id={}", c.id)).await, all[..2]);
    assert_eq!(listed(&app, &format!("customer_id={}&type=place_order", other.id)).await, [failed.as_str()]);
    assert_eq!(listed(&app, &format!("created_after={between}")).await, [failed.as_str()]);
    assert_eq!(listed(&app, &format!("created_before={between}")).await, all[..2]);
    let newest = listed(&app, "order=newest").await;
    assert_eq!(newest, all.iter().rev().cloned().collect::<Vec<_>>());
    // Paging newest first goes on from the cursor.
    let (_, first) = app.get("/admin/v1/sagas?order=newest&limit=2", Some(ADMIN)).await;
    assert_eq!(ids(&first), newest[..2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(listed(&app, &format!("order=newest&limit=2&cursor={cursor}")).await, newest[2..]);

    let refused = [
        ("state=BOGUS", "state"),
        ("type=no_such_saga", "type"),
        ("step=no_such_step", "step"),
        ("type=ship_order&step=refund_payment", "step"),
        ("order_id=42", "order_id"),
        ("customer_id=nope", "customer_id"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-13-01T00:00:00Z", "created_before"),
        ("created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z", "created_before"),
        ("order=sideways", "order"),
        ("limit=501", "limit"),
    ];
    for (query, field) in refused {
        let (status, body) = app.get(&format!("/admin/v1/sagas?{query}"), Some(ADMIN)).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some(field)), "{query}: {body}");
    }
    let long = "x".repeat(201);
    assert_eq!(app.get(&format!("/admin/v1/sagas?error={long}"), Some(ADMIN)).await.0, 400);
}

#[tokio::test]
async fn a_dry_run_counts_and_samples_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, _, first) = stuck_cancel(&app).await;
    let (_, _, second) = stuck_cancel(&app).await;
    let (status, dry) = bulk(
        &app,
        "resume",
        json!({ "state": "STUCK", "type": "cancel_order", "step": "refund_payment", "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!((dry["matched"].as_u64(), dry["capped"].as_bool()), (Some(2), Some(false)), "{dry}");
    let sample: Vec<&str> = dry["sample"].as_array().unwrap().iter().map(|s| s["saga_id"].as_str().unwrap()).collect();
    assert_eq!(sample, [first.as_str(), second.as_str()]);
    assert_eq!(dry["sample"][0]["current_step"], "refund_payment");
    assert_eq!(app.saga(&first).await["state"], "STUCK", "a dry run acts on nothing");
    let (_, none) = app.get("/admin/v1/bulk-actions", Some(ADMIN)).await;
    assert!(none["bulk_actions"].as_array().unwrap().is_empty(), "{none}");
    // A filter nothing matches: zero.
    let (_, dry) = bulk(&app, "abort", json!({ "type": "ship_order", "dry_run": true })).await;
    assert_eq!(dry["matched"], 0);
}

#[tokio::test]
async fn bulk_resume_completes_stuck_sagas_and_audits_each_one() {
    let app = spawn_app().await;
    let (c1, o1, first) = stuck_cancel(&app).await;
    let (_, _, second) = stuck_cancel(&app).await;
    let resp = app
        .client
        .post(format!("{}/admin/v1/sagas/bulk-resume", app.url))
        .bearer_auth(ADMIN)
        .header("X-Operator", "alice")
        .json(&json!({ "state": "STUCK", "type": "cancel_order", "step": "refund_payment" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let started: Value = resp.json().await.unwrap();
    let id = started["bulk_action_id"].as_str().unwrap().to_string();
    assert_eq!((started["matched"].as_u64(), started["state"].as_str()), (Some(2), Some("running")));

    let action = app.bulk_finished(&id).await;
    assert_eq!(action["state"], "done", "{action}");
    assert_eq!(
        (action["done"].as_u64(), action["skipped"].as_u64(), action["failed"].as_u64()),
        (Some(2), Some(0), Some(0))
    );
    assert_eq!(action["actor"], "admin:alice");
    for saga in [&first, &second] {
        app.saga_reaches(saga, "COMPLETED").await;
        let rows = app.audit("saga", saga).await;
        let row = rows.iter().find(|r| r["action"] == "saga.resume").expect("a resume row");
        assert_eq!(row["actor"], "admin:alice");
        assert_eq!(row["after"]["bulk_action_id"], id.as_str());
        assert_eq!((row["before"]["state"].as_str(), row["after"]["result"].as_str()), (Some("STUCK"), Some("done")));
    }
    let (_, order) = app.get(&format!("/v1/orders/{o1}"), Some(&c1.token)).await;
    assert_eq!(order["refund"]["status"], "VOIDED");
    let (_, list) = app.get("/admin/v1/bulk-actions", Some(ADMIN)).await;
    assert_eq!(list["bulk_actions"][0]["bulk_action_id"], id.as_str());
    let (_, started_rows) =
        app.get(&format!("/admin/v1/audit?entity_type=bulk_action&entity_id={id}"), Some(ADMIN)).await;
    assert_eq!(started_rows["entries"][0]["action"], "bulk_action.resume");
    // Nothing is STUCK any more: a second run matches nothing.
    let (_, dry) = bulk(&app, "resume", json!({ "state": "STUCK", "dry_run": true })).await;
    assert_eq!(dry["matched"], 0);
}

#[tokio::test]
async fn bulk_abort_skips_sagas_past_the_point_of_no_return() {
    let app = spawn_app().await;
    let (_, _, stuck) = stuck_cancel(&app).await;
    let (_, p, retrying) = retrying_checkout_with(&app, 5, 60_000, 2).await;
    let (_, dry) = bulk(&app, "abort", json!({ "dry_run": true })).await;
    assert_eq!((dry["matched"].as_u64(), dry["past_point_of_no_return"].as_u64()), (Some(2), Some(1)), "{dry}");
    let (status, started) = bulk(&app, "abort", json!({ "reason": "gateway incident 42" })).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["matched"], 2);
    let action = app.bulk_finished(started["bulk_action_id"].as_str().unwrap()).await;
    assert_eq!((action["done"].as_u64(), action["skipped"].as_u64()), (Some(1), Some(1)), "{action}");
    assert_eq!(action["problems"][0]["saga_id"], stuck.as_str());
    assert!(action["problems"][0]["reason"].as_str().unwrap().contains("point of no return"), "{action}");
    let saga = app.saga_reaches(&retrying, "ABORTED").await;
    assert_eq!(saga["abort_reason"], "gateway incident 42");
    assert_eq!(app.stock_of(&p).await, (5, 0));
    assert_eq!(app.saga(&stuck).await["state"], "STUCK", "past the point of no return: untouched");
    let row = app.audit("saga", &stuck).await.into_iter().find(|r| r["action"] == "saga.abort").unwrap();
    assert_eq!(
        (row["after"]["result"].as_str(), row["after"]["error"]["code"].as_str()),
        (Some("skipped"), Some("ABORT_NOT_ALLOWED"))
    );
}

#[tokio::test]
async fn a_bulk_action_acts_on_at_most_the_cap() {
    let app = spawn_app_with(|s| s.operator.bulk_max = 1).await;
    let (_, _, first) = stuck_cancel(&app).await;
    let (_, _, second) = stuck_cancel(&app).await;
    let (_, dry) = bulk(&app, "resume", json!({ "dry_run": true })).await;
    assert_eq!((dry["matched"].as_u64(), dry["capped"].as_bool(), dry["cap"].as_u64()), (Some(1), Some(true), Some(1)));
    let (status, started) = bulk(&app, "resume", json!({ "state": "STUCK" })).await;
    assert_eq!((status, started["matched"].as_u64(), started["capped"].as_bool()), (202, Some(1), Some(true)));
    let action = app.bulk_finished(started["bulk_action_id"].as_str().unwrap()).await;
    assert_eq!(action["done"], 1);
    app.saga_reaches(&first, "COMPLETED").await;
    assert_eq!(app.saga(&second).await["state"], "STUCK", "beyond the cap: left alone");
}

#[tokio::test]
async fn bulk_requests_are_validated_and_admin_only() {
    let app = spawn_app().await;
    let refused = [
        ("resume", json!({ "sate": "STUCK" }), "sate"),
        ("resume", json!({ "state": "COMPLETED" }), "state"),
        ("resume", json!({ "state": "STUCK", "reason": "x" }), "reason"),
        ("abort", json!({ "state": "FAILED", "reason": "x" }), "state"),
        ("abort", json!({ "state": "STUCK" }), "reason"),
        ("abort", json!({ "reason": "  " }), "reason"),
        ("abort", json!({ "reason": "x", "reset_attempts": true }), "reset_attempts"),
        ("abort", json!({ "reason": "x", "type": "nope" }), "type"),
        ("resume", json!({ "dry_run": "yes" }), "dry_run"),
        ("resume", json!({ "created_after": "soon" }), "created_after"),
    ];
    for (action, body, field) in refused {
        let (status, answer) = bulk(&app, action, body.clone()).await;
        assert_eq!((status, answer["error"]["details"]["field"].as_str()), (400, Some(field)), "{body}: {answer}");
    }
    assert_eq!(app.post_raw("/admin/v1/sagas/bulk-resume", Some(ADMIN), b"{".to_vec()).await.0, 400);
    let (status, _) = app.post("/admin/v1/sagas/bulk-resume", Some(FULFILLMENT), json!({ "dry_run": true })).await;
    assert_eq!(status, 403);
    assert_eq!(app.get("/admin/v1/bulk-actions", Some(FULFILLMENT)).await.0, 403);
    let (status, body) = app.get(&format!("/admin/v1/bulk-actions/{}", uuid::Uuid::now_v7()), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("BULK_ACTION_NOT_FOUND")));
    assert_eq!(app.get("/admin/v1/bulk-actions/nope", Some(ADMIN)).await.0, 404);
    assert_eq!(app.get("/admin/v1/sagas/bulk-resume/x", Some(ADMIN)).await.0, 404);
    assert_eq!(app.delete("/admin/v1/bulk-actions", Some(ADMIN)).await.0, 405);
}

#[tokio::test]
async fn a_bulk_action_a_restart_cut_short_shows_as_interrupted() {
    use cartwright::domain::time::Timestamp;
    use cartwright::operations::bulk::BulkAction;
    use cartwright::store::Table;
    let mut app = spawn_app().await;
    let id = uuid::Uuid::now_v7();
    let running = BulkAction {
        id,
        action: "resume".into(),
        filter: "{}".into(),
        reason: None,
        reset_attempts: false,
        actor: "admin".into(),
        state: "running".into(),
        matched: 10,
        capped: false,
        done: 4,
        skipped: 0,
        failed: 0,
        problems: Vec::new(),
        error: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        finished_at: None,
    };
    app.write_store(move |_| {
        cartwright::store::WriteSet::new().put(Table::BulkActions, id.as_bytes().to_vec(), &running)
    })
    .await;
    let (_, action) = app.get(&format!("/admin/v1/bulk-actions/{id}"), Some(ADMIN)).await;
    assert_eq!((action["state"].as_str(), action["done"].as_u64()), (Some("interrupted"), Some(4)), "{action}");
    assert!(action["finished_at"].is_string());
}

#[tokio::test]
async fn operator_actions_are_audited_with_who_did_them() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, p, saga_id) = retrying_checkout_with(&app, 5, 60_000, 2).await;
    let as_bob = |rb: reqwest::RequestBuilder| rb.bearer_auth(ADMIN).header("X-Operator", "bob");
    // A shorter backoff first (taken at the next failure), then resume: it runs to the end.
    let resp = as_bob(app.client.put(format!("{}/admin/v1/retry-policies/place_order/authorize_payment", app.url)))
        .json(&json!({ "max_attempts": 7, "initial_backoff_ms": 10, "multiplier": 1.0, "max_backoff_ms": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = as_bob(app.client.post(format!("{}/admin/v1/sagas/{saga_id}/resume", app.url)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = as_bob(app.client.post(format!("{}/admin/v1/inventory/{p}/restock", app.url)))
        .json(&json!({ "quantity": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Resuming a saga that is not parked is refused, and recorded as refused.
    app.saga_reaches(&saga_id, "COMPLETED").await;
    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 409);

    let rows = app.audit("saga", &saga_id).await;
    let results: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["actor"].as_str().unwrap(), r["after"]["result"].as_str().unwrap())).collect();
    assert_eq!(results, [("admin:bob", "done"), ("admin", "skipped")]);
    let policy = app.audit("retry_policy", "place_order/authorize_payment").await;
    assert_eq!((policy.len(), policy[0]["actor"].as_str()), (2, Some("admin")), "the test's own change, then bob's");
    assert_eq!(
        (policy[1]["actor"].as_str(), policy[1]["after"]["max_attempts"].as_u64()),
        (Some("admin:bob"), Some(7))
    );
    let restock = app.audit("inventory", &p).await;
    assert!(restock.iter().any(|r| r["actor"] == "admin:bob"), "{restock:?}");
    let resp = as_bob(app.client.put(format!("{}/admin/v1/products/{p}/price", app.url)))
        .json(&json!({ "price": "11.00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let product = app.audit("product", &p).await;
    assert_eq!(product.last().unwrap()["actor"], "admin:bob", "{product:?}");

    // Filtered by actor (a role takes in its named operators) and by action.
    let (_, by_bob) = app.get("/admin/v1/audit?actor=admin:bob", Some(ADMIN)).await;
    assert_eq!(by_bob["entries"].as_array().unwrap().len(), 4, "{by_bob}");
    let (_, by_admin) = app.get("/admin/v1/audit?actor=admin&action=saga.resume", Some(ADMIN)).await;
    assert_eq!(by_admin["entries"].as_array().unwrap().len(), 2, "{by_admin}");
    let (_, resumes) = app
        .get(
            &format!("/admin/v1/audit?entity_type=saga&entity_id={saga_id}&action=saga.resume&actor=admin:bob"),
            Some(ADMIN),
        )
        .await;
    assert_eq!(resumes["entries"].as_array().unwrap().len(), 1);
    let (status, body) = app.get(&format!("/admin/v1/audit?actor={}", "a".repeat(201)), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("actor")));

    // X-Operator is checked: 1 to 100 printable characters.
    for bad in ["x".repeat(101), "   ".to_string()] {
        let resp = app
            .client
            .post(format!("{}/admin/v1/inventory/{p}/restock", app.url))
            .bearer_auth(ADMIN)
            .header("X-Operator", bad)
            .json(&json!({ "quantity": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], "X-Operator");
    }
    assert_eq!(app.stock_of(&p).await.0, 8, "refused restocks changed nothing");
}

#[tokio::test]
async fn fulfillment_names_itself_when_it_ships() {
    let app = spawn_app().await;
    let (_, _, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap();
    let (a, t) = (order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap());
    assert_eq!(app.capture("evt_ship_audit", a, t).await.0, 200);
    let resp = app
        .client
        .post(format!("{}/admin/v1/orders/{id}/ship", app.url))
        .bearer_auth(FULFILLMENT)
        .header("X-Operator", "carol")
        .json(&json!({ "tracking_number": "1ZAUDIT" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rows = app.audit("order", id).await;
    let ship = rows.iter().find(|r| r["action"] == "order.ship").expect("the ship request is audited");
    assert_eq!(
        (ship["actor"].as_str(), ship["after"]["tracking_number"].as_str()),
        (Some("fulfillment:carol"), Some("1ZAUDIT"))
    );
}

#[tokio::test]
async fn a_corrected_webhook_is_replayed_once_and_audited() {
    let app = spawn_app().await;
    let review = app.order_needing_review("evt_wrong_amount").await;
    let (c, id, a, total) =
        (&review.customer, review.order_id.as_str(), review.authorization_id.as_str(), review.total.as_str());

    let path = "/admin/v1/webhooks/payment/evt_wrong_amount/replay";
    assert_eq!(app.post(path, Some(FULFILLMENT), json!({})).await.0, 403);
    let (status, body) = app.post(path, Some(ADMIN), json!({ "payload": "not an object" })).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        app.post(path, Some(ADMIN), json!({ "payload": { "authorization_id": a, "amount": "x" } })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("data.amount")), "{body}");
    let (status, body) = app.post(path, Some(ADMIN), json!({ "payload": {}, "extra": 1 })).await;
    assert_eq!(status, 400, "{body}");
    // Replayed as it was: still the wrong amount, still for review.
    let (status, body) = app.post(path, Some(ADMIN), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("needs_review")), "{body}");

    let corrected = json!({ "payload": { "authorization_id": a, "amount": total } });
    let (status, body) = app.post(path, Some(ADMIN), corrected.clone()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("processed")), "{body}");
    assert_eq!(body["event"]["data"]["amount"], total);
    let (_, now) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
    assert_eq!(now["status"], "CONFIRMED");
    let (status, body) = app.post(path, Some(ADMIN), corrected).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("WEBHOOK_NOT_REPLAYABLE")), "{body}");
    assert_eq!(app.events("OrderConfirmed").await.len(), 1, "applied once");
    let (_, listed) = app.get("/admin/v1/webhooks?status=processed", Some(ADMIN)).await;
    assert_eq!(listed["webhooks"][0]["event_id"], "evt_wrong_amount");
    let (_, review) = app.get("/admin/v1/webhooks?status=needs_review", Some(ADMIN)).await;
    assert!(review["webhooks"].as_array().unwrap().is_empty(), "{review}");

    let rows = app.audit("webhook_event", "payment/evt_wrong_amount").await;
    let results: Vec<&str> = rows.iter().map(|r| r["after"]["status"].as_str().unwrap()).collect();
    assert_eq!(results, ["needs_review", "needs_review", "processed"], "{rows:?}");
    assert_eq!(rows[2]["before"]["data"]["amount"], "1.00");

    let (status, body) = app.post("/admin/v1/webhooks/payment/evt_unknown/replay", Some(ADMIN), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("WEBHOOK_EVENT_NOT_FOUND")));
    assert_eq!(app.post("/admin/v1/webhooks/bank/evt_wrong_amount/replay", Some(ADMIN), json!({})).await.0, 404);
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cartwright"))
        .args(args)
        .args(["--url", &app.url, "--token", ADMIN, "--operator", "dave"])
        .output()
        .expect("cli runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_bulk_actions_and_replays_webhooks() {
    let app = spawn_app().await;
    let (_, _, stuck) = stuck_cancel(&app).await;
    let args = ["sagas", "bulk-resume", "--state", "STUCK", "--type", "cancel_order", "--step", "refund_payment"];
    let out = tokio::task::block_in_place(|| cli(&app, &[&args[..], &["--dry-run"]].concat()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((dry["matched"].as_u64(), dry["sample"][0]["saga_id"].as_str()), (Some(1), Some(stuck.as_str())));
    assert_eq!(app.saga(&stuck).await["state"], "STUCK");

    let out = tokio::task::block_in_place(|| cli(&app, &args));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["bulk_action_id"].as_str().unwrap().to_string();
    app.bulk_finished(&id).await;
    let out = tokio::task::block_in_place(|| cli(&app, &["sagas", "bulk-status", &id]));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (status["state"].as_str(), status["done"].as_u64(), status["actor"].as_str()),
        (Some("done"), Some(1), Some("admin:dave"))
    );
    app.saga_reaches(&stuck, "COMPLETED").await;

    let out =
        tokio::task::block_in_place(|| cli(&app, &["sagas", "bulk-abort", "--state", "COMPLETED", "--reason", "r"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_REQUEST"));

    let (_, _, order) = app.pending_order(1).await;
    let a = order["payment"]["authorization_id"].as_str().unwrap();
    assert_eq!(app.capture("evt_cli_replay", a, "0.01").await.0, 202);
    let dir = store_dir();
    let file = dir.path().join("data.json");
    std::fs::write(&file, json!({ "authorization_id": a, "amount": order["total"] }).to_string()).unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(&app, &["webhooks", "replay", "payment", "evt_cli_replay", "--payload", file.to_str().unwrap()])
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["status"], "processed");
}
