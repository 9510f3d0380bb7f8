//! Webhooks from the payment gateway (SEQ-ORDER-002) and the carrier (SEQ-ORDER-004).
//! Signatures are checked before anything else; every event is recorded durably before the
//! answer, with what became of it, and applied at most once per source: the order keeps the
//! id of the event that confirmed or delivered it, so even concurrent duplicates apply once.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use super::OperationError;
use crate::config::Settings;
use crate::domain::events::DomainEvent;
use crate::domain::ids::{OrderId, SagaId};
use crate::domain::money::Money;
use crate::domain::order::{Order, OrderCommand, OrderError, OrderStatus};
use crate::domain::time::Timestamp;
use crate::error::{Answer, InvalidInput};
use crate::saga::shapes::RefundCaptureInput;
use crate::saga::SagaEngine;
use crate::services::audit;
use crate::services::orders::OrderService;
use crate::services::ServiceError;
use crate::store::{keys, Store, StoreError, WebhookEvent, WriteSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Payment,
    Carrier,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Payment => "payment",
            Source::Carrier => "carrier",
        }
    }
}

/// Longest `Cartwright-Signature` header looked at: a timestamp and a few signatures fit
/// easily; anything longer is refused before it costs parsing.
pub const MAX_SIGNATURE_HEADER: usize = 512;
/// Most `v1=` signatures one header may carry (a sender rotating secrets sends two).
pub const MAX_SIGNATURES: usize = 4;

/// A parsed `Cartwright-Signature: t=<unix seconds>,v1=<64 hex digits>[,v1=...]`.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub t: i64,
    pub candidates: Vec<[u8; 32]>,
}

/// Parses the header strictly, so that a hostile header costs no more than a valid one:
/// bounded length, exactly one `t` (plain decimal digits), 1 to [`MAX_SIGNATURES`] `v1`
/// entries of exactly 64 hex digits, nothing else. `None` for anything else.
pub fn parse_signature_header(header: &str) -> Option<SignatureHeader> {
    if header.len() > MAX_SIGNATURE_HEADER {
        return None;
    }
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=')? {
            ("t", v) if t.is_none() && !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()) => {
                t = Some(v.parse::<i64>().ok()?);
            }
            ("v1", v) if candidates.len() < MAX_SIGNATURES && v.len() == 64 => {
                let mut sig = [0u8; 32];
                hex::decode_to_slice(v, &mut sig).ok()?;
                candidates.push(sig);
            }
            _ => return None,
        }
    }
    if candidates.is_empty() {
        return None;
    }
    Some(SignatureHeader { t: t?, candidates })
}

/// HMAC-SHA256(secret, "`<t>.<body>`").
fn mac(secret: &str, t: i64, body: &[u8]) -> hmac::digest::CtOutput<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
}

/// Checks `Cartwright-Signature` (see [`parse_signature_header`]): the MAC of the body is
/// computed once and compared with each candidate in constant time; timestamps more than
/// `tolerance_secs` away from `now_secs` are refused (replays).
pub fn verify_signature(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), OperationError> {
    let parsed = header.and_then(parse_signature_header).ok_or(OperationError::InvalidSignature)?;
    if now_secs.abs_diff(parsed.t) > tolerance_secs {
        return Err(OperationError::InvalidSignature);
    }
    let expected = mac(secret, parsed.t, body);
    // CtOutput's equality is constant-time; every candidate is compared (no early exit).
    let matches = parsed
        .candidates
        .iter()
        .fold(false, |found, sig| found | (expected == hmac::digest::CtOutput::new((*sig).into())));
    if matches {
        Ok(())
    } else {
        Err(OperationError::InvalidSignature)
    }
}

/// The signature header a sender puts on `body` at `t` (tests and the walk-through use it).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).into_bytes()))
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
}

#[derive(Clone)]
pub struct WebhookService {
    store: Store,
    settings: Arc<Settings>,
    orders: OrderService,
    sagas: Arc<SagaEngine>,
    /// Replays run one at a time (they are rare), so one event is never replayed twice.
    replays: Arc<tokio::sync::Mutex<()>>,
}

