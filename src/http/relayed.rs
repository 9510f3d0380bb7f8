//! The client's address behind a follower. A request a follower forwards reaches the leader
//! from the follower's address, yet the leader keys login throttles on the client's (and
//! believes `X-Forwarded-Proto` from trusted proxies by it). So the follower sends the
//! address it saw in [`CLIENT_HEADER`], signed with the cluster's shared secret (HMAC-SHA256
//! over the forwarding server's id, the address, and the request: method, target and a
//! digest of the body). The leader uses that address only when the signature checks;
//! otherwise the TCP peer, as for any request. A client cannot forge the header (it does not
//! know the secret: a follower drops a client's own copy, and the leader ignores an unsigned
//! or wrongly signed one), nor reuse a signed one on another request.
//!
//! The same key signs the calls one server makes to another (`http/stock_calls.rs`): over
//! the caller's id, the time, the target and the body's digest, believed within a minute.

use std::net::SocketAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, Method};

/// `<client address> <hex HMAC>`, added by a follower to each request it forwards.
pub const CLIENT_HEADER: &str = "x-cartwright-client";

/// The cluster's shared secret, as the key of the signature.
#[derive(Clone)]
pub struct RelayKey(Arc<[u8]>);

/// What a signature binds the client's address to: who forwarded which request.
pub(super) struct Relayed<'a> {
    /// The forwarding server's node id (the hop header's value).
    pub forwarder: &'a str,
    pub method: &'a Method,
    /// Path and query, as on the request line.
    pub target: &'a str,
    pub body: &'a [u8],
}

impl RelayKey {
    pub fn new(secret: &[u8]) -> RelayKey {
        RelayKey(secret.into())
    }

    /// The header's value naming `client` for `request`.
    pub(super) fn sign(&self, client: SocketAddr, request: &Relayed<'_>) -> Option<HeaderValue> {
        let signature = hex::encode(self.mac(client, request).finalize().into_bytes());
        HeaderValue::from_str(&format!("{client} {signature}")).ok()
    }

    /// The address the header names, if its signature is this key's for `request`.
    pub(super) fn verify(&self, header: &HeaderValue, request: &Relayed<'_>) -> Option<SocketAddr> {
        let (client, signature) = header.to_str().ok()?.split_once(' ')?;
        let client: SocketAddr = client.parse().ok()?;
        let signature = hex::decode(signature).ok()?;
        // Compared in constant time.
        self.mac(client, request).verify_slice(&signature).ok()?;
        Some(client)
    }

    fn mac(&self, client: SocketAddr, request: &Relayed<'_>) -> Hmac<Sha256> {
        let body = Sha256::digest(request.body);
        let client = client.to_string();
        self.mac_of([
            b"cartwright client address v1",
            request.forwarder.as_bytes(),
            client.as_bytes(),
            request.method.as_str().as_bytes(),
            request.target.as_bytes(),
            &body,
        ])
    }

    /// The header's value of a call from server `caller` at `at_ms` (Unix time) to `target`
    /// with `body` (see `http/stock_calls.rs`): `<caller> <at_ms> <hex HMAC>`.
    pub(super) fn sign_call(&self, caller: &str, at_ms: i64, target: &str, body: &[u8]) -> Option<HeaderValue> {
        let signature = hex::encode(self.call_mac(caller, at_ms, target, body).finalize().into_bytes());
        HeaderValue::from_str(&format!("{caller} {at_ms} {signature}")).ok()
    }

    /// The calling server, if the header's signature is this key's for `target` and `body`
    /// and was made within [`CALL_FRESH_MS`] of `now_ms` (a recorded call replayed later
    /// is refused).
    pub(super) fn verify_call(&self, header: &HeaderValue, target: &str, body: &[u8], now_ms: i64) -> Option<String> {
        let mut parts = header.to_str().ok()?.splitn(3, ' ');
        let (caller, at_ms, signature) = (parts.next()?, parts.next()?.parse::<i64>().ok()?, parts.next()?);
        if (now_ms - at_ms).abs() > CALL_FRESH_MS {
            return None;
        }
        let signature = hex::decode(signature).ok()?;
        self.call_mac(caller, at_ms, target, body).verify_slice(&signature).ok()?;
        Some(caller.to_string())
    }

