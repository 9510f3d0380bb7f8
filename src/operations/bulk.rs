//! Bulk actions: resume or abort every saga matching a filter. A dry run counts the matches
//! (exactly, up to the cap) and shows a sample; a real one records the action, answers its
//! id, and works through the matches in the background, a few sagas at a time, writing
//! each saga's audit row together with the action's progress, so `GET` shows how far it
//! got, also after a restart.
//!
//! Only unfinished sagas can be resumed or aborted, so the matches are looked for among the
//! unfinished sagas (or one order's or customer's), never in the history. The set is taken
//! when the action starts; a saga that has moved on by its turn is skipped, as is one past
//! its point of no return (abort) or one the engine refuses.
//!
//! An action a restart interrupts is not picked up again: on start it is marked
//! `interrupted` with what it had done; the same filter, run again, finds what is left.

use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::saga_audit;
use super::OperationError;
use crate::domain::ids::SagaId;
use crate::domain::time::Timestamp;
use crate::saga::query::{self, Direction, Paging, SagaFilter};
use crate::saga::{machine, SagaEngine, SagaError, SagaInstance, SagaState};
use crate::services::audit;
use crate::store::{keys, Page, Prefix, Record, Store, Table, Walk, WriteSet};

/// Sagas shown by a dry run.
pub const SAMPLE: usize = 20;
/// Sagas acted on at once.
const CONCURRENCY: usize = 8;
/// Outcomes other than done kept in the record (the audit trail has every one).
const MAX_PROBLEMS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkKind {
    Resume { reset_attempts: bool },
    Abort,
}

impl BulkKind {
    pub fn name(self) -> &'static str {
        match self {
            BulkKind::Resume { .. } => "resume",
            BulkKind::Abort => "abort",
        }
    }

    /// The states the action applies to: what the engine resumes (STUCK, RETRYING) or
    /// aborts (anything unfinished).
    pub fn applies_to(self, state: SagaState) -> bool {
        match self {
            BulkKind::Resume { .. } => matches!(state, SagaState::Stuck | SagaState::Retrying),
            BulkKind::Abort => !state.is_terminal(),
        }
    }
}

/// What an operator asked for, checked.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    pub kind: BulkKind,
    pub filter: SagaFilter,
    pub reason: Option<String>,
    pub actor: String,
}

/// A bulk action as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkAction {
    pub id: uuid::Uuid,
    /// "resume" or "abort".
    pub action: String,
    /// JSON text of the filter.
    pub filter: String,
    pub reason: Option<String>,
    pub reset_attempts: bool,
    pub actor: String,
    /// "running", "done", "failed" (it could not go on) or "interrupted" (by a restart).
    pub state: String,
    pub matched: u64,
    /// More sagas matched than the cap; only the first `matched` are acted on.
    pub capped: bool,
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
    /// The first sagas not done: (saga id, "skipped" | "failed", why).
    pub problems: Vec<(String, String, String)>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl Record for BulkAction {
    const VERSION: u8 = 1;
}

impl BulkAction {
    pub fn to_json(&self) -> Value {
        let problems: Vec<Value> =
            self.problems.iter().map(|(id, r, why)| json!({ "saga_id": id, "result": r, "reason": why })).collect();
        json!({
            "bulk_action_id": self.id,
            "action": self.action,
            "filter": serde_json::from_str::<Value>(&self.filter).unwrap_or(Value::Null),
            "reason": self.reason,
            "reset_attempts": self.reset_attempts,
            "actor": self.actor,
            "state": self.state,
            "matched": self.matched,
            "capped": self.capped,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "problems": problems,
            "error": self.error,
            "created_at": self.created_at.rfc3339(),
            "updated_at": self.updated_at.rfc3339(),
            "finished_at": self.finished_at.map(Timestamp::rfc3339),
        })
    }

    fn count(&mut self, saga_id: SagaId, outcome: &Result<SagaInstance, SagaError>) {
        let result = match outcome {
            Ok(_) => {
                self.done += 1;
                return;
            }
            Err(e) => saga_audit::result_of(e),
        };
        if result == "skipped" {
            self.skipped += 1;
        } else {
            self.failed += 1;
        }
        if let (Err(e), true) = (outcome, self.problems.len() < MAX_PROBLEMS) {
            let why: String = e.to_string().chars().take(300).collect();
            self.problems.push((saga_id.to_string(), result.to_string(), why));
        }
    }
}

#[derive(Clone)]
pub struct BulkService {
    store: Store,
    sagas: Arc<SagaEngine>,
    cap: usize,
}

