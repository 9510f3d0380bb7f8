//! Who answers a request: this server itself when it serves (holds leases and has built
//! its shop) and owns the request's partition (see [`super::home`]: partition 0's for what
//! has no partition; a route that describes this process is always answered here), else
//! the owner of that partition, to which the request is forwarded as it came (method,
//! path, query, headers, body: a webhook's signature still verifies) and whose answer is
//! relayed. Clients and webhook senders can so reach any server of a cluster. A webhook
//! goes to the owner of the order it names (its signature checked and the order read from
//! the payment or carrier index here first).
//!
//! A request is forwarded at most once: the forwarded copy carries [`HOP_HEADER`], and a
//! server that receives one for a partition it does not own refuses it (503) instead of
//! passing it on.
//! A follower answers `/healthz` and `/metrics` itself (they describe this process).
//! It tells the leader the client's address, signed (see [`super::relayed`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::home::{home, Home};
use super::relayed::{RelayKey, Relayed, CLIENT_HEADER};
use super::ApiError;
use super::{response, HttpError};
use crate::config::{ClusterSettings, ServerSettings};
use crate::domain::partition::{Partition, Partitions};
use crate::metrics;
use crate::saga::engine::RECOVERY_WAIT;
use crate::startup::Shop;
use crate::store::{Membership, Owner};

/// Names the server that forwarded a request (its node id): the owner serves it, a
/// follower refuses it.
pub const HOP_HEADER: &str = "x-cartwright-forwarded";

/// How long a forwarded request may take at its owner (a checkout waits for its saga up
/// to `checkout.sync_wait_ms`).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What answers this server's requests.
pub struct Front {
    /// The limits on reading a request (its body's size and time), whoever answers it.
    pub(super) server: ServerSettings,
    shop: OnceLock<Arc<Shop>>,
    /// To the owners of the partitions this server does not own (a server of a cluster).
    forwarder: Option<Arc<Forwarder>>,
    /// Checks the client addresses other servers forward (none on the embedded store).
    relay_key: Option<RelayKey>,
}

