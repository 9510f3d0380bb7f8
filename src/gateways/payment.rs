//! Payment gateways: authorize, void, refund, each call with an idempotency key (saga id +
//! step), each failure [`GatewayError::Declined`] (permanent), [`GatewayError::Transient`]
//! (not applied: the step retries) or [`GatewayError::Uncertain`] (maybe applied: the step
//! retries under the same key, and a checkout that ends so asks again before voiding).
//! - `simulated` answers in process by card token (the tokens are listed in
//!   docs/http-contract.md): `tok_visa` authorizes, `tok_flaky` fails its first two
//!   authorizations per key, `tok_refund_flaky` authorizes, then fails its first three voids
//!   or refunds; any other token is declined. Its ids derive from the key, so a repeated
//!   call answers the same.
//! - `http` speaks the gateway protocol with reqwest: 503, 408, 429 and a refused connection
//!   are transient; a timeout or a connection lost once the request left, 500, 502 and 504
//!   are uncertain; any other non-2xx is a decline (with the gateway's `reason`); an
//!   authorization answered without an `authorization_id` is transient.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::domain::money::Money;
use crate::whole;

pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Permanent: retrying cannot help (declined card, bad request).
    #[error("declined: {0}")]
    Declined(String),
    /// Not applied (connection refused, 503, 429): worth another attempt.
    #[error("transient gateway failure: {0}")]
    Transient(String),
    /// May have been applied (a timeout after the request was sent, a 500, 502 or 504):
    /// worth another attempt under the same idempotency key, which the gateway answers with
    /// the first outcome; if every attempt ends so, the caller must ask again before
    /// assuming nothing happened.
    #[error("gateway outcome unknown: {0}")]
    Uncertain(String),
}

impl GatewayError {
    /// The text of a failure worth another attempt (`None` for a decline).
    pub fn retryable(&self) -> Option<&str> {
        match self {
            GatewayError::Declined(_) => None,
            GatewayError::Transient(m) | GatewayError::Uncertain(m) => Some(m),
        }
    }
}

pub trait PaymentGateway: Send + Sync {
    /// An authorization id for `amount` on `token`.
    fn authorize<'a>(
        &'a self,
        amount: Money,
        currency: &'a str,
        token: &'a str,
        key: &'a str,
    ) -> GatewayFuture<'a, String>;
    /// Releases an authorization that was never captured.
    fn void<'a>(&'a self, authorization_id: &'a str, key: &'a str) -> GatewayFuture<'a, ()>;
    /// Returns captured money; answers a refund id.
    fn refund<'a>(&'a self, authorization_id: &'a str, amount: Money, key: &'a str) -> GatewayFuture<'a, String>;
}

/// In-process gateway for development and tests. Authorization ids derive from the
/// idempotency key, so a repeated call answers the same id, as a real gateway would.
#[derive(Default)]
pub struct SimulatedGateway {
    attempts: Mutex<HashMap<String, u32>>,
}

impl SimulatedGateway {
    fn attempt(&self, key: &str) -> u32 {
        let mut map = whole::lock(&self.attempts);
        let n = map.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }
}

fn derived_id(prefix: &str, key: &str) -> String {
    format!("{prefix}_{}", &hex::encode(Sha256::digest(key.as_bytes()))[..24])
}

impl PaymentGateway for SimulatedGateway {
    fn authorize<'a>(
        &'a self,
        _amount: Money,
        _currency: &'a str,
        token: &'a str,
        key: &'a str,
    ) -> GatewayFuture<'a, String> {
        let attempt = self.attempt(&format!("authorize:{key}"));
        Box::pin(async move {
            match token {
                "tok_visa" => Ok(derived_id("sim_auth", key)),
                "tok_refund_flaky" => Ok(derived_id("sim_auth_rf", key)),
                "tok_flaky" if attempt <= 2 => {
                    Err(GatewayError::Transient(format!("simulated timeout (attempt {attempt})")))
                }
                "tok_flaky" => Ok(derived_id("sim_auth", key)),
                "tok_declined" => Err(GatewayError::Declined("card_declined".into())),
                _ => Err(GatewayError::Declined("card_declined".into())),
            }
        })
    }

    fn void<'a>(&'a self, authorization_id: &'a str, _key: &'a str) -> GatewayFuture<'a, ()> {
        let attempt = self.attempt(&format!("settle:{authorization_id}"));
        Box::pin(async move {
            if authorization_id.starts_with("sim_auth_rf_") && attempt <= 3 {
                return Err(GatewayError::Transient(format!("simulated 503 on void (attempt {attempt})")));
            }
            Ok(())
        })
    }

    fn refund<'a>(&'a self, authorization_id: &'a str, _amount: Money, key: &'a str) -> GatewayFuture<'a, String> {
        let attempt = self.attempt(&format!("settle:{authorization_id}"));
        Box::pin(async move {
            if authorization_id.starts_with("sim_auth_rf_") && attempt <= 3 {
                return Err(GatewayError::Transient(format!("simulated 503 on refund (attempt {attempt})")));
            }
            Ok(derived_id("sim_refund", key))
        })
    }
}

/// The gateway protocol of docs/http-contract.md over HTTP.
pub struct HttpGateway {
    base_url: String,
    client: reqwest::Client,
}

