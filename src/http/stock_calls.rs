//! Stock calls between the servers of a cluster. An item's stock lives in its variant's
//! (or product's) partition, changed only by the actor of the server that owns it; a saga
//! step (reserve, release, deduct) or an operator's stock command on another server is
//! sent to that server as a stock call, which runs it there and answers as the actor did:
//! the stock after it, or the domain's refusal, whole. Reservations, releases and
//! deductions are idempotent by their owner (a reservation's order or saga), so a step may
//! retry one whose answer was lost; a restock is not, so a restock whose answer was lost
//! is reported as such, never retried.
//!
//! A call is `POST` [`PATH`] to the owner's advertised URL, signed with the cluster's
//! secret (see [`super::relayed`]: caller, time, target, body). It is not part of the API:
//! a server without a cluster, or a request without a valid signature, answers it as an
//! unknown route. A server that does not own the item (any more) answers 503 without
//! applying anything, and the caller looks the owner up again and calls once more.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::http::Method;

use super::forward::{Forwarder, Incoming};
use super::{response, ApiError, Front};
use crate::actors::ActorError;
use crate::domain::ids::{ItemKey, OwnerId, ProductId, VariantId};
use crate::domain::inventory::{InventoryCommand, InventoryError, StockRecord};
use crate::domain::product::VariantChoiceError;
use crate::domain::quantity::Quantity;
use crate::domain::quarantine::{KeyKind, QuarantineKey};
use crate::error::Fault;
use crate::metrics;
use crate::services::catalog::CatalogError;
use crate::services::inventory::StockOwners;
use crate::services::ServiceError;

/// Where a server takes stock calls.
pub const PATH: &str = "/internal/v1/stock";

/// `<caller's node id> <Unix ms> <hex HMAC>` (see [`super::relayed::RelayKey::sign_call`]).
pub const CALL_HEADER: &str = "x-cartwright-call";

/// Times a call is sent when the server called does not own the item (ownership moved) or
/// could not be reached: each time to the owner looked up again.
const ATTEMPTS: u32 = 3;

/// One stock command for one item, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Call {
    product_id: Uuid,
    variant_id: Option<Uuid>,
    command: Command,
    /// Who asked (the audit's actor).
    by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Command {
    Restock { quantity: u32 },
    Reserve { owner_id: Uuid, quantity: u32 },
    Release { owner_id: Uuid },
    Deduct { owner_id: Uuid },
}

/// What the owner answers (200): the stock after the command, or its refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Done(StockRecord),
    Refused(Refusal),
}

/// A refusal, as the owner's services gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
enum Refusal {
    InsufficientStock {
        requested: u32,
        available: u64,
    },
    StockLimit,
    ReservationConflict {
        held: u32,
    },
    ProductNotFound,
    VariantNotFound,
    /// An operator paused the item's stock there.
    Quarantined {
        reason: String,
    },
    /// Anything else the owner failed with (its log has the cause).
    Failed {
        message: String,
    },
}

impl Command {
    fn of(cmd: &InventoryCommand) -> Command {
        match *cmd {
            InventoryCommand::Restock { quantity } => Command::Restock { quantity: quantity.get() },
            InventoryCommand::Reserve { owner, quantity } => {
                Command::Reserve { owner_id: owner.0, quantity: quantity.get() }
            }
            InventoryCommand::Release { owner } => Command::Release { owner_id: owner.0 },
            InventoryCommand::Deduct { owner } => Command::Deduct { owner_id: owner.0 },
        }
    }

    /// The command, when its quantity is one (a caller's own `Quantity` always is).
    fn command(self) -> Option<InventoryCommand> {
        Some(match self {
            Command::Restock { quantity } => InventoryCommand::Restock { quantity: Quantity::new(quantity)? },
            Command::Reserve { owner_id, quantity } => {
                InventoryCommand::Reserve { owner: OwnerId(owner_id), quantity: Quantity::new(quantity)? }
            }
            Command::Release { owner_id } => InventoryCommand::Release { owner: OwnerId(owner_id) },
            Command::Deduct { owner_id } => InventoryCommand::Deduct { owner: OwnerId(owner_id) },
        })
    }

    /// Whether sending it twice applies it once.
    fn idempotent(self) -> bool {
        !matches!(self, Command::Restock { .. })
    }
}

