//! CustomerService (SEQ-CUST-001): registration with a verification email, email
//! verification, sessions. Passwords are kept only as Argon2id hashes; session and
//! verification tokens only as SHA-256 hashes.
//!
//! A session token is `cws_<affinity>_<secret>`: the customer id's [`Affinity`] (its last
//! two bytes, four hex digits: public, they only tell the customer's partition, so any
//! server can route the request without a read) and 32 random bytes (64 hex digits). The
//! whole token is the credential, looked up by its digest. Tokens minted before the
//! affinity (`cws_<secret>`) are looked up the same way; they just do not route by
//! partition ([`session_affinity`] is `None`).

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::json;

use super::caches::{CustomerCache, SessionCache};
pub use super::error::AccountError;
use super::login_guard::{HashPermits, LoginThrottle};
use super::ServiceError;
use super::{new_token, token_hash, Stripes};
use crate::config::Settings;
use crate::domain::email::Email;
use crate::domain::events::DomainEvent;
use crate::domain::ids::CustomerId;
use crate::domain::partition::Affinity;
use crate::domain::password::Password;
use crate::domain::product::check_name;
use crate::domain::time::Timestamp;
use crate::error::Fault;
use crate::store::{keys, Customer, Invalidation, Notification, Session, Store, StoreError, VerifyToken, WriteSet};

#[derive(Clone)]
pub struct CustomerService {
    store: Store,
    settings: Arc<Settings>,
    stripes: Arc<Stripes>,
    /// A hash of a random password, verified against when the email is unknown so that a
    /// wrong email costs as much time as a wrong password.
    decoy_hash: Arc<String>,
    /// Bounds the hashes running at once (logins and registrations alike).
    hash_permits: Arc<HashPermits>,
    throttle: Arc<LoginThrottle>,
    sessions: Arc<SessionCache<CustomerId>>,
    customers: Arc<CustomerCache>,
}

impl CustomerService {
    pub fn new(store: Store, settings: Arc<Settings>) -> CustomerService {
        let decoy_hash = hash_password(&settings, &new_token("decoy")).unwrap_or_default();
        CustomerService {
            hash_permits: Arc::new(HashPermits::new(settings.auth.max_concurrent_hashes)),
            throttle: Arc::new(LoginThrottle::new(&settings.auth)),
            store,
            settings,
            stripes: Arc::new(Stripes::new(64)),
            decoy_hash: Arc::new(decoy_hash),
            sessions: Arc::new(SessionCache::default()),
            customers: Arc::new(CustomerCache::default()),
        }
    }

    /// The login limiters, for the task that keeps their memory bounded.
    pub fn throttle(&self) -> Arc<LoginThrottle> {
        self.throttle.clone()
    }