/// The answer: status code and `{"status": ...}`.
pub type Outcome = (u16, &'static str);

/// A replay that was tried: its outcome (an error as the webhook would have answered it),
/// and the event's record before and after.
pub struct Replayed {
    pub outcome: Result<Outcome, OperationError>,
    pub before: WebhookEvent,
    pub after: WebhookEvent,
}

impl WebhookService {
    pub fn new(store: Store, settings: Arc<Settings>, orders: OrderService, sagas: Arc<SagaEngine>) -> WebhookService {
        WebhookService { store, settings, orders, sagas, replays: Arc::default() }
    }

    pub fn secret(&self, source: Source) -> &str {
        match source {
            Source::Payment => &self.settings.webhooks.payment_secret,
            Source::Carrier => &self.settings.webhooks.carrier_secret,
        }
    }

    /// The order a webhook names, when its signature checks and the payment or carrier
    /// index has its authorization or tracking number: a server sharing the partitions
    /// answers it on that order's owner, which writes the order and the event together.
    /// `None` for anything else (unsigned, malformed, unknown), which partition 0's owner
    /// answers as before. Reads nothing before the signature checks.
    pub fn order_named(&self, source: Source, signature: Option<&str>, body: &[u8], now_secs: i64) -> Option<OrderId> {
        verify_signature(self.secret(source), signature, body, now_secs, self.settings.webhooks.tolerance_secs).ok()?;
        self.order_in(source, body)
    }

    /// The order a recorded event is bound to, else the one its recorded body names: where
    /// an operator's replay of it is answered. (A replay whose new data names an order in
    /// another partition is refused there, nothing applied: 503.)
    pub fn replay_order(&self, source: Source, event_id: &str) -> Option<OrderId> {
        let recorded = self.store.load::<WebhookEvent>(&keys::webhook_event(source.name(), event_id)).ok()??;
        match recorded.order_id {
            Some(order) => Some(OrderId(order)),
            None => self.order_in(source, recorded.body.as_bytes()),
        }
    }

    /// The order whose authorization (payment) or tracking number (carrier) a webhook
    /// body's data names, from the index.
    fn order_in(&self, source: Source, body: &[u8]) -> Option<OrderId> {
        let envelope: Envelope = serde_json::from_slice(body).ok()?;
        let key = match source {
            Source::Payment => keys::order_by_authorization(envelope.data["authorization_id"].as_str()?),
            Source::Carrier => keys::order_by_tracking(envelope.data["tracking_number"].as_str()?),
        };
        self.orders.find_by(&key).ok().flatten()
    }

    /// Handles a verified body.
    pub async fn handle(&self, source: Source, body: &[u8]) -> Result<Outcome, OperationError> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
            OperationError::from(InvalidInput { message: format!("invalid webhook body: {e}"), field: None })
        })?;
        if envelope.id.is_empty() || envelope.id.len() > 255 {
            return Err(OperationError::invalid("id", "event id must be 1 to 255 characters"));
        }
        let record = WebhookEvent {
            source: source.name().into(),
            event_id: envelope.id.clone(),
            event_type: envelope.event_type.clone(),
            status: String::new(),
            detail: String::new(),
            body: String::from_utf8_lossy(body).into_owned(),
            order_id: None,
            received_at: Timestamp::now(),
        };
        if self.store.exists(&keys::webhook_event(source.name(), &envelope.id))? {
            return Ok((200, "duplicate"));
        }
        let span = tracing::info_span!("webhook", source = source.name(), event_id = %envelope.id, event_type = %envelope.event_type);
        let _e = span.enter();
        self.process(source, &envelope, record, None).await
    }

    /// Applies an event: a new one (`replacing` is `None`), or a replay of the recorded
    /// event `replacing`, whose record it then takes the place of.
    async fn process(
        &self,
        source: Source,
        envelope: &Envelope,
        record: WebhookEvent,
        replacing: Option<&WebhookEvent>,
    ) -> Result<Outcome, OperationError> {
        match (source, envelope.event_type.as_str()) {
            (Source::Payment, "payment.captured") => self.payment_captured(&envelope.data, record, replacing).await,
            (Source::Carrier, "delivery.confirmed") => self.delivery_confirmed(&envelope.data, record, replacing).await,
            (_, other) => {
                let other = other.to_string();
                self.record_only(record, "rejected", &format!("unknown event type {other}"), None, replacing).await?;
                Err(OperationError::UnknownEventType(other))
            }
        }
    }

    /// Replays a `needs_review` event, with its `data` replaced by `payload` when given, as
    /// if it had just arrived (no signature: the caller is an authenticated admin). Applied
    /// at most once: replays of one event run one at a time, and only while the event still
    /// needs review (after a replay it is processed, rejected or ignored, and a second
    /// replay is 409 WEBHOOK_NOT_REPLAYABLE; one that needs review again may be replayed
    /// again). Answers the event's outcome and its record before and after.
    pub async fn replay(
        &self,
        source: Source,
        event_id: &str,
        payload: Option<Value>,
    ) -> Result<Replayed, OperationError> {
        let _one_at_a_time = self.replays.lock().await;
        let key = keys::webhook_event(source.name(), event_id);
        self.store.barrier().await?;
        let before = self.store.load::<WebhookEvent>(&key)?.ok_or(OperationError::WebhookEventNotFound)?;
        if before.status != "needs_review" {
            let why = format!("only an event that needs review can be replayed; this one is {}", before.status);
            return Err(OperationError::WebhookNotReplayable(why));
        }
        let mut body: Value = serde_json::from_str(&before.body)
            .map_err(|e| OperationError::internal(format!("stored webhook body {event_id}"), e))?;
        if let Some(data) = payload {
            body["data"] = data;
        }
        let envelope: Envelope = serde_json::from_value(body.clone()).map_err(|e| {
            OperationError::from(InvalidInput { message: format!("invalid webhook body: {e}"), field: None })
        })?;
        let record =
            WebhookEvent { body: body.to_string(), status: String::new(), detail: String::new(), ..before.clone() };
        let span = tracing::info_span!("webhook.replay", source = source.name(), event_id = %event_id);
        let outcome =
            tracing::Instrument::instrument(self.process(source, &envelope, record, Some(&before)), span).await;
        let after = self.store.load::<WebhookEvent>(&key)?.unwrap_or_else(|| before.clone());
        Ok(Replayed { outcome, before, after })
    }

    /// [`replay`](Self::replay), then the audit row naming `actor` (whatever the outcome:
    /// a refused or failed replay is recorded too), as the admin API and the console do it.
    pub async fn replay_audited(
        &self,
        actor: &str,
        source: Source,
        event_id: &str,
        payload: Option<Value>,
    ) -> Result<(Outcome, WebhookEvent), OperationError> {
        let replayed = self.replay(source, event_id, payload).await?;
        let mut after = replay_view(&replayed.after);
        after["result"] = match &replayed.outcome {
            Ok((_, status)) => serde_json::json!(status),
            Err(e) => serde_json::json!({ "error": e.code() }),
        };
        let entity = format!("{}/{event_id}", source.name());
        let before = replay_view(&replayed.before);
        let row = audit::entry(actor, "webhook.replay", ("webhook_event", &entity), before, after);
        audit::record(&self.store, row).await?;
        Ok((replayed.outcome?, replayed.after))
    }

    /// One recorded event.
    pub fn event(&self, source: Source, event_id: &str) -> Result<Option<WebhookEvent>, OperationError> {
        Ok(self.store.load::<WebhookEvent>(&keys::webhook_event(source.name(), event_id))?)
    }

    async fn payment_captured(
        &self,
        data: &Value,
        record: WebhookEvent,
        replacing: Option<&WebhookEvent>,
    ) -> Result<Outcome, OperationError> {
        let authorization_id = data["authorization_id"]
            .as_str()
            .ok_or_else(|| OperationError::invalid("data.authorization_id", "a string is required"))?;
        let amount = data["amount"].as_str().and_then(|a| Money::parse(a).ok()).ok_or_else(|| {
            OperationError::invalid("data.amount", "a decimal string with at most two places is required")
        })?;
        let Some(order_id) = self.orders.find_by(&keys::order_by_authorization(authorization_id))? else {
            tracing::error!(%authorization_id, "payment captured for an authorization no order has; kept for manual review");
            let alert = format!("payment captured for unknown authorization {authorization_id}");
            return self.needs_review(record, &alert, None, replacing).await;
        };
        let cmd = OrderCommand::Confirm { event_id: record.event_id.clone(), amount };
        let processed = WebhookEvent { status: "processed".into(), order_id: Some(order_id.0), ..record.clone() };
        match self.orders.execute_with(order_id, cmd, "webhook:payment", Vec::new(), Some(processed)).await {
            Ok((_, true)) => {
                tracing::info!(%order_id, "payment captured: order confirmed");
                Ok((200, "processed"))
            }
            Ok((_, false)) => Ok((200, "duplicate")),
            Err(ServiceError::Order(mismatch @ OrderError::AmountMismatch { .. })) => {
                let detail = mismatch.to_string();
                tracing::error!(%order_id, %detail, "captured amount differs from the order total; kept for manual review");
                self.needs_review(record, &detail, Some(order_id), replacing).await
            }
            Err(e @ ServiceError::Order(OrderError::InvalidStatusTransition { .. })) => {
                let order =
                    self.orders.get(order_id).await?.ok_or(OperationError::from(ServiceError::OrderNotFound))?;
                if captured_after_cancellation(&order) {
                    return self.refund_capture(record, &order, (authorization_id, amount), e, replacing).await;
                }
                self.record_only(record, "rejected", &e.to_string(), Some(order_id), replacing).await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The customer paid for an order that is cancelled (or expired): still `409` (the
    /// order cannot be confirmed), but the event is recorded as `refund_started` in the same
    /// write that starts the refund_capture saga, so the money goes back exactly once, even
    /// across a crash or a concurrent redelivery; and one refund per authorization, whatever
    /// the number of capture events naming it (a later one is recorded `rejected`).
    async fn refund_capture(
        &self,
        record: WebhookEvent,
        order: &Order,
        (authorization_id, amount): (&str, Money),
        answer: ServiceError,
        replacing: Option<&WebhookEvent>,
    ) -> Result<Outcome, OperationError> {
        let order_id = order.order_id;
        let detail =
            format!("order is {}: the captured {amount} is refunded (refund_capture saga)", order.status.as_str());
        let record = WebhookEvent { status: "refund_started".into(), detail, order_id: Some(order_id.0), ..record };
        let input = RefundCaptureInput {
            order_id,
            authorization_id: authorization_id.to_string(),
            amount,
            event_id: record.event_id.clone(),
        };
        let with = |saga_id: SagaId| {
            record_write(WriteSet::new(), &record, replacing).save_new(
                keys::refund_of_capture(authorization_id),
                &saga_id.0,
                "refund_capture",
            )
        };
        match self.sagas.start_with(&input, Some(order_id), with).await? {
            Ok(saga_id) => {
                tracing::warn!(%order_id, %saga_id, %amount, "payment captured for a cancelled order; refunding");
                Err(answer.into())
            }
            Err(crate::store::retained::WEBHOOK_EVENT_TAKEN) => Ok((200, "duplicate")),
            Err(_) => {
                let detail = "a refund of this authorization's capture is already under way";
                tracing::error!(%order_id, %authorization_id, "another capture event for a refunded authorization; not refunded twice");
                match self.record_only(record, "rejected", detail, Some(order_id), replacing).await? {
                    true => Err(answer.into()),
                    false => Ok((200, "duplicate")),
                }
            }
        }
    }

    async fn delivery_confirmed(
        &self,
        data: &Value,
        record: WebhookEvent,
        replacing: Option<&WebhookEvent>,
    ) -> Result<Outcome, OperationError> {
        let tracking = data["tracking_number"]
            .as_str()
            .ok_or_else(|| OperationError::invalid("data.tracking_number", "a string is required"))?;
        let Some(order_id) = self.orders.find_by(&keys::order_by_tracking(tracking))? else {
            tracing::error!(tracking_number = %tracking, "delivery confirmed for an unknown tracking number; kept for manual review");
            let alert = format!("delivery confirmed for unknown tracking number {tracking}");
            return self.needs_review(record, &alert, None, replacing).await;
        };
        let order = self.orders.get(order_id).await?.ok_or(OperationError::from(ServiceError::OrderNotFound))?;
        let cmd = OrderCommand::Deliver { event_id: record.event_id.clone() };
        let processed = WebhookEvent { status: "processed".into(), order_id: Some(order_id.0), ..record.clone() };
        // The delivery email follows from OrderDelivered (the notification handler).
        match self.orders.execute_with(order_id, cmd, "webhook:carrier", Vec::new(), Some(processed)).await {
            Ok((_, true)) => {
                tracing::info!(%order_id, "order delivered");
                Ok((200, "processed"))
            }
            Ok((_, false)) => Ok((200, "duplicate")),
            Err(ServiceError::Order(refusal @ OrderError::InvalidStatusTransition { .. })) => {
                let detail = refusal.to_string();
                tracing::warn!(%order_id, status = order.status.as_str(), "delivery for an order that is not SHIPPED (duplicate or out-of-order webhook); ignored");
                self.record_only(record, "ignored", &detail, Some(order_id), replacing).await?;
                Ok((200, "ignored"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Kept for an operator: recorded with a `WebhookNeedsReview` event (the notification
    /// handler alerts the admin from it), nothing applied.
    async fn needs_review(
        &self,
        record: WebhookEvent,
        reason: &str,
        order: Option<OrderId>,
        replacing: Option<&WebhookEvent>,
    ) -> Result<Outcome, OperationError> {
        let alert = DomainEvent::WebhookNeedsReview {
            source: record.source.clone(),
            event_id: record.event_id.clone(),
            event_type: record.event_type.clone(),
            reason: reason.to_string(),
            order_id: order,
        };
        let record = WebhookEvent {
            status: "needs_review".into(),
            detail: reason.into(),
            order_id: order.map(|o| o.0),
            ..record
        };
        match self.commit_record(record, Some(alert), replacing).await? {
            true => Ok((202, "needs_review")),
            false => Ok((200, "duplicate")),
        }
    }

    async fn record_only(
        &self,
        record: WebhookEvent,
        status: &str,
        detail: &str,
        order: Option<OrderId>,
        replacing: Option<&WebhookEvent>,
    ) -> Result<bool, OperationError> {
        let record =
            WebhookEvent { status: status.into(), detail: detail.into(), order_id: order.map(|o| o.0), ..record };
        self.commit_record(record, None, replacing).await
    }

    /// Records the event once; false if it was already recorded (a duplicate).
    async fn commit_record(
        &self,
        record: WebhookEvent,
        alert: Option<DomainEvent>,
        replacing: Option<&WebhookEvent>,
    ) -> Result<bool, OperationError> {
        let mut ws = record_write(WriteSet::new(), &record, replacing);
        if let Some(a) = alert {
            ws = ws.event(&a);
        }
        match self.store.commit(ws).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The write of an event's record: a new one only if its id is not recorded yet (a
/// duplicate otherwise), a replayed one in place of the record it replays.
fn record_write(ws: WriteSet, record: &WebhookEvent, replacing: Option<&WebhookEvent>) -> WriteSet {
    crate::store::retained::webhook_event(ws, record, replacing, replacing.is_none())
}

/// A capture for an order that was cancelled (or expired) before any capture reached it:
/// the customer's money must go back. (A cancelled order that had been captured is refunded
/// by its cancel_order saga; a second capture of it is only rejected.)
fn captured_after_cancellation(order: &Order) -> bool {
    order.status == OrderStatus::Cancelled && order.confirmed_by_event.is_none()
}

/// What a replay's audit row and answer show of an event: its outcome and its `data`.
pub fn replay_view(w: &WebhookEvent) -> Value {
    let data = serde_json::from_str::<Value>(&w.body).map(|b| b["data"].clone()).unwrap_or(Value::Null);
    serde_json::json!({ "status": w.status, "detail": w.detail, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("secret", 1000, body);
        assert!(verify_signature("secret", Some(&header), body, 1000, 300).is_ok());
        assert!(verify_signature("secret", Some(&header), body, 1299, 300).is_ok());
        assert!(verify_signature("secret", Some(&header), body, 1301, 300).is_err(), "stale");
        assert!(verify_signature("other", Some(&header), body, 1000, 300).is_err(), "wrong secret");
        assert!(verify_signature("secret", Some(&header), br#"{"id":"evt_2"}"#, 1000, 300).is_err(), "tampered");
        assert!(verify_signature("secret", None, body, 1000, 300).is_err(), "missing");
        for bad in ["", "t=1000", "v1=00", "t=abc,v1=00", "t=1000,v1=zz"] {
            assert!(verify_signature("secret", Some(bad), body, 1000, 300).is_err(), "{bad}");
        }
    }

    fn sig_hex(header: &str) -> &str {
        header.split_once("v1=").unwrap().1
    }

    #[test]
    fn signature_header_parsing_is_strict() {
        let good = "a".repeat(64);
        let parsed = parse_signature_header(&format!("t=1000, v1={good}")).unwrap();
        assert_eq!(parsed, SignatureHeader { t: 1000, candidates: vec![[0xaa; 32]] });
        let four = format!("t=1,v1={good},v1={good},v1={good},v1={good}");
        assert_eq!(parse_signature_header(&four).unwrap().candidates.len(), 4);
        let refused = [
            format!("t=1,v1={good},v1={good},v1={good},v1={good},v1={good}"), // too many candidates
            format!("t=1,v1={}", "a".repeat(62)),                             // short
            format!("t=1,v1={}", "a".repeat(66)),                             // long
            format!("t=1,v1={}g", "a".repeat(63)),                            // not hex
            format!("t=1,v1=,v1={good}"),                                     // empty entry
            format!("t=+1,v1={good}"),                                        // not plain digits
            format!("t=-1,v1={good}"),
            format!("t=1.5,v1={good}"),
            format!("t=99999999999999999999,v1={good}"), // overflow
            format!("t=1,t=2,v1={good}"),                // two timestamps
            format!("t=1,v0={good}"),                    // unknown scheme only
            format!("t=1,v1={good},extra"),              // stray part
            format!("t=1,v1={good},"),                   // trailing comma
            format!("v1={good}"),                        // no timestamp
            "t=1".to_string(),                           // no signature
            format!("t=1,{}v1={good}", " ".repeat(MAX_SIGNATURE_HEADER)), // too long
        ];
        for bad in refused {
            assert_eq!(parse_signature_header(&bad), None, "{bad}");
        }
    }

    #[test]
    fn any_of_a_few_candidates_may_match() {
        let body = br#"{"id":"evt_1"}"#;
        let right = sign("secret", 1000, body);
        let wrong = sign("other", 1000, body);
        let both = format!("t=1000,v1={},v1={}", sig_hex(&wrong), sig_hex(&right));
        assert!(verify_signature("secret", Some(&both), body, 1000, 300).is_ok());
        let neither = format!("t=1000,v1={},v1={}", sig_hex(&wrong), sig_hex(&wrong));
        assert!(verify_signature("secret", Some(&neither), body, 1000, 300).is_err());
        let flood = format!("t=1000,{}v1={}", "v1=,".repeat(100_000), sig_hex(&right));
        assert!(verify_signature("secret", Some(&flood), body, 1000, 300).is_err(), "a flood is refused unparsed");
    }
}
