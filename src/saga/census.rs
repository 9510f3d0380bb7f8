//! The saga census: how many sagas there are of each type in each state, exactly, and what
//! each unfinished saga is doing (state, current step, last error, since when), in memory,
//! so that triage, the gauges and the alerts never read the store.
//!
//! A server counts the sagas of the partitions it owns (every one on the embedded store):
//! summed over a cluster's servers, each saga once.
//!
//! Kept exact by construction: seeded at start, then moved by every transition a coordinator
//! has made durable and every deletion the retention sweep has committed. Nothing is written
//! for it: the commit path carries no extra row.
//!
//! Seeded in two parts, so that a start with a million sagas listens at once:
//! - the unfinished sagas, from the instances the engine reads anyway to resume them (the
//!   active list: the work in flight, not the history), before the server listens;
//! - the finished ones, counted on a background thread from the saga listing index, keys
//!   only: every saga has a type entry, FAILED and ABORTED ones also a state entry, so a saga
//!   that was not unfinished at start (and was not started since) is COMPLETED unless its
//!   state entry says otherwise. Until that count is done the census says `complete: false`
//!   and its finished counts hold only what finished since the start; sagas started
//!   meanwhile are noted so the count passes over them (their own transitions count them),
//!   and the retention sweep leaves sagas alone (a deletion the count may or may not have
//!   seen would make it inexact).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::instance::{SagaInstance, SagaState};
use crate::domain::ids::SagaId;
use crate::domain::partition::{Owned, Partition, Partitions};
use crate::domain::time::Timestamp;
use crate::store::Store;
use crate::whole;

/// Every state, in the order the census keeps its counts.
pub const STATES: [SagaState; 8] = [
    SagaState::Running,
    SagaState::Retrying,
    SagaState::Compensating,
    SagaState::Stuck,
    SagaState::Completed,
    SagaState::Failed,
    SagaState::Aborted,
    SagaState::Paused,
];

fn slot(state: SagaState) -> usize {
    match state {
        SagaState::Running => 0,
        SagaState::Retrying => 1,
        SagaState::Compensating => 2,
        SagaState::Stuck => 3,
        SagaState::Completed => 4,
        SagaState::Failed => 5,
        SagaState::Aborted => 6,
        SagaState::Paused => 7,
    }
}

/// The states an operator triages: their sagas are grouped by step and error.
fn triaged(state: SagaState) -> bool {
    matches!(state, SagaState::Stuck | SagaState::Retrying | SagaState::Compensating | SagaState::Paused)
}

/// Longest error text kept per unfinished saga (the log's own is bounded too).
const ERROR_CHARS: usize = 300;
/// Index keys the background count checks against the noted sagas per lock.
const COUNT_BATCH: usize = 4096;

/// What an unfinished saga is doing, as of its last durable transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    pub saga_type: String,
    pub state: SagaState,
    /// The current step or compensation (kept for the triaged states only).
    pub step: Option<String>,
    /// Its last error, ids replaced by `{id}` so that one cause makes one group.
    pub error: Option<String>,
    /// Since when it is in its state (see [`state_since`]); for RETRYING, since the first
    /// attempt of the step it retries (a retry runs it again, RETRYING -> RUNNING ->
    /// RETRYING: one episode).
    pub since: Timestamp,
}

impl Unfinished {
    fn of(saga: &SagaInstance, since: Timestamp) -> Unfinished {
        let detail = triaged(saga.state);
        let work = saga.current().filter(|_| detail);
        Unfinished {
            saga_type: saga.saga_type.clone(),
            state: saga.state,
            step: work.map(|w| w.name.clone()),
            error: work.and_then(|w| w.last_error.as_deref()).map(normalize_error),
            since,
        }
    }
}

/// When the saga entered its state, as far as its record says: for a STUCK one, when its
/// current step failed for good; for a RETRYING one, the first attempt of its current step;
/// otherwise its last transition (which a recovery on start also is).
pub fn state_since(saga: &SagaInstance) -> Timestamp {
    let work = saga.current();
    let since = match saga.state {
        // A paused step's attempt ended when it found its key quarantined.
        SagaState::Stuck | SagaState::Paused => work.and_then(|w| w.finished_at),
        SagaState::Retrying => work.and_then(|w| w.started_at),
        SagaState::Running
        | SagaState::Compensating
        | SagaState::Completed
        | SagaState::Failed
        | SagaState::Aborted => None,
    };
    since.unwrap_or(saga.updated_at)
}

