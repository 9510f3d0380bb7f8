//! Console sessions: a staff token signs in once and is exchanged for a random session id
//! carried in a cookie (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` behind
//! TLS). Sessions live in memory, under the SHA-256 of their id, so a restart signs every
//! operator out; their expiry is checked here, whatever the browser keeps. Each session has
//! its own CSRF token, which every state-changing form carries back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{AuthSettings, Settings};
use crate::http::Request;
use crate::services::login_guard::LoginThrottle;
use crate::services::{new_token, token_hash};

pub const COOKIE: &str = "cartwright_console";

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
    pub fn check_sign_in(&self, client: Option<IpAddr>) -> Result<(), crate::error::AppError> {
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

    /// The live session of this request's cookie; an expired one is dropped.
    pub fn current(&self, req: &Request) -> Option<Session> {
        let id = cookie(req, COOKIE)?;
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

    /// Ends the session of this request's cookie.
    pub fn end(&self, req: &Request) {
        if let Some(id) = cookie(req, COOKIE) {
            self.by_digest.lock().unwrap_or_else(|p| p.into_inner()).remove(&token_hash(id));
        }
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(warp::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// Whether the browser reached us over HTTPS: configured so, or said so by a trusted proxy.
pub fn behind_tls(settings: &Settings, req: &Request) -> bool {
    let console = &settings.console;
    let from_trusted_proxy = req
        .remote
        .is_some_and(|peer| console.trusted_proxies.iter().any(|p| p.to_canonical() == peer.ip().to_canonical()));
    let forwarded_https = req
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    console.secure_cookies || (from_trusted_proxy && forwarded_https)
}

/// The `Set-Cookie` value carrying a new session.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{secure}", ttl.as_secs())
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

/// The strict origin check of a state-changing request: an `Origin` (or, without one, a
/// `Referer`) must be this server's own origin. A request with neither (some privacy
/// settings strip both) still needs the session's CSRF token.
pub fn same_origin(settings: &Settings, req: &Request) -> bool {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(host) = header("host") else {
        return header("origin").is_none() && header("referer").is_none();
    };
    let scheme = if behind_tls(settings, req) { "https" } else { "http" };
    let expected = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(origin) = header("origin") {
        return origin.to_ascii_lowercase() == expected;
    }
    match header("referer") {
        Some(referer) => {
            let referer = referer.to_ascii_lowercase();
            referer == expected || referer.starts_with(&format!("{expected}/"))
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &str)], peer: &str) -> Request {
        let mut map = warp::http::HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        Request {
            method: warp::http::Method::POST,
            path: "/console/sign-in".into(),
            query: Default::default(),
            headers: map,
            body: Default::default(),
            remote: Some(peer.parse().unwrap()),
        }
    }

    fn settings(adjust: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::load_layers(None, false).unwrap();
        adjust(&mut s);
        s
    }

    #[test]
    fn only_our_own_origin_or_referer_passes_and_https_only_behind_tls() {
        let plain = settings(|_| {});
        let host = ("host", "shop.example:8080");
        let check = |s: &Settings, h: &[(&'static str, &str)]| same_origin(s, &request(h, "10.0.0.1:5000"));
        assert!(check(&plain, &[host, ("origin", "http://shop.example:8080")]));
        assert!(check(&plain, &[host, ("origin", "HTTP://Shop.Example:8080")]));
        assert!(!check(&plain, &[host, ("origin", "http://shop.example:8081")]));
        assert!(!check(&plain, &[host, ("origin", "https://shop.example:8080")]));
        assert!(!check(&plain, &[host, ("origin", "null")]));
        assert!(check(&plain, &[host, ("referer", "http://shop.example:8080/console/sagas")]));
        assert!(!check(&plain, &[host, ("referer", "http://shop.example:8080.evil.example/")]));
        assert!(check(&plain, &[host]), "neither header: the CSRF token decides");
        assert!(!check(&plain, &[("origin", "http://shop.example:8080")]), "an origin and no host");

        let proxied = settings(|s| s.console.trusted_proxies = vec!["10.0.0.1".parse().unwrap()]);
        let https = [host, ("x-forwarded-proto", "https"), ("origin", "https://shop.example:8080")];
        assert!(check(&proxied, &https));
        assert!(behind_tls(&proxied, &request(&https, "[::ffff:10.0.0.1]:5000")), "v4-mapped peer");
        assert!(!same_origin(&proxied, &request(&https, "10.0.0.2:5000")), "not a trusted proxy");
        assert!(behind_tls(&settings(|s| s.console.secure_cookies = true), &request(&[], "10.0.0.9:1")));
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_expired_sessions_are_gone() {
        let sessions = Sessions::new(&settings(|_| {}));
        let id = sessions.create(Role::Admin, Some("Ada".into()));
        let cookie = format!("theme=dark; {COOKIE}={id}; other=1");
        let found = sessions.current(&request(&[("cookie", &cookie)], "127.0.0.1:1")).unwrap();
        assert_eq!((found.role, found.actor()), (Role::Admin, "admin:Ada".to_string()));
        assert!(found.csrf_matches(&found.csrf.clone()) && !found.csrf_matches("csrf_guess"));
        assert!(sessions.current(&request(&[("cookie", &format!("{COOKIE}=cws_guess"))], "127.0.0.1:1")).is_none());

        let expired = Sessions::new(&settings(|s| s.console.session_ttl_secs = 0));
        let id = expired.create(Role::Fulfillment, None);
        assert!(expired.current(&request(&[("cookie", &format!("{COOKIE}={id}"))], "127.0.0.1:1")).is_none());
    }
}
