//! SEQ-CUST-001: registration, verification email, email verification, sessions.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn registration_creates_customer_cart_event_and_verification_email() {
    let app = spawn_app().await;
    let (status, body) = app.register("Ada.Lovelace@Example.com").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["email"], "Ada.Lovelace@Example.com");
    assert_eq!(body["email_verified"], false);
    assert_eq!(body["status"], "REGISTERED");
    let id = body["customer_id"].as_str().unwrap();

    let events = app.events("CustomerRegistered").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["customer_id"], id);

    // The cart exists (empty) and the verification email is queued, then delivered by the log transport.
    let (_, session) = app.login("ada.lovelace@example.com", PASSWORD).await;
    let cart = app.cart(session["token"].as_str().unwrap()).await;
    assert_eq!(cart["customer_id"], id);
    assert_eq!(cart["items"], json!([]));
    assert_eq!(cart["total_price"], "0.00");
    let token = app.verification_token(id).await;
    assert!(token.len() > 32);
    app.eventually("verification email sent", || async {
        app.notifications("email_verification")
            .await
            .iter()
            .any(|n| n["status"] == "SENT" && n["to"] == "Ada.Lovelace@Example.com")
    })
    .await;
}

#[tokio::test]
async fn duplicate_email_is_refused_case_insensitively_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(app.register("bob@example.com").await.0, 201);
    let (status, body) = app.register("BOB@Example.COM").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "EMAIL_ALREADY_REGISTERED");
    assert_eq!(app.events("CustomerRegistered").await.len(), 1);
    assert_eq!(app.notifications("email_verification").await.len(), 1);
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_exactly_one_customer() {
    let app = spawn_app().await;
    let results = futures::future::join_all((0..8).map(|_| app.register("race@example.com"))).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results.iter().filter(|(s, b)| *s == 409 && b["error"]["code"] == "EMAIL_ALREADY_REGISTERED").count();
    assert_eq!((created, refused), (1, 7), "{results:?}");
    assert_eq!(app.events("CustomerRegistered").await.len(), 1);
}

#[tokio::test]
async fn weak_password_lists_requirements_and_creates_nothing() {
    let app = spawn_app().await;
    for weak in ["short1", "onlyletterslong", "1234567890123"] {
        let (status, body) =
            app.post("/v1/customers", None, json!({ "email": "weak@example.com", "password": weak })).await;
        assert_eq!(status, 422, "{weak}: {body}");
        assert_eq!(body["error"]["code"], "WEAK_PASSWORD");
        let reqs = body["error"]["details"]["requirements"].as_array().unwrap();
        assert!(reqs.iter().any(|r| r == "at least 10 characters"));
        assert!(!body["error"]["details"]["unmet"].as_array().unwrap().is_empty());
    }
    assert!(app.events("CustomerRegistered").await.is_empty());
    // The email is still free.
    assert_eq!(app.register("weak@example.com").await.0, 201);
}

#[tokio::test]
async fn invalid_emails_are_refused() {
    let app = spawn_app().await;
    for bad in ["plain", "a@b", "@example.com", "two words@example.com", "a@example."] {
        let (status, body) = app.register(bad).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_EMAIL")), "{bad}");
    }
}

#[tokio::test]
async fn verify_email_with_token_then_unknown_token_is_invalid() {
    let app = spawn_app().await;
    let (_, body) = app.register("vera@example.com").await;
    let id = body["customer_id"].as_str().unwrap();
    let token = app.verification_token(id).await;

    let (status, body) = app.post("/v1/customers/verify-email", None, json!({ "token": token })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "customer_id": id, "email_verified": true }));
    // Same link clicked twice: same answer, no second event.
    assert_eq!(app.post("/v1/customers/verify-email", None, json!({ "token": token })).await.0, 200);
    assert_eq!(app.events("CustomerEmailVerified").await.len(), 1);

    let (_, session) = app.login("vera@example.com", PASSWORD).await;
    let (_, me) = app.get("/v1/me", session["token"].as_str()).await;
    assert_eq!(me["email_verified"], true);

    for bad in ["cwv_nope", ""] {
        let (status, body) = app.post("/v1/customers/verify-email", None, json!({ "token": bad })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_TOKEN")));
    }
}

