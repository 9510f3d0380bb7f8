//! The saga engine: checks definitions against handlers at start, keeps retry policies in
//! sled (seeded from the definitions, changeable by operators), starts sagas, lets callers
//! wait for them, resumes every unfinished saga on start, and carries operators' resume
//! and abort to the saga's coordinator.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use super::census::{Counted, SagaCensus, Triage};
use super::coordinator::{settled_channel, Drive, FirstWrite, SagaCoordinator, Settled, Watch};
use super::definition::{self, SagaDefinition};
use super::instance::{SagaInstance, SagaState};
use super::machine::{self, Input, MachineError, PlannedCompensation};
use super::metrics::SagaMetrics;
use super::query::{self, Direction, Paging, SagaFilter};
use super::shapes::{to_input, SagaInput};
use super::steps::{self, StepDeps, StepHandler};
use super::versions::{check_definitions, check_instances, Definitions, Handlers};
use crate::actors::registry::{send_leased, Lease, Registry};
use crate::domain::ids::{CustomerId, OrderId, SagaId};
use crate::domain::partition::{Owned, Partition};
use crate::domain::quarantine::QuarantineKey;
use crate::domain::time::Timestamp;
use crate::error::Fault;
use crate::retry::RetryPolicy;
use crate::saga::SagaError;
use crate::services::invalidations::Follower;
use crate::store::invalidations::Invalidation;
use crate::store::{keys, retained, AuditEntry, Key, Prefix, Store, Table, WriteSet};
use crate::whole;

pub struct SagaEngine {
    store: Store,
    /// Every version of every saga this build can run, by name then version; new sagas
    /// start under the highest version.
    definitions: Definitions,
    handlers: Handlers,
    /// "saga_type/step" -> policy, mirrored from the RetryPolicies table.
    policies: RwLock<BTreeMap<String, RetryPolicy>>,
    deps: Arc<StepDeps>,
    registry: Registry<SagaId, SagaCoordinator>,
    /// Sagas by type and state, and what the unfinished ones are doing.
    census: Arc<SagaCensus>,
    metrics: SagaMetrics,
    /// The other servers of a cluster, for an operator's input to a saga they own (none on
    /// the embedded store).
    owners: Option<Arc<dyn SagaOwners>>,
    /// The partitions whose sagas this engine has recovered (at [`SagaEngine::boot`], or
    /// taken over since) and not given up. What follows the share starts from the share it
    /// booted with, so a partition gained (or lost) while it booted is not missed; a request
    /// of a partition owned but not yet in it waits for its recovery (`http::forward`).
    recovered: watch::Sender<Arc<Owned>>,
}

/// An operator's input to a saga another server owns: sent to that server, whose engine
/// answers it as it would here (the saga after it, or its refusal).
pub trait SagaOwners: Send + Sync {
    fn operate(
        &self,
        id: SagaId,
        input: OperatorInput,
    ) -> futures::future::BoxFuture<'static, Result<SagaInstance, SagaError>>;

    /// The census of every other server that holds partitions, and the node ids of those
    /// that did not answer it in time.
    fn censuses(&self) -> futures::future::BoxFuture<'static, (Vec<Counted>, Vec<String>)>;
}

/// What an operator asks of one saga.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OperatorInput {
    Resume { reset_attempts: bool },
    Abort { reason: String },
}

/// A saga that was started (or found, for a repeated Idempotency-Key).
pub struct Started {
    pub saga_id: SagaId,
    /// Hears when a saga this call started settles; `None` for one found by its key.
    pub settled: Option<Settled>,
}

impl Started {
    /// Waits up to `timeout` for the saga to settle; `None` if it is still going.
    pub async fn wait(self, engine: &Arc<SagaEngine>, timeout: Duration) -> Result<Option<SagaInstance>, SagaError> {
        match self.settled {
            Some(rx) => engine.wait_on(self.saga_id, rx, timeout).await,
            None => engine.wait(self.saga_id, timeout).await,
        }
    }
}

/// How often a message that found its coordinator leaving is sent again (each time to a
/// fresh activation from the log).
const RESENDS_TO_A_LEAVING_COORDINATOR: u32 = 3;

/// How long what a partition just taken is asked for (a request, an operator's call) waits
/// for its sagas' recovery before it is refused (503, to be retried).
pub const RECOVERY_WAIT: Duration = Duration::from_secs(5);

/// A policy's name in memory and in audit rows (its row is [`keys::retry_policy`]).
fn policy_key(saga_type: &str, step: &str) -> String {
    format!("{saga_type}/{step}")
}

