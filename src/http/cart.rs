//! The customer's cart (SEQ-CART-001..003).

use serde::Deserialize;
use serde_json::Value;

use super::auth;
use super::request::{path_id, Request};
use super::response::json;
use super::routes::Reply;
use crate::domain::ids::{LineId, ProductId, VariantId};
use crate::domain::quantity::{Quantity, MAX_QUANTITY};
use crate::error::AppError;
use crate::services::Shop;

#[derive(Deserialize)]
struct AddItem {
    product_id: ProductId,
    variant_id: Option<VariantId>,
    quantity: Value,
}

#[derive(Deserialize)]
struct UpdateItem {
    quantity: Value,
}

pub async fn get(shop: &Shop, req: &Request) -> Reply {
    let customer = auth::customer(shop, req)?;
    Ok(json(200, &shop.carts.get(customer).await?))
}

pub async fn add(shop: &Shop, req: &Request) -> Reply {
    let customer = auth::customer(shop, req)?;
    let body: AddItem = req.json()?;
    let quantity = Quantity::from_json(&body.quantity).map_err(AppError::InvalidQuantity)?;
    let cart = shop.carts.add_item(customer, body.product_id, body.variant_id, quantity).await?;
    Ok(json(200, &cart))
}

pub async fn update(shop: &Shop, req: &Request, line: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    let line_id: LineId = path_id(line, AppError::ItemNotFound)?;
    let body: UpdateItem = req.json()?;
    // 0 is allowed here: it removes the line.
    let quantity = match body.quantity.as_u64() {
        Some(n) if n <= MAX_QUANTITY => n as u32,
        _ => return Err(AppError::InvalidQuantity("quantity must be a whole number from 0".into())),
    };
    Ok(json(200, &shop.carts.update_quantity(customer, line_id, quantity).await?))
}

pub async fn remove(shop: &Shop, req: &Request, line: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    match path_id::<LineId>(line, AppError::ItemNotFound) {
        Ok(line_id) => Ok(json(200, &shop.carts.remove_item(customer, line_id).await?)),
        // Not an id: no such line can exist, and removing a missing line succeeds.
        Err(_) => Ok(json(200, &shop.carts.get(customer).await?)),
    }
}
