//! The console's sign-in sessions (staff who signed in with the admin or fulfillment
//! token): in the store, under the SHA-256 of their id, so an operator stays signed in
//! across a restart, an upgrade or another server of the cluster taking the lead. Their
//! expiry is checked here, whatever the browser keeps; the sweeper deletes expired ones
//! (`credential_sweep`). Each session has its own CSRF token, which every state-changing
//! form carries back. The `Shop` holds them; the console (`console::session`) carries their
//! ids in a cookie. Only holders of a staff token create sessions, at the rate the sign-in
//! limit allows, so the table stays small.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::login_guard::LoginThrottle;
use super::{new_token, token_hash, ServiceError};
use crate::config::{AuthSettings, Settings};
use crate::domain::time::Timestamp;
use crate::store::{keys, StaffSession, Store, WriteSet};

pub use crate::store::StaffRole as Role;

/// A live session, as the console's pages see it.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    /// The name the operator gave at sign-in, shown in pages and recorded in audit rows.
    pub operator: Option<String>,
    /// Rendered into forms (it is not the session id) and required back on every POST.
    pub csrf: String,
}

impl Session {
    /// Who an audit row names for an action done from this session: "admin" or "admin:Ada".
    pub fn actor(&self) -> String {
        match &self.operator {
            Some(name) => format!("{}:{name}", self.role.name()),
            None => self.role.name().to_string(),
        }
    }

    /// The form's CSRF token is this session's (compared as digests: the time taken says
    /// nothing about how much of a guess was right).
    pub fn csrf_matches(&self, given: &str) -> bool {
        token_hash(given) == token_hash(&self.csrf)
    }
}

pub struct Sessions {
    ttl: Duration,
    store: Store,
    throttle: Arc<LoginThrottle>,
    /// The fingerprints of today's admin and fulfillment tokens.
    admin: [u8; 32],
    fulfillment: [u8; 32],
}

/// What a session keeps of the staff token that opened it: enough to tell that the token
/// changed, and not the digest the sign-in compares (a copy of the store gives no token).
fn fingerprint(token: &str) -> [u8; 32] {
    token_hash(&format!("cartwright console session\0{token}"))
}

impl Sessions {
    pub fn new(settings: &Settings, store: Store) -> Sessions {
        // The per-address limit only: a per-account limit on the one staff account would
        // let anybody lock the operators out.
        let auth = AuthSettings {
            login_per_account_per_minute: 0,
            login_per_ip_per_minute: settings.console.sign_in_per_ip_per_minute,
            ..settings.auth.clone()
        };
        Sessions {
            ttl: Duration::from_secs(settings.console.session_ttl_secs),
            store,
            throttle: Arc::new(LoginThrottle::new(&auth)),
            admin: fingerprint(&settings.auth.admin_token),
            fulfillment: fingerprint(&settings.auth.fulfillment_token),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn token_fingerprint(&self, role: Role) -> [u8; 32] {
        match role {
            Role::Admin => self.admin,
            Role::Fulfillment => self.fulfillment,
        }
    }

    /// The sign-in limiter, for the task that keeps its memory bounded.
    pub fn throttle(&self) -> Arc<LoginThrottle> {
        self.throttle.clone()
    }

    /// Counts a sign-in attempt from `client`; refuses with TOO_MANY_REQUESTS over the limit.
    pub fn check_sign_in(&self, client: Option<IpAddr>) -> Result<(), ServiceError> {
        self.throttle.check("console", client)
    }

    /// A new session, durable before its id (the cookie value, kept only as a digest) is
    /// returned.
    pub async fn create(&self, role: Role, operator: Option<String>) -> Result<String, ServiceError> {
        let id = new_token("cws");
        let now = Timestamp::now();
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let session = StaffSession {
            role,
            operator,
            csrf: new_token("csrf"),
            token_fingerprint: self.token_fingerprint(role),
            created_at: now,
            expires_at: now.plus_millis(ttl_ms),
        };
        self.store.commit(WriteSet::new().save(keys::staff_session(&token_hash(&id)), &session)).await?;
        Ok(id)
    }

    /// The live session of this id (a cookie's value). An expired one is no session, nor
    /// one opened with a staff token that has been rotated since (what a restart with the
    /// new token did when sessions were in memory).
    pub fn current(&self, id: &str) -> Result<Option<Session>, ServiceError> {
        let Some(s) = self.store.load::<StaffSession>(&keys::staff_session(&token_hash(id)))? else {
            return Ok(None);
        };
        if s.expires_at <= Timestamp::now() || s.token_fingerprint != self.token_fingerprint(s.role) {
            return Ok(None);
        }
        Ok(Some(Session { role: s.role, operator: s.operator, csrf: s.csrf }))
    }

    /// Ends the session of this id (durably: a signed-out cookie never works again).
    pub async fn end(&self, id: &str) -> Result<(), ServiceError> {
        self.store.commit(WriteSet::new().remove(keys::staff_session(&token_hash(id)))).await?;
        Ok(())
    }
}
