//! A step whose effect is a single write (create_order's order, clear_cart's cart) may carry
//! its own success in that write: the effect and the saga's log entry land together, in one
//! group commit instead of two on the path a checkout waits for, and never one without the
//! other.
//!
//! The coordinator offers a [`SuccessLog`] to a forward step it runs; the step asks it for
//! the log write of "this step succeeded with `output`" and hands that to the actor, which
//! merges it into its own write set (and commits it even when the command turns out to be
//! a repeat that changes nothing). The instance after that transition waits in a [`Slot`]:
//! when the step answers success, the coordinator adopts it instead of writing again.
//!
//! Nothing else may change the saga while such a step runs, or the carried entry would be
//! stale: the coordinator refuses, as retryable, any input the machine would accept in the
//! meantime (see `SagaCoordinator::advance`). If the step answers a failure after asking for
//! the entry, the coordinator reads the log to learn whether it landed.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::coordinator::Counted;
use super::instance::SagaInstance;
use super::machine::Action;
use crate::store::WriteSet;
use crate::whole;

/// Builds, once, the log write of the current step's success with a given output.
pub struct SuccessLog(Box<dyn FnOnce(Value) -> WriteSet + Send + Sync>);

impl SuccessLog {
    pub(super) fn new(build: impl FnOnce(Value) -> WriteSet + Send + Sync + 'static) -> SuccessLog {
        SuccessLog(Box::new(build))
    }

    pub(super) fn build(self, output: Value) -> WriteSet {
        (self.0)(output)
    }
}

/// A transition prepared for a carried log write: what the coordinator adopts once the
/// step reports that its effect (and so the entry) is durable.
pub(super) struct Folded {
    /// The output the entry was built with; a step answering another one is logged anew.
    pub output: Value,
    pub saga: SagaInstance,
    pub action: Action,
    /// What the write changes in the census and the counters.
    pub counted: Counted,
}

pub(super) type Slot = Arc<Mutex<Option<Folded>>>;

/// Takes what the slot holds (a poisoned lock still holds a valid value).
pub(super) fn take(slot: &Slot) -> Option<Folded> {
    whole::lock(slot).take()
}

pub(super) fn put(slot: &Slot, folded: Folded) {
    *whole::lock(slot) = Some(folded);
}
