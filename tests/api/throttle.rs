//! Logins are throttled per account and per client address, and password hashing (logins
//! and registrations) runs under a bound: beyond either, the answer says when to come back.

use serde_json::{json, Value};

use crate::helpers::*;

/// A login answer with its Retry-After header.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

async fn login(client: &reqwest::Client, app: &TestApp, email: &str, password: &str) -> Answer {
    let resp = client
        .post(format!("{}/v1/sessions", app.url))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let retry_after =
        resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
    Answer { status, retry_after, body: resp.json().await.unwrap_or(Value::Null) }
}

fn assert_throttled(a: &Answer) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "TOO_MANY_REQUESTS");
    let secs = a.retry_after.expect("Retry-After");
    assert!((1..=60).contains(&secs), "{secs}");
    assert_eq!(a.body["error"]["details"]["retry_after_secs"], secs);
}

#[tokio::test]
async fn attempts_beyond_the_per_account_limit_answer_429_while_other_accounts_still_log_in() {
    let app = spawn_app_with(|s| s.auth.login_per_account_per_minute = 3).await;
    assert_eq!(app.register("ada@example.com").await.0, 201);
    for _ in 0..3 {
        let a = login(&app.client, &app, "ada@example.com", "wrong-password-1").await;
        assert_eq!((a.status, a.retry_after), (401, None), "{}", a.body);
    }
    // The same account, however written, and now even with the right password.
    assert_throttled(&login(&app.client, &app, "ADA@example.com", "wrong-password-1").await);
    assert_throttled(&login(&app.client, &app, "ada@example.com", PASSWORD).await);

    let bob = app.customer().await;
    assert!(!bob.token.is_empty());
    assert_eq!(login(&app.client, &app, "nobody@example.com", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn attempts_beyond_the_per_address_limit_answer_429_while_other_addresses_still_log_in() {
    let app = spawn_app_with(|s| {
        s.auth.login_per_ip_per_minute = 4;
        s.auth.login_per_account_per_minute = 100;
    })
    .await;
    assert_eq!(app.register("ada@example.com").await.0, 201);
    for n in 0..4 {
        let a = login(&app.client, &app, &format!("guess-{n}@example.com"), PASSWORD).await;
        assert_eq!(a.status, 401, "{}", a.body);
    }
    assert_throttled(&login(&app.client, &app, "guess-5@example.com", PASSWORD).await);
    assert_throttled(&login(&app.client, &app, "ada@example.com", PASSWORD).await);

    // Another client address (the whole 127/8 is loopback) is counted on its own.
    let other =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    assert_eq!(login(&other, &app, "ada@example.com", PASSWORD).await.status, 201);
    assert_eq!(login(&other, &app, "guess-6@example.com", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn hashing_beyond_its_bound_answers_503_with_retry_after_and_the_server_keeps_serving() {
    let app = spawn_app_with(|s| {
        s.auth.max_concurrent_hashes = 1;
        s.auth.argon2_memory_kib = 65536;
        s.auth.argon2_iterations = 3;
        s.auth.login_per_account_per_minute = 100;
    })
    .await;
    assert_eq!(app.register("ada@example.com").await.0, 201);
    // Right and wrong passwords, known and unknown emails: all of them hash.
    let logins = (0..20).map(|n| {
        let (email, password) = match n % 3 {
            0 => ("ada@example.com".to_string(), PASSWORD),
            1 => ("ada@example.com".to_string(), "wrong-password-1"),
            _ => (format!("nobody-{n}@example.com"), PASSWORD),
        };
        let app = &app;
        async move { login(&app.client, app, &email, password).await }
    });
    let (answers, health) = tokio::join!(futures::future::join_all(logins), app.get("/healthz", None));
    assert_eq!(health.0, 200, "the server answers while hashes queue");

    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!busy.is_empty(), "one hash at a time cannot take 20 at once");
    for a in &busy {
        assert_eq!(a.body["error"]["code"], "SERVER_BUSY", "{}", a.body);
        assert_eq!(a.retry_after, Some(1));
    }
    for a in answers.iter().filter(|a| a.status != 503) {
        assert!(matches!(a.status, 201 | 401), "only 201, 401 or 503: {} {}", a.status, a.body);
    }
    assert!(answers.iter().any(|a| a.status != 503), "the permit is used, not lost");
    assert_eq!(app.get("/healthz", None).await.0, 200);
    assert_eq!(login(&app.client, &app, "ada@example.com", PASSWORD).await.status, 201, "permits come back");
}
