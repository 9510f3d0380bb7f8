//! The console's sign-in sessions (staff who signed in with the admin or fulfillment
//! token): in memory, under the SHA-256 of their id, so a restart signs every operator out;
//! their expiry is checked here, whatever the browser keeps. Each session has its own CSRF
//! token, which every state-changing form carries back. The `Shop` holds them; the console
//! (`console::session`) carries their ids in a cookie.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::login_guard::LoginThrottle;
use super::{new_token, token_hash};
use crate::config::{AuthSettings, Settings};

/// Sessions held at most; at the cap the one closest to expiry makes room. Only holders of
/// a staff token can create sessions, so this bounds memory, not who gets in.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    /// Sees orders only.
    Fulfillment,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Fulfillment => "fulfillment",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    /// The name the operator gave at sign-in, shown in pages and recorded in audit rows.
    pub operator: Option<String>,
    /// Rendered into forms (it is not the session id) and required back on every POST.
    pub csrf: String,
    expires_at: Instant,
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
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
    throttle: Arc<LoginThrottle>,
}

impl Sessions {
    pub fn new(settings: &Settings) -> Sessions {
        // The per-address limit only: a per-account limit on the one staff account would
        // let anybody lock the operators out.
        let auth = AuthSettings {
            login_per_account_per_minute: 0,
            login_per_ip_per_minute: settings.console.sign_in_per_ip_per_minute,
            ..settings.auth.clone()
        };
        Sessions {
            ttl: Duration::from_secs(settings.console.session_ttl_secs),
            by_digest: Mutex::new(HashMap::new()),
            throttle: Arc::new(LoginThrottle::new(&auth)),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The sign-in limiter, for the task that keeps its memory bounded.
    pub fn throttle(&self) -> Arc<LoginThrottle> {
        self.throttle.clone()
    }

    /// Counts a sign-in attempt from `client`; refuses with TOO_MANY_REQUESTS over the limit.
    pub fn check_sign_in(&self, client: Option<IpAddr>) -> Result<(), super::ServiceError> {
        self.throttle.check("console", client)
    }

    /// A new session; returns its id (the cookie value), which is kept only as a digest.
    pub fn create(&self, role: Role, operator: Option<String>) -> String {
        let id = new_token("cws");
        let now = Instant::now();
        let session = Session { role, operator, csrf: new_token("csrf"), expires_at: now + self.ttl };
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(k) = map.iter().min_by_key(|(_, s)| s.expires_at).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(token_hash(&id), session);
        id
    }

    /// The live session of this id (a cookie's value); an expired one is dropped.
    pub fn current(&self, id: &str) -> Option<Session> {
        let digest = token_hash(id);
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&digest) {
            Some(s) if s.expires_at > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&digest);
                None
            }
            None => None,
        }
    }

    /// Ends the session of this id.
    pub fn end(&self, id: &str) {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner()).remove(&token_hash(id));
    }
}