impl SagaEngine {
    /// Refuses to build if a definition names a step this build has no handler for.
    /// [`SagaEngine::boot`] must run before the engine serves.
    pub fn new(
        store: Store,
        deps: StepDeps,
        arbiters: Vec<ArbiterHandle>,
        owners: Option<Arc<dyn SagaOwners>>,
    ) -> anyhow::Result<Arc<SagaEngine>> {
        let handlers = steps::handlers();
        let definitions = check_definitions(definition::embedded().map_err(anyhow::Error::msg)?, &handlers)?;
        let store_owned = store.owned();
        let partitions = store_owned.count();
        let engine = SagaEngine {
            store,
            definitions,
            handlers,
            policies: RwLock::new(BTreeMap::new()),
            deps: Arc::new(deps),
            registry: Registry::new("saga", arbiters, Duration::from_secs(3600)),
            census: Arc::new(SagaCensus::new(partitions)),
            metrics: SagaMetrics::new(),
            owners,
            recovered: watch::Sender::new(store_owned),
        };
        Ok(Arc::new(engine))
    }

    /// Once, before the server listens: builds the saga listing indexes an older store
    /// lacks (before any saga is written, as the store does its own on open); refuses to go on if an unfinished saga names a
    /// definition version or a step this build cannot run; loads the retry policies; seeds
    /// the census (the unfinished sagas now, the finished ones in the background); then
    /// resumes every unfinished saga from the log, except those PAUSED on a key still
    /// quarantined (one whose key was released resumes). Only the sagas of the partitions
    /// this server owns (every one, but on a server of a cluster with a share): the others
    /// are their owners' to check, count and run. Returns how many sagas it resumed.
    pub async fn boot(self: &Arc<Self>) -> anyhow::Result<usize> {
        super::indexes::build_missing(&self.store)?;
        let owned = self.store.owned();
        self.recovered.send_replace(owned.clone());
        let active = self.active_instances(&owned)?;
        check_instances(&active, &self.definitions, &self.handlers)?;
        self.load_policies().await?;
        self.census.seed_unfinished(&active);
        self.census.count_finished_in_background(self.store.clone());
        self.resume_unfinished(&active).await
    }

    /// The partitions whose sagas this engine has recovered and still owns.
    pub fn recovered(&self) -> Arc<Owned> {
        self.recovered.borrow().clone()
    }

