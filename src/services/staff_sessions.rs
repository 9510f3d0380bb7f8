//! The console's sign-in sessions (staff who signed in with the admin or fulfillment
//! token): in the store, under the SHA-256 of their id, so an operator stays signed in
//! across a restart, an upgrade or another server of the cluster taking the lead. Their
//! expiry is checked here, whatever the browser keeps; the sweeper deletes expired ones
//! (`credential_sweep`). Each session has its own CSRF token, which every state-changing
//! form carries back. The `Shop` holds them; the console (`console::session`) carries their
//! ids in a cookie. Only holders of a staff token create sessions, at the rate the sign-in
//! limit allows, so the table stays small.
//!
//! Every console page and form asks for its session, so a session once read (or created)
//! is answered from memory ([`SessionCache`], as the customers' sessions are): the store
//! stays the truth, read on a miss. A sign-out drops the cached session before its delete
//! is written, and its delete names it in the cache invalidation log, so every other
//! server refuses it within one poll (see `caches`, `invalidations`). The expiry is checked
//! on every answer, cached or not.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::caches::SessionCache;
use super::login_guard::LoginThrottle;
use super::{new_token, token_hash, ServiceError};
use crate::config::{AuthSettings, Settings};
use crate::domain::time::Timestamp;
use crate::store::{keys, Invalidation, StaffSession, Store, WriteSet};

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
    /// Live sessions by the digest of their id: only ones opened with today's tokens.
    cache: SessionCache<Session>,
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
            cache: SessionCache::default(),
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
        let digest = token_hash(&id);
        let ticket = self.cache.ticket();
        self.store.commit(WriteSet::new().save(keys::staff_session(&digest), &session)).await?;
        // Cached once durable, as a read would have found it.
        let expires_at = session.expires_at;
        self.cache.put(digest, Session { role, operator: session.operator, csrf: session.csrf }, expires_at, ticket);
        Ok(id)
    }

    /// The live session of this id (a cookie's value). An expired one is no session, nor
    /// one opened with a staff token that has been rotated since (what a restart with the
    /// new token did when sessions were in memory).
    pub fn current(&self, id: &str) -> Result<Option<Session>, ServiceError> {
        self.current_at(id, Timestamp::now())
    }

    /// [`Sessions::current`] at `now`: from memory when cached and unexpired, else from the
    /// store (and then cached, if live).
    fn current_at(&self, id: &str, now: Timestamp) -> Result<Option<Session>, ServiceError> {
        let digest = token_hash(id);
        if let Some(session) = self.cache.get(&digest, now) {
            return Ok(Some(session));
        }
        let ticket = self.cache.ticket();
        let Some(s) = self.store.load::<StaffSession>(&keys::staff_session(&digest))? else {
            return Ok(None);
        };
        if s.expires_at <= now || s.token_fingerprint != self.token_fingerprint(s.role) {
            return Ok(None);
        }
        let session = Session { role: s.role, operator: s.operator, csrf: s.csrf };
        self.cache.put(digest, session.clone(), s.expires_at, ticket);
        Ok(Some(session))
    }

    /// Ends the session of this id (durably: a signed-out cookie never works again). The
    /// cached copy goes first, so no page answered meanwhile finds it, nor caches it again.
    pub async fn end(&self, id: &str) -> Result<(), ServiceError> {
        let digest = token_hash(id);
        self.cache.revoke(digest);
        let ws = WriteSet::new().remove(keys::staff_session(&digest)).invalidate(Invalidation::StaffSession(digest));
        self.store.commit(ws).await?;
        Ok(())
    }

    /// A session signed out on another server (its invalidation): refused here from now on.
    pub fn forget(&self, digest: [u8; 32]) {
        self.cache.revoke(digest);
    }

    /// Invalidations were missed: every session is read from the store next.
    pub fn forget_all(&self) {
        self.cache.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::credential_sweep::sweep_expired;

    /// A fresh store with sessions of a minute, and the settings it was opened with.
    fn open() -> (tempfile::TempDir, Settings, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        settings.console.session_ttl_secs = 60;
        let store = Store::open(&settings.storage).unwrap();
        (dir, settings, store)
    }

    /// Deletes the session's row behind the cache's back (as nothing in the server does).
    async fn delete_row(store: &Store, id: &str) {
        store.commit(WriteSet::new().remove(keys::staff_session(&token_hash(id)))).await.unwrap();
        assert!(!store.exists(&keys::staff_session(&token_hash(id))).unwrap());
    }

    #[tokio::test]
    async fn a_session_read_once_is_answered_from_memory_until_its_expiry_or_sign_out() {
        let (_dir, settings, store) = open();
        let opener = Sessions::new(&settings, store.clone());
        let id = opener.create(Role::Admin, Some("Ada".into())).await.unwrap();

        // Another instance (a server that took the lead) reads it from the store once...
        let sessions = Sessions::new(&settings, store.clone());
        let now = Timestamp::now();
        let read = sessions.current_at(&id, now).unwrap().expect("in the store");
        delete_row(&store, &id).await;
        // ...and then from memory: the row is gone, the same session is answered.
        let cached = sessions.current_at(&id, now).unwrap().expect("answered from memory");
        assert_eq!((cached.role, cached.actor(), &cached.csrf), (Role::Admin, "admin:Ada".into(), &read.csrf));
        assert!(opener.current_at("cws_guess", now).unwrap().is_none(), "an unknown id is no session");

        // Refused at its expiry (60 s after sign-in), cached or not.
        let expiry = now.plus_millis(60_000);
        assert!(sessions.current_at(&id, expiry.plus_millis(-1_000)).unwrap().is_some());
        assert!(sessions.current_at(&id, expiry).unwrap().is_none(), "expired though cached");
        assert!(sessions.current_at(&id, expiry.plus_millis(3_600_000)).unwrap().is_none());

        // The instance that created a session answers it without reading it at all.
        let id = opener.create(Role::Fulfillment, None).await.unwrap();
        delete_row(&store, &id).await;
        assert_eq!(opener.current(&id).unwrap().map(|s| s.role), Some(Role::Fulfillment));
        // Signing out drops it at once, though the store had nothing left to delete.
        opener.end(&id).await.unwrap();
        assert!(opener.current(&id).unwrap().is_none(), "a signed-out cookie is refused");
        store.close().unwrap();
    }

    #[tokio::test]
    async fn a_signed_out_session_is_refused_at_once_and_never_cached_again() {
        let (_dir, settings, store) = open();
        let sessions = Sessions::new(&settings, store.clone());
        let id = sessions.create(Role::Admin, None).await.unwrap();
        let csrf = sessions.current(&id).unwrap().unwrap().csrf;
        sessions.end(&id).await.unwrap();
        assert!(sessions.current(&id).unwrap().is_none());
        assert!(!store.exists(&keys::staff_session(&token_hash(&id))).unwrap(), "deleted from the store");
        // A read that found the row before the delete, coming back late, caches nothing.
        let late = Session { role: Role::Admin, operator: None, csrf };
        sessions.cache.put(token_hash(&id), late, Timestamp(i64::MAX), sessions.cache.ticket());
        assert!(sessions.current(&id).unwrap().is_none(), "still signed out");
        // Another server taking the lead finds nothing either.
        assert!(Sessions::new(&settings, store.clone()).current(&id).unwrap().is_none());
        store.close().unwrap();
    }

    #[tokio::test]
    async fn the_sweeper_deleting_an_expired_session_leaves_no_cached_copy_valid() {
        let (_dir, settings, store) = open();
        let sessions = Sessions::new(&settings, store.clone());
        let id = sessions.create(Role::Admin, None).await.unwrap();
        let expires_at =
            store.load::<StaffSession>(&keys::staff_session(&token_hash(&id))).unwrap().unwrap().expires_at;
        assert!(sessions.current(&id).unwrap().is_some(), "cached");

        assert_eq!(sweep_expired(&store, expires_at.plus_millis(-1)).await.unwrap(), 0, "live: kept");
        assert_eq!(sweep_expired(&store, expires_at).await.unwrap(), 1, "expired: deleted");
        assert!(!store.exists(&keys::staff_session(&token_hash(&id))).unwrap());
        assert!(sessions.current_at(&id, expires_at).unwrap().is_none(), "the cached copy expired with it");
        assert!(sessions.current_at(&id, expires_at.plus_millis(1)).unwrap().is_none());
        store.close().unwrap();
    }

    #[tokio::test]
    async fn a_session_of_a_rotated_token_is_neither_answered_nor_cached() {
        let (_dir, settings, store) = open();
        let id = Sessions::new(&settings, store.clone()).create(Role::Admin, None).await.unwrap();
        let mut rotated = settings.clone();
        rotated.auth.admin_token = "a-new-admin-token".into();
        let sessions = Sessions::new(&rotated, store.clone());
        assert!(sessions.current(&id).unwrap().is_none());
        assert!(sessions.cache.get(&token_hash(&id), Timestamp::now()).is_none(), "nothing cached");
        store.close().unwrap();
    }
}
