//! The saga state machine, pure: `transition` applies one input to an instance and says
//! what to do next. The coordinator persists the instance first, then performs the action,
//! so the log always leads the world. Matches are exhaustive: a new state or input makes
//! the compiler list every place to review.

use serde_json::Value;

use super::definition::OnExhausted;
use super::instance::{FailedAttempt, Phase, SagaInstance, SagaState, StepState, MAX_FAILED_ATTEMPTS};
use crate::domain::quarantine::QuarantineKey;
use crate::domain::time::Timestamp;
use crate::error::ErrorRecord;
use crate::retry::RetryPolicy;

/// The failed-attempt kind of an attempt that may have been applied.
pub const UNCERTAIN: &str = "uncertain";

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Retrying cannot help: compensate (or park, past the point of no return).
    Business(ErrorRecord),
    /// Worth another attempt, per the retry policy. `exhausted` is the business error to
    /// record if this was the last attempt. `uncertain`: the attempt may have been applied
    /// although it failed (a call to the outside world that timed out after it was sent);
    /// kept in the failed-attempt history so that the compensation knows to ask again.
    Transient { message: String, exhausted: ErrorRecord, uncertain: bool },
    /// The work touches a key an operator quarantined: park PAUSED on it, the attempt not
    /// counted, until the key is released.
    Quarantined { key: QuarantineKey, message: String },
}

impl Failure {
    /// How the failed-attempt history names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Business(_) => "business",
            Failure::Transient { uncertain: false, .. } => "transient",
            Failure::Transient { uncertain: true, .. } => UNCERTAIN,
            Failure::Quarantined { .. } => "quarantined",
        }
    }

    /// What the failed-attempt history says of it (a business error with its code), cut to
    /// a bounded length so that the history cannot make the saga's record heavy.
    pub fn describe(&self) -> String {
        const MAX_CHARS: usize = 500;
        let text = match self {
            Failure::Business(e) => format!("{}: {}", e.code, e.message),
            Failure::Transient { message, .. } | Failure::Quarantined { message, .. } => message.clone(),
        };
        text.chars().take(MAX_CHARS).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start,
    /// The current work succeeded with these outputs (merged into the saga's data).
    Succeeded(Value),
    Failed(Failure),
    /// A persisted retry timer fired.
    RetryDue,
    /// The process restarted: pick up where the log says.
    Recover,
    /// An operator: run the parked work now.
    Resume {
        reset_attempts: bool,
    },
    /// An operator: compensate what was done and end ABORTED.
    Abort {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run the current work (its attempt is already recorded).
    Run,
    /// Wait until the time, then feed `RetryDue`.
    WaitUntil(Timestamp),
    /// Nothing to do until something from outside (a stuck or finished saga, or a step in flight).
    Idle,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("saga is {0}: {1}")]
    InvalidState(&'static str, &'static str),
    /// Abort refused: the named step (the point of no return) has succeeded.
    #[error("past its point of no return ({0} succeeded): it can only go forward")]
    PastPointOfNoReturn(String),
}

/// What the machine needs from the saga's definition besides the instance itself.
pub struct Rules<'a> {
    /// The step after whose success the saga only goes forward (never compensates).
    pub point_of_no_return: Option<&'a str>,
    /// The current retry policy of a step by name (operators may have changed it since the
    /// saga started).
    pub policy: &'a dyn Fn(&str) -> Option<RetryPolicy>,
}

/// One compensation an abort would run: the step it undoes and its handler.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedCompensation {
    pub step: String,
    pub compensation: String,
}

/// What aborting the saga now would do: the compensations in the order they would run, or
/// why it is refused. The abort itself goes through this function, so a preview and the
/// abort cannot disagree.
pub fn abort_plan(
    saga: &SagaInstance,
    point_of_no_return: Option<&str>,
) -> Result<Vec<PlannedCompensation>, MachineError> {
    if saga.state.is_terminal() {
        return Err(MachineError::InvalidState(saga.state.as_str(), "a finished saga cannot be aborted"));
    }
    if let Some(step) = passed_point_of_no_return(saga, point_of_no_return) {
        return Err(MachineError::PastPointOfNoReturn(step.to_string()));
    }
    Ok(compensation_order(saga, saga.cursor as usize)
        .into_iter()
        .filter_map(|i| {
            let record = &saga.steps[i];
            let compensation = record.compensation.as_ref()?.name.clone();
            Some(PlannedCompensation { step: record.step.name.clone(), compensation })
        })
        .collect())
}