/// The sagas a request matches, up to the cap.
struct Matches {
    ids: Vec<SagaId>,
    sample: Vec<SagaInstance>,
    capped: bool,
    /// Of `ids`, those an abort would skip (past their point of no return).
    past_point_of_no_return: usize,
}

impl BulkService {
    pub fn new(store: Store, sagas: Arc<SagaEngine>, cap: usize) -> BulkService {
        BulkService { store, sagas, cap: cap.max(1) }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The count of matching sagas (exact up to the cap) and the first few.
    pub async fn dry_run(&self, req: &BulkRequest) -> Result<Value, OperationError> {
        let m = self.matches(req).await?;
        let sample: Vec<Value> = m.sample.iter().map(summary).collect();
        let skipped = (req.kind == BulkKind::Abort).then_some(m.past_point_of_no_return);
        Ok(json!({
            "past_point_of_no_return": skipped,
            "dry_run": true,
            "action": req.kind.name(),
            "filter": req.filter.to_json(),
            "matched": m.ids.len(),
            "capped": m.capped,
            "cap": self.cap,
            "sample": sample,
        }))
    }

    /// Records the action and starts it in the background; answers the record as started.
    pub async fn start(&self, req: BulkRequest) -> Result<BulkAction, OperationError> {
        let m = self.matches(&req).await?;
        let now = Timestamp::now();
        let action = BulkAction {
            id: uuid::Uuid::now_v7(),
            action: req.kind.name().into(),
            filter: req.filter.to_json().to_string(),
            reason: req.reason.clone(),
            reset_attempts: matches!(req.kind, BulkKind::Resume { reset_attempts: true }),
            actor: req.actor.clone(),
            state: "running".into(),
            matched: m.ids.len() as u64,
            capped: m.capped,
            done: 0,
            skipped: 0,
            failed: 0,
            problems: Vec::new(),
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        let started = audit::entry(
            &req.actor,
            &format!("bulk_action.{}", req.kind.name()),
            ("bulk_action", &action.id.to_string()),
            json!(null),
            action.to_json(),
        );
        self.store.commit(self.write(&action).audit(started)).await?;
        tracing::warn!(bulk_action = %action.id, action = %action.action, matched = action.matched, actor = %action.actor, "bulk action started");
        let this = self.clone();
        let running = action.clone();
        tokio::spawn(async move { this.run(running, req, m.ids).await });
        Ok(action)
    }

    pub fn get(&self, id: uuid::Uuid) -> Result<Option<BulkAction>, OperationError> {
        Ok(self.store.load::<BulkAction>(&keys::bulk_action(id))?)
    }

    /// Bulk actions, newest first, after `cursor`.
    pub fn list(&self, cursor: Option<uuid::Uuid>, limit: usize) -> Result<Value, OperationError> {
        let after = cursor.map(keys::bulk_action);
        let upper = after.as_ref().map_or(std::ops::Bound::Unbounded, |a| std::ops::Bound::Excluded(a.as_bytes()));
        let walk = Walk {
            index: Table::BulkActions,
            prefix: &[],
            main: Table::BulkActions,
            lower: std::ops::Bound::Unbounded,
            upper,
            reverse: true,
        };
        let page: Page<BulkAction> = self.store.page_walk(&walk, limit, usize::MAX, |_| true)?;
        let actions: Vec<Value> = page.rows.iter().map(BulkAction::to_json).collect();
        let next = page.next.and_then(|k| uuid::Uuid::from_slice(&k).ok());
        Ok(json!({ "bulk_actions": actions, "next_cursor": next }))
    }

    /// On start, before serving: an action left running by the last process stopped with
    /// it. Marked `interrupted`, as far as it had got.
    pub async fn mark_interrupted(&self) -> Result<usize, OperationError> {
        // Bulk actions live in the shared partition: its owner marks them.
        if !self.store.owns_shared() {
            return Ok(0);
        }
        let mut ws = WriteSet::new();
        let mut n = 0;
        for (_, mut action) in self.store.scan::<BulkAction>(&Prefix::all(Table::BulkActions))? {
            if action.state == "running" {
                action.state = "interrupted".into();
                action.finished_at = Some(Timestamp::now());
                ws = ws.save(keys::bulk_action(action.id), &action);
                n += 1;
            }
        }
        if n > 0 {
            self.store.commit(ws).await?;
            tracing::warn!(bulk_actions = n, "bulk actions interrupted by the restart");
        }
        Ok(n)
    }

    fn write(&self, action: &BulkAction) -> WriteSet {
        WriteSet::new().save(keys::bulk_action(action.id), action)
    }

    /// Every matching saga the action applies to, up to the cap (one more is looked for, to
    /// say whether the cap cut the set), read page by page off the async threads.
    async fn matches(&self, req: &BulkRequest) -> Result<Matches, OperationError> {
        self.store.barrier().await?;
        let (store, filter, kind, cap) = (self.store.clone(), req.filter.clone(), req.kind, self.cap);
        let engine = self.sagas.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut all: Vec<SagaInstance> = Vec::new();
            let mut cursor = None;
            let mut ids = Vec::new();
            let mut past_point_of_no_return = 0;
            loop {
                let want = cap + 1 - ids.len();
                let keep = |s: &SagaInstance| kind.applies_to(s.state);
                let paging = Paging {
                    direction: Direction::OldestFirst,
                    cursor,
                    limit: want,
                    budget: query::SCAN_BUDGET,
                    unfinished_only: true,
                };
                let (page, next) = query::page(&store, &filter, &paging, keep)?;
                for s in page {
                    let point = engine.point_of_no_return(&s);
                    let refused = machine::abort_plan(&s, point.as_deref()).is_err();
                    past_point_of_no_return += usize::from(refused && ids.len() < cap);
                    ids.push(s.saga_id);
                    if all.len() < SAMPLE {
                        all.push(s);
                    }
                }
                match next {
                    Some(n) if ids.len() <= cap => cursor = Some(n),
                    _ => break,
                }
            }
            let capped = ids.len() > cap;
            ids.truncate(cap);
            Ok::<_, OperationError>(Matches { ids, sample: all, capped, past_point_of_no_return })
        });
        found.await.map_err(|e| OperationError::internal("bulk match task", e))?
    }

