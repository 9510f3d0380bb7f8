//! Who answers a request: this server itself once it leads (holds the store's lease and
//! has built its shop), else the leader, to which a follower forwards the request as it
//! came (method, path, query, headers, body: a webhook's signature still verifies) and
//! relays the answer. Clients and webhook senders can so reach any server of a cluster.
//!
//! A request is forwarded at most once: the forwarded copy carries [`HOP_HEADER`], and a
//! server that receives one without leading refuses it (503) instead of passing it on.
//! A follower answers `/healthz` and `/metrics` itself (they describe this process).
//! It tells the leader the client's address, signed (see [`super::relayed`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::relayed::{RelayKey, Relayed, CLIENT_HEADER};
use super::ApiError;
use super::{response, HttpError};
use crate::config::ServerSettings;
use crate::metrics;
use crate::startup::Shop;
use crate::store::{Membership, NodeView};

/// Names the server that forwarded a request (its node id): the leader serves it, a
/// follower refuses it.
pub const HOP_HEADER: &str = "x-cartwright-forwarded";

/// How long a forwarded request may take at the leader (a checkout waits for its saga up
/// to `checkout.sync_wait_ms`).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What answers this server's requests.
pub struct Front {
    /// The limits on reading a request (its body's size and time), whoever answers it.
    pub(super) server: ServerSettings,
    shop: OnceLock<Arc<Shop>>,
    follower: Option<Forwarder>,
    /// Checks the client addresses followers forward (none on the embedded store).
    relay_key: Option<RelayKey>,
}

impl Front {
    /// A server that serves every request itself from the start.
    pub fn serving(shop: Arc<Shop>, relay_key: Option<RelayKey>) -> Arc<Front> {
        let front = Front { server: shop.settings.server.clone(), shop: OnceLock::new(), follower: None, relay_key };
        let _ = front.shop.set(shop);
        Arc::new(front)
    }

    /// A server that forwards to the leader until [`Front::lead`].
    pub fn following(server: ServerSettings, forwarder: Forwarder) -> Arc<Front> {
        let relay_key = forwarder.relay_key.clone();
        Arc::new(Front { server, shop: OnceLock::new(), follower: Some(forwarder), relay_key })
    }

    /// From now on this server serves requests itself.
    pub fn lead(&self, shop: Arc<Shop>) {
        if self.shop.set(shop).is_ok() {
            tracing::info!("leading: this server now serves requests itself");
        }
    }

    pub(super) fn shop(&self) -> Option<&Arc<Shop>> {
        self.shop.get()
    }

    pub(super) fn forwarder(&self) -> Option<&Forwarder> {
        self.follower.as_ref()
    }

    /// The client's address for a request this server serves: the one a follower forwarded
    /// when its signature checks, else the TCP `peer`.
    pub(super) fn client_address(&self, req: &Incoming<'_>, peer: Option<SocketAddr>) -> Option<SocketAddr> {
        let (Some(key), Some(claimed)) = (&self.relay_key, req.headers.get(CLIENT_HEADER)) else {
            return peer;
        };
        let Some(forwarder) = req.headers.get(HOP_HEADER).and_then(|v| v.to_str().ok()) else {
            return peer;
        };
        let target = target(req.path, req.raw_query);
        let relayed = Relayed { forwarder, method: req.method, target: &target, body: &req.body };
        match key.verify(claimed, &relayed) {
            Some(client) => Some(client),
            None => {
                // Anyone can send the header; only a wrong key among servers would be news.
                tracing::debug!(?peer, "a forwarded client address whose signature does not check: ignored");
                peer
            }
        }
    }
}

/// Path and query as on a request line.
fn target(path: &str, raw_query: &str) -> String {
    if raw_query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{raw_query}")
    }
}

/// Forwards a follower's requests to the leader it finds in the cluster's tables.
pub struct Forwarder {
    membership: Arc<Membership>,
    node_id: String,
    client: reqwest::Client,
    /// The leader found last, and when: looked up again after a third of a lease, or at
    /// once when it does not answer.
    leader: Mutex<Option<(NodeView, Instant)>>,
    recheck: Duration,
    /// Signs the client's address for the leader (none on the embedded store).
    relay_key: Option<RelayKey>,
}

/// A request as a follower received it, to send on unchanged.
pub(super) struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The TCP peer: the client (or its proxy).
    pub remote: Option<SocketAddr>,
}

impl Forwarder {
    pub fn new(membership: Arc<Membership>, node_id: String, lease_ms: u64, relay_key: Option<RelayKey>) -> Forwarder {
        Forwarder {
            membership,
            node_id,
            client: reqwest::Client::builder()
                .timeout(FORWARD_TIMEOUT)
                // A leader that does not even accept the connection within a lease is gone.
                .connect_timeout(Duration::from_millis(lease_ms.max(100)))
                .build()
                .unwrap_or_default(),
            leader: Mutex::new(None),
            recheck: Duration::from_millis((lease_ms / 3).max(50)),
            relay_key,
        }
    }