    /// Waits up to `within` for `partition`'s sagas to be recovered; whether they are.
    pub async fn until_recovered(&self, partition: Partition, within: Duration) -> bool {
        let mut recovered = self.recovered.subscribe();
        let waited = tokio::time::timeout(within, recovered.wait_for(|r| r.contains(partition))).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Picks up unfinished sagas from the log: each one running again where it was, each
    /// PAUSED one whose key was released resumed; how many.
    async fn resume_unfinished(self: &Arc<Self>, active: &[SagaInstance]) -> anyhow::Result<usize> {
        let (paused, others): (Vec<_>, Vec<_>) = active.iter().partition(|s| s.state == SagaState::Paused);
        let recovered = self.recover(others.iter().map(|s| s.saga_id).collect()).await?;
        let released = paused.iter().filter(|s| !self.still_paused(s)).map(|s| s.saga_id).collect();
        Ok(recovered + self.resume_released(released).await)
    }

    /// The partitions `gained` were just taken by this server (another gave them up, or
    /// their lease expired): their sagas are checked, counted and resumed as [`boot`] does
    /// for all (their finished sagas counted in the background). Returns how many it
    /// resumed. An unfinished saga this build cannot run refuses the whole take (logged by
    /// the caller), as it refuses a start.
    ///
    /// [`boot`]: SagaEngine::boot
    ///
    /// The partitions count as recovered once it returns, even when it failed: they are
    /// served as they were before the take (the failure is the caller's to log), rather
    /// than not at all while this server holds them.
    pub async fn take_over(self: &Arc<Self>, gained: &Owned) -> anyhow::Result<usize> {
        let resumed = async {
            let active = self.active_instances(gained)?;
            check_instances(&active, &self.definitions, &self.handlers)?;
            self.census.gaining();
            self.census.seed_unfinished(&active);
            self.census.count_gained_in_background(self.store.clone(), gained.clone());
            self.resume_unfinished(&active).await
        }
        .await;
        let owned = self.store.owned();
        self.recovered.send_modify(|r| *r = Arc::new(r.or(gained).and(&owned)));
        resumed
    }

    /// Whether the key a PAUSED saga waits on is still quarantined.
    pub(crate) fn still_paused(&self, saga: &SagaInstance) -> bool {
        saga.paused_on.is_some_and(|key| self.deps.quarantine.holds(&key))
    }

    /// Resumes every saga PAUSED on `key`, which was just released; found through the
    /// active list (a PAUSED saga is unfinished). Returns how many it resumed.
    pub async fn resume_paused_on(self: &Arc<Self>, key: QuarantineKey) -> Result<usize, SagaError> {
        let parked = self.parked_on(key).await?;
        Ok(self.resume_released(parked).await)
    }

    /// The PAUSED sagas of this server's partitions parked on `key`.
    pub async fn parked_on(&self, key: QuarantineKey) -> Result<Vec<SagaId>, SagaError> {
        let mut parked = Vec::new();
        let mut cursor = None;
        loop {
            let filter = SagaFilter { state: Some(SagaState::Paused), ..SagaFilter::default() };
            let (page, next) = self.list(&filter, Direction::OldestFirst, cursor, 500).await?;
            let owned = self.store.owned();
            let ours = |s: &&SagaInstance| s.paused_on == Some(key) && owned.owns(&s.saga_id.0);
            parked.extend(page.iter().filter(ours).map(|s| s.saga_id));
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        Ok(parked)
    }

    /// Resumes PAUSED sagas whose key was released; returns how many left PAUSED. One that
    /// is no longer PAUSED when asked resumed by itself (its coordinator, finishing the
    /// write that parked it, saw the release first) or was resumed by another call (the
    /// release's own cache invalidation, applied here too): counted too.
    pub async fn resume_released(self: &Arc<Self>, ids: Vec<SagaId>) -> usize {
        let mut resumed = 0;
        for chunk in ids.chunks(512) {
            let resumes = chunk.iter().map(|id| async move {
                match self.operate(*id, || Input::Resume { reset_attempts: false }).await {
                    Ok(_) | Err(SagaError::InvalidState(_)) => true,
                    Err(e) => {
                        tracing::error!(saga.id = %id, error = %e, "could not resume a saga whose key was released");
                        false
                    }
                }
            });
            resumed += futures::future::join_all(resumes).await.into_iter().filter(|&r| r).count();
        }
        if resumed > 0 {
            tracing::info!(sagas = resumed, "sagas parked on a released key resumed");
        }
        resumed
    }

    /// Every saga the log says is unfinished. One this build cannot read stops the start,
    /// named, like one it cannot run.
    /// The unfinished sagas of the partitions `owned` (this server's: another server's are
    /// its own to recover and run).
    fn active_instances(&self, owned: &Owned) -> anyhow::Result<Vec<SagaInstance>> {
        use anyhow::Context;
        let mut out = Vec::new();
        for key in self.store.scan_prefix_keys(Table::ActiveSagas, &[], usize::MAX)? {
            if !owned.owns_bytes(&key) {
                continue;
            }
            let id = uuid::Uuid::from_slice(&key).map(|u| u.to_string()).unwrap_or_else(|_| hex::encode(&key));
            let saga =
                self.store.get::<SagaInstance>(Table::Sagas, &key).with_context(|| format!("unfinished saga {id}"))?;
            out.extend(saga);
        }
        Ok(out)
    }

    /// The definition a saga runs under: its own version's.
    pub fn definition_of(&self, saga: &SagaInstance) -> Option<&SagaDefinition> {
        self.definitions.get(&saga.saga_type)?.get(&saga.definition_version)
    }

    /// The definition new sagas of this type start under.
    pub fn current_definition(&self, saga_type: &str) -> Option<&SagaDefinition> {
        self.definitions.get(saga_type)?.values().next_back()
    }

    /// The step after whose success the saga only goes forward, per its own version.
    /// Whether the saga's current forward step is local (see [`definition::StepDefinition::local`]).
    pub fn current_step_is_local(&self, saga: &SagaInstance) -> bool {
        self.current_forward_step(saga).is_some_and(|s| s.local)
    }

    /// The definition of the step a RUNNING saga is at.
    fn current_forward_step<'a>(&'a self, saga: &SagaInstance) -> Option<&'a definition::StepDefinition> {
        let work = saga.current()?;
        if saga.state != SagaState::Running {
            return None;
        }
        self.definition_of(saga)?.steps.iter().find(|s| s.name == work.name)
    }

    /// Whether the saga's current forward step carries its success in its effect's write
    /// (see [`definition::StepDefinition::logged_with_effect`]).
    pub fn current_step_is_logged_with_effect(&self, saga: &SagaInstance) -> bool {
        self.current_forward_step(saga).is_some_and(|s| s.logged_with_effect)
    }

    pub fn point_of_no_return(&self, saga: &SagaInstance) -> Option<String> {
        self.definition_of(saga)?.point_of_no_return.clone()
    }

