//! The connection layer: clients that stall, idle or flood with connections lose them,
//! and real clients keep being served.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Long enough that only the server closing the connection can end the wait.
const BOUND: Duration = Duration::from_secs(15);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://")).await.expect("connects")
}

/// Everything the server sends until it closes the connection; `None` if it kept it open.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn a_client_that_stalls_in_the_request_head_is_disconnected() {
    let app = spawn_app_with(|s| s.server.header_read_timeout_ms = 300).await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /heal").await.unwrap();
    let sent = read_until_closed(&mut stream, BOUND).await;
    assert_eq!(sent.as_deref(), Some(""), "closed without an answer");
    assert_eq!(app.get("/healthz", None).await.0, 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_changes_nothing() {
    let app = spawn_app_with(|s| s.server.body_read_timeout_ms = 300).await;
    let mut stream = connect(&app).await;
    let head =
        "POST /v1/customers HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"email\": ").await.unwrap();
    let sent = read_until_closed(&mut stream, BOUND).await.expect("the server ends the request");
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("REQUEST_TIMEOUT"), "{sent}");
    assert!(app.events("CustomerRegistered").await.is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(|s| s.server.keep_alive_idle_timeout_ms = 300).await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let sent = read_until_closed(&mut stream, BOUND).await.expect("closed once idle");
    assert!(sent.starts_with("HTTP/1.1 200"), "answered before closing: {sent}");
    assert!(!sent.contains("connection: close"), "closed for idling, not per request: {sent}");
}

#[tokio::test]
async fn a_flood_of_idle_connections_cannot_lock_out_a_real_client() {
    let app = spawn_app_with(|s| s.server.max_connections = 20).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(connect(&app).await);
    }
    let served = tokio::time::timeout(BOUND, app.get("/healthz", None)).await;
    assert_eq!(served.expect("served despite the flood").0, 200);
    // To accept the real client the server had to close at least 81 of the silent ones:
    // no more than 20 connections are ever open.
    let closed = futures::future::join_all(
        idle.iter_mut().map(|s| async move { read_until_closed(s, Duration::from_secs(2)).await.is_some() }),
    )
    .await;
    let closed = closed.into_iter().filter(|c| *c).count();
    assert!(closed >= 81, "only {closed} of 100 idle connections were closed");
}