/// What one transition changes in the census, taken from the saga when its write is
/// submitted (the coordinator may move on before the write is durable) and applied once it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub saga_id: SagaId,
    pub before: Option<SagaState>,
    /// The saga as of the write (its state is the state after).
    pub entry: Unfinished,
}

impl Change {
    /// `None` when the census does not change: the common case, a step of a running saga
    /// that succeeded, costs no lock and no allocation.
    pub fn of(saga: &SagaInstance, before: Option<SagaState>) -> Option<Change> {
        let moved = before != Some(saga.state);
        (moved || triaged(saga.state)).then(|| Change {
            saga_id: saga.saga_id,
            before,
            entry: Unfinished::of(saga, state_since(saga)),
        })
    }
}

pub struct SagaCensus {
    /// The store's partition count: the census counts by partition, so that the sagas of a
    /// partition this server gives up leave it exactly (see [`SagaCensus::give_up`]).
    partitions: Partitions,
    inner: Mutex<Inner>,
    /// The finished sagas of before the start are counted (read without the lock on the
    /// hot path; written under it).
    complete: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// By type, then partition.
    counts: HashMap<String, HashMap<Partition, [i64; STATES.len()]>>,
    unfinished: HashMap<SagaId, Unfinished>,
    /// Until the count of finished sagas is done: the sagas whose transitions count them
    /// (unfinished at start, or started since), which that count passes over.
    counted_live: HashSet<SagaId>,
    /// Counts of finished sagas under way: the one at start, and one per partition gained
    /// since (see [`SagaCensus::gaining`]). Complete once none is.
    counting: u32,
    complete: bool,
}

impl Inner {
    fn add(&mut self, saga_type: &str, partition: Partition, state: SagaState, n: i64) {
        // Looked up by `&str` first: a transition allocates nothing.
        let by_partition = match self.counts.get_mut(saga_type) {
            Some(by_partition) => by_partition,
            None => self.counts.entry(saga_type.to_string()).or_default(),
        };
        by_partition.entry(partition).or_insert([0; STATES.len()])[slot(state)] += n;
    }
}

/// One triage group: sagas in the same state, of the same type, at the same step, with
/// the same error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageGroup {
    pub state: SagaState,
    pub saga_type: String,
    pub step: Option<String>,
    pub error: Option<String>,
    pub count: u64,
    pub oldest_saga_id: SagaId,
    pub oldest_since: Timestamp,
}

/// The triage view: counts by type and state, and the groups of sagas needing attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    pub complete: bool,
    /// type -> state (`RUNNING`...) -> count (states with none left out).
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// STUCK first, then RETRYING, then COMPENSATING; within one, the largest group first.
    pub groups: Vec<TriageGroup>,
    /// Of a cluster's servers sharing the partitions: which counted what (see
    /// [`Triage::of_cluster`]); none where one server counts every partition.
    pub coverage: Option<Coverage>,
}

/// Which server counted which partitions' sagas for a cluster's triage, and what is missing
/// from it: the servers that did not answer, the partitions nobody counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// (node id, the partitions it counted), the answering server first.
    pub servers: Vec<(String, Vec<u16>)>,
    pub unanswered: Vec<String>,
    pub uncounted: Vec<u16>,
    /// Counted by two servers (a partition that moved while they answered).
    pub counted_twice: Vec<u16>,
}

/// One server's census of its partitions, as a cluster's triage gathers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub node_id: String,
    pub partitions: Vec<u16>,
    pub triage: Triage,
}

