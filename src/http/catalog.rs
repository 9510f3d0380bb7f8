//! Catalogue: categories and products (SEQ-PROD-001/002), public and admin views.

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::request::{path_id, Request};
use super::response::json;
use super::routes::Reply;
use crate::domain::ids::{CategoryId, ProductId};
use crate::domain::inventory::MAX_STOCK;
use crate::domain::product::Product;
use crate::error::AppError;
use crate::services::catalog::{NewProduct, NewVariant};
use crate::services::inventory::item_keys;
use crate::services::Shop;

#[derive(Deserialize)]
struct NewCategory {
    name: String,
}

#[derive(Deserialize)]
struct ProductBody {
    name: String,
    #[serde(default)]
    description: String,
    price: String,
    category_id: CategoryId,
    initial_stock: Option<Value>,
    variants: Option<Vec<VariantBody>>,
}

#[derive(Deserialize)]
struct VariantBody {
    name: String,
    initial_stock: Option<Value>,
}

#[derive(Deserialize)]
struct PriceBody {
    price: String,
}

/// Initial stock: a whole number from 0.
fn stock(v: Option<&Value>) -> Result<Option<u64>, AppError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_STOCK => Ok(Some(n)),
            _ => Err(AppError::InvalidQuantity(format!("initial_stock must be a whole number from 0 to {MAX_STOCK}"))),
        },
    }
}

fn product_json(p: &Product, available: Option<&[u64]>) -> Value {
    let variants: Vec<Value> = p
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut j = json!({ "variant_id": v.variant_id, "name": v.name });
            if let Some(a) = available {
                j["available"] = json!(a.get(i));
            }
            j
        })
        .collect();
    let mut j = json!({
        "product_id": p.product_id,
        "name": p.name,
        "description": p.description,
        "price": p.price,
        "category_id": p.category_id,
        "is_active": p.is_active,
        "variants": variants,
        "created_at": p.created_at.rfc3339(),
        "updated_at": p.updated_at.rfc3339(),
    });
    if let Some(a) = available {
        j["available"] = json!(a.iter().sum::<u64>());
    }
    j
}

/// The product with what is available of each item right now.
async fn with_availability(shop: &Shop, p: &Product) -> Result<Value, AppError> {
    let mut available = Vec::new();
    for key in item_keys(p) {
        available.push(shop.inventory.available(key).await?);
    }
    Ok(product_json(p, Some(&available)))
}

pub async fn list_categories(shop: &Shop) -> Reply {
    Ok(json(200, &json!({ "categories": shop.catalog.categories()? })))
}

pub async fn admin_list_categories(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    list_categories(shop).await
}

pub async fn create_category(shop: &Shop, req: &Request) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let body: NewCategory = req.json()?;
    Ok(json(201, &shop.catalog.create_category(&body.name, &by).await?))
}

pub async fn create_product(shop: &Shop, req: &Request) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let body: ProductBody = req.json()?;
    let variants = match body.variants {
        Some(vs) => Some(
            vs.into_iter()
                .map(|v| Ok(NewVariant { initial_stock: stock(v.initial_stock.as_ref())?.unwrap_or(0), name: v.name }))
                .collect::<Result<Vec<_>, AppError>>()?,
        ),
        None => None,
    };
    let new = NewProduct {
        name: body.name,
        description: body.description,
        price: body.price,
        category_id: body.category_id,
        initial_stock: stock(body.initial_stock.as_ref())?,
        variants,
    };
    let product = shop.catalog.create_product(new, &by).await?;
    Ok(json(201, &product_json(&product, None)))
}

pub async fn update_price(shop: &Shop, req: &Request, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id: ProductId = path_id(id, AppError::ProductNotFound)?;
    let body: PriceBody = req.json()?;
    let product = shop.catalog.update_price(id, &body.price, &by).await?;
    Ok(json(200, &product_json(&product, None)))
}

pub async fn admin_get_product(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let id: ProductId = path_id(id, AppError::ProductNotFound)?;
    let product = shop.catalog.product(id)?;
    Ok(json(200, &with_availability(shop, &product).await?))
}

pub async fn get_product(shop: &Shop, id: &str) -> Reply {
    let id: ProductId = path_id(id, AppError::ProductNotFound)?;
    let product = shop.catalog.active_product(id)?;
    Ok(json(200, &with_availability(shop, &product).await?))
}

pub async fn list_products(shop: &Shop, req: &Request) -> Reply {
    let limit = req.limit(20, 100)?;
    let cursor = req.query_param::<ProductId>("cursor")?;
    let (products, next) = shop.catalog.list_active(cursor, limit)?;
    let mut out = Vec::with_capacity(products.len());
    for p in &products {
        out.push(with_availability(shop, p).await?);
    }
    Ok(json(200, &json!({ "products": out, "next_cursor": next })))
}
