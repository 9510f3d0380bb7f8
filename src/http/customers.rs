//! Customers and sessions (SEQ-CUST-001).

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth;
use super::request::Request;
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::startup::Shop;
use crate::store::Customer;

#[derive(Deserialize, ToSchema)]
struct Registration {
    email: String,
    /// At least 10 characters, a letter and a digit, at most 128.
    #[schema(min_length = 10, max_length = 128)]
    password: String,
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct Verification {
    /// From the verification email (its outbox record's `payload.verification_token`).
    token: String,
}

#[derive(Deserialize, ToSchema)]
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

/// Register; a verification email is queued and the customer's cart exists from now on.
#[utoipa::path(post, path = "/v1/customers", operation_id = "customers.register", tag = "customers",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered", body = doc::Customer),
        (status = 409, description = "`EMAIL_ALREADY_REGISTERED` (emails compare case-insensitively)"),
        (status = 422, description = "`INVALID_EMAIL`; `WEAK_PASSWORD` with `details.requirements` and `details.unmet`"),
        (status = 503, description = "`SERVER_BUSY` (every password-hashing slot taken; `Retry-After`); `SHUTTING_DOWN`, `UNAVAILABLE` (not applied; retry)"),
    ))]
pub async fn register(shop: &Shop, req: &Request) -> Reply {
    let r: Registration = req.json()?;
    let customer = shop.customers.register(&r.email, &r.password, r.name.as_deref()).await?;
    Ok(json(201, &customer_json(&customer)))
}

/// Verify the email address with the emailed token.
#[utoipa::path(post, path = "/v1/customers/verify-email", operation_id = "customers.verify", tag = "customers",
    request_body = Verification,
    responses(
        (status = 200, description = "Verified", body = doc::Verified),
        (status = 400, description = "`INVALID_TOKEN`: unknown or expired; `INVALID_REQUEST`"),
    ))]
pub async fn verify(shop: &Shop, req: &Request) -> Reply {
    let v: Verification = req.json()?;
    let customer = shop.customers.verify_email(&v.token).await?;
    Ok(json(200, &json!({ "customer_id": customer.customer_id, "email_verified": true })))
}

/// Log in: a customer token for `Authorization: Bearer`.
#[utoipa::path(post, path = "/v1/sessions", operation_id = "sessions.create", tag = "customers",
    request_body = Credentials,
    responses(
        (status = 201, description = "A session", body = doc::Session),
        (status = 401, description = "`INVALID_CREDENTIALS`, the same whether or not the email exists"),
        (status = 429, description = "`TOO_MANY_REQUESTS`: per account or per client address; `details.retry_after_secs`"),
        (status = 503, description = "`SERVER_BUSY` (every password-hashing slot taken; `Retry-After`); `SHUTTING_DOWN`, `UNAVAILABLE` (not applied; retry)"),
    ))]
pub async fn login(shop: &Shop, req: &Request) -> Reply {
    let c: Credentials = req.json()?;
    let (token, customer_id) = shop.customers.login(&c.email, &c.password, req.remote.map(|a| a.ip())).await?;
    Ok(json(201, &json!({ "token": token, "customer_id": customer_id })))
}

/// The signed-in customer.
#[utoipa::path(get, path = "/v1/me", operation_id = "me", tag = "customers",
    security(("customer_token" = [])),
    responses((status = 200, description = "The customer", body = doc::Customer)))]
pub async fn me(shop: &Shop, req: &Request) -> Reply {
    let id = auth::customer(shop, req)?;
    let customer = shop.customers.get(id)?.ok_or(ApiError::Unauthenticated)?;
    Ok(json(200, &customer_json(&customer)))
}

/// Logout: the token stops working at once.
#[utoipa::path(delete, path = "/v1/sessions/current", operation_id = "sessions.delete", tag = "customers",
    security(("customer_token" = [])),
    responses((status = 200, description = "Logged out", body = doc::LoggedOut)))]
pub async fn logout(shop: &Shop, req: &Request) -> Reply {
    auth::customer(shop, req)?;
    shop.customers.logout(req.bearer().unwrap_or_default()).await?;
    Ok(json(200, &json!({ "status": "logged_out" })))
}
