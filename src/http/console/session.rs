//! Console sessions: a staff token signs in once and is exchanged for a random session id
//! carried in a cookie (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` behind
//! TLS). The sessions themselves (in the store and answered from memory once read, expiry
//! checked whatever the browser keeps, a CSRF token each) are kept by [`Sessions`], which
//! the `Shop` holds; this module reads and writes the cookie and checks a form's origin.

use std::time::Duration;

use crate::config::Settings;
use crate::server::Request;
pub use crate::services::staff_sessions::{Role, Session, Sessions};
use crate::services::ServiceError;

pub const COOKIE: &str = "cartwright_console";

/// The live session of this request's cookie, if any; an expired one is none.
pub fn current(sessions: &Sessions, req: &Request) -> Result<Option<Session>, ServiceError> {
    match cookie(req, COOKIE) {
        Some(id) => sessions.current(id),
        None => Ok(None),
    }
}

/// Ends the session of this request's cookie.
pub async fn end(sessions: &Sessions, req: &Request) -> Result<(), ServiceError> {
    match cookie(req, COOKIE) {
        Some(id) => sessions.end(id).await,
        None => Ok(()),
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

    #[tokio::test]
    async fn the_session_cookie_is_found_among_others_and_expired_or_ended_sessions_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&settings(|s| s.storage.path = dir.path().into()).storage).unwrap();
        let sessions = Sessions::new(&settings(|_| {}), store.clone());
        let with_cookie =
            |id: &str| request(&[("cookie", &format!("theme=dark; {COOKIE}={id}; other=1"))], "127.0.0.1:1");
        let id = sessions.create(Role::Admin, Some("Ada".into())).await.unwrap();
        let found = current(&sessions, &with_cookie(&id)).unwrap().unwrap();
        assert_eq!((found.role, found.actor()), (Role::Admin, "admin:Ada".to_string()));
        assert!(found.csrf_matches(&found.csrf.clone()) && !found.csrf_matches("csrf_guess"));
        assert!(current(&sessions, &with_cookie("cws_guess")).unwrap().is_none());
        assert!(current(&sessions, &request(&[], "127.0.0.1:1")).unwrap().is_none(), "no cookie");

        let again = Sessions::new(&settings(|_| {}), store.clone());
        assert!(current(&again, &with_cookie(&id)).unwrap().is_some(), "held by the store, not the instance");
        // One instance serves at a time (the leader's): it is the one that signs out.
        end(&again, &with_cookie(&id)).await.unwrap();
        assert!(current(&again, &with_cookie(&id)).unwrap().is_none(), "ended at once");
        let next = Sessions::new(&settings(|_| {}), store.clone());
        assert!(current(&next, &with_cookie(&id)).unwrap().is_none(), "ended in the store, for every later server");

        let id = sessions.create(Role::Fulfillment, None).await.unwrap();
        let rotated = Sessions::new(&settings(|s| s.auth.admin_token = "a-new-admin-token".into()), store.clone());
        let admin = sessions.create(Role::Admin, None).await.unwrap();
        assert!(current(&rotated, &with_cookie(&admin)).unwrap().is_none(), "the admin token was rotated");
        assert!(current(&rotated, &with_cookie(&id)).unwrap().is_some(), "the fulfillment token was not");

        let expired = Sessions::new(&settings(|s| s.console.session_ttl_secs = 0), store.clone());
        let id = expired.create(Role::Fulfillment, None).await.unwrap();
        assert!(current(&expired, &with_cookie(&id)).unwrap().is_none());
        store.close().unwrap();
    }
}
