//! Operators' view of the whole engine: the triage data, the saga metrics on /metrics, and
//! the admin's alerts about STUCK sagas and sagas RETRYING too long.

use serde_json::{json, Value};

use crate::helpers::*;

const PUBLIC_URL: &str = "https://shop.example";

/// An app whose cancellations park STUCK at their first failed refund, and whose alert
/// links point to [`PUBLIC_URL`].
async fn app_with_fast_alerts(adjust: impl FnOnce(&mut cartwright::config::Settings)) -> TestApp {
    let app = spawn_app_with(|s| {
        s.checkout.sync_wait_ms = 50;
        s.server.public_url = format!("{PUBLIC_URL}/");
        adjust(s);
    })
    .await;
    app.set_policy("cancel_order", "refund_payment", 1, 10).await;
    app
}

/// A placed order paid with the card whose voids fail, then cancelled: its cancel saga
/// parks STUCK at refund_payment. Returns the cancel saga's id.
async fn stuck_cancellation(app: &TestApp) -> String {
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    // The server waits only 50 ms for the checkout to settle: 201 when it did, 202 (then
    // the order once its saga COMPLETED) when a loaded machine took longer.
    let (status, order) = app.place_order(&c.token, "tok_refund_flaky").await;
    let order = app.placed_order(&c.token, status, order).await;
    let order_id = order["order_id"].as_str().unwrap_or_else(|| panic!("no order id: {order}"));
    let (status, cancelled) = app.cancel_order(&c.token, order_id).await;
    // 200 once it parked; 202 when a loaded machine made it take longer than the sync wait.
    assert!(status == 200 || status == 202, "{status}: {cancelled}");
    let (_, sagas) = app.get(&format!("/admin/v1/sagas?type=cancel_order&order_id={order_id}"), Some(ADMIN)).await;
    let saga_id = sagas["sagas"][0]["saga_id"].as_str().unwrap_or_else(|| panic!("no cancellation: {sagas}"));
    app.saga_reaches(saga_id, "STUCK").await;
    saga_id.to_string()
}

