//! One actor per running saga. For every input it asks the pure machine for the next
//! action, writes the instance durably, and only then acts: runs the current step (in the
//! background, so other sagas and operator messages are never blocked by a slow gateway),
//! arms a retry timer, or, once settled, answers whoever waits and stops.
//! A log write that fails stops the coordinator without acting: the store is fail-stop, so
//! what reaches it is a refusal a retry cannot fix (a conflict, an oversize record) or a
//! store closing for shutdown. The log keeps the state before; the next start, or an
//! operator's resume of the now undriven saga, picks it up from there.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use super::alerts;
use super::census::Change;
use super::engine::SagaEngine;
use super::fold::{self, SuccessLog};
use super::instance::{Phase, SagaInstance, SagaState};
use super::machine::{self, Action, Failure, Input, Rules};
use super::metrics::StepOutcome;
use super::steps::StepContext;
use crate::domain::time::Timestamp;
use crate::error::Fault;
use crate::saga::SagaError;
use crate::store::{self, StoreError, Table, WriteSet};

pub struct SagaCoordinator {
    saga: SagaInstance,
    engine: Arc<SagaEngine>,
    /// Carries the settled instance to everyone who waits. One channel, whatever the number
    /// of waiters: a waiter is a receiver (a reference count, dropped when it gives up), so
    /// repeating a request on a running saga cannot grow anything the saga keeps.
    settled: watch::Sender<Option<SagaInstance>>,
    /// Written with the first transition of a new saga (its Idempotency-Key...); `None`
    /// once the saga is in the log.
    first_write: Option<WriteSet>,
    /// Whoever started the saga, told once its first write has landed (or was refused).
    /// A saga that begins with local steps has done nothing before the write that follows
    /// them, so that write registers it (one log write fewer per checkout).
    registered: Option<oneshot::Sender<Result<(), SagaError>>>,
    /// The armed retry timer. Cancelled at every transition: a timer armed for an earlier
    /// state (before a resume, say) must never run a step early.
    timer: Option<SpawnHandle>,
    /// Log writes not yet answered. The coordinator leaves only when none is: stopping an
    /// actor drops the replies it has not sent, and a dropped reply makes the engine send
    /// the input again to a fresh coordinator (an abort applied twice answers 409).
    writes_in_flight: usize,
    /// A log write failed: memory may be ahead of the log, so no further input is taken and
    /// the coordinator leaves once its writes in flight have answered.
    failed: bool,
    /// The running step was offered to carry its own success in its effect's write (see
    /// [`super::fold`]): until it answers, no other input may change the saga.
    folding: bool,
}

/// What a new saga's first log write carries, and who hears whether it landed.
pub struct FirstWrite {
    pub write: WriteSet,
    pub registered: oneshot::Sender<Result<(), SagaError>>,
}

/// What the coordinator does next, once a step has answered.
type Next = std::pin::Pin<Box<dyn ActorFuture<SagaCoordinator, Output = ()>>>;

/// Feeds an input; answers the instance as persisted after it.
#[derive(Message)]
#[rtype(result = "Result<SagaInstance, SagaError>")]
pub struct Drive(pub Input);

/// A receiver that holds the instance once the saga is settled (terminal or STUCK).
#[derive(Message)]
#[rtype(result = "watch::Receiver<Option<SagaInstance>>")]
pub struct Watch;

/// What waits for a saga to settle: `wait_for(Option::is_some)` on it.
pub type Settled = watch::Receiver<Option<SagaInstance>>;

// The saga registry is not quarantined (a saga parks PAUSED at the step instead).
crate::entity_messages!(commands: Drive; reads: Watch);

/// A fresh channel for a coordinator's `settled`.
pub fn settled_channel() -> (watch::Sender<Option<SagaInstance>>, Settled) {
    watch::channel(None)
}

impl SagaCoordinator {
    /// A saga already in the log; `settled` is told when it settles.
    pub fn new(saga: SagaInstance, engine: Arc<SagaEngine>, settled: watch::Sender<Option<SagaInstance>>) -> Self {
        Self::with_first_write(saga, engine, None, settled)
    }

    /// A new saga: `first` is written with its first log write, and its sender told how
    /// that write went (the saga is registered, or not at all).
    pub fn new_saga(
        saga: SagaInstance,
        engine: Arc<SagaEngine>,
        first: FirstWrite,
        settled: watch::Sender<Option<SagaInstance>>,
    ) -> Self {
        Self::with_first_write(saga, engine, Some(first), settled)
    }