impl Triage {
    /// A cluster's triage from each server's census (`counted`, this server's first) and
    /// the servers that did not answer: counts added, the groups of the same state, type,
    /// step and error joined. Complete only when every server's count is, every partition
    /// of `partitions` was counted by exactly one and none is missing.
    pub fn of_cluster(partitions: Partitions, counted: Vec<Counted>, unanswered: Vec<String>) -> Triage {
        let mut seen = vec![0u32; usize::from(partitions.count())];
        for c in &counted {
            for p in &c.partitions {
                if let Some(n) = seen.get_mut(usize::from(*p)) {
                    *n += 1;
                }
            }
        }
        let numbered = |keep: fn(u32) -> bool| -> Vec<u16> {
            seen.iter().enumerate().filter(|(_, n)| keep(**n)).map(|(p, _)| p as u16).collect()
        };
        let coverage = Coverage {
            servers: counted.iter().map(|c| (c.node_id.clone(), c.partitions.clone())).collect(),
            unanswered,
            uncounted: numbered(|n| n == 0),
            counted_twice: numbered(|n| n > 1),
        };
        let mut complete =
            coverage.unanswered.is_empty() && coverage.uncounted.is_empty() && coverage.counted_twice.is_empty();
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut groups: HashMap<(usize, String, Option<String>, Option<String>), TriageGroup> = HashMap::new();
        for Counted { triage, .. } in counted {
            complete &= triage.complete;
            for (saga_type, by_state) in triage.counts {
                let sum = counts.entry(saga_type).or_default();
                for (state, n) in by_state {
                    *sum.entry(state).or_default() += n;
                }
            }
            for g in triage.groups {
                let key = (slot(g.state), g.saga_type.clone(), g.step.clone(), g.error.clone());
                match groups.get_mut(&key) {
                    Some(joined) => {
                        joined.count += g.count;
                        if (g.oldest_since, g.oldest_saga_id) < (joined.oldest_since, joined.oldest_saga_id) {
                            (joined.oldest_since, joined.oldest_saga_id) = (g.oldest_since, g.oldest_saga_id);
                        }
                    }
                    None => {
                        groups.insert(key, g);
                    }
                }
            }
        }
        let mut groups: Vec<TriageGroup> = groups.into_values().collect();
        rank(&mut groups);
        Triage { complete, counts, groups, coverage: Some(coverage) }
    }

    pub fn to_json(&self, now: Timestamp) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                json!({
                    "state": g.state.as_str(),
                    "type": g.saga_type,
                    "step": g.step,
                    "error": g.error,
                    "count": g.count,
                    "oldest_saga_id": g.oldest_saga_id,
                    "oldest_since": g.oldest_since.rfc3339(),
                    "oldest_age_secs": age_secs(now, g.oldest_since),
                })
            })
            .collect();
        let mut view = json!({
            "complete": self.complete,
            "counts": self.counts,
            "groups": groups,
            "generated_at": now.rfc3339(),
        });
        if let Some(c) = &self.coverage {
            let servers: Vec<Value> = c
                .servers
                .iter()
                .map(|(node, partitions)| json!({ "node_id": node, "partitions": partitions }))
                .collect();
            view["servers"] = json!(servers);
            view["unanswered_servers"] = json!(c.unanswered);
            view["uncounted_partitions"] = json!(c.uncounted);
            view["partitions_counted_twice"] = json!(c.counted_twice);
        }
        view
    }
}

/// STUCK first, then RETRYING, then the rest; within one state the largest group first,
/// then the oldest.
fn rank(groups: &mut [TriageGroup]) {
    let rank = |s: SagaState| match s {
        SagaState::Stuck => 0,
        SagaState::Retrying => 1,
        _ => 2,
    };
    groups.sort_by(|a, b| {
        (rank(a.state), std::cmp::Reverse(a.count), a.oldest_since, &a.saga_type, &a.step, &a.error).cmp(&(
            rank(b.state),
            std::cmp::Reverse(b.count),
            b.oldest_since,
            &b.saga_type,
            &b.step,
            &b.error,
        ))
    });
}

pub fn age_secs(now: Timestamp, since: Timestamp) -> f64 {
    (now.0 - since.0).max(0) as f64 / 1000.0
}

impl SagaCensus {
    pub fn new(partitions: Partitions) -> SagaCensus {
        // The count at start is under way from the first moment.
        let inner = Inner { counting: 1, ..Inner::default() };
        SagaCensus { partitions, inner: Mutex::new(inner), complete: AtomicBool::new(false) }
    }

    fn partition_of(&self, id: SagaId) -> Partition {
        self.partitions.of(&id.0)
    }