    /// A machine refusal as the operator hears it: past the point of no return, what to do
    /// instead (resume, or the definition's forward remedy).
    pub fn refusal(&self, saga: &SagaInstance, e: MachineError) -> SagaError {
        match e {
            MachineError::InvalidState(..) => SagaError::InvalidState(e.to_string()),
            MachineError::PastPointOfNoReturn(_) => {
                let mut message = format!(
                    "{} {} is {e}; resume it instead (POST /admin/v1/sagas/{}/resume)",
                    saga.saga_type, saga.saga_id, saga.saga_id
                );
                if let Some(remedy) = self.definition_of(saga).and_then(|d| d.forward_remedy.as_deref()) {
                    let order = saga.order_id.map_or_else(|| "{order_id}".to_string(), |o| o.to_string());
                    message.push_str(", or ");
                    message.push_str(&remedy.replace("{order_id}", &order));
                }
                SagaError::AbortNotAllowed(message)
            }
        }
    }

    /// What aborting the saga now would do (the same function the abort goes through).
    pub async fn abort_preview(&self, id: SagaId) -> Result<Value, SagaError> {
        let saga = self.get(id).await?.ok_or(SagaError::NotFound)?;
        let point = self.point_of_no_return(&saga);
        Ok(match machine::abort_plan(&saga, point.as_deref()) {
            Ok(compensations) => json!({ "allowed": true, "compensations": compensations }),
            Err(e) => {
                let reason = self.refusal(&saga, e).to_string();
                json!({ "allowed": false, "compensations": Vec::<PlannedCompensation>::new(), "reason": reason })
            }
        })
    }

    /// Seeds policies the table does not have yet (operators' changes are kept), then loads all.
    async fn load_policies(&self) -> anyhow::Result<()> {
        let mut seed = WriteSet::new();
        for def in self.definitions.values().flat_map(BTreeMap::values) {
            for (step, p) in def.policies() {
                let key = keys::retry_policy(&def.name, &step);
                if !self.store.exists(&key)? {
                    seed = seed.save(key, &p);
                }
            }
        }
        if !seed.is_empty() {
            self.store.commit(seed).await?;
        }
        Ok(self.reload_policies()?)
    }

    /// Reads every policy from the table into memory (another server may have changed one).
    fn reload_policies(&self) -> Result<(), crate::store::StoreError> {
        let stored = self.store.scan::<RetryPolicy>(&Prefix::all(Table::RetryPolicies))?;
        let mut map = whole::write(&self.policies);
        for (k, p) in stored {
            let (saga_type, step) = keys::retry_policy_of(&k);
            map.insert(policy_key(&saga_type, &step), p);
        }
        Ok(())
    }

    /// Resumes this server's PAUSED sagas whose key is no longer quarantined (as at start).
    async fn resume_all_released(self: &Arc<Self>) -> anyhow::Result<usize> {
        let active = self.active_instances(&self.store.owned())?;
        let released =
            active.iter().filter(|s| s.state == SagaState::Paused && !self.still_paused(s)).map(|s| s.saga_id);
        Ok(self.resume_released(released.collect()).await)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn census(&self) -> &Arc<SagaCensus> {
        &self.census
    }

    pub fn metrics(&self) -> &SagaMetrics {
        &self.metrics
    }

    /// Counts by type and state, and the sagas needing an operator grouped by cause: from
    /// memory (the census), never a scan of the sagas.
    pub fn triage(&self) -> Triage {
        self.census.triage()
    }

    /// The triage of every saga: this server's census, and on a server of a cluster that
    /// shares the partitions every other server's too, asked for and joined (see
    /// [`Triage::of_cluster`]: a server that did not answer is named, not waited for).
    pub async fn cluster_triage(&self) -> Triage {
        let recovered = self.recovered();
        let Some(owners) = self.owners.as_ref().filter(|_| !recovered.is_every()) else {
            return self.triage();
        };
        let (mut counted, unanswered) = owners.censuses().await;
        counted.insert(0, self.counted_here());
        Triage::of_cluster(recovered.count(), counted, unanswered)
    }

    /// This server's census as another server gathers it: the partitions it counts, and
    /// their triage.
    pub fn counted_here(&self) -> Counted {
        let recovered = self.recovered();
        Counted {
            node_id: self.store.node_id().to_string(),
            partitions: recovered.partitions().iter().map(|p| p.0).collect(),
            triage: self.triage(),
        }
    }

    /// The engine's metrics in Prometheus text, with the process-wide ones; the gauges are
    /// computed now.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.census, &self.store, Timestamp::now())
    }

    pub fn deps(&self) -> Arc<StepDeps> {
        self.deps.clone()
    }