    fn with_first_write(
        saga: SagaInstance,
        engine: Arc<SagaEngine>,
        first: Option<FirstWrite>,
        settled: watch::Sender<Option<SagaInstance>>,
    ) -> SagaCoordinator {
        let (first_write, registered) = first.map_or((None, None), |f| (Some(f.write), Some(f.registered)));
        SagaCoordinator {
            saga,
            engine,
            settled,
            first_write,
            registered,
            timer: None,
            writes_in_flight: 0,
            failed: false,
            folding: false,
        }
    }

    /// Transition, persist, then act.
    fn advance(&mut self, input: Input, ctx: &mut Context<Self>) -> ResponseActFuture<Self, Result<(), SagaError>> {
        if self.failed {
            return Box::pin(fut::ready(Err(SagaError::Fault(Fault::Unavailable(
                "the saga is reloading from its log; retry",
            )))));
        }
        let engine = self.engine.clone();
        if self.folding {
            // The running step carries this state's successor in its effect's write: an
            // input the machine would accept now must wait (a refusal is answered as is).
            let refusal = transition(&engine, &mut self.saga.clone(), input)
                .err()
                .unwrap_or(SagaError::Fault(Fault::Unavailable("the saga is committing its current step; retry")));
            return Box::pin(fut::ready(Err(refusal)));
        }
        let state_before = self.saga.state;
        // A local step's success goes to the log with the next write.
        let local_success = matches!(input, Input::Succeeded(_)) && engine.current_step_is_local(&self.saga);
        let starting = matches!(input, Input::Start);
        let action = match transition(&engine, &mut self.saga, input) {
            Ok(a) => a,
            Err(refusal) => return Box::pin(fut::ready(Err(refusal))),
        };
        // The state changed: whatever timer was armed belongs to the state before.
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let still_running = action == Action::Run && self.saga.state == SagaState::Running;
        if local_success && still_running && state_before == SagaState::Running {
            self.perform(action, ctx);
            return Box::pin(fut::ready(Ok(())));
        }
        // A saga whose first step is local has done nothing yet: it is registered by the
        // write after its local steps (its starter hears of it through `registered`).
        if starting && still_running && self.first_write.is_some() && engine.current_step_is_local(&self.saga) {
            self.perform(action, ctx);
            return Box::pin(fut::ready(Ok(())));
        }
        let first = self.first_write.take();
        let registers = first.is_some();
        let (ws, counted) = transition_write(&engine, &self.saga, first, state_before);
        let ticket = self.engine.store().commit(ws);
        self.writes_in_flight += 1;
        Box::pin(ticket.into_actor(self).map(move |res, act, ctx| {
            act.writes_in_flight -= 1;
            let reply = match res {
                Ok(_) => {
                    counted.apply(&act.engine);
                    act.perform(action, ctx);
                    Ok(())
                }
                Err(StoreError::Conflict(tag)) => {
                    // Only a first write carries a condition: the saga never started.
                    act.failed = true;
                    Err(super::SagaError::FirstWriteConflict(tag))
                }
                Err(e) => {
                    tracing::error!(saga.id = %act.saga.saga_id, error = %e, "saga log write failed; the saga waits in the log for a resume or the next start");
                    act.failed = true;
                    Err(e.into())
                }
            };
            act.leave_if_done(ctx);
            // The saga's first write: its starter hears how it went.
            let starter = if registers { act.registered.take() } else { None };
            match starter {
                Some(starter) => {
                    let _ = starter.send(reply);
                    Ok(())
                }
                None => reply,
            }
        }))
    }