    /// The sagas of the partitions this server no longer owns leave the census: their new
    /// owner counts them.
    pub fn give_up(&self, owned: &Owned) {
        let mut inner = self.lock();
        for by_partition in inner.counts.values_mut() {
            by_partition.retain(|partition, _| owned.contains(*partition));
        }
        inner.unfinished.retain(|id, _| owned.owns(&id.0));
        inner.counted_live.retain(|id| owned.owns(&id.0));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        whole::lock(&self.inner)
    }

    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// The unfinished sagas, as read from the log at start, before anything runs.
    pub fn seed_unfinished(&self, sagas: &[SagaInstance]) {
        let mut inner = self.lock();
        for saga in sagas {
            inner.add(&saga.saga_type, self.partition_of(saga.saga_id), saga.state, 1);
            inner.counted_live.insert(saga.saga_id);
            if !saga.state.is_terminal() {
                inner.unfinished.insert(saga.saga_id, Unfinished::of(saga, state_since(saga)));
            }
        }
    }

    /// A new saga, before its first write: the background count must pass over it.
    pub fn starting(&self, id: SagaId) {
        if !self.is_complete() {
            let mut inner = self.lock();
            if !inner.complete {
                inner.counted_live.insert(id);
            }
        }
    }

    /// A transition is durable: `saga` as written, `before` the state it was logged in
    /// (`None`: its first write).
    pub fn record(&self, saga: &SagaInstance, before: Option<SagaState>) {
        if let Some(change) = Change::of(saga, before) {
            self.apply(change);
        }
    }

    /// Applies a change taken when its write was submitted (see [`Change`]).
    pub fn apply(&self, change: Change) {
        let Change { saga_id, before, entry } = change;
        let after = entry.state;
        let moved = before != Some(after);
        let partition = self.partition_of(saga_id);
        let mut inner = self.lock();
        if moved {
            if let Some(b) = before {
                inner.add(&entry.saga_type, partition, b, -1);
            }
            inner.add(&entry.saga_type, partition, after, 1);
        }
        if after.is_terminal() {
            inner.unfinished.remove(&saga_id);
            return;
        }
        let entry = match inner.unfinished.get(&saga_id) {
            Some(u) if !moved => Unfinished { since: u.since, ..entry },
            _ => entry,
        };
        inner.unfinished.insert(saga_id, entry);
    }

    /// Finished sagas the retention sweep deleted (its write is durable).
    pub fn deleted(&self, saga_id: SagaId, saga_type: &str, state: SagaState) {
        self.lock().add(saga_type, self.partition_of(saga_id), state, -1);
    }

    /// Counts the finished sagas of before the start on a background thread (see the module
    /// comment), then marks the census complete.
    pub fn count_finished_in_background(self: &Arc<Self>, store: Store) {
        self.count_in_background(store, None);
    }