/// The point of no return, if the saga has passed it (that step succeeded).
fn passed_point_of_no_return<'a>(saga: &SagaInstance, point: Option<&'a str>) -> Option<&'a str> {
    let point = point?;
    saga.steps.iter().any(|r| r.step.name == point && r.step.state == StepState::Succeeded).then_some(point)
}

/// Applies `input`. On an error nothing changed.
pub fn transition(
    saga: &mut SagaInstance,
    input: Input,
    now: Timestamp,
    rules: &Rules,
) -> Result<Action, MachineError> {
    let action = apply(saga, input, now, rules)?;
    if saga.state != SagaState::Paused {
        saga.paused_on = None;
    }
    saga.updated_at = now;
    Ok(action)
}

fn apply(saga: &mut SagaInstance, input: Input, now: Timestamp, rules: &Rules) -> Result<Action, MachineError> {
    match input {
        Input::Start => {
            saga.state = SagaState::Running;
            saga.phase = Phase::Forward;
            saga.cursor = 0;
            Ok(begin_attempt(saga, now))
        }
        Input::Succeeded(output) => Ok(on_success(saga, output, now, rules.point_of_no_return)),
        Input::Failed(failure) => Ok(on_failure(saga, failure, now, rules.policy)),
        Input::RetryDue => match saga.state {
            SagaState::Retrying => {
                saga.state = running_state(saga.phase);
                Ok(begin_attempt(saga, now))
            }
            SagaState::Running
            | SagaState::Compensating
            | SagaState::Completed
            | SagaState::Failed
            | SagaState::Stuck
            | SagaState::Aborted
            | SagaState::Paused => Ok(Action::Idle),
        },
        Input::Recover => match saga.state {
            // The work was in flight when the process died: it runs again (steps are idempotent).
            SagaState::Running | SagaState::Compensating => Ok(begin_attempt(saga, now)),
            SagaState::Retrying => Ok(Action::WaitUntil(saga.current().and_then(|w| w.next_attempt_at).unwrap_or(now))),
            // A PAUSED saga stays parked: the engine resumes it if its key was released meanwhile.
            SagaState::Completed | SagaState::Failed | SagaState::Stuck | SagaState::Aborted | SagaState::Paused => {
                Ok(Action::Idle)
            }
        },
        // A PAUSED saga whose key is still quarantined parks again at its first attempt.
        Input::Resume { reset_attempts } => match saga.state {
            SagaState::Stuck | SagaState::Retrying | SagaState::Paused => {
                if reset_attempts {
                    if let Some(w) = saga.current_mut() {
                        w.attempts = 0;
                    }
                }
                saga.state = running_state(saga.phase);
                Ok(begin_attempt(saga, now))
            }
            SagaState::Running | SagaState::Compensating => {
                Err(MachineError::InvalidState(saga.state.as_str(), RESUMABLE))
            }
            SagaState::Completed | SagaState::Failed | SagaState::Aborted => {
                Err(MachineError::InvalidState(saga.state.as_str(), RESUMABLE))
            }
        },
        Input::Abort { reason } => {
            // Refused when finished or past the point of no return, exactly as the preview says.
            abort_plan(saga, rules.point_of_no_return)?;
            match saga.state {
                SagaState::Completed | SagaState::Failed | SagaState::Aborted => {
                    Err(MachineError::InvalidState(saga.state.as_str(), "a finished saga cannot be aborted"))
                }
                SagaState::Running | SagaState::Compensating => {
                    // The work in flight finishes first; its outcome starts (or continues) compensation.
                    saga.abort_requested = true;
                    saga.abort_reason = Some(reason);
                    Ok(Action::Idle)
                }
                SagaState::Retrying | SagaState::Stuck | SagaState::Paused => {
                    saga.abort_requested = true;
                    saga.abort_reason = Some(reason);
                    if let Some(w) = saga.current_mut() {
                        w.next_attempt_at = None;
                    }
                    match saga.phase {
                        Phase::Forward => Ok(compensate_from(saga, saga.cursor as usize, now)),
                        // Already undoing: retry this compensation now, then carry on.
                        Phase::Compensating => {
                            saga.state = SagaState::Compensating;
                            Ok(begin_attempt(saga, now))
                        }
                    }
                }
            }
        }
    }
}