    fn perform(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Run => self.run_current(ctx),
            Action::WaitUntil(at) => {
                let delay = Duration::from_millis((at.0 - Timestamp::now().0).max(0) as u64);
                tracing::info!(saga.id = %self.saga.saga_id, retry_in_ms = delay.as_millis() as u64, "retry scheduled");
                self.timer = Some(ctx.run_later(delay, |act, ctx| {
                    act.timer = None;
                    let next = act.advance(Input::RetryDue, ctx).map(|_, _, _| ());
                    ctx.spawn(next);
                }));
            }
            Action::Idle => {
                if self.saga.state == SagaState::Paused && !self.engine.still_paused(&self.saga) {
                    // Released while this saga was parking: the release may have looked for
                    // parked sagas before this log write, so the saga resumes itself.
                    let next = self.advance(Input::Resume { reset_attempts: false }, ctx).map(|_, _, _| ());
                    ctx.spawn(next);
                } else if self.saga.state.is_settled() {
                    self.settle(ctx);
                }
            }
        }
    }

    fn run_current(&mut self, ctx: &mut Context<Self>) {
        let Some(work) = self.saga.current().cloned() else { return };
        let span = tracing::info_span!(
            "saga.step",
            saga.id = %self.saga.saga_id,
            saga.r#type = %self.saga.saga_type,
            saga.step = %work.name,
            saga.attempt = work.attempts
        );
        let slot: fold::Slot = Default::default();
        let success_log = self.offer_fold(&slot);
        self.folding = success_log.is_some();
        let step_ctx = StepContext {
            saga_id: self.saga.saga_id,
            saga_type: self.saga.saga_type.clone(),
            raw_input: self.saga.input_json(),
            raw_data: self.saga.data_json(),
            attempt: work.attempts,
            max_attempts: work.policy.max_attempts,
            forward_may_have_applied: self.saga.phase == Phase::Compensating
                && self
                    .saga
                    .steps
                    .get(self.saga.cursor as usize)
                    .is_some_and(|r| self.saga.may_have_applied(&r.step.name)),
            deps: self.engine.deps(),
            success_log,
        };
        let future = match self.engine.handler(&work.name) {
            Some(handler) => handler.run(step_ctx),
            None => {
                let e = Fault::internal_text(format!("no handler for step {}", work.name)).into();
                Box::pin(async move { Err(super::steps::business(e)) })
            }
        };
        let started = std::time::Instant::now();
        let future = async move {
            let result = future.await;
            match &result {
                Ok(_) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "step succeeded"),
                Err(Failure::Business(e)) => tracing::info!(code = %e.code, "step failed (business)"),
                Err(Failure::Transient { message, .. }) => tracing::warn!(error = %message, "step failed (transient)"),
                Err(Failure::Quarantined { key, .. }) => {
                    tracing::warn!(%key, "step touches a quarantined key: saga paused")
                }
            }
            (result, started.elapsed().as_secs_f64())
        }
        .instrument(span);
        ctx.spawn(future.into_actor(self).then(move |(result, secs), act, ctx| {
            act.engine.metrics().step_ended(&act.saga.saga_type, &work.name, StepOutcome::of(&result), secs);
            act.folding = false;
            match (result, fold::take(&slot)) {
                (Ok(output), Some(folded)) if output == folded.output => {
                    act.adopt(folded, ctx);
                    Box::pin(fut::ready(())) as Next
                }
                (Ok(output), Some(_)) => {
                    tracing::error!(saga.id = %act.saga.saga_id, "a step answered another output than it logged; logging the answer");
                    Box::pin(act.advance(Input::Succeeded(output), ctx).map(|_, _, _| ()))
                }
                (Err(failure), Some(folded)) => act.after_failed_fold(failure, folded),
                (result, None) => {
                    let input = match result {
                        Ok(output) => Input::Succeeded(output),
                        Err(failure) => Input::Failed(failure),
                    };
                    Box::pin(act.advance(input, ctx).map(|_, _, _| ()))
                }
            }
        }));
    }

    /// A carried log write for the step about to run, if its definition says its effect
    /// carries it and the saga is already in the log.
    fn offer_fold(&self, slot: &fold::Slot) -> Option<SuccessLog> {
        let forward = self.saga.phase == Phase::Forward;
        if !forward || self.first_write.is_some() || !self.engine.current_step_is_logged_with_effect(&self.saga) {
            return None;
        }
        let (snapshot, engine, slot) = (self.saga.clone(), self.engine.clone(), slot.clone());
        Some(SuccessLog::new(move |output| {
            let mut saga = snapshot;
            let state_before = saga.state;
            match transition(&engine, &mut saga, Input::Succeeded(output.clone())) {
                Ok(action) => {
                    let (ws, mut counted) = transition_write(&engine, &saga, None, state_before);
                    counted.carried = true;
                    fold::put(&slot, fold::Folded { output, saga, action, counted });
                    ws
                }
                // A success the machine refuses is not carried; the coordinator will say why.
                Err(_) => WriteSet::new(),
            }
        }))
    }

    /// The step's effect carried its success to the log: memory catches up, no write.
    fn adopt(&mut self, folded: fold::Folded, ctx: &mut Context<Self>) {
        self.saga = folded.saga;
        folded.counted.apply(&self.engine);
        self.perform(folded.action, ctx);
    }

    /// The step failed after building its carried entry: whether that entry (and so the
    /// effect) landed decides, so the log is read once every write before is applied.
    fn after_failed_fold(&mut self, failure: machine::Failure, folded: fold::Folded) -> Next {
        let barrier = self.engine.store().barrier();
        Box::pin(barrier.into_actor(self).then(move |_, act, ctx| {
            let id = act.saga.saga_id;
            let logged = act.engine.store().load::<SagaInstance>(&store::keys::saga(id));
            if matches!(&logged, Ok(Some(saga)) if *saga == folded.saga) {
                tracing::warn!(saga.id = %id, "the step's effect and its success are durable although it reported a failure");
                act.adopt(folded, ctx);
                return Box::pin(fut::ready(())) as Next;
            }
            Box::pin(act.advance(Input::Failed(failure), ctx).map(|_, _, _| ()))
        }))
    }

    /// Settled: answer the waiters and leave memory (the log has everything).
    fn settle(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(saga.id = %self.saga.saga_id, saga.r#type = %self.saga.saga_type, state = self.saga.state.as_str(), "saga settled");
        self.settled.send_replace(Some(self.saga.clone()));
        self.leave_if_done(ctx);
    }

    /// Leaves memory once settled (or failed) with every log write answered; otherwise the
    /// last write in flight calls this again when it answers.
    fn leave_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.writes_in_flight == 0 && (self.failed || self.saga.state.is_settled()) {
            self.stop_now(ctx);
        }
    }

    fn stop_now(&mut self, ctx: &mut Context<Self>) {
        self.engine.forget(&self.saga.saga_id, &ctx.address());
        ctx.stop();
    }
}

