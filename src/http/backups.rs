//! `POST /admin/v1/backups`: the whole store at one consistent instant, as a backup file
//! (see [`crate::backup`]). Admin only.

use super::auth;
use super::request::Request;
use super::response;
use super::routes::Reply;
use crate::backup;
use crate::error::AppError;
use crate::services::Shop;

pub async fn create(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let store = shop.store.clone();
    let bytes = tokio::task::spawn_blocking(move || backup::take(&store))
        .await
        .map_err(|e| AppError::Internal(format!("backup task: {e}")))??;
    Ok(response::bytes(200, bytes, "application/octet-stream"))
}