/// Who answers one request.
pub(super) enum Answerer<'a> {
    /// This server: it owns the request's partition.
    Here(&'a Arc<Shop>),
    /// The partition's owner, through the forwarder.
    Owner(&'a Forwarder, Partition),
    /// This server, once it has recovered the sagas of the partition, which it just took.
    Recovering(&'a Arc<Shop>, Partition),
    /// Nobody yet: a server without a cluster is built with its shop (never seen).
    Starting,
}

impl Front {
    /// A server that forwards each request to its partition's owner (if `forwarder`) until
    /// [`Front::lead`], then serves the partitions its store owns.
    pub fn new(server: ServerSettings, forwarder: Option<Arc<Forwarder>>, relay_key: Option<RelayKey>) -> Arc<Front> {
        Arc::new(Front { server, shop: OnceLock::new(), forwarder, relay_key })
    }

    /// From now on this server serves the requests of the partitions it owns itself.
    pub fn lead(&self, shop: Arc<Shop>) {
        let _ = self.shop.set(shop);
    }

    /// The shop, once this server serves.
    pub(super) fn shop(&self) -> Option<&Arc<Shop>> {
        self.shop.get()
    }

    /// The cluster's key (none on the embedded store).
    pub(super) fn relay_key(&self) -> Option<&RelayKey> {
        self.relay_key.as_ref()
    }

    /// This server when it serves and owns the request's partition (or the request
    /// describes this process), else the partition's owner.
    pub(super) fn answerer(&self, req: &Incoming<'_>) -> Answerer<'_> {
        let Some(forwarder) = &self.forwarder else {
            return self.shop.get().map_or(Answerer::Starting, Answerer::Here);
        };
        let Some(shop) = self.shop.get() else {
            let home = home(req.method, req.path, req.headers);
            return Answerer::Owner(forwarder, home.partition(forwarder.partitions).unwrap_or(Partition::SHARED));
        };
        let owned = shop.store.owned();
        let recovered = shop.sagas.recovered();
        if owned.is_every() && recovered.is_every() {
            return Answerer::Here(shop);
        }
        let partition = match home(req.method, req.path, req.headers) {
            Home::Webhook(source) => {
                let signature = req.headers.get("cartwright-signature").and_then(|v| v.to_str().ok());
                let now = crate::domain::time::Timestamp::now().0 / 1000;
                let order = shop.webhooks.order_named(source, signature, &req.body, now);
                Some(order.map_or(Partition::SHARED, |o| owned.count().of(&o.0)))
            }
            Home::WebhookReplay => {
                let order = super::home::replayed_webhook(req.path)
                    .and_then(|(source, event_id)| shop.webhooks.replay_order(source, &event_id));
                Some(order.map_or(Partition::SHARED, |o| owned.count().of(&o.0)))
            }
            other => other.partition(owned.count()),
        };
        match partition {
            Some(partition) if !owned.contains(partition) => Answerer::Owner(forwarder, partition),
            Some(partition) if !recovered.contains(partition) => Answerer::Recovering(shop, partition),
            _ => Answerer::Here(shop),
        }
    }

    /// As [`Front::answerer`], but a request of a partition this server just took waits
    /// (up to [`RECOVERY_WAIT`]) until the partition's unfinished sagas run again here, so
    /// that nothing it asks for starts beside them; then it is answered by whoever owns the
    /// partition by then. `Recovering` only when the wait ran out.
    pub(super) async fn answerer_once_recovered(&self, req: &Incoming<'_>) -> Answerer<'_> {
        match self.answerer(req) {
            Answerer::Recovering(shop, partition) if shop.sagas.until_recovered(partition, RECOVERY_WAIT).await => {
                self.answerer(req)
            }
            answerer => answerer,
        }
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

/// Forwards a follower's requests to the owners of their partitions, found in the
/// cluster's tables.
pub struct Forwarder {
    membership: Arc<Membership>,
    node_id: String,
    /// The store's partition count, to tell a request's partition.
    partitions: Partitions,
    client: reqwest::Client,
    /// The owners found last, and when: looked up again after a third of a lease, at once
    /// when a request's partition has no owner among them, or when an owner does not answer.
    owners: Mutex<Option<(Owners, Instant)>>,
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
    pub fn new(membership: Arc<Membership>, cluster: &ClusterSettings, relay_key: Option<RelayKey>) -> Forwarder {
        let lease_ms = cluster.lease_ms;
        Forwarder {
            membership,
            node_id: cluster.node_id.clone(),
            partitions: cluster.partitions,
            client: reqwest::Client::builder()
                .timeout(FORWARD_TIMEOUT)
                // The owner's redirect is the client's to follow (a console sign-in's 303
                // carries the session cookie): relayed as it came, never followed here.
                .redirect(reqwest::redirect::Policy::none())
                // An owner that does not even accept the connection within a lease is gone.
                .connect_timeout(Duration::from_millis(lease_ms.max(100)))
                .build()
                .unwrap_or_default(),
            owners: Mutex::new(None),
            recheck: Duration::from_millis((lease_ms / 3).max(50)),
            relay_key,
        }
    }

    /// What a follower answers: `/healthz` and `/metrics` itself, anything else from the
    /// owner of `partition` (the request's).
    pub(super) async fn answer(
        &self,
        req: Incoming<'_>,
        partition: Partition,
    ) -> (&'static str, Result<warp::reply::Response, ApiError>) {
        let home = home(req.method, req.path, req.headers);
        match (home, req.path.trim_matches('/')) {
            (Home::Local, "healthz") => {
                let body = serde_json::json!({ "status": "ok", "role": "follower" });
                return ("healthz", Ok(response::json(200, &body)));
            }
            (Home::Local, "metrics") => {
                return ("metrics", Ok(response::text(200, metrics::render(), "text/plain; version=0.0.4")));
            }
            _ => {}
        }
        ("forwarded", self.forward(req, partition).await)
    }

    async fn forward(&self, req: Incoming<'_>, partition: Partition) -> Result<warp::reply::Response, ApiError> {
        if req.headers.contains_key(HOP_HEADER) {
            metrics::FORWARDED_REQUESTS.with_label_values(&["not_leader"]).inc();
            return Err(HttpError::NotLeader.into());
        }
        let Some(owner) = self.owner(partition).await else {
            metrics::FORWARDED_REQUESTS.with_label_values(&["no_leader"]).inc();
            return Err(HttpError::NoLeader.into());
        };
        let url = format!("{}{}", owner.advertise_url.trim_end_matches('/'), target(req.path, req.raw_query));
        let mut headers = HeaderMap::with_capacity(req.headers.len() + 2);
        // A client's own client-address header is never passed on: the owner hears ours.
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
            Err(e) => return Err(self.unreachable(&owner, partition, e)),
        };
        let status = answer.status();
        let mut relayed = HeaderMap::with_capacity(answer.headers().len());
        for (name, value) in answer.headers().iter().filter(|(name, _)| !is_hop_by_hop(name)) {
            relayed.append(name.clone(), value.clone());
        }
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(e) => return Err(self.unreachable(&owner, partition, e)),
        };
        metrics::FORWARDED_REQUESTS.with_label_values(&["forwarded"]).inc();
        let mut response = warp::reply::Response::new(body.into());
        *response.status_mut() = status;
        *response.headers_mut() = relayed;
        Ok(response)
    }

    /// The client's address, signed for the request as it will reach its owner (the
    /// target as the parsed URL sends it, which may encode the path differently from the
    /// client; a URL that does not parse is refused when sending, signed or not).
    fn client_header(&self, url: &str, req: &Incoming<'_>) -> Option<HeaderValue> {
        let (key, client) = (self.relay_key.as_ref()?, req.remote?);
        let url = reqwest::Url::parse(url).ok()?;
        let target = target(url.path(), url.query().unwrap_or(""));
        key.sign(client, &Relayed { forwarder: &self.node_id, method: req.method, target: &target, body: &req.body })
    }

    /// The store's partition count.
    pub(super) fn partitions(&self) -> Partitions {
        self.partitions
    }

    /// How long owners found are believed.
    pub(super) fn recheck(&self) -> Duration {
        self.recheck
    }

    /// Looks the owners up again next time.
    pub(super) fn forget_owners(&self) {
        if let Ok(mut cached) = self.owners.lock() {
            cached.take();
        }
    }

    /// Sends a call to another server (`POST url`, signed for `target` and `body`).
    pub(super) async fn call(&self, url: &str, target: &str, body: Bytes) -> reqwest::Result<reqwest::Response> {
        let at_ms = crate::domain::time::Timestamp::now().0;
        let mut request = self.client.post(url).header("content-type", "application/json");
        if let Some(signed) = self.relay_key.as_ref().and_then(|k| k.sign_call(&self.node_id, at_ms, target, &body)) {
            request = request.header(super::calls::CALL_HEADER, signed);
        }
        request.body(body).send().await
    }

    /// Every other server holding a partition now, one each, as the database says (none
    /// when it cannot be read: logged).
    pub(super) async fn other_owners(&self) -> Vec<Owner> {
        let membership = self.membership.clone();
        match tokio::task::spawn_blocking(move || membership.owners()).await {
            Ok(Ok(owners)) => {
                let mut seen = std::collections::HashSet::new();
                owners.into_iter().filter(|o| o.node_id != self.node_id && seen.insert(o.node_id.clone())).collect()
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not look the cluster's servers up");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The owner did not answer: look the owners up again next time.
    fn unreachable(&self, owner: &Owner, partition: Partition, e: reqwest::Error) -> ApiError {
        metrics::FORWARDED_REQUESTS.with_label_values(&["failed"]).inc();
        self.forget_owners();
        tracing::warn!(owner = %owner.node_id, partition = partition.0, url = %owner.advertise_url, error = %e,
            "the owner of a request's partition did not answer it forwarded");
        if e.is_connect() {
            // Never sent: nothing was applied, so this is a 503 to retry, like no leader.
            return HttpError::NoLeader.into();
        }
        HttpError::LeaderUnreachable(format!("{} at {}", owner.node_id, owner.advertise_url)).into()
    }

    /// The owner of `partition`, from the cache while it is fresh and names one, else from
    /// the database (one read for every partition's owner).
    pub(super) async fn owner(&self, partition: Partition) -> Option<Owner> {
        if let Some((owners, at)) = self.owners.lock().ok()?.as_ref() {
            if let Some(owner) = owners.of(partition).filter(|_| at.elapsed() < self.recheck) {
                return Some(owner.clone());
            }
        }
        let membership = self.membership.clone();
        let found = tokio::task::spawn_blocking(move || membership.owners()).await.ok()?;
        let mut cached = self.owners.lock().ok()?;
        match found {
            Ok(leases) => {
                let owners = Owners::new(leases, &self.node_id);
                let owner = owners.of(partition).cloned();
                *cached = Some((owners, Instant::now()));
                owner
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not look the owners of the cluster's partitions up");
                cached.take();
                None
            }
        }
    }
}

/// Who a server forwards each partition's requests to: the owner of its unexpired lease
/// (as [`Membership::owners`] reads them), unless that is this very server (it would only
/// refuse the request as forwarded).
#[derive(Debug, Default)]
struct Owners(HashMap<Partition, Owner>);

impl Owners {
    fn new(owners: Vec<Owner>, me: &str) -> Owners {
        Owners(owners.into_iter().filter(|o| o.node_id != me).map(|o| (o.partition, o)).collect())
    }

    fn of(&self, partition: Partition) -> Option<&Owner> {
        self.0.get(&partition)
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

    fn owner(partition: u16, id: &str) -> Owner {
        Owner {
            partition: Partition(partition),
            node_id: id.into(),
            advertise_url: format!("http://{id}.example:8080"),
        }
    }

    #[test]
    fn each_partition_goes_to_the_owner_of_its_live_lease_but_this_servers_own() {
        let owners = Owners::new((0..16).map(|p| owner(p, if p == 3 { "b" } else { "a" })).collect(), "follower");
        let url = |p: u16| owners.of(Partition(p)).map(|n| n.advertise_url.clone());
        assert_eq!(url(3).as_deref(), Some("http://b.example:8080"));
        assert_eq!(url(0).as_deref(), Some("http://a.example:8080"));
        assert_eq!(url(15).as_deref(), Some("http://a.example:8080"));
        assert_eq!(url(16), None, "no such partition");
        let owners = Owners::new(vec![owner(0, "a"), owner(2, "me")], "me");
        assert_eq!(owners.of(Partition(0)).map(|n| n.node_id.as_str()), Some("a"));
        assert!(owners.of(Partition(2)).is_none(), "a server never forwards to itself");
        assert!(owners.of(Partition(1)).is_none(), "no live lease (expired or never taken): 503 no_leader");
    }

    /// A front of a cluster's server (its store a temporary one) that does not serve yet.
    fn cluster_front() -> (tempfile::TempDir, crate::store::Store, Arc<Front>) {
        let (dir, store) = crate::store::Store::temporary();
        let settings = crate::config::Settings::load_layers(None, false).unwrap();
        let membership = Arc::new(Membership::join(&settings.storage, &settings.cluster).unwrap());
        let forwarder = Arc::new(Forwarder::new(membership, &settings.cluster, None));
        (dir, store, Front::new(settings.server.clone(), Some(forwarder), None))
    }

    /// A request without headers or body.
    fn bare<'a>(method: &'a Method, path: &'a str, headers: &'a HeaderMap) -> Incoming<'a> {
        Incoming { method, path, raw_query: "", headers, body: Bytes::new(), remote: None }
    }

    fn named(answerer: Answerer<'_>) -> &'static str {
        match answerer {
            Answerer::Here(_) => "here",
            Answerer::Owner(..) => "owner",
            Answerer::Recovering(..) => "recovering",
            Answerer::Starting => "starting",
        }
    }

    /// A server with a share answers the requests of its partitions and those that describe
    /// it, and forwards the others' (the shared records' too, while it lacks partition 0).
    #[test]
    fn a_serving_server_answers_its_partitions_requests_and_forwards_the_others() {
        use crate::domain::partition::{id_in, Owned};
        actix::System::new().block_on(async {
            let (_dir, store, front) = cluster_front();
            let headers = HeaderMap::new();
            let answers = |method: Method, path: String| named(front.answerer(&bare(&method, &path, &headers)));
            let (mine, theirs) = (id_in(Partition(3)), id_in(Partition(4)));
            assert_eq!(answers(Method::GET, format!("/v1/orders/{mine}")), "owner", "not serving yet: all forwarded");

            front.lead(Arc::new(crate::startup::for_tests(&store)));
            assert_eq!(answers(Method::GET, format!("/v1/orders/{theirs}")), "here", "owning every partition");
            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3)]));
            assert_eq!(answers(Method::GET, format!("/v1/orders/{mine}")), "here");
            assert_eq!(answers(Method::POST, format!("/admin/v1/sagas/{mine}/resume")), "here");
            assert_eq!(answers(Method::GET, format!("/v1/orders/{theirs}")), "owner");
            assert_eq!(answers(Method::GET, "/v1/products".into()), "owner", "shared: partition 0's owner");
            assert_eq!(answers(Method::GET, "/healthz".into()), "here", "about this process");
            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition::SHARED]));
            assert_eq!(answers(Method::GET, "/v1/products".into()), "here");
            store.close().unwrap();
        });
    }

    /// A partition just taken is served once its sagas are recovered: its requests wait for
    /// that, the others' are answered meanwhile.
    #[test]
    fn a_partition_just_taken_is_served_once_its_sagas_are_recovered() {
        use crate::domain::partition::{id_in, Owned};
        actix::System::new().block_on(async {
            let (_dir, store, front) = cluster_front();
            let shop = Arc::new(crate::startup::for_tests(&store));
            front.lead(shop.clone());
            let headers = HeaderMap::new();
            let (kept, gained) =
                (format!("/v1/orders/{}", id_in(Partition(3))), format!("/v1/orders/{}", id_in(Partition(4))));
            let (kept, gained) = (bare(&Method::GET, &kept, &headers), bare(&Method::GET, &gained, &headers));

            let three = Owned::share(Partitions::DEFAULT, [Partition(3)]);
            store.ownership().set(three.clone());
            shop.sagas.give_up(&three);
            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3), Partition(4)]));
            assert_eq!(named(front.answerer(&kept)), "here");
            assert_eq!(named(front.answerer(&gained)), "recovering", "owned, its sagas not yet recovered");

            let engine = shop.sagas.clone();
            let taking = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                engine.take_over(&Owned::share(Partitions::DEFAULT, [Partition(4)])).await.map_err(|e| e.to_string())
            });
            let started = Instant::now();
            assert_eq!(named(front.answerer_once_recovered(&gained).await), "here", "once recovered");
            assert!(started.elapsed() >= Duration::from_millis(50), "it waited for the take-over");
            assert_eq!(taking.await.unwrap(), Ok(0));

            shop.sagas.give_up(&three);
            assert_eq!(named(front.answerer(&gained)), "recovering", "given up, then owned again");
            store.close().unwrap();
        });
    }

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
