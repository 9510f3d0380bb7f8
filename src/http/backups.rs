//! `POST /admin/v1/backups`: the whole store at one consistent instant, as a backup file
//! (see [`crate::backup`]). Admin only.

use super::auth;
use super::request::Request;
use super::response;
use super::routes::Reply;
use crate::backup::{self, BackupError};
use crate::error::AppError;
use crate::services::Shop;

pub async fn create(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let store = shop.store.clone();
    let taken = tokio::task::spawn_blocking(move || backup::take(&store))
        .await
        .map_err(|e| AppError::Internal(format!("backup task: {e}")))?;
    let bytes = match taken {
        Ok(bytes) => bytes,
        Err(BackupError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::Internal(format!("backup: {e}"))),
    };
    tracing::info!(bytes = bytes.len(), "backup taken");
    Ok(response::bytes(200, bytes, "application/octet-stream"))
}