/// What a transition's write changes in the census and the counters, taken when it is
/// submitted and applied once it is durable (never for a write that failed).
pub(super) struct Counted {
    saga_type: String,
    /// Written with a step's effect (see [`super::fold`]), not on its own.
    carried: bool,
    census: Option<Change>,
    started: Option<String>,
    /// A transition into a terminal state: (type, state, seconds since its start).
    finished: Option<(String, SagaState, f64)>,
}

impl Counted {
    fn of(saga: &SagaInstance, logged_before: Option<SagaState>) -> Counted {
        let finished = saga.state.is_terminal() && logged_before != Some(saga.state);
        Counted {
            saga_type: saga.saga_type.clone(),
            carried: false,
            census: Change::of(saga, logged_before),
            started: logged_before.is_none().then(|| saga.saga_type.clone()),
            finished: finished.then(|| {
                let secs = (saga.updated_at.0 - saga.created_at.0).max(0) as f64 / 1000.0;
                (saga.saga_type.clone(), saga.state, secs)
            }),
        }
    }

    fn apply(self, engine: &SagaEngine) {
        engine.metrics().log_written(&self.saga_type, self.carried);
        if let Some(change) = self.census {
            engine.census().apply(change);
        }
        if let Some(saga_type) = self.started {
            engine.metrics().saga_started(&saga_type);
        }
        if let Some((saga_type, state, secs)) = self.finished {
            engine.metrics().saga_finished(&saga_type, state, secs);
        }
    }
}

/// Applies `input` to `saga` under its definition's rules; a refusal as the caller hears it.
fn transition(engine: &SagaEngine, saga: &mut SagaInstance, input: Input) -> Result<Action, SagaError> {
    let saga_type = saga.saga_type.clone();
    let point = engine.point_of_no_return(saga);
    let policy = |step: &str| engine.policy(&saga_type, step);
    let rules = Rules { point_of_no_return: point.as_deref(), policy: &policy };
    machine::transition(saga, input, Timestamp::now(), &rules).map_err(|e| engine.refusal(saga, e))
}

