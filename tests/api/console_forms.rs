//! Every state-changing console form, posted as a forged request (no CSRF token, or the
//! right token from another origin) and, for the admin's forms, by a fulfillment session
//! with its own valid token: each is refused with 403, changes nothing and writes no audit
//! row. The table is checked against the console's page table, so a new form joins it.

use serde_json::{json, Value};

use crate::console::Browser;
use crate::helpers::*;

/// One form: the route as `src/http/console/routes.rs` spells it (`*` for a path parameter),
/// the path posted to, its fields (without the CSRF token), and whether only the admin may
/// post it.
struct Form {
    route: &'static str,
    path: String,
    fields: Vec<(&'static str, String)>,
    admin_only: bool,
}

fn form(route: &'static str, path: String, fields: &[(&'static str, &str)]) -> Form {
    Form { route, path, fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(), admin_only: true }
}

/// The POST routes of the console's page table (but sign-in, which needs no session), with
/// each path parameter as `*`.
fn post_routes() -> Vec<String> {
    let table = include_str!("../../src/http/console/routes.rs");
    let mut routes: Vec<String> = table
        .lines()
        .filter_map(|line| line.trim().strip_prefix("(Method::POST, [")?.split(']').next())
        .map(|segments| {
            let parts = segments.split(',').map(|s| s.trim());
            let parts: Vec<&str> = parts.map(|s| if s.starts_with('"') { s.trim_matches('"') } else { "*" }).collect();
            format!("/{}", parts.join("/"))
        })
        .filter(|r| r != "/console/sign-in")
        .collect();
    routes.sort();
    routes
}

async fn all_audit_rows(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/admin/v1/audit?limit=1000", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_form_refuses_a_forged_post_and_the_fulfillment_session_and_changes_nothing() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    // Something for every form to act on: a RETRYING checkout, a paused key and one that is
    // not, a webhook event needing review.
    let (_, _, saga_id) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let (paused, free) = (app.product("10.00", 5).await, app.product("10.00", 5).await);
    let (status, body) =
        app.put(&format!("/admin/v1/quarantine/inventory/{paused}"), Some(ADMIN), json!({ "reason": "recount" })).await;
    assert_eq!(status, 200, "{body}");
    let review = app.order_needing_review("evt_console_forged").await;
    let corrected = json!({ "authorization_id": review.authorization_id, "amount": review.total }).to_string();
    let (_, policies_before) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    let audit_before = all_audit_rows(&app).await;

    let policy = [("max_attempts", "9"), ("initial_backoff_ms", "1"), ("multiplier", "1"), ("max_backoff_ms", "1")];
    let filter = [("state", "RETRYING"), ("type", "place_order")];
    let forms = [
        form("/console/sagas/*/resume", format!("/console/sagas/{saga_id}/resume"), &[]),
        form("/console/sagas/*/resume", format!("/console/sagas/{saga_id}/resume"), &[("reset_attempts", "true")]),
        form("/console/sagas/*/abort", format!("/console/sagas/{saga_id}/abort"), &[("reason", "forged")]),
        form("/console/bulk", "/console/bulk".into(), &[filter[0], filter[1], ("action", "resume")]),
        form("/console/bulk", "/console/bulk".into(), &[filter[0], filter[1], ("action", "abort"), ("reason", "x")]),
        form("/console/policies/*/*", "/console/policies/place_order/authorize_payment".into(), &policy),
        form(
            "/console/quarantine",
            "/console/quarantine".into(),
            &[("kind", "inventory"), ("id", free.as_str()), ("reason", "x")],
        ),
        form("/console/quarantine/*/*/release", format!("/console/quarantine/inventory/{paused}/release"), &[]),
        form(
            "/console/webhooks/*/*/replay",
            "/console/webhooks/payment/evt_console_forged/replay".into(),
            &[("payload", &corrected)],
        ),
        Form { admin_only: false, ..form("/console/sign-out", "/console/sign-out".into(), &[]) },
    ];
    let mut covered: Vec<String> = forms.iter().map(|f| f.route.to_string()).collect();
    covered.sort();
    covered.dedup();
    assert_eq!(covered, post_routes(), "every POST form of the console is in this table");

    let admin = Browser::signed_in(&app, ADMIN).await;
    let fulfillment = Browser::signed_in(&app, FULFILLMENT).await;
    for f in &forms {
        let fields: Vec<(&str, &str)> = f.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let no_token = admin.post_with(&f.path, &fields, &[]).await;
        assert_eq!(no_token.status, 403, "{} without a CSRF token: {}", f.path, no_token.body);
        let mut with_token = fields.clone();
        let csrf = admin.csrf.clone().unwrap();
        with_token.push(("csrf", &csrf));
        let elsewhere = admin.post_with(&f.path, &with_token, &[("origin", "https://evil.example")]).await;
        assert_eq!(elsewhere.status, 403, "{} from another origin: {}", f.path, elsewhere.body);
        if f.admin_only {
            let refused = fulfillment.post(&f.path, &fields).await;
            assert_eq!(refused.status, 403, "{} by fulfillment: {}", f.path, refused.body);
            assert!(refused.body.contains("this page is for the admin"), "{}", refused.body);
        }
    }

    // Nothing changed, and nobody was audited.
    let saga = app.saga(&saga_id).await;
    assert_eq!((saga["state"].as_str(), saga["steps"][4]["attempts"].as_u64()), (Some("RETRYING"), Some(1)));
    let (_, bulk) = app.get("/admin/v1/bulk-actions", Some(ADMIN)).await;
    assert_eq!(bulk["bulk_actions"], json!([]), "no bulk action started");
    let (_, policies) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    assert_eq!(policies, policies_before);
    let (_, quarantine) = app.get("/admin/v1/quarantine", Some(ADMIN)).await;
    let keys: Vec<_> = quarantine["keys"].as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [paused.as_str()], "the paused key is still paused, the other one is not");
    let (_, review) = app.get("/admin/v1/webhooks?status=needs_review", Some(ADMIN)).await;
    assert_eq!(review["webhooks"][0]["event_id"], "evt_console_forged", "{review}");
    assert_eq!(all_audit_rows(&app).await, audit_before, "no audit row written");
    for (who, b) in [("admin", &admin), ("fulfillment", &fulfillment)] {
        assert_eq!(b.get("/console/orders").await.status, 200, "the {who} is still signed in");
    }
}
