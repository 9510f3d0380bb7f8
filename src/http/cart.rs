//! The customer's cart (SEQ-CART-001..003).

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth;
use super::request::{path_id, Request};
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::domain::cart::CartError;
use crate::domain::ids::{LineId, ProductId, VariantId};
use crate::domain::quantity::{Quantity, MAX_QUANTITY};
use crate::services::ServiceError;
use crate::startup::Shop;

#[derive(Deserialize, ToSchema)]
struct AddItem {
    #[schema(value_type = uuid::Uuid)]
    product_id: ProductId,
    /// Required for a product with variants.
    #[schema(value_type = Option<uuid::Uuid>)]
    variant_id: Option<VariantId>,
    #[schema(value_type = i64, minimum = 1, maximum = 1_000_000_000)]
    quantity: Value,
}

#[derive(Deserialize, ToSchema)]
struct UpdateItem {
    /// The line's new quantity; 0 removes it.
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000)]
    quantity: Value,
}

/// The customer's cart.
#[utoipa::path(get, path = "/v1/cart", operation_id = "cart.get", tag = "cart",
    security(("customer_token" = [])),
    responses((status = 200, description = "The cart", body = doc::Cart)))]
pub async fn get(shop: &Shop, req: &Request) -> Reply {
    let customer = auth::customer(shop, req)?;
    Ok(json(200, &shop.carts.get(customer).await?))
}

/// Add a product; the same product and variant again adds to its line. On an error the cart is unchanged.
#[utoipa::path(post, path = "/v1/cart/items", operation_id = "cart.add", tag = "cart",
    security(("customer_token" = [])),
    request_body = AddItem,
    responses(
        (status = 200, description = "The cart", body = doc::Cart, links(
            ("UpdateLine" = (operation_id = "cart.update", parameters(("line_id" = "$response.body#/items/0/line_id")))),
            ("RemoveLine" = (operation_id = "cart.remove", parameters(("line_id" = "$response.body#/items/0/line_id")))),
            ("PlaceOrder" = (operation_id = "orders.place")),
        )),
        (status = 404, description = "`PRODUCT_NOT_FOUND`, `VARIANT_NOT_FOUND`"),
        (status = 409, description = "`OUT_OF_STOCK`; `QUANTITY_EXCEEDS_STOCK` with `details.available`"),
        (status = 422, description = "`VARIANT_REQUIRED`, `INVALID_QUANTITY`, `CART_FULL` (`details.max_lines`)"),
    ))]
pub async fn add(shop: &Shop, req: &Request) -> Reply {
    let customer = auth::customer(shop, req)?;
    let body: AddItem = req.json()?;
    let quantity = Quantity::from_json(&body.quantity).map_err(ServiceError::InvalidQuantity)?;
    let cart = shop.carts.add_item(customer, body.product_id, body.variant_id, quantity).await?;
    Ok(json(200, &cart))
}

/// Set a line's quantity; 0 removes it.
#[utoipa::path(patch, path = "/v1/cart/items/{line_id}", operation_id = "cart.update", tag = "cart",
    security(("customer_token" = [])),
    params(("line_id" = uuid::Uuid, Path, description = "The cart line")),
    request_body = UpdateItem,
    responses(
        (status = 200, description = "The cart", body = doc::Cart),
        (status = 404, description = "`ITEM_NOT_FOUND`"),
        (status = 409, description = "`QUANTITY_EXCEEDS_STOCK` with `details.available`: the line is then capped at `available` and the new cart is in `details.cart`"),
        (status = 422, description = "`INVALID_QUANTITY`"),
    ))]
pub async fn update(shop: &Shop, req: &Request, line: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    let line_id: LineId = path_id(line, ApiError::from(CartError::ItemNotFound))?;
    let body: UpdateItem = req.json()?;
    // 0 is allowed here: it removes the line.
    let quantity = match body.quantity.as_u64() {
        Some(n) if n <= MAX_QUANTITY => n as u32,
        _ => return Err(ServiceError::InvalidQuantity("quantity must be a whole number from 0".into()).into()),
    };
    Ok(json(200, &shop.carts.update_quantity(customer, line_id, quantity).await?))
}

/// Remove a line; a line that is not there is no error.
#[utoipa::path(delete, path = "/v1/cart/items/{line_id}", operation_id = "cart.remove", tag = "cart",
    security(("customer_token" = [])),
    params(("line_id" = String, Path, description = "The cart line (a UUID; anything else names no line, which is no error)")),
    responses((status = 200, description = "The cart", body = doc::Cart)))]
pub async fn remove(shop: &Shop, req: &Request, line: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    match path_id::<LineId, _>(line, ApiError::from(CartError::ItemNotFound)) {
        Ok(line_id) => Ok(json(200, &shop.carts.remove_item(customer, line_id).await?)),
        // Not an id: no such line can exist, and removing a missing line succeeds.
        Err(_) => Ok(json(200, &shop.carts.get(customer).await?)),
    }
}
