//! The console's operations pages: triage (the landing page), bulk actions, quarantine and
//! webhook replay. Each action's effect is checked through the JSON admin API, with the
//! audit row naming the operator; CSRF refusals change nothing; fulfillment is refused.

use serde_json::{json, Value};

use crate::console::Browser;
use crate::helpers::*;

/// A cancel_order saga STUCK at refund_payment (tok_refund_flaky fails its first three
/// voids; the refund step has three attempts, so a resume completes it). Returns its id.
async fn stuck_cancel(app: &TestApp) -> String {
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_refund_flaky").await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    app.cancel_order(&c.token, &order_id).await;
    let (_, list) = app.get(&format!("/admin/v1/sagas?type=cancel_order&order_id={order_id}"), Some(ADMIN)).await;
    let saga_id = list["sagas"][0]["saga_id"].as_str().expect("the order's cancel saga").to_string();
    app.saga_reaches(&saga_id, "STUCK").await;
    saga_id
}

/// The `href` of the first link whose text is `text`, unescaped.
fn href_of(html: &str, text: &str) -> String {
    let end = html.find(&format!(">{text}</a>")).unwrap_or_else(|| panic!("a link {text}: {html}"));
    let start = html[..end].rfind("href=\"").expect("an href") + "href=\"".len();
    html[start..end].split('"').next().unwrap().replace("&amp;", "&")
}