impl HttpGateway {
    pub fn new(base_url: &str, timeout_ms: u64) -> Result<HttpGateway, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms))
            .build()?;
        Ok(HttpGateway { base_url: base_url.trim_end_matches('/').to_string(), client })
    }

    async fn post(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> Result<(u16, serde_json::Value), GatewayError> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .map_err(|e| match e.is_connect() {
                // Nothing was sent.
                true => GatewayError::Transient(format!("{path}: {e}")),
                // A timeout or a connection lost once the request may have left.
                false => GatewayError::Uncertain(format!("{path}: {e}")),
            })?;
        let status = resp.status().as_u16();
        let body = resp.json::<serde_json::Value>().await.unwrap_or(serde_json::Value::Null);
        match status {
            200..=299 => Ok((status, body)),
            // Refused before doing anything.
            503 | 408 | 429 => Err(GatewayError::Transient(format!("{path}: gateway answered {status}"))),
            // Failed somewhere along the way, or a proxy lost the answer.
            500..=599 => Err(GatewayError::Uncertain(format!("{path}: gateway answered {status}"))),
            _ => Err(GatewayError::Declined(
                body["reason"].as_str().map_or_else(|| format!("gateway answered {status}"), str::to_string),
            )),
        }
    }
}

impl PaymentGateway for HttpGateway {
    fn authorize<'a>(
        &'a self,
        amount: Money,
        currency: &'a str,
        token: &'a str,
        key: &'a str,
    ) -> GatewayFuture<'a, String> {
        Box::pin(async move {
            let (_, body) = self
                .post("/authorizations", key, json!({ "amount": amount, "currency": currency, "token": token }))
                .await?;
            body["authorization_id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| GatewayError::Transient("authorization answer without authorization_id".into()))
        })
    }

    fn void<'a>(&'a self, authorization_id: &'a str, key: &'a str) -> GatewayFuture<'a, ()> {
        Box::pin(async move {
            self.post(&format!("/authorizations/{authorization_id}/void"), key, json!({})).await.map(drop)
        })
    }

    fn refund<'a>(&'a self, authorization_id: &'a str, amount: Money, key: &'a str) -> GatewayFuture<'a, String> {
        Box::pin(async move {
            let (_, body) =
                self.post("/refunds", key, json!({ "authorization_id": authorization_id, "amount": amount })).await?;
            Ok(body["refund_id"].as_str().unwrap_or_default().to_string())
        })
    }
}

/// A gateway called only while this server surely holds the store's lease: a server
/// paused past its lease (GC, SIGSTOP) may still have a step running once resumed, and
/// the store refuses its writes, but only this stops it from authorizing, voiding or
/// refunding money behind the back of the server that took over. Refused calls are
/// transient failures (the step's retry then runs on the new leader).
pub struct LeaseGuarded {
    inner: std::sync::Arc<dyn PaymentGateway>,
    store: crate::store::Store,
}

impl LeaseGuarded {
    pub fn new(inner: std::sync::Arc<dyn PaymentGateway>, store: crate::store::Store) -> LeaseGuarded {
        LeaseGuarded { inner, store }
    }

    /// `call` if the lease surely holds, else the refusal, without calling anything.
    fn guarded<'a, T: Send + 'a>(&'a self, call: impl FnOnce() -> GatewayFuture<'a, T>) -> GatewayFuture<'a, T> {
        if self.store.holds_lease() {
            call()
        } else {
            let refusal = "this server's store lease may have lapsed: the gateway was not called";
            Box::pin(async move { Err(GatewayError::Transient(refusal.into())) })
        }
    }
}

impl PaymentGateway for LeaseGuarded {
    fn authorize<'a>(
        &'a self,
        amount: Money,
        currency: &'a str,
        token: &'a str,
        key: &'a str,
    ) -> GatewayFuture<'a, String> {
        self.guarded(|| self.inner.authorize(amount, currency, token, key))
    }

    fn void<'a>(&'a self, authorization_id: &'a str, key: &'a str) -> GatewayFuture<'a, ()> {
        self.guarded(|| self.inner.void(authorization_id, key))
    }

    fn refund<'a>(&'a self, authorization_id: &'a str, amount: Money, key: &'a str) -> GatewayFuture<'a, String> {
        self.guarded(|| self.inner.refund(authorization_id, amount, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_tokens_behave_as_documented() {
        let g = SimulatedGateway::default();
        let m = Money::from_cents(100);
        let a = g.authorize(m, "USD", "tok_visa", "k1").await.unwrap();
        assert_eq!(a, g.authorize(m, "USD", "tok_visa", "k1").await.unwrap(), "same key, same authorization");
        assert_eq!(
            g.authorize(m, "USD", "tok_declined", "k2").await,
            Err(GatewayError::Declined("card_declined".into()))
        );
        assert!(matches!(g.authorize(m, "USD", "tok_other", "k3").await, Err(GatewayError::Declined(_))));
        assert!(matches!(g.authorize(m, "USD", "tok_flaky", "k4").await, Err(GatewayError::Transient(_))));
        assert!(matches!(g.authorize(m, "USD", "tok_flaky", "k4").await, Err(GatewayError::Transient(_))));
        assert!(g.authorize(m, "USD", "tok_flaky", "k4").await.is_ok());
        let rf = g.authorize(m, "USD", "tok_refund_flaky", "k5").await.unwrap();
        for _ in 0..3 {
            assert!(matches!(g.void(&rf, "v").await, Err(GatewayError::Transient(_))));
        }
        assert!(g.void(&rf, "v").await.is_ok());
        assert!(g.refund(&a, m, "r").await.is_ok());
    }
}
