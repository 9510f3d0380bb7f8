//! The console's order page as the admin sees it: every saga of the order (also one that has
//! not changed the order yet), its audit trail and its events; and the look-up by the
//! customer's email.

use crate::console::Browser;
use crate::helpers::*;

#[tokio::test]
async fn the_order_page_lists_every_saga_of_the_order_its_audit_trail_and_events() {
    let app = spawn_app().await;
    // tok_refund_flaky refuses the first three refunds of its authorization. The
    // cancellation's one refund attempt fails (STUCK, past its point of no return); the late
    // capture's refund then fails and waits a minute to retry: RETRYING, having written
    // nothing to the order yet.
    app.set_policy("cancel_order", "refund_payment", 1, 10).await;
    app.set_policy("refund_capture", "refund_captured_payment", 5, 60_000).await;
    let (c, order) = app.cancelled_order_with_a_flaky_refund().await;
    let id = order["order_id"].as_str().unwrap();
    let authorization = order["payment"]["authorization_id"].as_str().unwrap();
    let (status, _) = app.capture("evt_console_late", authorization, order["total"].as_str().unwrap()).await;
    assert_eq!(status, 409);

    let (_, listed) = app.get(&format!("/admin/v1/sagas?order_id={id}"), Some(ADMIN)).await;
    let of_type = |t: &str| {
        let found = listed["sagas"].as_array().unwrap().iter().find(|s| s["type"] == t);
        found.unwrap_or_else(|| panic!("a {t} saga: {listed}"))["saga_id"].as_str().unwrap().to_string()
    };
    let (placed, cancel, refund) = (of_type("place_order"), of_type("cancel_order"), of_type("refund_capture"));
    app.saga_reaches(&cancel, "STUCK").await;
    app.saga_reaches(&refund, "RETRYING").await;
    assert!(
        app.audit("order", id).await.iter().all(|r| r["actor"] != format!("saga:{refund}")),
        "the retrying refund has not changed the order"
    );

    let b = Browser::signed_in(&app, ADMIN).await;
    let page = b.get(&format!("/console/orders/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let sagas = section(&page.body, "<h2>Sagas</h2>", "<h2>Audit trail</h2>");
    for (saga, saga_type, state) in [
        (&placed, "place_order", "COMPLETED"),
        (&cancel, "cancel_order", "STUCK"),
        (&refund, "refund_capture", "RETRYING"),
    ] {
        let row = format!(
            r#"<a class="id" href="/console/sagas/{saga}">{saga}</a></td><td>{saga_type}</td><td><span class="state state-{state}">{state}</span>"#
        );
        assert!(sagas.contains(&row), "{saga_type} {state}: {sagas}");
    }

    // The audit trail: the order's rows, each with who did it.
    let trail = section(&page.body, "<h2>Audit trail</h2>", r#"data-testid="order-events""#);
    let rows = app.audit("order", id).await;
    assert!(!rows.is_empty());
    for r in &rows {
        let (actor, action) = (r["actor"].as_str().unwrap(), r["action"].as_str().unwrap());
        assert!(
            trail.contains(&format!("<td>{actor}</td><td><code>{action}</code></td>")),
            "{actor} {action}: {trail}"
        );
    }
    assert!(
        trail.contains(&format!("<td>saga:{cancel}</td><td><code>order.status_changed</code></td>")),
        "the cancellation's change: {trail}"
    );
    assert!(trail.contains(&format!("/console/audit?entity_type=order&amp;entity_id={id}")), "{trail}");
    // The audit page finds that row by who did it and what it was, and only it.
    let by_cancel =
        |r: &&serde_json::Value| r["actor"] == format!("saga:{cancel}") && r["action"] == "order.status_changed";
    let n = rows.iter().filter(by_cancel).count();
    let by = b.get(&format!("/console/audit?actor=saga:{cancel}&action=order.status_changed")).await;
    let row = format!("<td>saga:{cancel}</td><td><code>order.status_changed</code>");
    assert!(n >= 1 && by.body.matches(&row).count() == n, "{n} rows: {}", by.body);
    assert_eq!(by.body.matches("</td><td><code>").count(), n, "no other row: {}", by.body);

    // Its events.
    let events = &page.body[page.body.find(r#"data-testid="order-events""#).expect("an events table")..];
    let at = |text: &str| events.find(text).unwrap_or_else(|| panic!("{text}: {events}"));
    assert!(at("OrderPlaced") < at("OrderCancelled"), "{events}");

    // The look-up by the customer's email lists the order.
    let email: String = form_urlencoded::byte_serialize(c.email.as_bytes()).collect();
    let found = b.get(&format!("/console/orders?q={email}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains(&format!("Orders of {}", c.email)), "{}", found.body);
    assert!(
        found
            .body
            .contains(&format!(r#"href="/console/orders/{id}">{id}</a></td><td><span class="state">CANCELLED</span>"#)),
        "{}",
        found.body
    );
    let nobody = b.get("/console/orders?q=nobody%40example.com").await;
    assert!(nobody.status == 404 && nobody.body.contains("No customer is registered with that email."));
}

/// The part of `html` from `start` to `end`.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("{start}: {html}"));
    let to = html[from..].find(end).unwrap_or_else(|| panic!("{end} after {start}: {html}"));
    &html[from..from + to]
}