    /// What a follower answers: `/healthz` and `/metrics` itself, anything else from the leader.
    pub(super) async fn answer(&self, req: Incoming<'_>) -> (&'static str, Result<warp::reply::Response, ApiError>) {
        if req.method == Method::GET && req.path == "/healthz" {
            let body = serde_json::json!({ "status": "ok", "role": "follower" });
            return ("healthz", Ok(response::json(200, &body)));
        }
        if req.method == Method::GET && req.path == "/metrics" {
            return ("metrics", Ok(response::text(200, metrics::render(), "text/plain; version=0.0.4")));
        }
        ("forwarded", self.forward(req).await)
    }

    async fn forward(&self, req: Incoming<'_>) -> Result<warp::reply::Response, ApiError> {
        if req.headers.contains_key(HOP_HEADER) {
            metrics::FORWARDED_REQUESTS.with_label_values(&["not_leader"]).inc();
            return Err(HttpError::NotLeader.into());
        }
        let Some(leader) = self.leader().await else {
            metrics::FORWARDED_REQUESTS.with_label_values(&["no_leader"]).inc();
            return Err(HttpError::NoLeader.into());
        };
        let url = format!("{}{}", leader.advertise_url.trim_end_matches('/'), target(req.path, req.raw_query));
        let mut headers = HeaderMap::with_capacity(req.headers.len() + 2);
        // A client's own client-address header is never passed on: the leader hears ours.
        for (name, value) in req.headers.iter().filter(|(name, _)| !is_hop_by_hop(name) && *name != CLIENT_HEADER) {
            headers.append(name.clone(), value.clone());
        }
        if let Ok(me) = HeaderValue::from_str(&self.node_id) {
            headers.insert(HOP_HEADER, me);
        }
        if let Some(client) = self.client_header(&url, &req) {
            headers.insert(CLIENT_HEADER, client);
        }
        let sent = self.client.request(req.method.clone(), &url).headers(headers).body(req.body).send().await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => return Err(self.unreachable(&leader, e)),
        };
        let status = answer.status();
        let mut relayed = HeaderMap::with_capacity(answer.headers().len());
        for (name, value) in answer.headers().iter().filter(|(name, _)| !is_hop_by_hop(name)) {
            relayed.append(name.clone(), value.clone());
        }
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(e) => return Err(self.unreachable(&leader, e)),
        };
        metrics::FORWARDED_REQUESTS.with_label_values(&["forwarded"]).inc();
        let mut response = warp::reply::Response::new(body.into());
        *response.status_mut() = status;
        *response.headers_mut() = relayed;
        Ok(response)
    }

    /// The client's address, signed for the request as it will reach the leader (the
    /// target as the parsed URL sends it, which may encode the path differently from the
    /// client; a URL that does not parse is refused when sending, signed or not).
    fn client_header(&self, url: &str, req: &Incoming<'_>) -> Option<HeaderValue> {
        let (key, client) = (self.relay_key.as_ref()?, req.remote?);
        let url = reqwest::Url::parse(url).ok()?;
        let target = target(url.path(), url.query().unwrap_or(""));
        key.sign(client, &Relayed { forwarder: &self.node_id, method: req.method, target: &target, body: &req.body })
    }

    /// The leader did not answer: look it up again next time.
    fn unreachable(&self, leader: &NodeView, e: reqwest::Error) -> ApiError {
        metrics::FORWARDED_REQUESTS.with_label_values(&["failed"]).inc();
        if let Ok(mut cached) = self.leader.lock() {
            cached.take();
        }
        tracing::warn!(leader = %leader.node_id, url = %leader.advertise_url, error = %e, "the leader did not answer a forwarded request");
        if e.is_connect() {
            // Never sent: nothing was applied, so this is a 503 to retry, like no leader.
            return HttpError::NoLeader.into();
        }
        HttpError::LeaderUnreachable(format!("{} at {}", leader.node_id, leader.advertise_url)).into()
    }

    /// The leader, from the cache while it is fresh, else from the database.
    async fn leader(&self) -> Option<NodeView> {
        if let Some((leader, at)) = self.leader.lock().ok()?.as_ref() {
            if at.elapsed() < self.recheck {
                return Some(leader.clone());
            }
        }
        let membership = self.membership.clone();
        let found = tokio::task::spawn_blocking(move || membership.leader()).await.ok()?;
        let found = match found {
            Ok(found) => found.filter(|l| l.node_id != self.node_id),
            Err(e) => {
                tracing::warn!(error = %e, "could not look the cluster's leader up");
                None
            }
        };
        let mut cached = self.leader.lock().ok()?;
        *cached = found.clone().map(|l| (l, Instant::now()));
        found
    }
}

/// Headers that describe one connection, not the request: never passed on.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_stay_behind_and_the_request_s_own_go_on() {
        for name in ["connection", "transfer-encoding", "content-length", "upgrade"] {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["authorization", "cookie", "idempotency-key", "cartwright-signature", "host", "origin"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }
}