    /// Counts on a background thread the finished sagas of `partitions` (this server's
    /// share as the count starts, when none).
    fn count_in_background(self: &Arc<Self>, store: Store, partitions: Option<Owned>) {
        let census = self.clone();
        let spawned = std::thread::Builder::new().name("saga-census".into()).spawn(move || {
            let started = std::time::Instant::now();
            let owned = partitions.unwrap_or_else(|| (*store.owned()).clone());
            let numbers: Vec<u16> = owned.partitions().iter().map(|p| p.0).collect();
            match census.count(&store, &owned) {
                Ok(n) => tracing::info!(
                    finished_sagas = n,
                    partitions = %crate::domain::partition::ranges(&numbers),
                    ms = started.elapsed().as_millis() as u64,
                    "finished sagas counted"
                ),
                Err(e) => tracing::error!(error = %e, "counting finished sagas failed; the census stays incomplete"),
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the saga census thread; the census stays incomplete");
        }
    }

    /// The count at start itself, of this server's partitions' finished sagas (the others
    /// count theirs); returns how many it found.
    pub fn count_finished(&self, store: &Store) -> Result<u64, crate::store::StoreError> {
        self.count(store, &store.owned())
    }

    /// Partitions were just taken: their finished sagas are to be counted
    /// ([`SagaCensus::count_gained_in_background`]), and until then the census is
    /// incomplete, as at start (new sagas are noted so the count passes over them, and the
    /// retention sweep leaves sagas alone). Called before their unfinished sagas are seeded.
    pub fn gaining(&self) {
        let mut inner = self.lock();
        inner.counting += 1;
        inner.complete = false;
        self.complete.store(false, Ordering::Release);
    }

    /// Counts the finished sagas of the partitions `gained` (announced by
    /// [`SagaCensus::gaining`]) on a background thread.
    pub fn count_gained_in_background(self: &Arc<Self>, store: Store, gained: Owned) {
        self.count_in_background(store, Some(gained));
    }

    fn count(&self, store: &Store, owned: &Owned) -> Result<u64, crate::store::StoreError> {
        let ids = |state| -> Result<HashSet<Vec<u8>>, crate::store::StoreError> {
            Ok(store.saga_ids_indexed_in(state)?.into_iter().collect())
        };
        let (failed, aborted) = (ids(SagaState::Failed)?, ids(SagaState::Aborted)?);
        let mut found: HashMap<(String, Partition), [i64; STATES.len()]> = HashMap::new();
        let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(COUNT_BATCH);
        let mut total = 0;
        let mut settle = |batch: &mut Vec<(String, Vec<u8>)>| {
            let inner = self.lock();
            for (saga_type, id) in batch.drain(..) {
                let Ok(uuid) = uuid::Uuid::from_slice(&id) else { continue };
                if !owned.owns(&uuid) || inner.counted_live.contains(&SagaId(uuid)) {
                    continue;
                }
                let state = if failed.contains(&id) {
                    SagaState::Failed
                } else if aborted.contains(&id) {
                    SagaState::Aborted
                } else {
                    SagaState::Completed
                };
                found.entry((saga_type, self.partition_of(SagaId(uuid)))).or_default()[slot(state)] += 1;
                total += 1;
            }
        };
        store.each_saga_by_type(|saga_type, id| {
            batch.push((String::from_utf8_lossy(saga_type).into_owned(), id.to_vec()));
            if batch.len() == COUNT_BATCH {
                settle(&mut batch);
            }
            true
        })?;
        settle(&mut batch);
        // A partition given up while this count ran is its new owner's to count.
        let owned = store.owned();
        let mut inner = self.lock();
        for ((saga_type, partition), counts) in found.into_iter().filter(|((_, p), _)| owned.contains(*p)) {
            for state in STATES {
                inner.add(&saga_type, partition, state, counts[slot(state)]);
            }
        }
        inner.counting = inner.counting.saturating_sub(1);
        if inner.counting == 0 {
            inner.counted_live = HashSet::new();
            inner.complete = true;
            self.complete.store(true, Ordering::Release);
        }
        Ok(total)
    }

    /// (type, state, count) for every pair with sagas.
    pub fn counts(&self) -> Vec<(String, SagaState, u64)> {
        let inner = self.lock();
        let mut by_type: BTreeMap<&str, [i64; STATES.len()]> = BTreeMap::new();
        for (saga_type, by_partition) in &inner.counts {
            let sum = by_type.entry(saga_type).or_insert([0; STATES.len()]);
            for counts in by_partition.values() {
                for (total, n) in sum.iter_mut().zip(counts) {
                    *total += n;
                }
            }
        }
        let mut out = Vec::new();
        for (saga_type, counts) in by_type {
            for state in STATES {
                let n = counts[slot(state)];
                if n > 0 {
                    out.push((saga_type.to_string(), state, n as u64));
                }
            }
        }
        out
    }

    /// (type, state, since) of the longest-standing unfinished saga of every pair.
    pub fn oldest(&self) -> Vec<(String, SagaState, Timestamp)> {
        let inner = self.lock();
        let mut oldest: HashMap<(&str, usize), Timestamp> = HashMap::new();
        for u in inner.unfinished.values() {
            let at = oldest.entry((&u.saga_type, slot(u.state))).or_insert(u.since);
            *at = (*at).min(u.since);
        }
        oldest.into_iter().map(|((t, s), at)| (t.to_string(), STATES[s], at)).collect()
    }

    /// The RETRYING sagas retrying since `cutoff` or earlier, with since when.
    pub fn retrying_since(&self, cutoff: Timestamp) -> Vec<(SagaId, Timestamp)> {
        let inner = self.lock();
        inner
            .unfinished
            .iter()
            .filter(|(_, u)| u.state == SagaState::Retrying && u.since <= cutoff)
            .map(|(id, u)| (*id, u.since))
            .collect()
    }

    /// Counts by type and state, and the STUCK, RETRYING and COMPENSATING sagas grouped by
    /// (state, type, step, error) with their count and oldest member. Reads memory only:
    /// the work is proportional to the unfinished sagas, never to the history.
    pub fn triage(&self) -> Triage {
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (saga_type, state, n) in self.counts() {
            counts.entry(saga_type).or_default().insert(state.as_str().to_string(), n);
        }
        type Key<'a> = (usize, &'a str, Option<&'a str>, Option<&'a str>);
        let inner = self.lock();
        let mut groups: HashMap<Key, (u64, SagaId, Timestamp)> = HashMap::new();
        for (id, u) in inner.unfinished.iter().filter(|(_, u)| triaged(u.state)) {
            let key = (slot(u.state), u.saga_type.as_str(), u.step.as_deref(), u.error.as_deref());
            let group = groups.entry(key).or_insert((0, *id, u.since));
            group.0 += 1;
            if (u.since, *id) < (group.2, group.1) {
                (group.1, group.2) = (*id, u.since);
            }
        }
        let mut groups: Vec<TriageGroup> = groups
            .into_iter()
            .map(|((state, saga_type, step, error), (count, oldest_saga_id, oldest_since))| TriageGroup {
                state: STATES[state],
                saga_type: saga_type.to_string(),
                step: step.map(str::to_string),
                error: error.map(str::to_string),
                count,
                oldest_saga_id,
                oldest_since,
            })
            .collect();
        rank(&mut groups);
        Triage { complete: inner.complete, counts, groups, coverage: None }
    }
}

/// An error text with its ids (UUIDs) replaced by `{id}` and cut to a bounded length, so that
/// the same cause for different sagas or orders reads the same.
pub fn normalize_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(ERROR_CHARS));
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() >= 36 && rest.is_char_boundary(36) && uuid::Uuid::try_parse(&rest[..36]).is_ok() {
            out.push_str("{id}");
            rest = &rest[36..];
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    match out.char_indices().nth(ERROR_CHARS) {
        Some((cut, _)) => out[..cut].to_string(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::coordinator::log_write;
    use crate::saga::instance::Phase;
    use crate::store::WriteSet;

    /// A cluster's triage adds the servers' counts, joins their groups (the oldest member
    /// of either), and is complete only when every partition was counted once by a server
    /// whose own count is complete.
    #[test]
    fn a_clusters_triage_adds_the_servers_censuses_and_says_what_it_lacks() {
        let group = |count, since, id: SagaId| TriageGroup {
            state: SagaState::Stuck,
            saga_type: "place_order".into(),
            step: Some("authorize_payment".into()),
            error: Some("declined".into()),
            count,
            oldest_saga_id: id,
            oldest_since: Timestamp(since),
        };
        let (older, newer) = (SagaId::new(), SagaId::new());
        let counts = |n| BTreeMap::from([("place_order".to_string(), BTreeMap::from([("STUCK".to_string(), n)]))]);
        let server = |node: &str, partitions: std::ops::Range<u16>, triage: Triage| Counted {
            node_id: node.into(),
            partitions: partitions.collect(),
            triage,
        };
        let a = Triage { complete: true, counts: counts(2), groups: vec![group(2, 200, newer)], coverage: None };
        let b = Triage { complete: true, counts: counts(3), groups: vec![group(3, 100, older)], coverage: None };
        let four = Partitions::new(4).unwrap();

        let whole = Triage::of_cluster(four, vec![server("a", 0..2, a.clone()), server("b", 2..4, b.clone())], vec![]);
        assert!(whole.complete);
        assert_eq!(whole.counts, counts(5));
        assert_eq!(whole.groups, vec![group(5, 100, older)], "one group, its oldest member b's");
        let coverage = whole.coverage.clone().unwrap();
        assert_eq!(coverage.servers, vec![("a".into(), vec![0, 1]), ("b".into(), vec![2, 3])]);
        let view = whole.to_json(Timestamp(1000));
        assert_eq!(view["servers"][1], json!({ "node_id": "b", "partitions": [2, 3] }));
        assert_eq!(view["groups"][0]["count"], 5);

        let lacking = Triage::of_cluster(four, vec![server("a", 0..2, a.clone())], vec!["b".into()]);
        assert!(!lacking.complete);
        let coverage = lacking.coverage.unwrap();
        assert_eq!((coverage.unanswered, coverage.uncounted), (vec!["b".to_string()], vec![2, 3]));
        let twice = Triage::of_cluster(four, vec![server("a", 0..3, a.clone()), server("b", 2..4, b.clone())], vec![]);
        assert_eq!((twice.complete, twice.coverage.unwrap().counted_twice), (false, vec![2]));
        let counting = Triage { complete: false, ..b };
        let still = Triage::of_cluster(four, vec![server("a", 0..2, a), server("b", 2..4, counting)], vec![]);
        assert!(!still.complete, "b still counts its finished sagas");
    }

    fn saga(state: SagaState) -> SagaInstance {
        let def = &crate::saga::definition::embedded().unwrap()[0];
        let mut saga = SagaInstance::new(def, |_| crate::retry::RetryPolicy::NONE, json!({}), None, None);
        saga.state = state;
        saga
    }

    fn stuck_at(mut saga: SagaInstance, step: u32, error: &str, at: i64) -> SagaInstance {
        saga.state = SagaState::Stuck;
        saga.phase = Phase::Forward;
        saga.cursor = step;
        saga.steps[step as usize].step.last_error = Some(error.into());
        saga.steps[step as usize].step.finished_at = Some(Timestamp(at));
        // A recovery on start writes the log again: not when it became STUCK.
        saga.updated_at = Timestamp(at + 60_000);
        saga
    }

    fn count(census: &SagaCensus, saga_type: &str, state: SagaState) -> u64 {
        census.counts().iter().find(|(t, s, _)| t == saga_type && *s == state).map_or(0, |c| c.2)
    }

    #[test]
    fn transitions_move_counts_and_a_step_of_a_running_saga_changes_nothing() {
        let census = SagaCensus::new(Partitions::DEFAULT);
        let mut s = saga(SagaState::Running);
        let t = s.saga_type.clone();
        census.record(&s, None);
        assert_eq!(count(&census, &t, SagaState::Running), 1);
        s.cursor = 1;
        census.record(&s, Some(SagaState::Running));
        assert_eq!(census.counts().len(), 1);
        s.state = SagaState::Retrying;
        census.record(&s, Some(SagaState::Running));
        assert_eq!((count(&census, &t, SagaState::Running), count(&census, &t, SagaState::Retrying)), (0, 1));
        s.state = SagaState::Completed;
        census.record(&s, Some(SagaState::Retrying));
        assert_eq!(census.counts(), vec![(t.clone(), SagaState::Completed, 1)]);
        assert!(census.oldest().is_empty(), "a finished saga leaves the unfinished ones");
        census.deleted(s.saga_id, &t, SagaState::Completed);
        assert!(census.counts().is_empty());
    }

    #[test]
    fn a_retry_episode_keeps_its_start_and_a_new_state_starts_anew() {
        let census = SagaCensus::new(Partitions::DEFAULT);
        let mut s = saga(SagaState::Running);
        census.record(&s, None);
        s.steps[0].step.started_at = Some(Timestamp(1_000));
        s.updated_at = Timestamp(5_000);
        s.state = SagaState::Retrying;
        census.record(&s, Some(SagaState::Running));
        assert_eq!(census.retrying_since(Timestamp(1_000)), vec![(s.saga_id, Timestamp(1_000))]);
        assert!(census.retrying_since(Timestamp(999)).is_empty());
        // The retry runs (RUNNING), fails again (RETRYING): the same episode.
        s.state = SagaState::Running;
        census.record(&s, Some(SagaState::Retrying));
        s.state = SagaState::Retrying;
        s.updated_at = Timestamp(9_000);
        census.record(&s, Some(SagaState::Running));
        assert_eq!(census.retrying_since(Timestamp(1_000)), vec![(s.saga_id, Timestamp(1_000))]);
        let s = stuck_at(s, 0, "gone", 12_000);
        census.record(&s, Some(SagaState::Retrying));
        assert!(census.retrying_since(Timestamp(i64::MAX)).is_empty());
        let oldest = census.oldest();
        assert_eq!(oldest, vec![(s.saga_type.clone(), SagaState::Stuck, Timestamp(12_000))]);
    }

    #[test]
    fn triage_groups_by_state_type_step_and_error_with_ids_normalized() {
        let census = SagaCensus::new(Partitions::DEFAULT);
        let order = uuid::Uuid::now_v7();
        let a = stuck_at(saga(SagaState::Running), 2, &format!("order {order} not found"), 3_000);
        let b = stuck_at(saga(SagaState::Running), 2, &format!("order {} not found", uuid::Uuid::now_v7()), 2_000);
        let c = stuck_at(saga(SagaState::Running), 2, "timeout", 1_000);
        let d = saga(SagaState::Running);
        census.seed_unfinished(&[a.clone(), b.clone(), c.clone(), d]);
        let triage = census.triage();
        assert!(!triage.complete);
        assert_eq!(triage.counts[&a.saga_type]["STUCK"], 3);
        assert_eq!(triage.counts[&a.saga_type]["RUNNING"], 1);
        assert_eq!(triage.groups.len(), 2, "{:?}", triage.groups);
        let first = &triage.groups[0];
        assert_eq!(first.count, 2);
        assert_eq!(first.error.as_deref(), Some("order {id} not found"));
        assert_eq!(first.step.as_deref(), Some(a.steps[2].step.name.as_str()));
        assert_eq!((first.oldest_saga_id, first.oldest_since), (b.saga_id, Timestamp(2_000)));
        assert_eq!((triage.groups[1].count, triage.groups[1].oldest_saga_id), (1, c.saga_id));
        let json = triage.to_json(Timestamp(4_000));
        assert_eq!(json["groups"][0]["oldest_age_secs"], 2.0);
        assert_eq!(json["groups"][0]["state"], "STUCK");
    }

    #[test]
    fn errors_are_normalized_and_bounded() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(normalize_error(&format!("{id}:{id} x")), "{id}:{id} x");
        assert_eq!(normalize_error("é plain"), "é plain");
        assert_eq!(normalize_error(&"é".repeat(1000)).chars().count(), ERROR_CHARS);
    }

    /// A server with a share counts its partitions' finished sagas: summed over the servers,
    /// each saga once.
    #[tokio::test]
    async fn a_server_counts_the_finished_sagas_of_its_partitions_only() {
        use crate::domain::partition::{id_in, Owned, Partition, Partitions};
        let (_dir, store) = Store::temporary();
        let mut ws = WriteSet::new();
        for (n, p) in [1, 1, 2].into_iter().enumerate() {
            let mut s = saga([SagaState::Completed, SagaState::Failed][n % 2]);
            s.saga_id = SagaId(id_in(Partition(p)));
            ws = log_write(ws, &s, None);
        }
        store.commit(ws).await.unwrap();
        store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(1)]));
        let census = SagaCensus::new(Partitions::DEFAULT);
        assert_eq!(census.count_finished(&store).unwrap(), 2, "partition 2's saga is another server's");
        let t = &saga(SagaState::Completed).saga_type;
        assert_eq!((count(&census, t, SagaState::Completed), count(&census, t, SagaState::Failed)), (1, 1));
        store.close().unwrap();
    }

    /// The background count agrees with the store whatever runs beside it: sagas unfinished
    /// at start and started since are counted by their transitions only.
    #[tokio::test]
    async fn the_count_of_finished_sagas_is_exact_beside_live_transitions() {
        let (_dir, store) = Store::temporary();
        let mut ws = WriteSet::new();
        let finished: Vec<SagaInstance> = (0..10)
            .map(|n| saga([SagaState::Completed, SagaState::Completed, SagaState::Failed, SagaState::Aborted][n % 4]))
            .collect();
        for s in &finished {
            ws = log_write(ws, s, None);
        }
        let retrying = saga(SagaState::Retrying);
        ws = log_write(ws, &retrying, None).save(crate::store::keys::active_saga(retrying.saga_id), &0u32);
        store.commit(ws).await.unwrap();

        let census = SagaCensus::new(Partitions::DEFAULT);
        census.seed_unfinished(std::slice::from_ref(&retrying));
        // Started after the start and already finished before the count reaches it.
        let mut late = saga(SagaState::Running);
        census.starting(late.saga_id);
        store.commit(log_write(WriteSet::new(), &late, None)).await.unwrap();
        census.record(&late, None);
        late.state = SagaState::Completed;
        store.commit(log_write(WriteSet::new(), &late, Some(SagaState::Running))).await.unwrap();
        census.record(&late, Some(SagaState::Running));

        assert_eq!(census.count_finished(&store).unwrap(), 10);
        assert!(census.is_complete() && census.triage().complete);
        let t = &retrying.saga_type;
        assert_eq!(count(&census, t, SagaState::Completed), 6 + 1, "six before the start, one since");
        assert_eq!(count(&census, t, SagaState::Failed), 2);
        assert_eq!(count(&census, t, SagaState::Aborted), 2);
        assert_eq!(count(&census, t, SagaState::Retrying), 1);
        // Once complete, new sagas are no longer noted.
        census.starting(saga(SagaState::Running).saga_id);
        assert!(census.lock().counted_live.is_empty());
        store.close().unwrap();
    }
}