    pub async fn register(&self, email: &str, password: &str, name: Option<&str>) -> Result<Customer, ServiceError> {
        let email = Email::parse(email).map_err(AccountError::InvalidEmail)?;
        let password = Password::parse(password).map_err(|unmet| AccountError::WeakPassword { unmet })?;
        let name = match name {
            Some(n) => Some(check_name(n, 1, 100).map_err(|m| ServiceError::invalid("name", m))?),
            None => None,
        };
        // Cheap early answer; the save_new below is what really guarantees uniqueness.
        if self.store.exists(&keys::customer_email(&email))? {
            return Err(AccountError::EmailAlreadyRegistered.into());
        }
        let settings = self.settings.clone();
        let pw = password.expose().to_string();
        let password_hash = self.hash_permits.run(move || hash_password(&settings, &pw)).await??;
        let customer = Customer {
            customer_id: CustomerId::new(),
            email: email.as_str().to_string(),
            name,
            password_hash,
            email_verified: false,
            created_at: Timestamp::now(),
        };
        let id = customer.customer_id;
        let token = new_token("cwv");
        let ttl_ms = i64::try_from(self.settings.auth.verification_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let verify = VerifyToken { customer_id: id, expires_at: customer.created_at.plus_millis(ttl_ms) };
        let notification = Notification::queued(
            "email_verification",
            email.as_str(),
            "Verify your email address".to_string(),
            json!({ "customer_id": id, "verification_token": token }),
        );
        // Shared records only: no cart (a customer's cart is empty until its actor first
        // writes it), whose row would lie in the customer's partition, another server's on
        // a cluster.
        let ws = WriteSet::new()
            .save_new(keys::customer_email(&email), &id.0, "email")
            .save(keys::customer(id), &customer)
            .save(keys::verify_token(&token_hash(&token)), &verify)
            .event(&DomainEvent::CustomerRegistered { customer_id: id, email: customer.email.clone() })
            .notify(notification);
        // A new id: no server has a copy of it to drop.
        let ticket = self.customers.ticket();
        match self.store.commit(ws).await {
            Ok(_) => {
                self.customers.written(id, customer.clone(), ticket);
                tracing::info!(customer_id = %id, "customer registered; verification email queued");
                Ok(customer)
            }
            Err(StoreError::Conflict(_)) => Err(AccountError::EmailAlreadyRegistered.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks the email verified. Idempotent: the same token again answers the same.
    pub async fn verify_email(&self, token: &str) -> Result<Customer, ServiceError> {
        if token.is_empty() || token.len() > 512 {
            return Err(AccountError::InvalidToken.into());
        }
        let id = self
            .verify_token(token)?
            .filter(|t| t.expires_at > Timestamp::now())
            .map(|t| t.customer_id)
            .ok_or(AccountError::InvalidToken)?;
        let _guard = self.stripes.lock(id.as_bytes()).await;
        let mut customer = self.get(id)?.ok_or(AccountError::InvalidToken)?;
        if !customer.email_verified {
            customer.email_verified = true;
            let ws = WriteSet::new()
                .save(keys::customer(id), &customer)
                .event(&DomainEvent::CustomerEmailVerified { customer_id: id })
                .invalidate(Invalidation::Customer(id));
            let ticket = self.customers.ticket();
            self.store.commit(ws).await?;
            self.customers.written(id, customer.clone(), ticket);
        }
        Ok(customer)
    }

    /// The record of a verification token, if it was ever issued.
    fn verify_token(&self, token: &str) -> Result<Option<VerifyToken>, ServiceError> {
        let key = keys::verify_token(&token_hash(token));
        match self.store.load::<VerifyToken>(&key) {
            // Issued before tokens had an expiry (a bare customer id): honoured as before,
            // since those customers have no other way to verify.
            Err(StoreError::Codec { .. }) => Ok(self
                .store
                .load::<uuid::Uuid>(&key)?
                .map(|id| VerifyToken { customer_id: CustomerId(id), expires_at: Timestamp(i64::MAX) })),
            other => Ok(other?),
        }
    }

    /// A new session token for a correct email/password pair. `client` is the caller's
    /// address, for the per-address limit.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<(String, CustomerId), ServiceError> {
        self.throttle.check(email, client)?;
        let found = match Email::parse(email) {
            Ok(e) => self.find_by_email(&e)?,
            Err(_) => None,
        };
        let stored_hash = found.as_ref().map_or_else(|| self.decoy_hash.to_string(), |c| c.password_hash.clone());
        let pw = password.to_string();
        // An unknown email verifies against the decoy: same work, same permit, same answer.
        let ok = self.hash_permits.run(move || verify_password(&stored_hash, &pw)).await?;
        let customer = match (ok, found) {
            (true, Some(c)) => c,
            _ => return Err(AccountError::InvalidCredentials.into()),
        };
        let token = session_token(customer.customer_id);
        let now = Timestamp::now();
        let session = Session {
            customer_id: customer.customer_id,
            created_at: now,
            expires_at: now.plus_millis(self.settings.auth.session_ttl_secs.saturating_mul(1000)),
        };
        let digest = token_hash(&token);
        let ticket = self.sessions.ticket();
        // A new token: no server has it cached (unknown tokens are not cached).
        self.store.commit(WriteSet::new().save(keys::session(&digest), &session)).await?;
        self.sessions.put(digest, session.customer_id, session.expires_at, ticket);
        Ok((token, customer.customer_id))
    }

    /// Ends the session of `token` (logout). Unknown tokens are already ended.
    pub async fn logout(&self, token: &str) -> Result<(), ServiceError> {
        let digest = token_hash(token);
        self.sessions.revoke(digest);
        let ws = WriteSet::new().remove(keys::session(&digest)).invalidate(Invalidation::Session(digest));
        self.store.commit(ws).await?;
        Ok(())
    }

    /// The customer a session token belongs to, if it is valid and not expired.
    pub fn authenticate(&self, token: &str) -> Result<Option<CustomerId>, ServiceError> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        let (digest, now) = (token_hash(token), Timestamp::now());
        if let Some(customer) = self.sessions.get(&digest, now) {
            return Ok(Some(customer));
        }
        let ticket = self.sessions.ticket();
        let Some(session) = self.store.load::<Session>(&keys::session(&digest))? else { return Ok(None) };
        if session.expires_at <= now {
            return Ok(None);
        }
        self.sessions.put(digest, session.customer_id, session.expires_at, ticket);
        Ok(Some(session.customer_id))
    }

    pub fn get(&self, id: CustomerId) -> Result<Option<Customer>, ServiceError> {
        if let Some(customer) = self.customers.get(&id) {
            return Ok(Some(customer));
        }
        let ticket = self.customers.ticket();
        let found = self.store.load::<Customer>(&keys::customer(id))?;
        Ok(found.map(|customer| self.customers.read(id, customer, ticket)))
    }

    /// A session signed out on another server (its invalidation): refused here from now on.
    pub fn forget_session(&self, digest: [u8; 32]) {
        self.sessions.revoke(digest);
    }

    /// A customer changed on another server (its invalidation): read from the store next.
    pub fn forget_customer(&self, id: CustomerId) {
        self.customers.forget(&id);
    }

    /// Anything may have changed (invalidations were missed): every session and customer is
    /// read from the store next.
    pub fn forget_cached(&self) {
        self.sessions.forget_all();
        self.customers.forget_all();
    }

    /// The customer registered under this email (normalized as accounts are looked up).
    pub fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, ServiceError> {
        match self.store.load::<uuid::Uuid>(&keys::customer_email(email))? {
            Some(id) => self.get(CustomerId(id)),
            None => Ok(None),
        }
    }
}

/// A session token's prefix (the operators' console names its sessions alike, without an
/// affinity: they are never routed by partition).
const SESSION_PREFIX: &str = "cws";

/// A fresh session token of `customer` (see the module's doc for its format).
pub fn session_token(customer: CustomerId) -> String {
    new_token(&format!("{SESSION_PREFIX}_{}", Affinity::of(&customer.0).hex()))
}

/// The affinity a session token carries: `None` for anything not shaped exactly like
/// [`session_token`]'s (an older token, another kind of token, garbage). Says nothing of
/// whether the token is valid: that takes its digest's lookup.
pub fn session_affinity(token: &str) -> Option<Affinity> {
    let rest = token.strip_prefix(SESSION_PREFIX)?.strip_prefix('_')?;
    let (affinity, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Affinity::from_hex(affinity)
}

fn argon2(settings: &Settings) -> Result<Argon2<'static>, ServiceError> {
    let params = Params::new(settings.auth.argon2_memory_kib, settings.auth.argon2_iterations, 1, None)
        .map_err(|e| ServiceError::from(Fault::internal_text(format!("argon2 params: {e}"))))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_password(settings: &Settings, password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(settings)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::from(Fault::internal_text(format!("argon2: {e}"))))
}

/// Verifies with the parameters recorded in the hash itself.
fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_token_carries_its_customers_affinity_and_nothing_else_parses_as_one() {
        let customer = CustomerId(uuid::Uuid::parse_str("01a2171c-069e-7033-8a4f-bfa6b3c9f9dd").unwrap());
        let token = session_token(customer);
        assert!(token.starts_with("cws_f9dd_"), "{token}");
        assert_eq!(token.len(), "cws_f9dd_".len() + 64);
        assert_eq!(session_affinity(&token), Some(Affinity(0xf9dd)));
        assert_ne!(session_token(customer), token, "random past the affinity");
        let secret = "0123456789abcdef".repeat(4);
        let old = format!("cws_{secret}");
        assert_eq!(session_affinity(&old), None, "a token from before the affinity routes nowhere");
        for other in [
            "".to_string(),
            "cws_".to_string(),
            "cws_forged".to_string(),
            "cws_guess".to_string(),
            "cws_f9dd_".to_string(),
            format!("cws_f9dd_{}", &secret[1..]),
            format!("cws_f9dd_{secret}0"),
            format!("cws_f9d_{secret}"),
            format!("cws_zzzz_{secret}"),
            format!("cws_f9dd_{}", "g".repeat(64)),
            format!("cwv_f9dd_{secret}"),
            format!("cwsf9dd_{secret}"),
            format!("cws_f9dd_{secret}_extra"),
            "cws_f9dd_é".to_string(),
        ] {
            assert_eq!(session_affinity(&other), None, "{other:?}");
        }
    }
}
