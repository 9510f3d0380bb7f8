//! Catalogue: categories and products (SEQ-PROD-001/002), public and admin views.

use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth;
use super::request::{path_id, Request};
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::domain::ids::{CategoryId, ProductId};
use crate::domain::inventory::MAX_STOCK;
use crate::domain::product::Product;
use crate::services::catalog::{CatalogError, NewProduct, NewVariant};
use crate::services::inventory::item_keys;
use crate::services::ServiceError;
use crate::startup::Shop;

#[derive(Deserialize, ToSchema)]
struct NewCategory {
    /// 1 to `catalog.category_name_max` characters.
    #[schema(min_length = 1)]
    name: String,
}

#[derive(Deserialize, ToSchema)]
struct ProductBody {
    /// `catalog.name_min` to `catalog.name_max` characters.
    #[schema(min_length = 2)]
    name: String,
    #[serde(default)]
    description: String,
    /// A decimal string, at most two fraction digits, within `catalog.min_price..=max_price`.
    #[schema(example = "19.90")]
    price: String,
    #[schema(value_type = uuid::Uuid)]
    category_id: CategoryId,
    /// Stock of a product without variants (default 0).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000_000_i64)]
    initial_stock: Option<Value>,
    /// One inventory item per variant.
    variants: Option<Vec<VariantBody>>,
}

#[derive(Deserialize, ToSchema)]
struct VariantBody {
    name: String,
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000_000_i64)]
    initial_stock: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
struct PriceBody {
    #[schema(example = "21.00")]
    price: String,
}

/// Initial stock: a whole number from 0.
fn stock(v: Option<&Value>) -> Result<Option<u64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_STOCK => Ok(Some(n)),
            _ => Err(ServiceError::InvalidQuantity(format!(
                "initial_stock must be a whole number from 0 to {MAX_STOCK}"
            ))
            .into()),
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
async fn with_availability(shop: &Shop, p: &Product) -> Result<Value, ApiError> {
    let mut available = Vec::new();
    for key in item_keys(p) {
        available.push(shop.inventory.available(key).await?);
    }
    Ok(product_json(p, Some(&available)))
}

/// Every category.
#[utoipa::path(get, path = "/v1/categories", operation_id = "categories.list", tag = "catalogue",
    responses((status = 200, description = "Categories", body = doc::Categories)))]
pub async fn list_categories(shop: &Shop) -> Reply {
    Ok(json(200, &json!({ "categories": shop.catalog.categories()? })))
}

/// Every category (admin).
#[utoipa::path(get, path = "/admin/v1/categories", operation_id = "admin.categories.list", tag = "catalogue",
    security(("admin_token" = [])),
    responses((status = 200, description = "Categories", body = doc::Categories)))]
pub async fn admin_list_categories(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    list_categories(shop).await
}

/// Create a category.
#[utoipa::path(post, path = "/admin/v1/categories", operation_id = "admin.categories.create", tag = "catalogue",
    security(("admin_token" = [])),
    request_body = NewCategory,
    responses(
        (status = 201, description = "Created", body = doc::Category, links(
            ("CreateProduct" = (operation_id = "admin.products.create", request_body = json!({ "category_id": "$response.body#/category_id" }))),
        )),
        (status = 422, description = "`INVALID_CATEGORY_NAME`"),
    ))]
pub async fn create_category(shop: &Shop, req: &Request) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let body: NewCategory = req.json()?;
    Ok(json(201, &shop.catalog.create_category(&body.name, &by).await?))
}

/// Create a product: one inventory item, or one per variant.
#[utoipa::path(post, path = "/admin/v1/products", operation_id = "admin.products.create", tag = "catalogue",
    security(("admin_token" = [])),
    request_body = ProductBody,
    responses(
        (status = 201, description = "Created", body = doc::Product, links(
            ("GetProduct" = (operation_id = "products.get", parameters(("id" = "$response.body#/product_id")))),
            ("GetStock" = (operation_id = "admin.inventory.get", parameters(("id" = "$response.body#/product_id")))),
            ("Restock" = (operation_id = "admin.inventory.restock", parameters(("id" = "$response.body#/product_id")))),
            ("ChangePrice" = (operation_id = "admin.products.price", parameters(("id" = "$response.body#/product_id")))),
            ("AddToCart" = (operation_id = "cart.add", request_body = json!({ "product_id": "$response.body#/product_id" }))),
        )),
        (status = 404, description = "`CATEGORY_NOT_FOUND`"),
        (status = 422, description = "`INVALID_PRICE`, `INVALID_PRODUCT_NAME`, `DESCRIPTION_TOO_LONG`, `INVALID_QUANTITY` (initial stock)"),
    ))]
pub async fn create_product(shop: &Shop, req: &Request) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let body: ProductBody = req.json()?;
    let variants = match body.variants {
        Some(vs) => Some(
            vs.into_iter()
                .map(|v| Ok(NewVariant { initial_stock: stock(v.initial_stock.as_ref())?.unwrap_or(0), name: v.name }))
                .collect::<Result<Vec<_>, ApiError>>()?,
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

/// Change a product's price (old and new price audited).
#[utoipa::path(put, path = "/admin/v1/products/{id}/price", operation_id = "admin.products.price", tag = "catalogue",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = PriceBody,
    responses(
        (status = 200, description = "The product", body = doc::Product),
        (status = 404, description = "`PRODUCT_NOT_FOUND`"),
        (status = 422, description = "`INVALID_PRICE`"),
    ))]
pub async fn update_price(shop: &Shop, req: &Request, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id: ProductId = path_id(id, ApiError::from(CatalogError::ProductNotFound))?;
    let body: PriceBody = req.json()?;
    let product = shop.catalog.update_price(id, &body.price, &by).await?;
    Ok(json(200, &product_json(&product, None)))
}

/// Any product, active or not, with what is available of it.
#[utoipa::path(get, path = "/admin/v1/products/{id}", operation_id = "admin.products.get", tag = "catalogue",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product with `available`", body = doc::Product),
        (status = 404, description = "`PRODUCT_NOT_FOUND`"),
    ))]
pub async fn admin_get_product(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let id: ProductId = path_id(id, ApiError::from(CatalogError::ProductNotFound))?;
    let product = shop.catalog.product(id)?;
    Ok(json(200, &with_availability(shop, &product).await?))
}

/// An active product with what is available of each item.
#[utoipa::path(get, path = "/v1/products/{id}", operation_id = "products.get", tag = "catalogue",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product with `available`", body = doc::Product),
        (status = 404, description = "`PRODUCT_NOT_FOUND`"),
    ))]
pub async fn get_product(shop: &Shop, id: &str) -> Reply {
    let id: ProductId = path_id(id, ApiError::from(CatalogError::ProductNotFound))?;
    let product = shop.catalog.active_product(id)?;
    Ok(json(200, &with_availability(shop, &product).await?))
}

/// Active products, a page at a time.
#[utoipa::path(get, path = "/v1/products", operation_id = "products.list", tag = "catalogue",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the page before"),
    ),
    responses((status = 200, description = "A page", body = doc::ProductPage)))]
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
