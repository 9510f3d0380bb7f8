//! The saga engine's Prometheus metrics. Labels are saga type, step, state and outcome,
//! never an id, so the series stay few whatever the traffic. Counters and histograms move
//! as transitions become durable and steps end; the gauges (`cartwright_sagas`,
//! `cartwright_saga_oldest_age_seconds`) and the outbox's are computed at scrape time from
//! the census and the outbox index.
//!
//! One registry per engine (not the process-wide one): two servers in one process (the
//! integration tests) each report their own sagas.

use prometheus::{
    exponential_buckets, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::census::{age_secs, SagaCensus};
use super::instance::SagaState;
use crate::domain::time::Timestamp;
use crate::store::Store;
use crate::whole;

pub struct SagaMetrics {
    registry: Registry,
    /// One scrape at a time: the gauges are reset and set again at each, and two at once
    /// could each render the other's half-set gauges.
    scrape: std::sync::Mutex<()>,
    started: IntCounterVec,
    finished: IntCounterVec,
    log_writes: IntCounterVec,
    step_attempts: IntCounterVec,
    duration: HistogramVec,
    step_duration: HistogramVec,
    sagas: IntGaugeVec,
    oldest_age: GaugeVec,
    census_complete: IntGauge,
    outbox_backlog: IntGauge,
    outbox_oldest_due_age: Gauge,
}

/// How a step's attempt ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy)]
pub enum StepOutcome {
    Succeeded,
    /// Retrying cannot help (declined card, no stock...).
    BusinessError,
    /// Worth another attempt (timeout, 5xx).
    TransientError,
    /// It touches a quarantined key: the saga parks PAUSED (no attempt used).
    Quarantined,
}

impl StepOutcome {
    /// The outcome of a step's result (the failure kinds are the machine's).
    pub fn of(result: &Result<serde_json::Value, super::machine::Failure>) -> StepOutcome {
        use super::machine::Failure;
        match result {
            Ok(_) => StepOutcome::Succeeded,
            Err(Failure::Business(_)) => StepOutcome::BusinessError,
            Err(Failure::Transient { .. }) => StepOutcome::TransientError,
            Err(Failure::Quarantined { .. }) => StepOutcome::Quarantined,
        }
    }

    fn label(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::BusinessError => "business_error",
            StepOutcome::TransientError => "transient_error",
            StepOutcome::Quarantined => "quarantined",
        }
    }
}

/// The `outcome` label of a finished saga.
fn outcome(state: SagaState) -> &'static str {
    match state {
        SagaState::Completed => "completed",
        SagaState::Failed => "failed",
        SagaState::Aborted => "aborted",
        SagaState::Running => "running",
        SagaState::Retrying => "retrying",
        SagaState::Compensating => "compensating",
        SagaState::Stuck => "stuck",
        SagaState::Paused => "paused",
    }
}