async fn bulk_actions(app: &TestApp) -> Vec<Value> {
    let (_, list) = app.get("/admin/v1/bulk-actions", Some(ADMIN)).await;
    list["bulk_actions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn triage_is_the_landing_page_and_links_each_group_to_its_filtered_list() {
    let app = spawn_app().await;
    let first = stuck_cancel(&app).await;
    let second = stuck_cancel(&app).await;
    let b = Browser::signed_in(&app, ADMIN).await;
    assert_eq!(b.get("/console").await.location(), "/console/triage");

    let page = b.get("/console/triage").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"data-testid="triage-groups""#), "{}", page.body);
    assert!(page.body.contains(r#"data-refresh="10""#), "it refreshes itself");
    let nav = page.body.find(r#"href="/console/triage""#).unwrap();
    assert!(nav < page.body.find(r#"href="/console/sagas""#).unwrap(), "Triage is the first menu entry");
    let groups = &page.body[page.body.find("triage-groups").unwrap()..];
    for text in ["STUCK", "cancel_order", "refund_payment", "simulated 503", "<strong>2</strong>", " s</a>"] {
        assert!(groups.contains(text), "{text}: {groups}");
    }
    let link = href_of(groups, "List them");
    assert!(link.starts_with("/console/sagas?state=STUCK&type=cancel_order&step=refund_payment&error="), "{link}");
    let list = b.get(&link).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&first) && list.body.contains(&second), "{}", list.body);
    // The counts table: cancel_order has 2 STUCK, linked to the list.
    assert!(page.body.contains(r#"href="/console/sagas?state=STUCK&amp;type=cancel_order">2</a>"#), "{}", page.body);

    let f = Browser::signed_in(&app, FULFILLMENT).await;
    assert_eq!(f.get("/console/triage").await.status, 403);
}

#[tokio::test]
async fn a_bulk_resume_dry_runs_then_runs_in_the_background_audited_with_the_operator() {
    let app = spawn_app().await;
    let saga_id = stuck_cancel(&app).await;
    let b = Browser::signed_in(&app, ADMIN).await;

    // The saga list offers a bulk action on its filter.
    let list = b.get("/console/sagas?state=STUCK&type=cancel_order&order=newest").await;
    let link = href_of(&list.body, "Bulk action on this filter");
    assert!(link.starts_with("/console/bulk?") && link.contains("state=STUCK") && !link.contains("order="), "{link}");

    let abort = b.get("/console/bulk?state=STUCK&type=cancel_order&action=abort&reason=x&dry_run=1").await;
    assert_eq!(abort.status, 200, "{}", abort.body);
    assert!(abort.body.contains("<strong>1</strong> of them would be skipped"), "{}", abort.body);
    assert!(abort.body.contains("Abort these 1 sagas"));

    let dry = b.get("/console/bulk?state=STUCK&type=cancel_order&action=resume&dry_run=1").await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(dry.body.contains("<strong>1</strong> saga(s) match"), "{}", dry.body);
    assert!(dry.body.contains(&format!("/console/sagas/{saga_id}")), "the sample links the saga");
    assert!(dry.body.contains("Resume these 1 sagas") && dry.body.contains("data-confirm"), "{}", dry.body);
    assert!(bulk_actions(&app).await.is_empty(), "a dry run starts nothing");
    assert_eq!(app.saga(&saga_id).await["state"], "STUCK");

    // Refused without the CSRF token: nothing starts.
    let fields = [("state", "STUCK"), ("type", "cancel_order"), ("action", "resume")];
    let forged = b.post_with("/console/bulk", &fields, &[]).await;
    assert_eq!(forged.status, 403);
    assert!(bulk_actions(&app).await.is_empty());
    let f = Browser::signed_in(&app, FULFILLMENT).await;
    assert_eq!(f.get("/console/bulk").await.status, 403);
    assert_eq!(f.post("/console/bulk", &fields).await.status, 403);
    assert!(bulk_actions(&app).await.is_empty());

    let started = b.post("/console/bulk", &fields).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let id = started.location().strip_prefix("/console/bulk/").expect("the progress page").to_string();
    let action = app.bulk_finished(&id).await;
    assert_eq!((action["matched"].as_u64(), action["done"].as_u64()), (Some(1), Some(1)), "{action}");
    assert_eq!(action["actor"], "admin:Ada");
    app.saga_reaches(&saga_id, "COMPLETED").await;
    let rows = app.audit("saga", &saga_id).await;
    assert_eq!((rows[0]["action"].as_str(), rows[0]["actor"].as_str()), (Some("saga.resume"), Some("admin:Ada")));
    assert_eq!(rows[0]["after"]["bulk_action_id"], id.as_str());

    let progress = b.get(&format!("/console/bulk/{id}")).await;
    assert_eq!(progress.status, 200);
    assert!(progress.body.contains(r#"data-testid="bulk-progress""#), "{}", progress.body);
    assert!(progress.body.contains(r#"<td class="state" data-field="state">done</td>"#), "{}", progress.body);
    assert!(progress.body.contains(r#"<td data-field="done">1</td>"#));
    assert!(!progress.body.contains("data-refresh"), "a finished action does not reload");
    assert!(b.get("/console/bulk").await.body.contains(&format!("/console/bulk/{id}")), "listed as recent");
    assert_eq!(b.get(&format!("/console/bulk/{}", uuid::Uuid::now_v7())).await.status, 404);
}

#[tokio::test]
async fn a_bulk_abort_needs_a_reason_and_aborts_the_matching_sagas() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, _, first) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let (_, _, second) = retrying_checkout_with(&app, 5, 60_000, 1).await;
    let b = Browser::signed_in(&app, ADMIN).await;

    let dry = b.get("/console/bulk?state=RETRYING&type=place_order&action=abort&reason=bad+batch&dry_run=1").await;
    assert!(dry.body.contains("<strong>2</strong> saga(s) match"), "{}", dry.body);
    assert!(dry.body.contains("<strong>0</strong> of them would be skipped"));
    assert!(dry.body.contains("Abort these 2 sagas") && dry.body.contains(r#"value="bad batch""#), "{}", dry.body);
    assert_eq!(b.get("/console/bulk?state=COMPLETED&action=abort&dry_run=1").await.status, 400);
    let from_a_list = b.get("/console/bulk?state=COMPLETED&action=abort").await;
    assert_eq!(from_a_list.status, 200, "the form opens with any list's filter: {}", from_a_list.body);

    let fields = [("state", "RETRYING"), ("type", "place_order"), ("action", "abort")];
    assert_eq!(b.post("/console/bulk", &fields).await.status, 400, "no reason");
    assert!(bulk_actions(&app).await.is_empty());
    let mut with_reason = fields.to_vec();
    with_reason.push(("reason", "bad batch"));
    let started = b.post("/console/bulk", &with_reason).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let id = started.location().strip_prefix("/console/bulk/").unwrap().to_string();
    let action = app.bulk_finished(&id).await;
    assert_eq!((action["done"].as_u64(), action["reason"].as_str()), (Some(2), Some("bad batch")), "{action}");
    for saga_id in [&first, &second] {
        let saga = app.saga_reaches(saga_id, "ABORTED").await;
        assert_eq!(saga["abort_reason"], "bad batch");
        let rows = app.audit("saga", saga_id).await;
        assert_eq!((rows[0]["action"].as_str(), rows[0]["actor"].as_str()), (Some("saga.abort"), Some("admin:Ada")));
    }
}

async fn paused_keys(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/admin/v1/quarantine", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body["keys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn keys_are_paused_and_released_from_the_console_and_parked_sagas_resume() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let b = Browser::signed_in(&app, ADMIN).await;
    let list = b.get("/console/quarantine").await;
    assert!(list.status == 200 && list.body.contains("No key is paused."), "{}", list.body);
    let stock = b.get(&format!("/console/stock/{p}")).await;
    assert!(stock.body.contains("Not paused.") && stock.body.contains(">Pause</button>"), "{}", stock.body);

    let fields = [("kind", "inventory"), ("id", p.as_str()), ("reason", "recount <now>")];
    assert_eq!(b.post_with("/console/quarantine", &fields, &[]).await.status, 403, "no CSRF token");
    let f = Browser::signed_in(&app, FULFILLMENT).await;
    assert_eq!(f.post("/console/quarantine", &fields).await.status, 403);
    assert_eq!(f.get("/console/quarantine").await.status, 403);
    assert!(paused_keys(&app).await.is_empty());
    assert_eq!(b.post("/console/quarantine", &[("kind", "bank"), ("id", &p), ("reason", "x")]).await.status, 400);
    assert_eq!(b.post("/console/quarantine", &[("kind", "order"), ("id", &p), ("reason", " ")]).await.status, 400);

    let paused = b.post("/console/quarantine", &fields).await;
    assert_eq!((paused.status, paused.location()), (303, "/console/quarantine?done=paused"), "{}", paused.body);
    let keys = paused_keys(&app).await;
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0]["kind"].as_str(), keys[0]["paused_by"].as_str()), (Some("inventory"), Some("admin:Ada")));
    let rows = app.audit("inventory", &p).await;
    assert_eq!((rows[0]["action"].as_str(), rows[0]["actor"].as_str()), (Some("quarantine.paused"), Some("admin:Ada")));
    let list = b.get("/console/quarantine?done=paused").await;
    assert!(list.body.contains(r#"data-testid="quarantine-list""#), "{}", list.body);
    for text in ["recount &lt;now&gt;", "admin:Ada", ">Release</button>", &p] {
        assert!(list.body.contains(text), "{text}: {}", list.body);
    }

    // A checkout reaching the paused stock parks PAUSED; its page links the quarantine.
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!((status, body["state"].as_str()), (202, Some("PAUSED")), "{body}");
    let saga_id = body["saga_id"].as_str().unwrap();
    let saga_page = b.get(&format!("/console/sagas/{saga_id}")).await;
    assert!(saga_page.body.contains(r#"<a href="/console/quarantine">quarantine</a>"#), "{}", saga_page.body);
    let stock = b.get(&format!("/console/stock/{p}")).await;
    assert!(stock.body.contains("<strong>Paused</strong> by admin:Ada"), "{}", stock.body);

    // Released from the stock page: back to it, and the parked checkout runs on.
    let back = format!("/console/stock/{p}");
    let path = format!("/console/quarantine/inventory/{p}/release");
    assert_eq!(b.post_with(&path, &[("back", &back)], &[]).await.status, 403, "no CSRF token");
    assert_eq!(paused_keys(&app).await.len(), 1);
    let released = b.post(&path, &[("back", &back)]).await;
    assert_eq!((released.status, released.location()), (303, back.as_str()));
    assert!(paused_keys(&app).await.is_empty());
    app.saga_reaches(saga_id, "COMPLETED").await;
    let rows = app.audit("inventory", &p).await;
    assert_eq!(
        (rows[1]["action"].as_str(), rows[1]["actor"].as_str()),
        (Some("quarantine.released"), Some("admin:Ada"))
    );
    // An order's page pauses its key too; `back` never leaves the console.
    let order_id = app.saga(saga_id).await["order_id"].as_str().unwrap().to_string();
    let order = b.get(&format!("/console/orders/{order_id}")).await;
    assert!(order.body.contains("Not paused."), "{}", order.body);
    let fields = [("kind", "order"), ("id", order_id.as_str()), ("reason", "dispute"), ("back", "//evil.example/")];
    assert_eq!(b.post("/console/quarantine", &fields).await.location(), "/console/quarantine?done=paused");
    assert!(b.get(&format!("/console/orders/{order_id}")).await.body.contains("<strong>Paused</strong>"));
    assert!(!f.get(&format!("/console/orders/{order_id}")).await.body.contains("Quarantine"), "admin only");
}

#[tokio::test]
async fn a_webhook_needing_review_is_corrected_and_replayed_from_its_page() {
    let app = spawn_app().await;
    let review = app.order_needing_review("evt_console_review").await;
    let (c, order_id, a, total) =
        (&review.customer, review.order_id.as_str(), review.authorization_id.as_str(), review.total.as_str());
    let b = Browser::signed_in(&app, ADMIN).await;

    let list = b.get("/console/webhooks").await;
    let link = href_of(&list.body, "evt_console_review");
    assert_eq!(link, "/console/webhooks/payment/evt_console_review");
    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<textarea") && page.body.contains("&quot;1.00&quot;"), "{}", page.body);
    assert!(page.body.contains(">Replay</button>"));

    let corrected = json!({ "authorization_id": a, "amount": total }).to_string();
    let replay = format!("{link}/replay");
    assert_eq!(b.post_with(&replay, &[("payload", &corrected)], &[]).await.status, 403, "no CSRF token");
    let f = Browser::signed_in(&app, FULFILLMENT).await;
    assert_eq!(f.get(&link).await.status, 403);
    assert_eq!(f.post(&replay, &[("payload", &corrected)]).await.status, 403);
    assert_eq!(b.post(&replay, &[("payload", "[1, 2]")]).await.status, 400);
    assert!(app.audit("webhook_event", "payment/evt_console_review").await.is_empty());
    let (_, review) = app.get("/admin/v1/webhooks?status=needs_review", Some(ADMIN)).await;
    assert_eq!(review["webhooks"][0]["event_id"], "evt_console_review");

    let done = b.post(&replay, &[("payload", &corrected)]).await;
    assert_eq!((done.status, done.location()), (303, format!("{link}?result=processed").as_str()), "{}", done.body);
    let (_, now) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!(now["status"], "CONFIRMED");
    let rows = app.audit("webhook_event", "payment/evt_console_review").await;
    assert_eq!((rows[0]["action"].as_str(), rows[0]["actor"].as_str()), (Some("webhook.replay"), Some("admin:Ada")));
    assert_eq!(
        (rows[0]["before"]["data"]["amount"].as_str(), rows[0]["after"]["result"].as_str()),
        (Some("1.00"), Some("processed"))
    );
    let shown = b.get(&format!("{link}?result=processed")).await;
    assert!(shown.body.contains("Replayed: the event is now <strong>processed</strong>"), "{}", shown.body);
    assert!(!shown.body.contains("<textarea"), "a processed event is not replayed again");
    assert_eq!(b.post(&replay, &[("payload", &corrected)]).await.status, 409);
    assert_eq!(b.get("/console/webhooks/bank/evt_console_review").await.status, 404);
}

#[tokio::test]
async fn the_fulfillment_menu_shows_none_of_the_admin_pages() {
    let app = spawn_app().await;
    let f = Browser::signed_in(&app, FULFILLMENT).await;
    let orders = f.get("/console/orders").await;
    assert_eq!(orders.status, 200);
    for path in ["triage", "sagas", "bulk", "quarantine", "policies", "webhooks", "stock", "audit"] {
        assert!(!orders.body.contains(&format!(r#"href="/console/{path}""#)), "{path} is hidden: {}", orders.body);
    }
    let admin = Browser::signed_in(&app, ADMIN).await.get("/console/orders").await;
    for path in ["triage", "bulk", "quarantine"] {
        assert!(admin.body.contains(&format!(r#"href="/console/{path}""#)), "{path} in the admin's menu");
    }
}