    pub fn handler(&self, name: &str) -> Option<Arc<dyn StepHandler>> {
        self.handlers.get(name).cloned()
    }

    pub fn policy(&self, saga_type: &str, step: &str) -> Option<RetryPolicy> {
        self.policies.read().ok()?.get(&policy_key(saga_type, step)).copied()
    }

    pub fn policies_json(&self) -> Value {
        let map = self.policies.read().map(|m| m.clone()).unwrap_or_default();
        let mut out: BTreeMap<String, BTreeMap<String, RetryPolicy>> = BTreeMap::new();
        for (k, p) in map {
            if let Some((t, s)) = k.split_once('/') {
                out.entry(t.to_string()).or_default().insert(s.to_string(), p);
            }
        }
        json!({ "retry_policies": out })
    }

    /// Stores a policy; new sagas take it, running ones at their next failure.
    pub async fn set_policy(&self, saga_type: &str, step: &str, p: RetryPolicy, by: &str) -> Result<(), SagaError> {
        let versions = self.definitions.get(saga_type).ok_or(SagaError::NotFound)?;
        if !versions.values().any(|def| def.handler_names().contains(&step)) {
            return Err(SagaError::InvalidRetryPolicy(format!("saga {saga_type} has no step {step}")));
        }
        definition::validate_policy(&p).map_err(SagaError::InvalidRetryPolicy)?;
        let key = policy_key(saga_type, step);
        let audit = AuditEntry {
            at: Timestamp::now(),
            actor: by.to_string(),
            action: "retry_policy.changed".into(),
            entity_type: "retry_policy".into(),
            entity_id: key.clone(),
            before: json!(self.policy(saga_type, step)).to_string(),
            after: json!(p).to_string(),
        };
        let ws = WriteSet::new().save(keys::retry_policy(saga_type, step), &p).audit(audit);
        // Every other server reloads its copy of the policies (see `EngineCaches`).
        self.store.commit(ws.invalidate(Invalidation::RetryPolicies)).await?;
        whole::write(&self.policies).insert(key, p);
        tracing::info!(saga_type, step, ?p, "retry policy changed");
        Ok(())
    }