#[tokio::test]
async fn failing_verification_email_is_retried_then_failed_and_account_still_exists() {
    // Every delivery attempt fails: 1 attempt + 3 retries, then FAILED for manual review.
    let app = spawn_app_with(|s| s.notifications.fail_first_attempts = 100).await;
    let (status, body) = app.register("unlucky@example.com").await;
    assert_eq!(status, 201, "{body}");
    app.eventually("verification email marked FAILED", || async {
        app.notifications("email_verification").await.iter().any(|n| n["status"] == "FAILED")
    })
    .await;
    let n = &app.notifications("email_verification").await[0];
    assert_eq!(n["attempts"], 4);
    assert!(n["last_error"].as_str().unwrap().contains("injected failure"));
    assert_eq!(app.login("unlucky@example.com", PASSWORD).await.0, 201);
}

#[tokio::test]
async fn flaky_email_delivery_succeeds_on_retry() {
    let app = spawn_app_with(|s| s.notifications.fail_first_attempts = 2).await;
    app.register("flaky@example.com").await;
    app.eventually("verification email SENT after retries", || async {
        app.notifications("email_verification").await.iter().any(|n| n["status"] == "SENT" && n["attempts"] == 3)
    })
    .await;
}

#[tokio::test]
async fn sessions_refuse_wrong_pairs_the_same_way() {
    let app = spawn_app().await;
    app.register("sam@example.com").await;
    let (s1, b1) = app.login("sam@example.com", "wrong-password-1").await;
    let (s2, b2) = app.login("nobody@example.com", PASSWORD).await;
    let (s3, b3) = app.login("not an email", PASSWORD).await;
    for (s, b) in [(s1, &b1), (s2, &b2), (s3, &b3)] {
        assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_CREDENTIALS")));
    }
    assert_eq!(b1["error"]["message"], b2["error"]["message"]);
    let (status, session) = app.login("SAM@example.com", PASSWORD).await;
    assert_eq!(status, 201);
    assert!(session["token"].as_str().unwrap().starts_with("cws_"));
}

#[tokio::test]
async fn customer_routes_need_a_valid_session() {
    let app = spawn_app().await;
    for token in [None, Some("cws_forged"), Some(ADMIN)] {
        let (status, body) = app.get("/v1/me", token).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{token:?}");
        assert_eq!(app.get("/v1/cart", token).await.0, 401);
    }
}

#[tokio::test]
async fn a_session_ends_at_its_expiry_even_while_in_use() {
    let app = spawn_app_with(|s| s.auth.session_ttl_secs = 1).await;
    let c = app.customer().await;
    // Used, and so held in memory, until the moment it expires.
    assert_eq!(app.get("/v1/me", Some(&c.token)).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = app.get("/v1/me", Some(&c.token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let c = app.customer().await;
    assert_eq!(app.get("/v1/me", Some(&c.token)).await.0, 200);
    let (status, _) = app.delete("/v1/sessions/current", Some(&c.token)).await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/v1/me", Some(&c.token)).await.0, 401);
    assert_eq!(app.delete("/v1/sessions/current", Some(&c.token)).await.0, 401);
}

#[tokio::test]
async fn a_session_token_says_its_customers_partition_and_one_from_before_still_works() {
    let mut app = spawn_app().await;
    app.register("kim@example.com").await;
    let (status, session) = app.login("kim@example.com", PASSWORD).await;
    assert_eq!(status, 201, "{session}");
    let (token, id) = (session["token"].as_str().unwrap(), session["customer_id"].as_str().unwrap());
    // `cws_<the customer id's last four hex digits>_<64 hex digits>`.
    let affinity = &id[id.len() - 4..];
    assert!(token.starts_with(&format!("cws_{affinity}_")), "{token} for {id}");
    assert_eq!(token.len(), "cws_0000_".len() + 64, "{token}");
    assert_eq!(app.get("/v1/cart", Some(token)).await.0, 200);

    // A token minted before the affinity, as the store of an older build holds it.
    let old = format!("cws_{}", "5a".repeat(32));
    let customer = cartwright::domain::ids::CustomerId(id.parse().unwrap());
    let now = cartwright::domain::time::Timestamp::now();
    let record =
        cartwright::store::Session { customer_id: customer, created_at: now, expires_at: now.plus_millis(3_600_000) };
    let digest = cartwright::services::token_hash(&old);
    app.write_store(|_| cartwright::store::WriteSet::new().save(cartwright::store::keys::session(&digest), &record))
        .await;
    let (status, cart) = app.get("/v1/cart", Some(&old)).await;
    assert_eq!((status, cart["customer_id"].as_str()), (200, Some(id)), "{cart}");
    assert_eq!(app.get("/v1/me", Some(&old)).await.0, 200);
    let (status, _) = app.get("/v1/cart", Some(&format!("cws_{affinity}_{}", "5a".repeat(32)))).await;
    assert_eq!(status, 401, "the affinity is no credential: a token never issued is refused");
}