    fn call_mac(&self, caller: &str, at_ms: i64, target: &str, body: &[u8]) -> Hmac<Sha256> {
        let body = Sha256::digest(body);
        let at = at_ms.to_be_bytes();
        self.mac_of([b"cartwright call v1", caller.as_bytes(), &at, target.as_bytes(), &body])
    }

    /// The HMAC of `parts`, each length-prefixed: no two different messages sign the same bytes.
    fn mac_of<const N: usize>(&self, parts: [&[u8]; N]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

/// How far a call's time may be from the receiving server's clock: the servers' clocks
/// agree within this (NTP), and a call takes far less.
pub(super) const CALL_FRESH_MS: i64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(target: &'a str, body: &'a [u8]) -> Relayed<'a> {
        Relayed { forwarder: "follower", method: &Method::POST, target, body }
    }

    #[test]
    fn a_call_is_believed_signed_with_the_key_for_its_target_and_body_within_a_minute() {
        let key = RelayKey::new(b"a secret the cluster shares");
        let (target, body, at) = ("/internal/v1/stock", br#"{"kind":"reserve"}"#.as_slice(), 1_700_000_000_000);
        let header = key.sign_call("node-a", at, target, body).unwrap();
        assert_eq!(key.verify_call(&header, target, body, at + 5_000).as_deref(), Some("node-a"));
        assert_eq!(key.verify_call(&header, target, body, at - 5_000).as_deref(), Some("node-a"), "clocks differ");
        assert_eq!(key.verify_call(&header, target, body, at + CALL_FRESH_MS + 1), None, "replayed later");
        assert_eq!(key.verify_call(&header, target, b"{}", at), None, "another body");
        assert_eq!(key.verify_call(&header, "/internal/v1/other", body, at), None, "another target");
        assert_eq!(RelayKey::new(b"another secret").verify_call(&header, target, body, at), None, "another key");
        let named_b = HeaderValue::from_str(&header.to_str().unwrap().replacen("node-a", "node-b", 1)).unwrap();
        assert_eq!(key.verify_call(&named_b, target, body, at), None, "the caller is signed too");
        for junk in ["", "node-a", "node-a x 00", "node-a 1 zz"] {
            assert_eq!(key.verify_call(&HeaderValue::from_static(junk), target, body, at), None, "{junk:?}");
        }
    }

    #[test]
    fn only_the_signed_address_for_the_same_request_and_key_is_believed() {
        let key = RelayKey::new(b"a secret the cluster shares");
        let client: SocketAddr = "203.0.113.7:50123".parse().unwrap();
        let login = request("/v1/auth/login", b"{}");
        let header = key.sign(client, &login).unwrap();
        assert_eq!(key.verify(&header, &login), Some(client));

        assert_eq!(RelayKey::new(b"another secret").verify(&header, &login), None, "another key");
        assert_eq!(key.verify(&header, &request("/v1/auth/register", b"{}")), None, "another target");
        assert_eq!(key.verify(&header, &request("/v1/auth/login", b"{ }")), None, "another body");
        let elsewhere = Relayed { forwarder: "other", ..request("/v1/auth/login", b"{}") };
        assert_eq!(key.verify(&header, &elsewhere), None, "another forwarder");
        let (_, signature) = header.to_str().unwrap().split_once(' ').unwrap();
        for forged in [format!("198.51.100.1:1 {signature}"), "203.0.113.7:50123".into(), "junk".into()] {
            assert_eq!(key.verify(&HeaderValue::from_str(&forged).unwrap(), &login), None, "{forged}");
        }
    }
}
