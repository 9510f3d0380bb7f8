//! Customers and sessions (SEQ-CUST-001).

use serde::Deserialize;
use serde_json::json;

use super::auth;
use super::request::Request;
use super::response::json;
use super::routes::Reply;
use crate::error::AppError;
use crate::services::Shop;
use crate::store::Customer;

#[derive(Deserialize)]
struct Registration {
    email: String,
    password: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Verification {
    token: String,
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

fn customer_json(c: &Customer) -> serde_json::Value {
    json!({
        "customer_id": c.customer_id,
        "email": c.email,
        "name": c.name,
        "email_verified": c.email_verified,
        "status": "REGISTERED",
        "created_at": c.created_at.rfc3339(),
    })
}

pub async fn register(shop: &Shop, req: &Request) -> Reply {
    let r: Registration = req.json()?;
    let customer = shop.customers.register(&r.email, &r.password, r.name.as_deref()).await?;
    Ok(json(201, &customer_json(&customer)))
}

pub async fn verify(shop: &Shop, req: &Request) -> Reply {
    let v: Verification = req.json()?;
    let customer = shop.customers.verify_email(&v.token).await?;
    Ok(json(200, &json!({ "customer_id": customer.customer_id, "email_verified": true })))
}

pub async fn login(shop: &Shop, req: &Request) -> Reply {
    let c: Credentials = req.json()?;
    let (token, customer_id) = shop.customers.login(&c.email, &c.password, req.remote.map(|a| a.ip())).await?;
    Ok(json(201, &json!({ "token": token, "customer_id": customer_id })))
}

pub async fn me(shop: &Shop, req: &Request) -> Reply {
    let id = auth::customer(shop, req)?;
    let customer = shop.customers.get(id)?.ok_or(AppError::Unauthenticated)?;
    Ok(json(200, &customer_json(&customer)))
}

/// Logout: the token stops working at once.
pub async fn logout(shop: &Shop, req: &Request) -> Reply {
    auth::customer(shop, req)?;
    shop.customers.logout(req.bearer().unwrap_or_default()).await?;
    Ok(json(200, &json!({ "status": "logged_out" })))
}