async fn triage(app: &TestApp) -> Value {
    let (status, body) = app.get("/admin/v1/triage", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn complete_triage(app: &TestApp) -> Value {
    app.eventually("the census is complete", || async { triage(app).await["complete"] == true }).await;
    triage(app).await
}

#[tokio::test]
async fn triage_counts_sagas_by_type_and_state_and_groups_the_stuck_and_retrying_by_cause() {
    let mut app = app_with_fast_alerts(|_| {}).await;
    let first = stuck_cancellation(&app).await;
    let second = stuck_cancellation(&app).await;
    let (_, _, retrying) = retrying_checkout_with(&app, 5, 60_000, 1).await;

    // The census moves once a transition's write is durable, a moment after the saga's
    // own view (read from the log) shows it: wait for it to catch up.
    let expected = json!({ "cancel_order": { "STUCK": 2 }, "place_order": { "COMPLETED": 2, "RETRYING": 1 } });
    app.eventually("the census counts every saga", || async { triage(&app).await["counts"] == expected }).await;
    let body = complete_triage(&app).await;
    let counts = &body["counts"];
    assert_eq!(counts["cancel_order"], json!({ "STUCK": 2 }), "{body}");
    assert_eq!(counts["place_order"], json!({ "COMPLETED": 2, "RETRYING": 1 }), "{body}");
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{body}");
    let stuck = &groups[0];
    assert_eq!(
        (stuck["state"].as_str(), stuck["type"].as_str(), stuck["step"].as_str(), stuck["count"].as_u64()),
        (Some("STUCK"), Some("cancel_order"), Some("refund_payment"), Some(2)),
        "{body}"
    );
    assert_eq!(stuck["oldest_saga_id"], first.as_str(), "the first to get stuck is the oldest");
    assert_ne!(stuck["oldest_saga_id"], second.as_str());
    let error = stuck["error"].as_str().unwrap();
    assert!(!error.is_empty() && !error.contains(&first), "one cause, without ids: {error}");
    assert!(stuck["oldest_age_secs"].as_f64().unwrap() >= 0.0);
    let retry = &groups[1];
    assert_eq!(
        (retry["state"].as_str(), retry["type"].as_str(), retry["step"].as_str(), retry["count"].as_u64()),
        (Some("RETRYING"), Some("place_order"), Some("authorize_payment"), Some(1)),
        "{body}"
    );
    assert_eq!(retry["oldest_saga_id"], retrying.as_str());
    assert!(retry["error"].as_str().unwrap().contains("simulated timeout"), "{retry}");

    // Rebuilt from the log on start: the same counts and groups, the same oldest (twice:
    // a recovery on start writes the log again, which is not a transition).
    app.restart().await;
    app.restart().await;
    let again = complete_triage(&app).await;
    assert_eq!(again["counts"], body["counts"]);
    let strip = |b: &Value| {
        let mut groups = b["groups"].clone();
        for g in groups.as_array_mut().unwrap() {
            g.as_object_mut().unwrap().remove("oldest_age_secs");
        }
        groups
    };
    assert_eq!(strip(&again), strip(&body));

    // A resolved one leaves its group and moves to its final state.
    let (status, _) =
        app.post(&format!("/admin/v1/sagas/{retrying}/abort"), Some(ADMIN), json!({ "reason": "drill" })).await;
    assert_eq!(status, 200);
    app.saga_reaches(&retrying, "ABORTED").await;
    let aborted = json!({ "COMPLETED": 2, "ABORTED": 1 });
    app.eventually("the census counts the abort", || async { triage(&app).await["counts"]["place_order"] == aborted })
        .await;
    let after = triage(&app).await;
    assert_eq!(after["counts"]["place_order"], json!({ "COMPLETED": 2, "ABORTED": 1 }), "{after}");
    assert_eq!(after["groups"].as_array().unwrap().len(), 1);

    assert_eq!(app.get("/admin/v1/triage", Some(FULFILLMENT)).await.0, 403);
    assert_eq!(app.get("/admin/v1/triage", None).await.0, 401);
    assert_eq!(app.post("/admin/v1/triage", Some(ADMIN), json!({})).await.0, 405);
}

/// The value of the series `name{labels}` (labels in any order) in Prometheus text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
        if series_name != name {
            return None;
        }
        let have: Vec<(&str, &str)> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('=').map(|(k, v)| (k, v.trim_matches('"'))))
            .collect();
        let mut want = labels.to_vec();
        let mut have_sorted = have.clone();
        want.sort();
        have_sorted.sort();
        (want == have_sorted).then(|| value.parse().unwrap())
    })
}

async fn metrics(app: &TestApp) -> String {
    let resp = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap()
}

/// Every saga log write of its own is a group-commit wait on the checkout's path. The local
/// steps (validate_customer, calculate_shipping) ride on the next write, the first write
/// waits for the first step that is not local, and create_order and clear_cart carry their
/// success in their own effect's write: three writes of its own for seven steps.
#[tokio::test]
async fn a_checkout_writes_its_saga_log_three_times_and_twice_with_its_effects() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!(status, 201, "{order}");
    let saga = app.saga(order["saga_id"].as_str().unwrap()).await;
    assert!(saga["steps"].as_array().unwrap().iter().all(|s| s["state"] == "SUCCEEDED"), "{saga}");

    let text = metrics(&app).await;
    let writes = |with| sample(&text, "cartwright_saga_log_writes_total", &[("type", "place_order"), ("with", with)]);
    assert_eq!((writes("own"), writes("effect")), (Some(3.0), Some(2.0)), "{text}");
}