const RESUMABLE: &str = "only STUCK, RETRYING or PAUSED sagas can be resumed";

fn running_state(phase: Phase) -> SagaState {
    match phase {
        Phase::Forward => SagaState::Running,
        Phase::Compensating => SagaState::Compensating,
    }
}

/// Records that the current work starts a new attempt.
fn begin_attempt(saga: &mut SagaInstance, now: Timestamp) -> Action {
    saga.attempt_started_at = Some(now);
    match saga.current_mut() {
        Some(w) => {
            w.state = StepState::Running;
            w.attempts += 1;
            w.started_at.get_or_insert(now);
            w.next_attempt_at = None;
            Action::Run
        }
        None => finish(saga, now),
    }
}

fn on_success(saga: &mut SagaInstance, output: Value, now: Timestamp, point_of_no_return: Option<&str>) -> Action {
    let cursor = saga.cursor as usize;
    match saga.phase {
        Phase::Forward => {
            if let Some(w) = saga.current_mut() {
                w.state = StepState::Succeeded;
                w.finished_at = Some(now);
                w.last_error = None;
            }
            merge(saga, output);
            if saga.abort_requested && passed_point_of_no_return(saga, point_of_no_return).is_some() {
                // Asked while the point of no return was in flight, and it went through:
                // from here the saga only goes forward.
                saga.abort_requested = false;
            }
            if saga.abort_requested {
                return compensate_from(saga, cursor, now);
            }
            if cursor + 1 < saga.steps.len() {
                saga.cursor += 1;
                begin_attempt(saga, now)
            } else {
                saga.state = SagaState::Completed;
                Action::Idle
            }
        }
        Phase::Compensating => {
            if let Some(w) = saga.current_mut() {
                w.state = StepState::Succeeded;
                w.finished_at = Some(now);
                w.last_error = None;
            }
            if saga.steps[cursor].step.state == StepState::Succeeded {
                saga.steps[cursor].step.state = StepState::Compensated;
            }
            match cursor.checked_sub(1) {
                Some(prev) => compensate_from(saga, prev, now),
                None => finish(saga, now),
            }
        }
    }
}

fn on_failure(
    saga: &mut SagaInstance,
    failure: Failure,
    now: Timestamp,
    policy: &dyn Fn(&str) -> Option<RetryPolicy>,
) -> Action {
    let cursor = saga.cursor as usize;
    let phase = saga.phase;
    let on_exhausted = saga.steps.get(cursor).map_or(OnExhausted::Stuck, |s| s.on_exhausted);
    let aborting = saga.abort_requested;
    let Some(work) = saga.current_mut() else {
        return finish(saga, now);
    };
    if let Some(p) = policy(&work.name) {
        work.policy = p;
    }
    let (name, attempt) = (work.name.clone(), work.attempts);
    let failed = FailedAttempt {
        work: name,
        compensation: phase == Phase::Compensating,
        attempt,
        started_at: saga.attempt_started_at,
        finished_at: now,
        kind: failure.kind().to_string(),
        error: failure.describe(),
    };
    if saga.failed_attempts.len() >= MAX_FAILED_ATTEMPTS {
        // The oldest goes, unless it is all a compensation has to know that the work may
        // have been applied: then the oldest that is not.
        let first_certain = saga.failed_attempts.iter().position(|f| f.kind != UNCERTAIN);
        saga.failed_attempts.remove(first_certain.unwrap_or(0));
    }
    saga.failed_attempts.push(failed);
    // `saga` was borrowed for the history; the current work again.
    let Some(work) = saga.current_mut() else {
        return finish(saga, now);
    };
    let (message, business) = match failure {
        Failure::Quarantined { key, message } => {
            // Not the work's fault: the attempt is given back, and its effects (if any)
            // still count for compensation through `started_at`.
            work.attempts = work.attempts.saturating_sub(1);
            work.state = StepState::Pending;
            work.last_error = Some(message);
            work.next_attempt_at = None;
            saga.state = SagaState::Paused;
            saga.paused_on = Some(key);
            return Action::Idle;
        }
        Failure::Business(e) => (e.message.clone(), Some(e)),
        Failure::Transient { message, exhausted, .. } => match work.policy.delay_after(work.attempts) {
            Some(delay) => {
                work.last_error = Some(message);
                let at = now.plus_millis(delay.as_millis() as i64);
                work.next_attempt_at = Some(at);
                saga.state = SagaState::Retrying;
                return Action::WaitUntil(at);
            }
            None => (format!("{message} (retries exhausted)"), Some(exhausted)),
        },
    };
    work.last_error = Some(message);
    work.finished_at = Some(now);
    match (phase, on_exhausted) {
        (Phase::Forward, OnExhausted::Compensate) if !aborting => {
            work.state = StepState::Failed;
            saga.error = business;
            compensate_from(saga, cursor, now)
        }
        (Phase::Forward, OnExhausted::Compensate) => {
            work.state = StepState::Failed;
            compensate_from(saga, cursor, now)
        }
        // Past the point of no return, or a compensation that cannot complete: an operator decides.
        (Phase::Forward, OnExhausted::Stuck) | (Phase::Compensating, _) => {
            work.state = StepState::Failed;
            saga.state = SagaState::Stuck;
            Action::Idle
        }
    }
}