/// Everything a transition of `saga` from `state_before` writes: the log and its listing
/// entries; for a new saga, `first` and its registration as unfinished (recovered on start);
/// for a finished one, its retention entry; an alert if it just became STUCK.
fn transition_write(
    engine: &SagaEngine,
    saga: &SagaInstance,
    first: Option<WriteSet>,
    state_before: SagaState,
) -> (WriteSet, Counted) {
    let active = store::keys::active_saga(saga.saga_id);
    let (mut ws, logged_before) = match first {
        Some(first) => (first.save(active.clone(), &0u32), None),
        None => (WriteSet::new(), Some(state_before)),
    };
    ws = log_write(ws, saga, logged_before);
    if saga.state.is_terminal() {
        ws = ws.remove(active);
        ws = store::retained::saga_finished(ws, saga.saga_id, Timestamp::now());
    }
    if alerts::became_stuck(saga, state_before) {
        ws = ws.notify(alerts::alert(alerts::STUCK_KIND, saga, &engine.deps().settings));
    }
    (ws, Counted::of(saga, logged_before))
}

/// The saga log write of `saga`, with its listing entries moved from the state it was
/// logged in (`None`: never logged); nothing for the listings when the state is the same.
pub fn log_write(ws: WriteSet, saga: &SagaInstance, logged_before: Option<SagaState>) -> WriteSet {
    let id = saga.saga_id.as_bytes();
    let before = logged_before.map(|s| store::saga_index(id, &saga.saga_type, s)).unwrap_or_default();
    let mut ws = store::reindex(ws, Table::SagasByFilter, &before, &super::indexes::saga_index_of(saga));
    if logged_before.is_none() {
        // Its order and customer never change: listed under them once, at the first write.
        ws = super::indexes::saga_owner_index(saga).into_iter().fold(ws, |ws, k| ws.put_key(Table::SagasByOwner, k));
    }
    ws.save(store::keys::saga(saga.saga_id), saga)
}

impl Actor for SagaCoordinator {
    type Context = Context<Self>;
}

// Stopped when its partition goes to another server (see `SagaEngine::give_up`).
crate::passivates!(SagaCoordinator);

impl Handler<Drive> for SagaCoordinator {
    type Result = ResponseActFuture<Self, Result<SagaInstance, SagaError>>;

    fn handle(&mut self, msg: Drive, ctx: &mut Context<Self>) -> Self::Result {
        Box::pin(self.advance(msg.0, ctx).map(|result, act, _| result.map(|()| act.saga.clone())))
    }
}

impl Handler<Watch> for SagaCoordinator {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, _: Watch, ctx: &mut Context<Self>) -> Self::Result {
        if self.saga.state.is_settled() {
            self.settled.send_replace(Some(self.saga.clone()));
            self.leave_if_done(ctx);
        }
        MessageResult(self.settled.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many receivers of `settled` are alive: what the coordinator keeps for waiters.
    #[derive(Message)]
    #[rtype(result = "usize")]
    struct Waiters;

    impl Handler<Waiters> for SagaCoordinator {
        type Result = usize;

        fn handle(&mut self, _: Waiters, _: &mut Context<Self>) -> usize {
            self.settled.receiver_count()
        }
    }

    /// A client repeating an Idempotency-Key on a saga that keeps retrying asks the
    /// coordinator to watch it each time, then gives up: nothing kept for it may remain.
    #[test]
    fn waiters_that_give_up_leave_nothing_behind() {
        crate::startup::with_shop(|_store, shop| async move {
            let def = crate::saga::definition::embedded().unwrap().into_iter().next().unwrap();
            let mut saga =
                SagaInstance::new(&def, |_| crate::retry::RetryPolicy::NONE, serde_json::json!({}), None, None);
            saga.state = SagaState::Retrying;
            let (settled, first_waiter) = settled_channel();
            let coordinator = SagaCoordinator::new(saga, shop.sagas.clone(), settled).start();

            let baseline = coordinator.send(Waiters).await.unwrap();
            assert_eq!(baseline, 1, "the waiter the saga started with");
            for _ in 0..200 {
                drop(coordinator.send(Watch).await.unwrap());
            }
            assert_eq!(coordinator.send(Waiters).await.unwrap(), baseline, "200 waiters gave up");
            let still_waiting = coordinator.send(Watch).await.unwrap();
            assert_eq!(coordinator.send(Waiters).await.unwrap(), baseline + 1);
            drop((still_waiting, first_waiter));
            assert_eq!(coordinator.send(Waiters).await.unwrap(), 0);
        });
    }
}
