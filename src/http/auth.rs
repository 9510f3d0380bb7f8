//! Who is calling: a customer (session token), the admin, or fulfillment staff.
//! Static tokens are compared as SHA-256 digests, so the comparison time says nothing
//! about how much of a guess was right.

use super::request::Request;
use super::ApiError;
use crate::domain::ids::CustomerId;
use crate::services::token_hash;
use crate::startup::Shop;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staff {
    Admin,
    Fulfillment,
}

impl Staff {
    pub fn name(self) -> &'static str {
        match self {
            Staff::Admin => "admin",
            Staff::Fulfillment => "fulfillment",
        }
    }
}

/// The customer behind the bearer token, or 401 UNAUTHENTICATED.
pub fn customer(shop: &Shop, req: &Request) -> Result<CustomerId, ApiError> {
    let token = req.bearer().ok_or(ApiError::Unauthenticated)?;
    shop.customers.authenticate(token)?.ok_or(ApiError::Unauthenticated)
}

/// Staff behind the bearer token, for the order routes fulfillment may use (list, read,
/// ship) and nothing else: every other admin route takes [`admin`]. A valid customer token
/// on a staff route is 403; no or an unknown token is 401.
pub fn staff(shop: &Shop, req: &Request) -> Result<Staff, ApiError> {
    let token = req.bearer().ok_or(ApiError::Unauthenticated)?;
    let digest = token_hash(token);
    if digest == shop.staff_tokens.admin {
        return Ok(Staff::Admin);
    }
    if digest == shop.staff_tokens.fulfillment {
        return Ok(Staff::Fulfillment);
    }
    match shop.customers.authenticate(token)? {
        Some(_) => Err(ApiError::Forbidden),
        None => Err(ApiError::Unauthenticated),
    }
}

/// Only the admin token; fulfillment staff and customers get 403.
pub fn admin(shop: &Shop, req: &Request) -> Result<Staff, ApiError> {
    match staff(shop, req)? {
        Staff::Admin => Ok(Staff::Admin),
        Staff::Fulfillment => Err(ApiError::Forbidden),
    }
}

/// Longest `X-Operator` name.
const MAX_OPERATOR_NAME: usize = 100;

/// Who does an operator action, as the audit trail names them: the credential's role, and
/// the person when the request says (`X-Operator: alice` gives `admin:alice`). The header
/// is the operator's word, not a credential: it names, it does not authorize.
pub fn actor(staff: Staff, req: &Request) -> Result<String, ApiError> {
    let Some(value) = req.headers.get("x-operator") else { return Ok(staff.name().to_string()) };
    let name = value.to_str().ok().map(str::trim).unwrap_or_default();
    let visible = crate::domain::text::is_visible_text(name, crate::domain::text::Layout::SingleLine);
    if name.is_empty() || name.chars().count() > MAX_OPERATOR_NAME || !visible {
        return Err(ApiError::invalid("X-Operator", "X-Operator must be 1 to 100 printable characters"));
    }
    Ok(format!("{}:{name}", staff.name()))
}

/// The admin token, and the audit actor it acts as (see [`actor`]).
pub fn admin_actor(shop: &Shop, req: &Request) -> Result<String, ApiError> {
    actor(admin(shop, req)?, req)
}