    /// Starts the saga `input` is for. With `idempotency`, a second start under the same
    /// key finds the first saga instead.
    pub async fn start<I: SagaInput>(
        self: &Arc<Self>,
        input: &I,
        customer_id: Option<CustomerId>,
        order_id: Option<OrderId>,
        idempotency: Option<Key>,
    ) -> Result<Started, SagaError> {
        if let Some(existing) = self.idempotent_saga(idempotency.as_ref())? {
            return Ok(Started { saga_id: existing, settled: None });
        }
        let first_write = |saga_id: SagaId| match &idempotency {
            Some(key) => retained::idempotency_key(WriteSet::new(), key.clone(), saga_id, Timestamp::now()),
            None => WriteSet::new(),
        };
        match self.launch(I::SAGA, to_input(input)?, customer_id, order_id, first_write).await {
            Ok(started) => Ok(started),
            // Lost a race with the same Idempotency-Key: the other request's saga is the one.
            Err(SagaError::FirstWriteConflict(retained::IDEMPOTENCY_KEY_TAKEN)) => {
                let existing = self.idempotent_saga(idempotency.as_ref())?.ok_or(SagaError::NotFound)?;
                Ok(Started { saga_id: existing, settled: None })
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a saga whose first log write also carries `with` (built for its id): both
    /// land or neither. `Ok(Err(tag))` when a conditional put of `with` found its key taken
    /// (`tag` names which), and so the saga did not start.
    pub async fn start_with<I: SagaInput>(
        self: &Arc<Self>,
        input: &I,
        order_id: Option<OrderId>,
        with: impl FnOnce(SagaId) -> WriteSet,
    ) -> Result<Result<SagaId, &'static str>, SagaError> {
        match self.launch(I::SAGA, to_input(input)?, None, order_id, with).await {
            Ok(started) => Ok(Ok(started.saga_id)),
            // The coordinator's answer to a first write whose condition failed.
            Err(SagaError::FirstWriteConflict(tag)) => Ok(Err(tag)),
            Err(e) => Err(e),
        }
    }

    /// A new saga under the current definition, its first write carrying `first_write`.
    async fn launch(
        self: &Arc<Self>,
        saga_type: &str,
        input: Value,
        customer_id: Option<CustomerId>,
        order_id: Option<OrderId>,
        first_write: impl FnOnce(SagaId) -> WriteSet,
    ) -> Result<Started, SagaError> {
        let def = self.current_definition(saga_type).ok_or(SagaError::NotFound)?;
        let defaults = def.policies();
        let saga = SagaInstance::new(
            def,
            |step| self.policy(saga_type, step).or_else(|| defaults.get(step).copied()).unwrap_or(RetryPolicy::NONE),
            input,
            customer_id,
            order_id,
        );
        let saga_id = saga.saga_id;
        self.census.starting(saga_id);
        let (registered, is_registered) = oneshot::channel();
        let first = FirstWrite { write: first_write(saga_id), registered };
        let engine = self.clone();
        let (tx, rx) = settled_channel();
        let mut lease = self.registry.lease(&saga_id, move |arbiter| {
            Ok::<_, SagaError>(SagaCoordinator::start_in_arbiter(arbiter, move |_| {
                SagaCoordinator::new_saga(saga, engine, first, tx)
            }))
        })?;
        tracing::info!(saga.id = %saga_id, saga.r#type = saga_type, "saga started");
        lease.send(Drive(Input::Start)).await??;
        // Answered outside the coordinator, which may leave right after that write.
        is_registered
            .await
            .unwrap_or(Err(SagaError::Fault(Fault::Unavailable("the saga stopped before it was registered; retry"))))?;
        Ok(Started { saga_id, settled: Some(rx) })
    }

    fn idempotent_saga(&self, key: Option<&Key>) -> Result<Option<SagaId>, SagaError> {
        match key {
            Some(k) => Ok(self.store.load::<uuid::Uuid>(k)?.map(SagaId)),
            None => Ok(None),
        }
    }

    /// The coordinator of a saga, activated from the log if it is not in memory.
    fn lease(self: &Arc<Self>, id: SagaId) -> Result<Lease<SagaCoordinator>, SagaError> {
        let engine = self.clone();
        self.registry.lease(&id, move |arbiter| {
            let saga = engine.store.load::<SagaInstance>(&crate::store::keys::saga(id))?.ok_or(SagaError::NotFound)?;
            Ok(start_coordinator(arbiter, saga, engine.clone()))
        })
    }

    /// A coordinator stops as soon as its saga settles (or a log write fails), so a message
    /// can reach one that is leaving: it was not handled (a closed mailbox), and the log has
    /// the state, so it goes once more to a fresh activation. Only that case is re-sent.
    async fn send<M>(self: &Arc<Self>, id: SagaId, msg: impl Fn() -> M) -> Result<M::Result, SagaError>
    where
        M: actix::Message + crate::actors::registry::EntityMessage + Send + 'static,
        M::Result: Send,
        SagaCoordinator: actix::Handler<M>,
    {
        let mut left = RESENDS_TO_A_LEAVING_COORDINATOR;
        loop {
            match send_leased(|| self.lease(id), &msg).await {
                Err(e) if e.is_retry_safe_unavailable() && left > 0 => left -= 1,
                other => return other,
            }
        }
    }

    /// Waits up to `timeout` for the saga to settle; `None` if it is still going.
    pub async fn wait(self: &Arc<Self>, id: SagaId, timeout: Duration) -> Result<Option<SagaInstance>, SagaError> {
        let rx = self.send(id, || Watch).await?;
        self.wait_on(id, rx, timeout).await
    }

    async fn wait_on(&self, id: SagaId, mut rx: Settled, timeout: Duration) -> Result<Option<SagaInstance>, SagaError> {
        let settled = tokio::time::timeout(timeout, async { rx.wait_for(Option::is_some).await.map(|s| s.clone()) });
        match settled.await {
            Ok(Ok(saga)) => Ok(saga),
            // The coordinator went away without settling (a failed write): read the log.
            Ok(Err(_)) => Ok(self.get(id).await?.filter(|s| s.state.is_settled())),
            Err(_) => Ok(None),
        }
    }

    /// The saga as durably recorded.
    pub async fn get(&self, id: SagaId) -> Result<Option<SagaInstance>, SagaError> {
        self.store.barrier().await?;
        Ok(self.store.load::<SagaInstance>(&crate::store::keys::saga(id))?)
    }

    /// A page of sagas in creation order (see [`query::page`]).
    pub async fn list(
        &self,
        filter: &SagaFilter,
        direction: Direction,
        cursor: Option<SagaId>,
        limit: usize,
    ) -> Result<(Vec<SagaInstance>, Option<SagaId>), SagaError> {
        self.store.barrier().await?;
        let paging = Paging { direction, cursor, limit, budget: query::SCAN_BUDGET, unfinished_only: false };
        Ok(query::page(&self.store, filter, &paging, |_| true)?)
    }

    /// Whether this build knows sagas of `saga_type`.
    pub fn has_type(&self, saga_type: &str) -> bool {
        self.definitions.contains_key(saga_type)
    }

    /// Whether `step` is a step or compensation of some version of `saga_type` (of any type
    /// without one).
    pub fn has_step(&self, saga_type: Option<&str>, step: &str) -> bool {
        self.definitions
            .iter()
            .filter(|(name, _)| saga_type.is_none_or(|t| t == name.as_str()))
            .flat_map(|(_, versions)| versions.values())
            .any(|def| def.handler_names().contains(&step))
    }

    /// Runs a STUCK, RETRYING or PAUSED saga's parked work now (a PAUSED one whose key is
    /// still quarantined parks again); a RUNNING (or COMPENSATING) saga
    /// that no live coordinator drives (it stopped after a failed log write) is picked up
    /// where the log says, as on start.
    pub async fn resume(self: &Arc<Self>, id: SagaId, reset_attempts: bool) -> Result<SagaInstance, SagaError> {
        if let Some(owners) = self.owner_elsewhere(id) {
            return owners.operate(id, OperatorInput::Resume { reset_attempts }).await;
        }
        tracing::info!(saga.id = %id, reset_attempts, "operator resumes saga");
        self.operate(id, || Input::Resume { reset_attempts }).await
    }

    pub async fn abort(self: &Arc<Self>, id: SagaId, reason: &str) -> Result<SagaInstance, SagaError> {
        if let Some(owners) = self.owner_elsewhere(id) {
            return owners.operate(id, OperatorInput::Abort { reason: reason.to_string() }).await;
        }
        tracing::warn!(saga.id = %id, reason, "operator aborts saga");
        self.operate(id, || Input::Abort { reason: reason.to_string() }).await
    }

    /// An operator's input to a saga, here (once the saga's partition, if just taken, has
    /// been recovered, as a request waits for it): refused, nothing applied, when this
    /// server does not own the saga (any more).
    pub async fn operate_here(self: &Arc<Self>, id: SagaId, input: OperatorInput) -> Result<SagaInstance, SagaError> {
        if !self.store.owns(Table::Sagas, id.as_bytes()) {
            return Err(Fault::Unavailable("another server owns this saga; retry").into());
        }
        if !self.until_recovered(self.store.owned().count().of(&id.0), RECOVERY_WAIT).await {
            return Err(Fault::Unavailable("this server is still taking over the saga's partition; retry").into());
        }
        match input {
            OperatorInput::Resume { reset_attempts } => self.resume(id, reset_attempts).await,
            OperatorInput::Abort { reason } => self.abort(id, &reason).await,
        }
    }

    /// The other servers' calls when saga `id` is theirs; `None` when it is this server's
    /// (or there are no others).
    fn owner_elsewhere(&self, id: SagaId) -> Option<&Arc<dyn SagaOwners>> {
        self.owners.as_ref().filter(|_| !self.store.owns(Table::Sagas, id.as_bytes()))
    }

    /// Carries an operator's input to the saga's coordinator (see [`SagaEngine::send`] on
    /// re-sending to a leaving one).
    async fn operate(self: &Arc<Self>, id: SagaId, input: impl Fn() -> Input) -> Result<SagaInstance, SagaError> {
        let mut left = RESENDS_TO_A_LEAVING_COORDINATOR;
        loop {
            match self.operate_once(id, &input).await {
                Err(e) if e.is_retry_safe_unavailable() && left > 0 => left -= 1,
                other => return other,
            }
        }
    }

    /// A RUNNING or COMPENSATING saga whose coordinator had to be activated from the log
    /// had nobody driving it: it is first picked up where the log says (the work in flight
    /// runs again, as on start), which is all a resume asks; an abort reaches the
    /// coordinator right behind the pick-up and applies to that work.
    async fn operate_once(self: &Arc<Self>, id: SagaId, input: &impl Fn() -> Input) -> Result<SagaInstance, SagaError> {
        let mut activated_in = None;
        let engine = self.clone();
        let mut lease = self.registry.lease(&id, |arbiter| {
            let saga = engine.store.load::<SagaInstance>(&crate::store::keys::saga(id))?.ok_or(SagaError::NotFound)?;
            activated_in = Some(saga.state);
            Ok::<_, SagaError>(start_coordinator(arbiter, saga, engine.clone()))
        })?;
        if let Some(SagaState::Running | SagaState::Compensating) = activated_in {
            tracing::warn!(saga.id = %id, "no coordinator was driving this saga; picking it up from the log");
            if let Input::Resume { .. } = input() {
                return lease.send(Drive(Input::Recover)).await?;
            }
            // The input is handled right after the pick-up, before the work it sets running
            // again can end: an abort applies to that work, not to whatever step comes next
            // (which may be the point of no return).
            let (picked_up, operated) = lease.send_both(Drive(Input::Recover), Drive(input())).await?;
            picked_up?;
            return operated;
        }
        lease.send(Drive(input())).await?
    }

    /// Resumes the unfinished sagas. Returns how many.
    async fn recover(self: &Arc<Self>, ids: Vec<SagaId>) -> Result<usize, SagaError> {
        let started = std::time::Instant::now();
        for chunk in ids.chunks(512) {
            let sends = chunk.iter().map(|id| async move {
                match self.send(*id, || Drive(Input::Recover)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) | Err(e) => tracing::error!(saga.id = %id, error = %e, "could not resume saga"),
                }
            });
            futures::future::join_all(sends).await;
        }
        if !ids.is_empty() {
            tracing::info!(sagas = ids.len(), ms = started.elapsed().as_millis() as u64, "unfinished sagas resumed");
        }
        Ok(ids.len())
    }

    pub(crate) fn forget(&self, id: &SagaId, addr: &Addr<SagaCoordinator>) {
        self.registry.forget(id, addr);
    }

    pub fn active(&self) -> usize {
        self.registry.active()
    }

    /// Drops the coordinators and the census entries of the sagas of the partitions this
    /// server no longer owns: their new owner recovers, runs and counts them. How many
    /// coordinators it dropped.
    pub fn give_up(&self, owned: &crate::domain::partition::Owned) -> usize {
        self.recovered.send_modify(|r| *r = Arc::new(r.and(owned)));
        self.census.give_up(owned);
        self.registry.give_up(|id| !owned.owns(&id.0))
    }
}

/// The engine's share of keeping in-memory copies of shared records coherent across
/// servers (see `services::invalidations`): another server changed a retry policy (read
/// them again), or released a quarantined key (resume this server's sagas parked on it: the
/// releasing server resumes only those it runs).
pub struct EngineCaches(pub Arc<SagaEngine>);

impl Follower for EngineCaches {
    fn changed(&self, what: Option<Invalidation>) {
        let engine = self.0.clone();
        match what {
            Some(Invalidation::RetryPolicies) => {
                if let Err(e) = engine.reload_policies() {
                    tracing::warn!(error = %e, "could not read the retry policies again; the next change retries");
                }
            }
            Some(Invalidation::Quarantine(key)) if !engine.deps.quarantine.holds(&key) => {
                tokio::spawn(async move {
                    if let Err(e) = engine.resume_paused_on(key).await {
                        tracing::warn!(error = %e, "could not resume the sagas parked on a released key");
                    }
                });
            }
            None => {
                if let Err(e) = engine.reload_policies() {
                    tracing::warn!(error = %e, "could not read the retry policies again");
                }
                tokio::spawn(async move {
                    if let Err(e) = engine.resume_all_released().await {
                        tracing::warn!(error = %e, "could not resume the sagas parked on released keys");
                    }
                });
            }
            Some(_) => {}
        }
    }
}

fn start_coordinator(arbiter: &ArbiterHandle, saga: SagaInstance, engine: Arc<SagaEngine>) -> Addr<SagaCoordinator> {
    SagaCoordinator::start_in_arbiter(arbiter, move |_| SagaCoordinator::new(saga, engine, settled_channel().0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::partition::{id_in, Owned, Partition, Partitions};
    use crate::saga::coordinator::log_write;

    /// A server with a share resumes its own partitions' unfinished sagas and counts them;
    /// another partition's it leaves to that partition's owner (no coordinator, no count).
    #[test]
    fn a_server_with_a_share_recovers_only_its_partitions_sagas() {
        crate::startup::with_shop(|store, shop| async move {
            let def = &definition::embedded().unwrap()[0];
            let stuck_in = |p| {
                let mut saga =
                    SagaInstance::new(def, |_| crate::retry::RetryPolicy::NONE, serde_json::json!({}), None, None);
                saga.saga_id = SagaId(id_in(Partition(p)));
                saga.state = SagaState::Stuck;
                saga
            };
            let ws = [stuck_in(3), stuck_in(4)].iter().fold(crate::store::WriteSet::new(), |ws, saga| {
                log_write(ws, saga, None).save(crate::store::keys::active_saga(saga.saga_id), &0u32)
            });
            store.commit(ws).await.unwrap();

            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3)]));
            assert_eq!(shop.sagas.boot().await.unwrap(), 1, "its own STUCK saga, picked up (and left STUCK)");
            let stuck: u64 =
                shop.sagas.census().counts().iter().filter(|(_, s, _)| *s == SagaState::Stuck).map(|c| c.2).sum();
            assert_eq!(stuck, 1, "the census counts this server's partitions' sagas");
        });
    }
}