#[tokio::test]
async fn saga_metrics_after_a_checkout_count_its_start_finish_steps_and_retries() {
    let app = spawn_app().await;
    app.set_policy("place_order", "authorize_payment", 5, 10).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    // tok_flaky fails twice (transient), then passes.
    let (status, order) = app.place_order(&c.token, "tok_flaky").await;
    assert_eq!(status, 201, "{order}");
    let saga_id = order["saga_id"].as_str().unwrap().to_string();
    app.saga_reaches(&saga_id, "COMPLETED").await;

    let text = metrics(&app).await;
    let t = ("type", "place_order");
    assert_eq!(sample(&text, "cartwright_sagas_started_total", &[t]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "cartwright_sagas_finished_total", &[t, ("outcome", "completed")]), Some(1.0));
    assert_eq!(sample(&text, "cartwright_saga_duration_seconds_count", &[t, ("outcome", "completed")]), Some(1.0));
    let attempts = |step, outcome| {
        sample(&text, "cartwright_saga_step_attempts_total", &[t, ("step", step), ("outcome", outcome)])
    };
    assert_eq!(attempts("authorize_payment", "transient_error"), Some(2.0));
    assert_eq!(attempts("authorize_payment", "succeeded"), Some(1.0));
    for step in ["validate_customer", "load_cart", "reserve_inventory", "create_order", "clear_cart"] {
        assert_eq!(attempts(step, "succeeded"), Some(1.0), "{step}");
    }
    let step_count = sample(&text, "cartwright_saga_step_duration_seconds_count", &[t, ("step", "authorize_payment")]);
    assert_eq!(step_count, Some(3.0));
    assert_eq!(sample(&text, "cartwright_sagas", &[t, ("state", "COMPLETED")]), Some(1.0));
    assert_eq!(sample(&text, "cartwright_sagas", &[t, ("state", "RUNNING")]), None, "none left running");
    assert!(sample(&text, "cartwright_commit_group_size_count", &[]).unwrap() > 0.0);
    assert!(sample(&text, "cartwright_commit_seconds_count", &[]).unwrap() > 0.0);
    assert!(sample(&text, "cartwright_outbox_backlog", &[]).is_some());
    assert!(sample(&text, "cartwright_outbox_oldest_due_age_seconds", &[]).is_some());
    for id in [&saga_id, order["order_id"].as_str().unwrap(), &c.id] {
        assert!(!text.contains(id), "no ids in labels: {id}");
    }

    // A saga parked RETRYING shows in the gauges, with its age.
    let (_, _, retrying) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let text = metrics(&app).await;
    assert_eq!(sample(&text, "cartwright_sagas", &[t, ("state", "RETRYING")]), Some(1.0));
    assert!(sample(&text, "cartwright_saga_oldest_age_seconds", &[t, ("state", "RETRYING")]).unwrap() >= 0.0);
    assert_eq!(sample(&text, "cartwright_sagas_started_total", &[t]), Some(2.0));
    assert!(!text.contains(&retrying));

    // The alert rules and the dashboard use only series the server serves.
    for file in ["deploy/alerts.yml", "deploy/grafana-dashboard.json"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let deploy = std::fs::read_to_string(&path).unwrap();
        for (at, _) in deploy.match_indices("cartwright_") {
            let name: String = deploy[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            let served = text.lines().any(|l| l.strip_prefix(name.as_str()).is_some_and(|r| r.starts_with(['{', ' '])));
            assert!(served, "{file} uses {name}, which /metrics does not serve");
        }
    }
}

fn alerts_for(all: &[Value], saga_id: &str) -> Vec<Value> {
    all.iter().filter(|n| n["payload"]["saga_id"] == saga_id).cloned().collect()
}

#[tokio::test]
async fn a_stuck_saga_alerts_the_admin_once_and_again_only_once_stuck_anew() {
    let mut app = app_with_fast_alerts(|_| {}).await;
    let saga_id = stuck_cancellation(&app).await;
    let alerts = alerts_for(&app.notifications("saga_stuck_alert").await, &saga_id);
    assert_eq!(alerts.len(), 1, "written with the transition to STUCK: {alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert["to"], "ops@cartwright.local");
    let payload = &alert["payload"];
    assert_eq!(
        (payload["type"].as_str(), payload["step"].as_str(), payload["state"].as_str()),
        (Some("cancel_order"), Some("refund_payment"), Some("STUCK"))
    );
    assert!(payload["error"].as_str().is_some_and(|e| !e.is_empty()), "{payload}");
    assert_eq!(payload["console_url"], format!("{PUBLIC_URL}/console/sagas/{saga_id}"));

    // Recovery on start reads it STUCK again: not a transition, no second alert. (Recovery
    // is done before the server listens.)
    app.restart().await;
    assert_eq!(alerts_for(&app.notifications("saga_stuck_alert").await, &saga_id).len(), 1);

    // Resumed, it fails again (the card's voids keep failing) and is STUCK anew: one more.
    let (status, body) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 200, "{body}");
    app.saga_reaches(&saga_id, "STUCK").await;
    let alerts = alerts_for(&app.notifications("saga_stuck_alert").await, &saga_id);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_ne!(alerts[0]["notification_id"], alerts[1]["notification_id"]);
    app.eventually("the alerts are delivered", || async {
        let all = app.notifications("saga_stuck_alert").await;
        alerts_for(&all, &saga_id).iter().all(|n| n["status"] == "SENT")
    })
    .await;
}

async fn retrying_alerts(app: &TestApp, saga_id: &str) -> usize {
    alerts_for(&app.notifications("saga_retrying_alert").await, saga_id).len()
}

#[tokio::test]
async fn a_saga_retrying_too_long_alerts_once_per_retry_episode_across_restarts() {
    let mut app = app_with_fast_alerts(|s| {
        s.alerts.retrying_after_secs = 0;
        s.alerts.check_interval_ms = 20;
    })
    .await;
    let (_, _, first) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    app.eventually("the first alert", || async { retrying_alerts(&app, &first).await == 1 }).await;
    let payload = &alerts_for(&app.notifications("saga_retrying_alert").await, &first)[0]["payload"];
    assert_eq!((payload["step"].as_str(), payload["state"].as_str()), (Some("authorize_payment"), Some("RETRYING")));
    assert!(payload["error"].as_str().unwrap().contains("simulated timeout"), "{payload}");
    assert_eq!(payload["console_url"], format!("{PUBLIC_URL}/console/sagas/{first}"));

    app.restart().await;
    // Checks run one after the other, each over the sagas RETRYING when it starts: once a
    // saga that started retrying after the second one's alert is alerted, the check that
    // alerted the second one has run to its end, over the first one too.
    let (_, _, second) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    app.eventually("the second alert", || async { retrying_alerts(&app, &second).await == 1 }).await;
    let (_, _, third) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    app.eventually("the third alert", || async { retrying_alerts(&app, &third).await == 1 }).await;
    assert_eq!(retrying_alerts(&app, &first).await, 1, "not again after a restart");
    assert_eq!(retrying_alerts(&app, &second).await, 1, "not again at the next check");
}

#[test]
fn the_dashboards_unfinished_panel_counts_every_unfinished_state() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panel = dashboard["panels"].as_array().unwrap().iter().find(|p| p["title"] == "Unfinished sagas by state");
    let expr = panel.expect("the panel")["targets"][0]["expr"].as_str().unwrap();
    let regex = expr.split("state=~\"").nth(1).and_then(|r| r.split('"').next()).expect("a state regex");
    let mut shown: Vec<&str> = regex.split('|').collect();
    shown.sort();
    let all = ["RUNNING", "RETRYING", "PAUSED", "COMPENSATING", "STUCK", "COMPLETED", "FAILED", "ABORTED"];
    let mut unfinished: Vec<&str> =
        all.into_iter().filter(|s| !cartwright::saga::SagaState::parse(s).unwrap().is_terminal()).collect();
    unfinished.sort();
    assert_eq!(shown, unfinished, "{expr}");
}