/// Compensates, newest first, every step at or before `from` that may have had an effect
/// (succeeded, or failed after an attempt: compensations are idempotent) and has a
/// compensation. With nothing (left) to undo the saga ends FAILED or ABORTED.
fn compensate_from(saga: &mut SagaInstance, from: usize, now: Timestamp) -> Action {
    saga.phase = Phase::Compensating;
    saga.state = SagaState::Compensating;
    match compensation_order(saga, from).first() {
        Some(&i) => {
            saga.cursor = i as u32;
            begin_attempt(saga, now)
        }
        None => finish(saga, now),
    }
}

/// The steps at or before `from` whose compensation is still to run, newest first: those
/// that may have had an effect (succeeded, or failed, in flight or paused after an attempt
/// started: compensations are idempotent) and have a compensation not yet done.
fn compensation_order(saga: &SagaInstance, from: usize) -> Vec<usize> {
    (0..=from.min(saga.steps.len().saturating_sub(1)))
        .rev()
        .filter(|&i| {
            let s = &saga.steps[i];
            // `started_at`, not `attempts`: a paused attempt is given back but may have acted.
            let touched = matches!(s.step.state, StepState::Succeeded)
                || (matches!(s.step.state, StepState::Failed | StepState::Running | StepState::Pending)
                    && s.step.started_at.is_some());
            touched && s.compensation.as_ref().is_some_and(|c| c.state != StepState::Succeeded)
        })
        .collect()
}

/// Ends a compensated saga.
fn finish(saga: &mut SagaInstance, _now: Timestamp) -> Action {
    saga.state = if saga.abort_requested { SagaState::Aborted } else { SagaState::Failed };
    Action::Idle
}

