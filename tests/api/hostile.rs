//! Hostile clients: floods of signatures, tokens used beyond their reach, malformed bodies,
//! invisible characters, made-up ids, repeated keys, stale verification tokens.

use serde_json::{json, Value};

use crate::helpers::*;

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn recorded_webhooks(app: &TestApp) -> usize {
    let (status, body) = app.get("/admin/v1/webhooks", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body["webhooks"].as_array().unwrap().len()
}

async fn post_signed_raw(app: &TestApp, signature: &str, raw: Vec<u8>) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}/webhooks/payment", app.url))
        .header("Cartwright-Signature", signature)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signature_header_with_thousands_of_entries_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    let body = json!({ "id": "evt_flood", "type": "payment.captured", "data": { "authorization_id": "sim_auth_x", "amount": "1.00" } });
    let raw = serde_json::to_vec(&body).unwrap();
    let genuine = cartwright::services::webhooks::sign(PAYMENT_SECRET, chrono::Utc::now().timestamp(), &raw);
    let (t, v1) = genuine.split_once(',').unwrap();
    // Thousands of empty candidates, then the genuine one: refused before any MAC is computed.
    let flood = format!("{t},{}{v1}", "v1=,".repeat(5_000));
    let (status, answer) = post_signed_raw(&app, &flood, raw.clone()).await;
    assert_eq!((status, code(&answer)), (401, Some("INVALID_SIGNATURE")), "{answer}");
    // Too many well-formed candidates are refused as well.
    let many = format!("{t},{}", [v1; 5].join(","));
    let (status, answer) = post_signed_raw(&app, &many, raw.clone()).await;
    assert_eq!((status, code(&answer)), (401, Some("INVALID_SIGNATURE")), "{answer}");
    assert_eq!(recorded_webhooks(&app).await, 0);
    // The same signature alone is accepted: what was refused was the shape.
    let (status, answer) = post_signed_raw(&app, &genuine, raw).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("needs_review")), "{answer}");
    assert_eq!(recorded_webhooks(&app).await, 1);
}
