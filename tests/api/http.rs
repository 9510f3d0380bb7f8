//! The wire: malformed input gets a clear 4xx and changes nothing; health and metrics.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_and_wrong_types_are_invalid_request() {
    let app = spawn_app().await;
    for raw in
        [&b"{"[..], b"not json", b"[1,2]", b"{\"email\": \"a@example.com\", \"password\": 12345678901}", b"\xff\xfe"]
    {
        let (status, body) = app.post_raw("/v1/customers", None, raw.to_vec()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST")), "{raw:?}");
    }
    let (status, body) = app.post_raw("/v1/customers", None, Vec::new()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST")));
    assert!(app.events("CustomerRegistered").await.is_empty());
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused() {
    let app = spawn_app().await;
    let huge = json!({ "email": "big@example.com", "password": "x".repeat(70 * 1024) });
    let (status, body) = app.post("/v1/customers", None, huge).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    // Streamed without a declared length, too. The server answers 413 as soon as the limit
    // is passed and closes the connection; a client still sending may see the close before
    // it reads the answer, so a refused send is the same verdict.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let sent = app
        .client
        .post(format!("{}/v1/customers", app.url))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(app.get("/healthz", None).await.0, 200);
    assert!(app.events("CustomerRegistered").await.is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = spawn_app().await;
    let (status, body) = app.get("/v2/whatever", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = app.call(reqwest::Method::PUT, "/v1/customers", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
}

#[tokio::test]
async fn health_metrics_and_request_ids() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await, (200, json!({ "status": "ok" })));
    app.customer().await;
    let (status, metrics) = app.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("cartwright_http_requests_total"));
    assert!(text.contains("cartwright_commit_group_size_count"));
    let resp =
        app.client.get(format!("{}/healthz", app.url)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn operator_logs_need_admin_and_validate_paging() {
    let app = spawn_app().await;
    let c = app.customer().await;
    assert_eq!(app.get("/admin/v1/events", None).await.0, 401);
    assert_eq!(app.get("/admin/v1/events", Some(&c.token)).await.0, 403);
    assert_eq!(app.get("/admin/v1/events", Some(FULFILLMENT)).await.0, 403);
    assert_eq!(app.get("/admin/v1/events?after=-1", Some(ADMIN)).await.0, 400);
    assert_eq!(app.get("/admin/v1/events?limit=100000", Some(ADMIN)).await.0, 400);
    let (status, body) = app.get("/admin/v1/events?after=0&limit=1", Some(ADMIN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["seq"], 1);
    assert_eq!(body["next_after"], 1);
}