impl Refusal {
    /// The owner's refusal to send back; `None` for a failure worth retrying (503).
    fn of(e: &ServiceError) -> Option<Refusal> {
        Some(match e {
            e if e.is_transient() => return None,
            ServiceError::Inventory(InventoryError::InsufficientStock { requested, available }) => {
                Refusal::InsufficientStock { requested: *requested, available: *available }
            }
            ServiceError::Inventory(InventoryError::StockLimit) => Refusal::StockLimit,
            ServiceError::Inventory(InventoryError::ReservationConflict { held }) => {
                Refusal::ReservationConflict { held: *held }
            }
            ServiceError::Catalog(CatalogError::ProductNotFound) => Refusal::ProductNotFound,
            ServiceError::Catalog(CatalogError::VariantChoice(VariantChoiceError::NotFound)) => {
                Refusal::VariantNotFound
            }
            ServiceError::Actor(ActorError::Quarantined { reason, .. }) => {
                Refusal::Quarantined { reason: reason.clone() }
            }
            other => Refusal::Failed { message: other.to_string() },
        })
    }

    /// The refusal as the caller's services would have had it from a local actor.
    fn into_error(self, key: &ItemKey) -> ServiceError {
        match self {
            Refusal::InsufficientStock { requested, available } => {
                InventoryError::InsufficientStock { requested, available }.into()
            }
            Refusal::StockLimit => InventoryError::StockLimit.into(),
            Refusal::ReservationConflict { held } => InventoryError::ReservationConflict { held }.into(),
            Refusal::ProductNotFound => CatalogError::ProductNotFound.into(),
            Refusal::VariantNotFound => VariantChoiceError::NotFound.into(),
            Refusal::Quarantined { reason } => {
                ActorError::Quarantined { key: QuarantineKey::new(KeyKind::Inventory, key.product_id.0), reason }.into()
            }
            Refusal::Failed { message } => Fault::internal_text(format!("the stock's owner failed: {message}")).into(),
        }
    }
}

/// The caller's side: sends a stock command to the owner of the item's partition.
pub struct StockCalls(pub Arc<Forwarder>);

impl StockOwners for StockCalls {
    fn execute(
        &self,
        key: ItemKey,
        cmd: InventoryCommand,
        by: String,
    ) -> BoxFuture<'static, Result<StockRecord, ServiceError>> {
        let forwarder = self.0.clone();
        Box::pin(async move { call(&forwarder, key, &cmd, by).await })
    }
}

async fn call(
    forwarder: &Forwarder,
    key: ItemKey,
    cmd: &InventoryCommand,
    by: String,
) -> Result<StockRecord, ServiceError> {
    let command = Command::of(cmd);
    let call = Call { product_id: key.product_id.0, variant_id: key.variant_id.map(|v| v.0), command, by };
    let body = Bytes::from(serde_json::to_vec(&call).map_err(|e| ServiceError::internal("encoding a stock call", e))?);
    let partition = forwarder.partitions().of(&key.variant_id.map_or(key.product_id.0, |v| v.0));
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(forwarder.recheck() * (attempt - 1)).await;
        }
        let Some(owner) = forwarder.owner(partition).await else {
            metrics::STOCK_CALLS.with_label_values(&["no_owner"]).inc();
            continue;
        };
        let url = format!("{}{PATH}", owner.advertise_url.trim_end_matches('/'));
        let sent = forwarder.call(&url, PATH, body.clone()).await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) if e.is_connect() => {
                // Never sent: nothing applied.
                metrics::STOCK_CALLS.with_label_values(&["unreachable"]).inc();
                forwarder.forget_owners();
                continue;
            }
            Err(e) => {
                metrics::STOCK_CALLS.with_label_values(&["no_answer"]).inc();
                forwarder.forget_owners();
                tracing::warn!(owner = %owner.node_id, error = %e, "a stock call got no answer");
                if command.idempotent() {
                    return Err(Fault::Unavailable("the stock's owner did not answer; retry").into());
                }
                return Err(Fault::internal_text(format!(
                    "the stock's owner ({}) did not answer a restock: it may or may not be applied; read the stock \
                     before restocking again",
                    owner.node_id
                ))
                .into());
            }
        };
        match answer.status().as_u16() {
            200 => {
                let bytes =
                    answer.bytes().await.map_err(|e| ServiceError::internal("reading a stock call's answer", e))?;
                let answer: Answer = serde_json::from_slice(&bytes)
                    .map_err(|e| ServiceError::internal("decoding a stock call's answer", e))?;
                metrics::STOCK_CALLS.with_label_values(&["answered"]).inc();
                return match answer {
                    Answer::Done(record) => Ok(record),
                    Answer::Refused(refusal) => Err(refusal.into_error(&key)),
                };
            }
            // Not (or no longer) the owner, or not serving yet: nothing applied.
            503 => {
                metrics::STOCK_CALLS.with_label_values(&["not_owner"]).inc();
                forwarder.forget_owners();
            }
            status => {
                metrics::STOCK_CALLS.with_label_values(&["failed"]).inc();
                return Err(Fault::internal_text(format!("a stock call to {} answered {status}", owner.node_id)).into());
            }
        }
    }
    Err(Fault::Unavailable("the stock's owner could not be reached; retry").into())
}