fn merge(saga: &mut SagaInstance, output: Value) {
    if let Value::Object(new) = output {
        let mut data = saga.data_json();
        if let Value::Object(map) = &mut data {
            map.extend(new);
        }
        saga.data = data.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::definition::SagaDefinition;
    use serde_json::json;

    const DEF: &str = r#"
name = "t"
version = 1
[default_retry]
max_attempts = 3
initial_backoff_ms = 100
multiplier = 2.0
max_backoff_ms = 1000
[[steps]]
name = "a"
compensation = "undo_a"
[[steps]]
name = "b"
compensation = "undo_b"
[[steps]]
name = "c"
[[steps]]
name = "d"
on_exhausted = "stuck"
"#;

    fn saga() -> SagaInstance {
        let def = SagaDefinition::parse(DEF).unwrap();
        let policies = def.policies();
        SagaInstance::new(&def, |n| policies[n], json!({}), None, None)
    }

    const NO_POLICY: &dyn Fn(&str) -> Option<RetryPolicy> = &|_| None;
    const RULES: Rules = Rules { point_of_no_return: None, policy: NO_POLICY };

    fn step(s: &mut SagaInstance, input: Input) -> Action {
        transition(s, input, Timestamp(1_000), &RULES).unwrap()
    }

    fn business() -> Failure {
        Failure::Business(ErrorRecord { status: 409, code: "NOPE".into(), message: "no".into(), details: "{}".into() })
    }

    fn transient() -> Failure {
        Failure::Transient {
            message: "timeout".into(),
            exhausted: ErrorRecord { status: 503, code: "GONE".into(), message: "gone".into(), details: "{}".into() },
            uncertain: false,
        }
    }

    #[test]
    fn an_attempt_that_may_have_applied_is_kept_for_the_compensation_however_long_the_history() {
        let mut s = saga();
        s.steps[0].step.policy.max_attempts = 1_000;
        step(&mut s, Input::Start);
        let Failure::Transient { message, exhausted, .. } = transient() else { unreachable!() };
        step(&mut s, Input::Failed(Failure::Transient { message, exhausted, uncertain: true }));
        assert_eq!(s.failed_attempts[0].kind, UNCERTAIN);
        assert!(s.may_have_applied("a") && !s.may_have_applied("b"));
        for _ in 0..MAX_FAILED_ATTEMPTS + 5 {
            step(&mut s, Input::RetryDue);
            step(&mut s, Input::Failed(transient()));
        }
        assert_eq!(s.failed_attempts.len(), MAX_FAILED_ATTEMPTS);
        assert_eq!(s.failed_attempts[0].kind, UNCERTAIN, "trimmed around it");
        assert!(s.may_have_applied("a"));
    }

    fn current(s: &SagaInstance) -> String {
        s.current().unwrap().name.clone()
    }

    #[test]
    fn every_failed_attempt_is_kept_with_its_start_end_and_error_and_a_success_adds_none() {
        let mut s = saga();
        step(&mut s, Input::Start);
        assert!(s.failed_attempts.is_empty(), "the happy path records nothing");
        step(&mut s, Input::Failed(transient()));
        step(&mut s, Input::RetryDue);
        step(&mut s, Input::Failed(transient()));
        step(&mut s, Input::RetryDue);
        step(&mut s, Input::Succeeded(json!({})));
        let attempts: Vec<_> =
            s.failed_attempts.iter().map(|f| (f.work.as_str(), f.attempt, f.kind.as_str())).collect();
        assert_eq!(attempts, [("a", 1, "transient"), ("a", 2, "transient")]);
        assert!(s.failed_attempts.iter().all(|f| f.started_at.is_some() && !f.error.is_empty()));
        step(&mut s, Input::Failed(business()));
        let last = s.failed_attempts.last().unwrap();
        assert_eq!((last.work.as_str(), last.kind.as_str()), ("b", "business"));
        assert_eq!(last.error, "NOPE: no");
    }

    #[test]
    fn happy_path_runs_every_step_and_merges_outputs() {
        let mut s = saga();
        assert_eq!(step(&mut s, Input::Start), Action::Run);
        for name in ["a", "b", "c"] {
            assert_eq!(current(&s), name);
            assert_eq!(step(&mut s, Input::Succeeded(json!({ name: 1 }))), Action::Run);
        }
        assert_eq!(step(&mut s, Input::Succeeded(json!({}))), Action::Idle);
        assert_eq!(s.state, SagaState::Completed);
        assert_eq!(s.data_json(), json!({ "a": 1, "b": 1, "c": 1 }));
        assert!(s.steps.iter().all(|r| r.step.state == StepState::Succeeded && r.step.attempts == 1));
    }

    #[test]
    fn business_failure_compensates_in_reverse_including_the_failed_step() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(step(&mut s, Input::Failed(business())), Action::Run);
        assert_eq!((s.state, current(&s)), (SagaState::Compensating, "undo_b".to_string()));
        assert_eq!(step(&mut s, Input::Succeeded(json!({}))), Action::Run);
        assert_eq!(current(&s), "undo_a");
        assert_eq!(step(&mut s, Input::Succeeded(json!({}))), Action::Idle);
        assert_eq!(s.state, SagaState::Failed);
        assert_eq!(s.error.as_ref().unwrap().code, "NOPE");
        assert_eq!(s.steps[0].step.state, StepState::Compensated);
        assert_eq!(s.steps[1].step.state, StepState::Failed);
    }

    #[test]
    fn transient_failures_retry_with_backoff_then_compensate() {
        let mut s = saga();
        step(&mut s, Input::Start);
        assert_eq!(step(&mut s, Input::Failed(transient())), Action::WaitUntil(Timestamp(1_100)));
        assert_eq!(s.state, SagaState::Retrying);
        assert_eq!(step(&mut s, Input::RetryDue), Action::Run);
        assert_eq!(step(&mut s, Input::Failed(transient())), Action::WaitUntil(Timestamp(1_200)));
        step(&mut s, Input::RetryDue);
        // Third failure: max_attempts = 3 reached, compensate "a" itself (it may have half-applied).
        assert_eq!(step(&mut s, Input::Failed(transient())), Action::Run);
        assert_eq!(current(&s), "undo_a");
        assert_eq!(s.error.as_ref().unwrap().code, "GONE");
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(s.state, SagaState::Failed);
    }

    #[test]
    fn operator_policy_change_applies_to_the_next_attempt() {
        let mut s = saga();
        step(&mut s, Input::Start);
        let longer = RetryPolicy { max_attempts: 10, initial_backoff_ms: 5000, multiplier: 1.0, max_backoff_ms: 5000 };
        let policy = |n: &str| (n == "a").then_some(longer);
        let rules = Rules { point_of_no_return: None, policy: &policy };
        let a = transition(&mut s, Input::Failed(transient()), Timestamp(0), &rules).unwrap();
        assert_eq!(a, Action::WaitUntil(Timestamp(5000)));
        assert_eq!(s.steps[0].step.policy, longer);
    }

    #[test]
    fn after_the_point_of_no_return_failures_park_stuck_and_resume_reruns() {
        let mut s = saga();
        step(&mut s, Input::Start);
        for _ in 0..3 {
            step(&mut s, Input::Succeeded(json!({})));
        }
        assert_eq!(current(&s), "d");
        assert_eq!(step(&mut s, Input::Failed(business())), Action::Idle);
        assert_eq!(s.state, SagaState::Stuck);
        let mut s2 = s.clone();
        assert_eq!(step(&mut s2, Input::Resume { reset_attempts: true }), Action::Run);
        assert_eq!(s2.current().unwrap().attempts, 1);
        step(&mut s2, Input::Succeeded(json!({})));
        assert_eq!(s2.state, SagaState::Completed);
    }

    #[test]
    fn resume_and_abort_are_refused_in_the_wrong_states() {
        let mut s = saga();
        step(&mut s, Input::Start);
        assert!(transition(&mut s, Input::Resume { reset_attempts: false }, Timestamp(0), &RULES).is_err());
        for _ in 0..4 {
            step(&mut s, Input::Succeeded(json!({})));
        }
        assert_eq!(s.state, SagaState::Completed);
        assert!(transition(&mut s, Input::Abort { reason: "x".into() }, Timestamp(0), &RULES).is_err());
    }

    #[test]
    fn abort_of_a_retrying_saga_compensates_and_ends_aborted() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Failed(transient()));
        assert_eq!(step(&mut s, Input::Abort { reason: "customer called".into() }), Action::Run);
        assert_eq!(current(&s), "undo_b");
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(s.state, SagaState::Aborted);
        assert!(s.error.is_none());
    }

    #[test]
    fn abort_while_a_step_runs_takes_effect_when_it_ends() {
        let mut s = saga();
        step(&mut s, Input::Start);
        assert_eq!(step(&mut s, Input::Abort { reason: "stop".into() }), Action::Idle);
        assert_eq!(step(&mut s, Input::Succeeded(json!({}))), Action::Run);
        assert_eq!(current(&s), "undo_a");
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(s.state, SagaState::Aborted);
    }

    #[test]
    fn recovery_reruns_work_in_flight_and_rearms_timers() {
        let mut s = saga();
        step(&mut s, Input::Start);
        assert_eq!(step(&mut s, Input::Recover), Action::Run);
        assert_eq!(s.current().unwrap().attempts, 2);
        step(&mut s, Input::Failed(transient()));
        assert!(matches!(step(&mut s, Input::Recover), Action::WaitUntil(_)));
    }

    fn planned(s: &SagaInstance, point: Option<&str>) -> Vec<(String, String)> {
        abort_plan(s, point).unwrap().into_iter().map(|c| (c.step, c.compensation)).collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn the_abort_plan_lists_the_compensations_in_the_order_the_abort_runs_them() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Failed(transient()));
        let plan = planned(&s, Some("c"));
        assert_eq!(plan, vec![pair("b", "undo_b"), pair("a", "undo_a")]);
        let rules = Rules { point_of_no_return: Some("c"), policy: NO_POLICY };
        let mut ran = Vec::new();
        let mut action = transition(&mut s, Input::Abort { reason: "r".into() }, Timestamp(1), &rules).unwrap();
        while action == Action::Run {
            ran.push((s.steps[s.cursor as usize].step.name.clone(), current(&s)));
            action = transition(&mut s, Input::Succeeded(json!({})), Timestamp(2), &rules).unwrap();
        }
        assert_eq!(ran, plan);
        assert_eq!(s.state, SagaState::Aborted);
    }

    #[test]
    fn past_the_point_of_no_return_abort_is_refused_and_changes_nothing() {
        let mut s = saga();
        step(&mut s, Input::Start);
        for _ in 0..3 {
            step(&mut s, Input::Succeeded(json!({})));
        }
        step(&mut s, Input::Failed(business()));
        assert_eq!((s.state, current(&s)), (SagaState::Stuck, "d".to_string()));
        let before = s.clone();
        assert_eq!(abort_plan(&s, Some("c")), Err(MachineError::PastPointOfNoReturn("c".into())));
        let rules = Rules { point_of_no_return: Some("c"), policy: NO_POLICY };
        let refused = transition(&mut s, Input::Abort { reason: "r".into() }, Timestamp(9_999), &rules);
        assert_eq!(refused, Err(MachineError::PastPointOfNoReturn("c".into())));
        assert_eq!(s, before, "a refused abort changes nothing, not even updated_at");
        // Without a point of no return the same saga may be aborted (the old behaviour).
        assert_eq!(planned(&s, None), vec![pair("b", "undo_b"), pair("a", "undo_a")]);
        // Forward still works.
        assert_eq!(transition(&mut s, Input::Resume { reset_attempts: true }, Timestamp(1), &rules), Ok(Action::Run));
    }

    #[test]
    fn an_abort_asked_while_the_point_of_no_return_runs_lapses_when_it_succeeds() {
        let mut s = saga();
        let rules = Rules { point_of_no_return: Some("c"), policy: NO_POLICY };
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(current(&s), "c");
        assert_eq!(planned(&s, Some("c")), vec![pair("b", "undo_b"), pair("a", "undo_a")]);
        assert_eq!(transition(&mut s, Input::Abort { reason: "r".into() }, Timestamp(1), &rules), Ok(Action::Idle));
        assert_eq!(transition(&mut s, Input::Succeeded(json!({})), Timestamp(2), &rules), Ok(Action::Run));
        assert_eq!((s.state, current(&s), s.abort_requested), (SagaState::Running, "d".to_string(), false));
        transition(&mut s, Input::Succeeded(json!({})), Timestamp(3), &rules).unwrap();
        assert_eq!(s.state, SagaState::Completed);
    }

    #[test]
    fn a_finished_saga_has_no_abort_plan() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Failed(business()));
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(s.state, SagaState::Failed);
        assert!(matches!(abort_plan(&s, None), Err(MachineError::InvalidState("FAILED", _))));
    }

    fn paused_on(id: u128) -> Failure {
        use crate::domain::quarantine::KeyKind;
        let key = QuarantineKey::new(KeyKind::Inventory, uuid::Uuid::from_u128(id));
        Failure::Quarantined { key, message: format!("{key} is quarantined: recount") }
    }

    #[test]
    fn a_quarantined_key_parks_the_saga_paused_without_using_the_attempt() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(step(&mut s, Input::Failed(paused_on(7))), Action::Idle);
        assert_eq!(s.state, SagaState::Paused);
        assert!(s.state.is_settled() && !s.state.is_terminal());
        assert_eq!(s.paused_on.unwrap().id, uuid::Uuid::from_u128(7));
        let b = s.current().unwrap();
        assert_eq!((b.name.as_str(), b.state, b.attempts), ("b", StepState::Pending, 0));
        assert!(b.last_error.as_deref().unwrap().contains("recount"));
        // Timers and restarts leave it parked.
        assert_eq!(step(&mut s, Input::RetryDue), Action::Idle);
        assert_eq!(step(&mut s, Input::Recover), Action::Idle);
        assert_eq!(s.state, SagaState::Paused);
        // Pausing again and again never exhausts the policy (max_attempts = 3).
        for _ in 0..5 {
            assert_eq!(step(&mut s, Input::Resume { reset_attempts: false }), Action::Run);
            assert_eq!((s.state, s.paused_on), (SagaState::Running, None));
            step(&mut s, Input::Failed(paused_on(7)));
        }
        assert_eq!((s.state, s.current().unwrap().attempts), (SagaState::Paused, 0));
        // Released: the resume runs it as its first attempt, and the saga goes on.
        step(&mut s, Input::Resume { reset_attempts: false });
        assert_eq!(s.current().unwrap().attempts, 1);
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(current(&s), "c");
    }

    #[test]
    fn a_paused_step_keeps_the_attempts_it_used_before() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Failed(transient()));
        step(&mut s, Input::RetryDue);
        step(&mut s, Input::Failed(paused_on(1)));
        assert_eq!((s.state, s.current().unwrap().attempts), (SagaState::Paused, 1));
        step(&mut s, Input::Resume { reset_attempts: false });
        assert_eq!(s.current().unwrap().attempts, 2);
    }

    #[test]
    fn aborting_a_paused_saga_compensates_the_paused_step_too() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Failed(paused_on(2)));
        // It ran (and may have reserved part of its lines) before hitting the paused key.
        assert_eq!(planned(&s, None), vec![pair("b", "undo_b"), pair("a", "undo_a")]);
        assert_eq!(step(&mut s, Input::Abort { reason: "give up".into() }), Action::Run);
        assert_eq!((s.state, current(&s), s.paused_on), (SagaState::Compensating, "undo_b".to_string(), None));
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(s.state, SagaState::Aborted);
    }

    #[test]
    fn a_paused_saga_past_its_point_of_no_return_refuses_abort_and_resumes() {
        let mut s = saga();
        step(&mut s, Input::Start);
        for _ in 0..3 {
            step(&mut s, Input::Succeeded(json!({})));
        }
        step(&mut s, Input::Failed(paused_on(3)));
        assert_eq!((s.state, current(&s)), (SagaState::Paused, "d".to_string()));
        let rules = Rules { point_of_no_return: Some("c"), policy: NO_POLICY };
        let refused = transition(&mut s, Input::Abort { reason: "r".into() }, Timestamp(5), &rules);
        assert_eq!(refused, Err(MachineError::PastPointOfNoReturn("c".into())));
        assert_eq!(s.state, SagaState::Paused);
        assert_eq!(transition(&mut s, Input::Resume { reset_attempts: false }, Timestamp(6), &rules), Ok(Action::Run));
        transition(&mut s, Input::Succeeded(json!({})), Timestamp(7), &rules).unwrap();
        assert_eq!(s.state, SagaState::Completed);
    }

    #[test]
    fn a_compensation_that_touches_a_paused_key_parks_and_resumes_compensating() {
        let mut s = saga();
        step(&mut s, Input::Start);
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Failed(business()));
        assert_eq!(current(&s), "undo_b");
        step(&mut s, Input::Failed(paused_on(4)));
        assert_eq!((s.state, s.phase), (SagaState::Paused, Phase::Compensating));
        assert_eq!(step(&mut s, Input::Resume { reset_attempts: false }), Action::Run);
        assert_eq!((s.state, current(&s)), (SagaState::Compensating, "undo_b".to_string()));
        step(&mut s, Input::Succeeded(json!({})));
        step(&mut s, Input::Succeeded(json!({})));
        assert_eq!(s.state, SagaState::Failed);
    }
}
