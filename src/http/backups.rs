//! `POST /admin/v1/backups`: the whole store at one consistent instant, as a backup file
//! (see [`crate::backup`]), streamed at the client's pace once writes have gone on. Admin only.

use std::fs::File;
use std::io::Read;

use bytes::Bytes;
use serde_json::json;
use warp::Reply as _;

use super::auth;
use super::request::Request;
use super::response::Reply;
use super::ApiError;
use crate::backup;
use crate::services::audit;
use crate::startup::Shop;

const CHUNK: usize = 256 << 10;

/// The whole store at one consistent instant, streamed (see `cartwright restore`).
#[utoipa::path(post, path = "/admin/v1/backups", operation_id = "admin.backups.create", tag = "operators",
    security(("admin_token" = [])),
    responses((status = 200, description = "The backup file, with `Content-Length`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 501, description = "`NOT_SUPPORTED`: the store is on PostgreSQL, backed up with the database's own tools")))]
pub async fn create(shop: &Shop, req: &Request) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let store = shop.store.clone();
    let file = tokio::task::spawn_blocking(move || backup::take(&store))
        .await
        .map_err(|e| ApiError::internal("backup task", e))??;
    let len = file.metadata().map_err(|e| ApiError::internal("backup file", e))?.len();
    let row = audit::entry(&actor, "backup.taken", ("store", "backup"), json!(null), json!({ "bytes": len }));
    audit::record(&shop.store, row).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || send_chunks(file, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let reply = warp::reply::with_header(warp::reply::stream(body), "content-type", "application/octet-stream");
    // With the length announced, a client can tell a backup cut short from a whole one.
    Ok(warp::reply::with_header(reply, "content-length", len).into_response())
}

/// A backup that failed is the store's failure when the store stopped it (a closed store
/// answers SHUTTING_DOWN, a PostgreSQL one NOT_SUPPORTED), a server-side one otherwise.
impl From<backup::BackupError> for ApiError {
    fn from(e: backup::BackupError) -> ApiError {
        match e {
            backup::BackupError::Store(e) => e.into(),
            other => ApiError::internal("backup", other),
        }
    }
}

/// Reads the spooled backup and hands it over chunk by chunk, until the client goes away.
fn send_chunks(mut file: File, tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let chunk = match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}