    async fn run(self, mut action: BulkAction, req: BulkRequest, ids: Vec<SagaId>) {
        let outcomes = futures::stream::iter(ids).map(|id| self.act(id, &req)).buffer_unordered(CONCURRENCY);
        let mut outcomes = std::pin::pin!(outcomes);
        while let Some((id, before, outcome)) = outcomes.next().await {
            action.count(id, &outcome);
            action.updated_at = Timestamp::now();
            let extra = json!({ "bulk_action_id": action.id });
            let verb = format!("saga.{}", req.kind.name());
            let row = saga_audit::saga_action(&req.actor, &verb, id, before, &outcome, extra);
            if let Err(e) = self.store.commit(self.write(&action).audit(row)).await {
                tracing::error!(bulk_action = %action.id, error = %e, "bulk action could not record its progress; stopped");
                action.state = "failed".into();
                action.error = Some(e.to_string());
                return;
            }
        }
        action.state = "done".into();
        action.finished_at = Some(Timestamp::now());
        action.updated_at = Timestamp::now();
        match self.store.commit(self.write(&action)).await {
            Ok(()) => {
                tracing::info!(bulk_action = %action.id, done = action.done, skipped = action.skipped, failed = action.failed, "bulk action finished")
            }
            Err(e) => tracing::error!(bulk_action = %action.id, error = %e, "bulk action could not record its end"),
        }
    }

    /// One saga: still in a state the action applies to (it may have moved since it was
    /// matched), then resumed or aborted through the engine, which refuses what it must.
    async fn act(&self, id: SagaId, req: &BulkRequest) -> (SagaId, Option<SagaState>, Result<SagaInstance, SagaError>) {
        let before = match self.store.load::<SagaInstance>(&keys::saga(id)) {
            Ok(Some(s)) => s,
            Ok(None) => return (id, None, Err(SagaError::NotFound)),
            Err(e) => return (id, None, Err(e.into())),
        };
        if !req.kind.applies_to(before.state) {
            let why = format!("the saga is {} now", before.state.as_str());
            return (id, Some(before.state), Err(SagaError::InvalidState(why)));
        }
        let outcome = match req.kind {
            BulkKind::Resume { reset_attempts } => self.sagas.resume(id, reset_attempts).await,
            BulkKind::Abort => self.sagas.abort(id, req.reason.as_deref().unwrap_or("bulk abort")).await,
        };
        (id, Some(before.state), outcome)
    }
}

/// A saga in a dry run's sample.
fn summary(s: &SagaInstance) -> Value {
    json!({
        "saga_id": s.saga_id,
        "type": s.saga_type,
        "state": s.state.as_str(),
        "current_step": s.current().map(|w| w.name.clone()),
        "last_error": s.current().and_then(|w| w.last_error.clone()),
        "order_id": s.order_id,
        "created_at": s.created_at.rfc3339(),
    })
}