/// The owner's side: a signed call for an item this server owns, run on its actor. `None`
/// when the request is not a call this server takes (then it is routed like any other).
pub(super) async fn answer(front: &Front, req: &Incoming<'_>) -> Option<Result<warp::reply::Response, ApiError>> {
    if req.path != PATH {
        return None;
    }
    let (key, header) = (front.relay_key()?, req.headers.get(CALL_HEADER)?);
    if req.method != Method::POST {
        return None;
    }
    let now_ms = crate::domain::time::Timestamp::now().0;
    let caller = key.verify_call(header, PATH, &req.body, now_ms)?;
    let Some(shop) = front.shop() else {
        return Some(Err(Fault::Unavailable("the server is starting").into()));
    };
    let call: Call = match serde_json::from_slice(&req.body) {
        Ok(call) => call,
        Err(e) => return Some(Err(ServiceError::invalid("body", e.to_string()).into())),
    };
    let Some(cmd) = call.command.command() else {
        return Some(Err(ServiceError::invalid("quantity", "must be at least 1").into()));
    };
    let item = ItemKey { product_id: ProductId(call.product_id), variant_id: call.variant_id.map(VariantId) };
    let span = tracing::info_span!("stock_call", %caller, product_id = %call.product_id);
    let _e = span.enter();
    let answer = match shop.inventory.execute_here(item, cmd, &call.by).await {
        Ok(record) => Answer::Done(record),
        Err(e) => match Refusal::of(&e) {
            Some(refusal) => Answer::Refused(refusal),
            None => return Some(Err(e.into())),
        },
    };
    Some(Ok(response::json(200, &answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_and_its_refusals_cross_the_wire_as_the_caller_would_have_had_them_here() {
        let owner = OwnerId(Uuid::now_v7());
        let reserve = InventoryCommand::Reserve { owner, quantity: Quantity::new(3).unwrap() };
        let wire: Command = serde_json::from_str(&serde_json::to_string(&Command::of(&reserve)).unwrap()).unwrap();
        assert_eq!(wire.command(), Some(reserve));
        assert!(wire.idempotent() && !Command::Restock { quantity: 1 }.idempotent());
        assert_eq!(Command::Restock { quantity: 0 }.command(), None, "no quantity of zero gets through");

        let key = ItemKey { product_id: ProductId(Uuid::now_v7()), variant_id: None };
        let refusals: Vec<ServiceError> = vec![
            InventoryError::InsufficientStock { requested: 3, available: 1 }.into(),
            InventoryError::ReservationConflict { held: 2 }.into(),
            InventoryError::StockLimit.into(),
            CatalogError::ProductNotFound.into(),
            VariantChoiceError::NotFound.into(),
            ActorError::Quarantined {
                key: QuarantineKey::new(KeyKind::Inventory, key.product_id.0),
                reason: "audit".into(),
            }
            .into(),
        ];
        for refused in refusals {
            let refusal = Refusal::of(&refused).expect("a refusal, not a failure to retry");
            let wire: Answer =
                serde_json::from_str(&serde_json::to_string(&Answer::Refused(refusal)).unwrap()).unwrap();
            let Answer::Refused(back) = wire else { panic!("a refusal") };
            let back = back.into_error(&key);
            assert_eq!(format!("{back:?}"), format!("{refused:?}"), "the caller sees what the owner saw");
        }
        let reloading: ServiceError = ActorError::Reloading.into();
        assert_eq!(Refusal::of(&reloading), None, "a failure worth retrying is a 503, not a refusal");
    }
}
