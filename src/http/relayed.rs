//! The client's address behind a follower. A request a follower forwards reaches the leader
//! from the follower's address, yet the leader keys login throttles on the client's (and
//! believes `X-Forwarded-Proto` from trusted proxies by it). So the follower sends the
//! address it saw in [`CLIENT_HEADER`], signed with the cluster's shared secret (HMAC-SHA256
//! over the forwarding server's id, the address, and the request: method, target and a
//! digest of the body). The leader uses that address only when the signature checks;
//! otherwise the TCP peer, as for any request. A client cannot forge the header (it does not
//! know the secret: a follower drops a client's own copy, and the leader ignores an unsigned
//! or wrongly signed one), nor reuse a signed one on another request.

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
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        let body = Sha256::digest(request.body);
        let client = client.to_string();
        let parts: [&[u8]; 6] = [
            b"cartwright client address v1",
            request.forwarder.as_bytes(),
            client.as_bytes(),
            request.method.as_str().as_bytes(),
            request.target.as_bytes(),
            &body,
        ];
        // Each part length-prefixed: no two different requests sign the same bytes.
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(target: &'a str, body: &'a [u8]) -> Relayed<'a> {
        Relayed { forwarder: "follower", method: &Method::POST, target, body }
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
