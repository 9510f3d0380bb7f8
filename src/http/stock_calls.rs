//! Stock calls between the servers of a cluster. An item's stock lives in its variant's
//! (or product's) partition, changed only by the actor of the server that owns it; a saga
//! step (reserve, release, deduct) or an operator's stock command on another server is
//! sent to that server as a stock call, which runs it there and answers as the actor did:
//! the stock after it, or the domain's refusal, whole. Reservations, releases and
//! deductions are idempotent by their owner (a reservation's order or saga), so a step may
//! retry one whose answer was lost; a restock is not, so a restock whose answer was lost
//! is reported as such, never retried.
//!
//! A call to [`PATH`] (see [`super::calls`] for how calls travel and are believed).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::calls::{self, Unanswered};
use super::forward::{Forwarder, Incoming};
use super::{ApiError, Front};
use crate::actors::ActorError;
use crate::domain::ids::{ItemKey, OwnerId, ProductId, VariantId};
use crate::domain::inventory::{InventoryCommand, InventoryError, StockRecord};
use crate::domain::product::VariantChoiceError;
use crate::domain::quantity::Quantity;
use crate::domain::quarantine::{KeyKind, QuarantineKey};
use crate::error::Fault;
use crate::services::catalog::CatalogError;
use crate::services::inventory::StockOwners;
use crate::services::ServiceError;

/// Where a server takes stock calls.
pub const PATH: &str = "/internal/v1/stock";

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
    let answer = match calls::send(forwarder, "stock", partition, PATH, body).await {
        Ok(answer) => answer,
        // A reservation, release or deduction sent again applies once: its step retries it.
        Err(Unanswered::Lost(_)) if command.idempotent() => {
            return Err(Fault::Unavailable("the stock's owner did not answer; retry").into())
        }
        Err(unanswered) => return Err(unanswered.fault("a stock command").into()),
    };
    match serde_json::from_slice(&answer).map_err(|e| ServiceError::internal("decoding a stock call's answer", e))? {
        Answer::Done(record) => Ok(record),
        Answer::Refused(refusal) => Err(refusal.into_error(&key)),
    }
}

/// The owner's side: a signed call for an item this server owns, run on its actor. `None`
/// when the request is not a stock call (then it is routed like any other).
pub(super) async fn answer(front: &Front, req: &Incoming<'_>) -> Option<Result<warp::reply::Response, ApiError>> {
    calls::answer(front, req, PATH, |shop, call: Call| async move {
        let cmd = call.command.command().ok_or_else(|| ServiceError::invalid("quantity", "must be at least 1"))?;
        let item = ItemKey { product_id: ProductId(call.product_id), variant_id: call.variant_id.map(VariantId) };
        match shop.inventory.execute_here(item, cmd, &call.by).await {
            Ok(record) => Ok(Answer::Done(record)),
            Err(e) => Refusal::of(&e).map(Answer::Refused).ok_or_else(|| e.into()),
        }
    })
    .await
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