impl SagaMetrics {
    pub fn new() -> SagaMetrics {
        let registry = Registry::new();
        macro_rules! registered {
            ($metric:expr) => {{
                let metric = $metric.expect("valid metric");
                registry.register(Box::new(metric.clone())).expect("a metric registered once");
                metric
            }};
        }
        let counter = |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
        SagaMetrics {
            started: registered!(counter("cartwright_sagas_started_total", "Sagas started, by type", &["type"])),
            finished: registered!(counter(
                "cartwright_sagas_finished_total",
                "Sagas finished, by type and outcome (completed, failed, aborted)",
                &["type", "outcome"]
            )),
            log_writes: registered!(counter(
                "cartwright_saga_log_writes_total",
                "Saga log writes made durable, by type, and whether each was its own commit (with=\"own\", \
                 a group-commit wait on the saga's path) or carried by a step's effect (with=\"effect\")",
                &["type", "with"]
            )),
            step_attempts: registered!(counter(
                "cartwright_saga_step_attempts_total",
                "Attempts of saga steps and compensations, by outcome (succeeded, business_error, transient_error)",
                &["type", "step", "outcome"]
            )),
            duration: registered!(HistogramVec::new(
                HistogramOpts::new("cartwright_saga_duration_seconds", "From start to finish, by type and outcome")
                    .buckets(exponential_buckets(0.005, 4.0, 12).expect("valid buckets")),
                &["type", "outcome"]
            )),
            step_duration: registered!(HistogramVec::new(
                HistogramOpts::new("cartwright_saga_step_duration_seconds", "One attempt of a step, by type and step")
                    .buckets(exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
                &["type", "step"]
            )),
            sagas: registered!(IntGaugeVec::new(
                Opts::new("cartwright_sagas", "Sagas by type and state (the census)"),
                &["type", "state"]
            )),
            oldest_age: registered!(GaugeVec::new(
                Opts::new(
                    "cartwright_saga_oldest_age_seconds",
                    "How long the longest-standing unfinished saga of a type has been in its state \
                     (STUCK: since its step failed for good; RETRYING: since its step's first attempt)"
                ),
                &["type", "state"]
            )),
            census_complete: registered!(IntGauge::new(
                "cartwright_saga_census_complete",
                "1 once the finished sagas of before the start are counted (until then their counts hold only \
                 what finished since)"
            )),
            outbox_backlog: registered!(IntGauge::new(
                "cartwright_outbox_backlog",
                "Notifications queued and not yet delivered (due now or waiting for a retry)"
            )),
            outbox_oldest_due_age: registered!(Gauge::new(
                "cartwright_outbox_oldest_due_age_seconds",
                "How long the most overdue queued notification has been due (0 when none is)"
            )),
            registry,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// The process-wide metrics and these, in Prometheus text, the gauges computed now.
    pub fn render(&self, census: &SagaCensus, store: &Store, now: Timestamp) -> String {
        let _one = whole::lock(&self.scrape);
        self.refresh(census, store, now);
        crate::metrics::render_with(&self.registry)
    }

    /// A saga's first write is durable.
    pub fn saga_started(&self, saga_type: &str) {
        self.started.with_label_values(&[saga_type]).inc();
    }

    /// A write of the saga's log is durable: its own, or `carried` by a step's effect.
    pub fn log_written(&self, saga_type: &str, carried: bool) {
        self.log_writes.with_label_values(&[saga_type, if carried { "effect" } else { "own" }]).inc();
    }

    /// A transition into a terminal state is durable.
    pub fn saga_finished(&self, saga_type: &str, state: SagaState, secs: f64) {
        let outcome = outcome(state);
        self.finished.with_label_values(&[saga_type, outcome]).inc();
        self.duration.with_label_values(&[saga_type, outcome]).observe(secs);
    }

    pub fn step_ended(&self, saga_type: &str, step: &str, outcome: StepOutcome, secs: f64) {
        self.step_attempts.with_label_values(&[saga_type, step, outcome.label()]).inc();
        self.step_duration.with_label_values(&[saga_type, step]).observe(secs);
    }

    /// Sets the gauges from the census and the outbox, just before a scrape reads them.
    fn refresh(&self, census: &SagaCensus, store: &Store, now: Timestamp) {
        self.sagas.reset();
        for (saga_type, state, n) in census.counts() {
            self.sagas.with_label_values(&[&saga_type, state.as_str()]).set(n as i64);
        }
        self.oldest_age.reset();
        for (saga_type, state, since) in census.oldest() {
            self.oldest_age.with_label_values(&[&saga_type, state.as_str()]).set(age_secs(now, since));
        }
        self.census_complete.set(i64::from(census.is_complete()));
        match store.outbox_backlog(now) {
            Ok((queued, oldest_due)) => {
                self.outbox_backlog.set(queued as i64);
                self.outbox_oldest_due_age.set(oldest_due.map_or(0.0, |due| age_secs(now, due)));
            }
            Err(e) => tracing::warn!(error = %e, "outbox backlog not measured"),
        }
    }
}

impl Default for SagaMetrics {
    fn default() -> Self {
        SagaMetrics::new()
    }
}
