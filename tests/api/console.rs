//! The operators' console (/console): sign-in and sessions, every page, the saga actions,
//! CSRF and origin refusals, the fulfillment token's limits, escaping.

use reqwest::header::HeaderMap;
use serde_json::json;

use crate::helpers::*;

/// One browser: no redirects followed, its session cookie and CSRF token kept by hand.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn set_cookie(&self) -> &str {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { app, client, cookie: None, csrf: None }
    }

    pub async fn signed_in(app: &'a TestApp, token: &str) -> Browser<'a> {
        let mut b = Browser::new(app);
        let page = b.sign_in(token, "Ada").await;
        assert_eq!(page.status, 303, "{}", page.body);
        b
    }

    pub async fn sign_in(&mut self, token: &str, name: &str) -> Page {
        let page = self.post_with("/console/sign-in", &[("token", token), ("name", name)], &[]).await;
        if let Some(id) = page.set_cookie().strip_prefix("cartwright_console=").and_then(|c| c.split(';').next()) {
            self.cookie = Some(id.to_string());
            // The CSRF token is on every page of the session.
            let landing = self.get("/console/orders").await;
            self.csrf = (landing.status == 200).then(|| csrf_of(&landing.body));
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.app.url)), &[]).await
    }

    /// A form post as a browser sends it from our own page: the session's CSRF token, and
    /// our origin.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if let Some(csrf) = &self.csrf {
            all.push(("csrf", csrf));
        }
        self.post_with(path, &all, &[]).await
    }

    pub async fn post_with(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut rb = self
            .client
            .post(format!("{}{path}", self.app.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("origin")) {
            rb = rb.header("origin", &self.app.url);
        }
        self.send(rb, headers).await
    }

    pub async fn send(&self, mut rb: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Page {
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", format!("cartwright_console={c}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Page { status, headers, body }
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a page with a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn signing_in_exchanges_the_token_for_a_strict_cookie_and_signing_out_ends_the_session() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let page = b.get("/console/sagas?state=STUCK").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/console/sign-in?next=%2Fconsole%2Fsagas%3Fstate%3DSTUCK");
    let form = b.get(page.location()).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"name="next" value="/console/sagas?state=STUCK""#), "{}", form.body);

    let wrong = b.sign_in("not-the-token", "").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("That token is not a staff token."));
    assert!(wrong.set_cookie().is_empty());

    let page = b
        .post_with(
            "/console/sign-in",
            &[("token", ADMIN), ("name", "Ada"), ("next", "/console/sagas?state=STUCK")],
            &[],
        )
        .await;
    assert_eq!((page.status, page.location()), (303, "/console/sagas?state=STUCK"));
    let cookie = page.set_cookie().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(cookie.contains(flag), "{cookie} has {flag}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    b.sign_in(ADMIN, "Ada").await;
    let sagas = b.get("/console/sagas").await;
    assert_eq!(sagas.status, 200);
    assert!(sagas.body.contains("Signed in as <strong>admin</strong> (Ada)"), "{}", sagas.body);
    assert!(!sagas.body.contains(ADMIN) && !sagas.body.contains(b.cookie.as_deref().unwrap()), "no secret in a page");
    assert_eq!(b.get("/console").await.location(), "/console/triage");
    // An open redirect through `next` is refused.
    let page = b.post_with("/console/sign-in", &[("token", ADMIN), ("next", "//evil.example/")], &[]).await;
    assert_eq!(page.location(), "/console/triage");

    let out = b.post("/console/sign-out", &[]).await;
    assert_eq!((out.status, out.location()), (303, "/console/sign-in"));
    assert!(out.set_cookie().contains("Max-Age=0"));
    let after = b.get("/console/sagas").await;
    assert_eq!(after.status, 303, "the old cookie is dead on the server");
}

#[tokio::test]
async fn an_operator_stays_signed_in_across_a_restart_and_a_signed_out_cookie_stays_dead() {
    let mut app = spawn_app().await;
    let (kept, csrf, ended) = {
        let b = Browser::signed_in(&app, ADMIN).await;
        let mut other = Browser::new(&app);
        assert_eq!(other.sign_in(ADMIN, "").await.status, 303);
        let ended = other.cookie.clone().unwrap();
        assert_eq!(other.post("/console/sign-out", &[]).await.status, 303);
        (b.cookie.clone().unwrap(), b.csrf.clone().unwrap(), ended)
    };
    app.restart().await;

    let mut b = Browser::new(&app);
    b.cookie = Some(kept);
    b.csrf = Some(csrf);
    let page = b.get("/console/sagas").await;
    assert_eq!(page.status, 200, "still signed in: {}", page.body);
    assert!(page.body.contains("Ada"), "as who signed in");
    // Its CSRF token came through too: a form of the old session still works.
    let fields = [("max_attempts", "3"), ("initial_backoff_ms", "40"), ("multiplier", "2"), ("max_backoff_ms", "400")];
    let saved = b.post("/console/policies/cancel_order/refund_payment", &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let rows = app.audit("retry_policy", "cancel_order/refund_payment").await;
    assert_eq!(rows[0]["actor"], "admin:Ada", "{rows:?}");

    b.cookie = Some(ended);
    let page = b.get("/console/sagas").await;
    assert_eq!((page.status, page.location().starts_with("/console/sign-in")), (303, true), "signed out for good");
}

#[tokio::test]
async fn a_session_expires_on_the_server_whatever_the_browser_keeps() {
    let app = spawn_app_with(|s| s.console.session_ttl_secs = 0).await;
    let mut b = Browser::new(&app);
    let page = b.sign_in(ADMIN, "").await;
    assert_eq!(page.status, 303);
    assert!(b.cookie.is_some());
    let page = b.get("/console/sagas").await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with("/console/sign-in"));
}

#[tokio::test]
async fn the_cookie_is_secure_when_configured_or_when_a_trusted_proxy_says_https() {
    let app = spawn_app_with(|s| s.console.secure_cookies = true).await;
    let page = Browser::new(&app)
        .post_with("/console/sign-in", &[("token", ADMIN)], &[("origin", &app.url.replace("http:", "https:"))])
        .await;
    assert!(page.set_cookie().contains("; Secure"), "{}", page.set_cookie());

    let app = spawn_app_with(|s| s.console.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let https = app.url.replace("http:", "https:");
    let b = Browser::new(&app);
    let page = b
        .post_with("/console/sign-in", &[("token", ADMIN)], &[("x-forwarded-proto", "https"), ("origin", &https)])
        .await;
    assert!(page.set_cookie().contains("; Secure"), "{}", page.set_cookie());
    let page = b.post_with("/console/sign-in", &[("token", ADMIN)], &[]).await;
    assert!(!page.set_cookie().contains("Secure"), "no proxy header, plain HTTP");

    let app = spawn_app().await;
    let page = Browser::new(&app)
        .post_with("/console/sign-in", &[("token", ADMIN)], &[("x-forwarded-proto", "https"), ("origin", &https)])
        .await;
    assert_eq!(page.status, 403, "an untrusted peer's X-Forwarded-Proto is not believed");
}

#[tokio::test]
async fn sign_in_failures_are_throttled_per_address() {
    let app = spawn_app_with(|s| s.console.sign_in_per_ip_per_minute = 2).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("wrong", "").await.status, 401);
    assert_eq!(b.sign_in("wrong", "").await.status, 401);
    let third = b.sign_in(ADMIN, "").await;
    assert_eq!(third.status, 429);
    assert!(third.headers.contains_key("retry-after"));
    assert!(third.set_cookie().is_empty());
}

#[tokio::test]
async fn every_page_renders_for_the_admin() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (c, p, saga_id) = retrying_checkout_with(&app, 5, 60_000, 2).await;
    let b = Browser::signed_in(&app, ADMIN).await;

    let list = b.get("/console/sagas?state=RETRYING&type=place_order").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&saga_id) && list.body.contains("authorize_payment"), "{}", list.body);
    assert!(list.body.contains(r#"data-refresh="10""#));
    assert!(!b.get("/console/sagas?type=cancel_order").await.body.contains(&saga_id));
    assert_eq!(b.get("/console/sagas?state=BOGUS").await.status, 400);

    let detail = b.get(&format!("/console/sagas/{saga_id}")).await;
    assert_eq!(detail.status, 200);
    for text in [
        "authorize_payment",
        "simulated timeout",
        "1 of 5 allowed by its retry policy",
        "Resume now",
        "Resume with attempts reset",
        "Aborting runs these compensations, in this order:",
        "release_inventory",
        "tok_flaky",
        "(not created yet)",
    ] {
        assert!(detail.body.contains(text), "the saga page shows {text}: {}", detail.body);
    }
    assert_eq!(b.get(&format!("/console/sagas/{}", uuid::Uuid::now_v7())).await.status, 404);

    let policies = b.get("/console/policies").await;
    assert!(policies.status == 200 && policies.body.contains("refund_payment"), "{}", policies.body);
    assert!(policies.body.contains("compensation of <code>reserve_inventory</code>"), "{}", policies.body);
    assert!(policies.body.contains("the saga compensates (its point of no return)"), "{}", policies.body);
    assert!(policies.body.contains("step 7 of 7; when its attempts run out, the saga parks STUCK"));
    let webhooks = b.get("/console/webhooks?source=carrier").await;
    assert!(webhooks.status == 200 && webhooks.body.contains("No webhook event matches"), "{}", webhooks.body);
    let (status, _) = app.capture("evt_console_<b>", "auth_nobody_knows", "1.00").await;
    assert!(status < 500);
    let webhooks = b.get("/console/webhooks?source=payment").await;
    assert!(webhooks.body.contains("evt_console_&lt;b&gt;"), "{}", webhooks.body);
    let stock = b.get(&format!("/console/stock/{p}")).await;
    assert!(stock.status == 200 && stock.body.contains("Dune"), "{}", stock.body);
    assert!(stock.body.contains("<td>5</td><td>2</td><td><strong>3</strong></td>"), "on hand, reserved, available");
    assert!(stock.body.contains(&saga_id), "the checkout's hold is listed by its owner");
    assert_eq!(b.get(&format!("/console/stock?product_id={p}")).await.location(), format!("/console/stock/{p}"));
    let audit = b.get(&format!("/console/audit?entity_type=product&entity_id={p}")).await;
    assert!(audit.status == 200 && audit.body.contains("product.created"), "{}", audit.body);
    let everything = b.get("/console/audit").await;
    assert!(everything.status == 200 && everything.body.contains("category.created"), "{}", everything.body);
    assert!(b.get("/console/stock").await.body.contains(r#"name="product_id""#));
    let all_orders = b.get("/console/orders?status=PENDING").await;
    assert!(all_orders.status == 200 && all_orders.body.contains("No orders."), "{}", all_orders.body);
    let orders = b.get(&format!("/console/orders?q={}", c.email)).await;
    assert_eq!(orders.status, 200);
    let missing = b.get(&format!("/console/orders/{}", uuid::Uuid::now_v7())).await;
    assert!(missing.status == 404 && missing.body.contains("<!DOCTYPE html>"), "an HTML error page");
    let unknown = b.get("/console/nothing-here").await;
    assert!(unknown.status == 404 && unknown.body.contains("no such console page"));
    let css = b.get("/console/style.css").await;
    assert!(css.status == 200 && css.headers["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(detail.headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
}

#[tokio::test]
async fn every_page_names_an_icon_the_console_serves_so_browsers_log_no_404() {
    let app = spawn_app().await;
    let b = Browser::signed_in(&app, ADMIN).await;
    for path in ["/console/sign-in", "/console/sagas"] {
        let page = b.get(path).await;
        assert!(page.body.contains(r#"<link rel="icon" href="/console/favicon.svg""#), "{path}: {}", page.body);
    }
    let icon = b.get("/console/favicon.svg").await;
    assert_eq!((icon.status, icon.headers["content-type"].to_str().unwrap()), (200, "image/svg+xml"));
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
}

#[tokio::test]
async fn resume_and_abort_forms_move_the_saga_and_are_audited_with_the_operator() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, _, saga_id) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let b = Browser::signed_in(&app, ADMIN).await;

    let page = b.post(&format!("/console/sagas/{saga_id}/resume"), &[]).await;
    assert_eq!((page.status, page.location()), (303, format!("/console/sagas/{saga_id}?done=resumed").as_str()));
    // tok_flaky fails twice: the resumed attempt fails, the next resume completes it.
    let saga = app.saga_reaches(&saga_id, "RETRYING").await;
    assert_eq!(saga["steps"][4]["attempts"], 2);
    let page = b.post(&format!("/console/sagas/{saga_id}/resume"), &[("reset_attempts", "true")]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["steps"][4]["attempts"], 1, "attempts were reset before the third try");
    let timeline = b.get(&format!("/console/sagas/{saga_id}")).await;
    assert_eq!(timeline.body.matches("attempt 1 failed").count(), 1, "{}", timeline.body);
    assert_eq!(timeline.body.matches("attempt 2 failed").count(), 1, "every failed attempt is on the timeline");
    let shown = b.get(&format!("/console/sagas/{saga_id}?done=resumed_reset")).await;
    assert!(shown.body.contains("Resumed with its attempts reset"));
    assert!(!shown.body.contains("Resume now"), "a completed saga has no resume button");

    let rows = app.audit("saga", &saga_id).await;
    let actions: Vec<_> = rows.iter().map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap())).collect();
    assert_eq!(actions, [("saga.resume", "admin:Ada"), ("saga.resume", "admin:Ada")]);
    assert_eq!(rows[0]["before"]["state"], "RETRYING");
    assert_eq!(
        (&rows[0]["after"]["reset_attempts"], &rows[1]["after"]["reset_attempts"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(rows[1]["after"]["result"], "done");

    // The order it placed: its page links the saga and shows the audit trail.
    let order_id = saga["order_id"].as_str().unwrap();
    let order = b.get(&format!("/console/orders/{order_id}")).await;
    assert_eq!(order.status, 200);
    assert!(order.body.contains("Dune") && order.body.contains(&format!("/console/sagas/{saga_id}")), "{}", order.body);
    assert!(!b.get(&format!("/console/sagas/{saga_id}")).await.body.contains("not created yet"));
    assert_eq!(b.get(&format!("/console/orders?q={order_id}")).await.location(), format!("/console/orders/{order_id}"));

    let (_, p, saga_id) = retrying_checkout_with(&app, 5, 60_000, 2).await;
    let empty = b.post(&format!("/console/sagas/{saga_id}/abort"), &[("reason", "  ")]).await;
    assert_eq!(empty.status, 400);
    let page = b.post(&format!("/console/sagas/{saga_id}/abort"), &[("reason", "fraud <check>")]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let saga = app.saga_reaches(&saga_id, "ABORTED").await;
    assert_eq!(saga["abort_reason"], "fraud <check>");
    assert_eq!(app.stock_of(&p).await, (5, 0));
    let rows = app.audit("saga", &saga_id).await;
    assert_eq!(
        (rows[0]["action"].as_str(), rows[0]["after"]["reason"].as_str()),
        (Some("saga.abort"), Some("fraud <check>"))
    );
    let shown = b.get(&format!("/console/sagas/{saga_id}")).await;
    assert!(shown.body.contains("fraud &lt;check&gt;"), "{}", shown.body);
    let again = b.post(&format!("/console/sagas/{saga_id}/abort"), &[("reason", "again")]).await;
    assert_eq!(again.status, 409, "{}", again.body);
}

#[tokio::test]
async fn a_saga_past_its_point_of_no_return_has_no_abort_button_and_says_what_to_do() {
    let app = spawn_app().await;
    // tok_refund_flaky: the cancellation's one refund attempt fails, after the order was
    // cancelled (its point of no return): the saga parks STUCK.
    app.set_policy("cancel_order", "refund_payment", 1, 10).await;
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_refund_flaky").await;
    assert_eq!(status, 201, "{order}");
    app.cancel_order(&c.token, order["order_id"].as_str().unwrap()).await;
    let (_, stuck) = app.get("/admin/v1/sagas?state=STUCK&type=cancel_order", Some(ADMIN)).await;
    let saga_id = stuck["sagas"][0]["saga_id"].as_str().expect("a STUCK cancellation").to_string();

    let b = Browser::signed_in(&app, ADMIN).await;
    let list = b.get("/console/sagas?state=STUCK").await;
    assert!(list.body.contains(&saga_id));
    let page = b.get(&format!("/console/sagas/{saga_id}")).await;
    assert_eq!(page.status, 200);
    for text in ["It needs an operator", "refund_payment", "1 of 1 allowed by its retry policy", "Resume now"] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    assert!(
        page.body.contains("It cannot be aborted:") && page.body.contains("finish by hand a refund"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(r#"/abort""#), "no abort form past the point of no return");
    let refused = b.post(&format!("/console/sagas/{saga_id}/abort"), &[("reason", "try anyway")]).await;
    assert_eq!(refused.status, 409, "the engine refuses it too");
    assert_eq!(app.saga(&saga_id).await["state"], "STUCK");
}

#[tokio::test]
async fn a_form_without_the_csrf_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, _, saga_id) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let b = Browser::signed_in(&app, ADMIN).await;
    let path = format!("/console/sagas/{saga_id}/abort");

    let no_token = b.post_with(&path, &[("reason", "x")], &[]).await;
    assert_eq!(no_token.status, 403);
    let csrf = b.csrf.clone().unwrap();
    let fields = [("reason", "x"), ("csrf", csrf.as_str())];
    let wrong_token = b.post_with(&path, &[("reason", "x"), ("csrf", "csrf_guess")], &[]).await;
    assert_eq!(wrong_token.status, 403);
    let other_origin = b.post_with(&path, &fields, &[("origin", "http://evil.example")]).await;
    assert_eq!(other_origin.status, 403);
    let null_origin = b.post_with(&path, &fields, &[("origin", "null")]).await;
    assert_eq!(null_origin.status, 403);
    let other_policy = b
        .post_with(
            "/console/policies/place_order/load_cart",
            &[
                ("csrf", &csrf),
                ("max_attempts", "9"),
                ("initial_backoff_ms", "1"),
                ("multiplier", "1"),
                ("max_backoff_ms", "1"),
            ],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(other_policy.status, 403);

    let saga = app.saga(&saga_id).await;
    assert_eq!((saga["state"].as_str(), saga["steps"][4]["attempts"].as_u64()), (Some("RETRYING"), Some(1)));
    assert!(app.audit("saga", &saga_id).await.is_empty());
    let (_, policies) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    assert_ne!(policies["retry_policies"]["place_order"]["load_cart"]["max_attempts"], 9);

    // A sign-in posted from another site is refused too (login CSRF).
    let mut stranger = Browser::new(&app);
    let page = stranger.post_with("/console/sign-in", &[("token", ADMIN)], &[("origin", "http://evil.example")]).await;
    assert_eq!(page.status, 403);
    assert!(stranger.sign_in(ADMIN, "").await.status == 303);
}

#[tokio::test]
async fn retry_policies_are_edited_from_their_page_and_audited() {
    let app = spawn_app().await;
    let b = Browser::signed_in(&app, ADMIN).await;
    let fields =
        [("max_attempts", "7"), ("initial_backoff_ms", "250"), ("multiplier", "1.5"), ("max_backoff_ms", "1000")];
    let page = b.post("/console/policies/cancel_order/refund_payment", &fields).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let (_, policies) = app.get("/admin/v1/retry-policies", Some(ADMIN)).await;
    assert_eq!(
        policies["retry_policies"]["cancel_order"]["refund_payment"],
        json!({ "max_attempts": 7, "initial_backoff_ms": 250, "multiplier": 1.5, "max_backoff_ms": 1000 })
    );
    let rows = app.audit("retry_policy", "cancel_order/refund_payment").await;
    assert_eq!(
        (rows[0]["action"].as_str(), rows[0]["actor"].as_str()),
        (Some("retry_policy.changed"), Some("admin:Ada"))
    );
    assert_eq!(rows[0]["after"]["max_attempts"], 7);

    let bad = b.post("/console/policies/cancel_order/refund_payment", &[("max_attempts", "lots")]).await;
    assert_eq!(bad.status, 400);
    let invalid = [("max_attempts", "0"), ("initial_backoff_ms", "1"), ("multiplier", "1"), ("max_backoff_ms", "1")];
    assert_eq!(b.post("/console/policies/cancel_order/refund_payment", &invalid).await.status, 422);
    assert_eq!(b.post("/console/policies/no_such_saga/x", &fields).await.status, 404);
}

#[tokio::test]
async fn the_fulfillment_token_sees_orders_and_nothing_else() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, _, saga_id) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let b = Browser::signed_in(&app, FULFILLMENT).await;
    assert_eq!(b.get("/console").await.location(), "/console/orders");
    let orders = b.get("/console/orders").await;
    assert_eq!(orders.status, 200);
    assert!(!orders.body.contains("/console/sagas"), "no saga link in the menu");
    for path in [
        "/console/sagas".to_string(),
        format!("/console/sagas/{saga_id}"),
        "/console/policies".into(),
        "/console/webhooks".into(),
        "/console/audit".into(),
        "/console/stock".into(),
    ] {
        assert_eq!(b.get(&path).await.status, 403, "{path}");
    }
    assert_eq!(b.post(&format!("/console/sagas/{saga_id}/resume"), &[]).await.status, 403);
    assert_eq!(app.saga(&saga_id).await["steps"][4]["attempts"], 1);

    let admin = Browser::signed_in(&app, ADMIN).await;
    admin.post(&format!("/console/sagas/{saga_id}/resume"), &[]).await;
    app.saga_reaches(&saga_id, "RETRYING").await;
    admin.post(&format!("/console/sagas/{saga_id}/resume"), &[]).await;
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    let order = b.get(&format!("/console/orders/{}", saga["order_id"].as_str().unwrap())).await;
    assert!(order.status == 200 && order.body.contains("Dune"), "{}", order.body);
    assert!(!order.body.contains("Audit trail") && !order.body.contains(&saga_id), "sagas and audit are the admin's");
}

#[tokio::test]
async fn data_is_escaped_in_pages() {
    let app = spawn_app().await;
    let category_id = app.category().await;
    let (status, body) = app
        .create_product(json!({
            "name": "<script>alert(1)</script>", "description": "x", "price": "5.00",
            "category_id": category_id, "initial_stock": 3
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    let p = body["product_id"].as_str().unwrap();
    let b = Browser::signed_in(&app, ADMIN).await;
    let stock = b.get(&format!("/console/stock/{p}")).await;
    assert_eq!(stock.status, 200);
    assert!(stock.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", stock.body);
    assert!(!stock.body.contains("<script>alert"), "{}", stock.body);
    let audit = b.get("/console/audit?entity_type=product").await;
    assert!(audit.body.contains("&lt;script&gt;") && !audit.body.contains("<script>alert"));
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let app = spawn_app_with(|s| s.console.enabled = false).await;
    let page = Browser::new(&app).get("/console/sign-in").await;
    assert_eq!(page.status, 404);
}

#[tokio::test]
async fn a_paused_saga_says_which_key_holds_it() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let (status, body) =
        app.put(&format!("/admin/v1/quarantine/inventory/{p}"), Some(ADMIN), json!({ "reason": "recount" })).await;
    assert_eq!(status, 200, "{body}");
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!((status, body["state"].as_str()), (202, Some("PAUSED")), "{body}");
    let saga_id = body["saga_id"].as_str().unwrap();

    let b = Browser::signed_in(&app, ADMIN).await;
    assert!(b.get("/console/sagas?state=PAUSED").await.body.contains(saga_id));
    let page = b.get(&format!("/console/sagas/{saga_id}")).await;
    for text in ["touches a quarantined key", "Paused on", &p, "recount", "Resume now"] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
}

#[tokio::test]
async fn the_binary_serves_the_console_by_default_and_takes_its_proxies_from_the_environment() {
    let dir = store_dir();
    let server =
        ServerProcess::start_with(dir.path(), &[("CARTWRIGHT__CONSOLE__TRUSTED_PROXIES", "10.9.9.9, 127.0.0.1")]);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(format!("{}/console/sign-in", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Staff token"));
    let https = server.url.replace("http:", "https:");
    let signed_in = client
        .post(format!("{}/console/sign-in", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &https)
        .header("x-forwarded-proto", "https")
        .body(format!("token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let status = server.terminate();
    assert!(status.success(), "{status}");
}
