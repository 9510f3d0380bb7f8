//! Saga definitions are data: `sagas/*.toml` (embedded in the binary) name the steps in
//! order, each step's compensation, retry policy and what happens when retries run out.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::retry::RetryPolicy;

/// Every version that ever shipped stays here until no instance of it can be left: an
/// instance runs the steps it was started with, under its own version's rules.
pub const EMBEDDED: [(&str, &str); 7] = [
    ("place_order.toml", include_str!("../../sagas/place_order.toml")),
    ("place_order.v1.toml", include_str!("../../sagas/place_order.v1.toml")),
    ("cancel_order.toml", include_str!("../../sagas/cancel_order.toml")),
    ("cancel_order.v1.toml", include_str!("../../sagas/cancel_order.v1.toml")),
    ("ship_order.toml", include_str!("../../sagas/ship_order.toml")),
    ("ship_order.v1.toml", include_str!("../../sagas/ship_order.v1.toml")),
    ("refund_capture.toml", include_str!("../../sagas/refund_capture.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExhausted {
    /// Undo the completed steps in reverse order and end FAILED.
    Compensate,
    /// Past the point of no return: park the saga STUCK for an operator.
    Stuck,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StepDefinition {
    pub name: String,
    pub compensation: Option<String>,
    #[serde(default = "compensate")]
    pub on_exhausted: OnExhausted,
    pub retry: Option<RetryPolicyToml>,
    /// Retry policy of the compensation (defaults to the saga's default).
    pub compensation_retry: Option<RetryPolicyToml>,
    /// A step with no effect outside the saga (it only reads): its success is not logged
    /// on its own but with the saga's next write, one durable write fewer on the path every
    /// caller waits for. A crash in between runs it again, which is harmless only because
    /// it changes nothing: so it may have no compensation.
    #[serde(default)]
    pub local: bool,
    /// A step whose effect is one write carries its own success in that write (see
    /// `saga::fold`): one durable write fewer on the caller's path, and the effect never
    /// lands without the log knowing. While it runs, an input that would change the saga
    /// (an operator's abort) is answered "retry": the entry it carries is already built.
    #[serde(default)]
    pub logged_with_effect: bool,
}

fn compensate() -> OnExhausted {
    OnExhausted::Compensate
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyToml {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub multiplier: f64,
    pub max_backoff_ms: u64,
}

impl From<RetryPolicyToml> for RetryPolicy {
    fn from(p: RetryPolicyToml) -> RetryPolicy {
        RetryPolicy {
            max_attempts: p.max_attempts,
            initial_backoff_ms: p.initial_backoff_ms,
            multiplier: p.multiplier,
            max_backoff_ms: p.max_backoff_ms,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SagaDefinition {
    pub name: String,
    pub version: u32,
    pub default_retry: RetryPolicyToml,
    /// Once this step has succeeded the saga only goes forward: an operator may resume it,
    /// never abort it (its compensations would undo what others already rely on).
    pub point_of_no_return: Option<String>,
    /// What an operator should do instead of aborting past the point of no return.
    pub forward_remedy: Option<String>,
    pub steps: Vec<StepDefinition>,
}

impl SagaDefinition {
    pub fn parse(source: &str) -> Result<SagaDefinition, String> {
        let def: SagaDefinition = toml::from_str(source).map_err(|e| e.to_string())?;
        if def.steps.is_empty() {
            return Err(format!("saga {} has no steps", def.name));
        }
        let mut seen = HashSet::new();
        for s in &def.steps {
            if !seen.insert(s.name.as_str()) {
                return Err(format!("saga {} names step {} twice", def.name, s.name));
            }
        }
        def.check_point_of_no_return()?;
        if let Some(s) = def.steps.iter().find(|s| s.local && s.compensation.is_some()) {
            return Err(format!(
                "saga {}: step {} is local but has a compensation: a local step changes nothing to undo",
                def.name, s.name
            ));
        }
        if let Some(s) = def.steps.iter().find(|s| s.local && s.logged_with_effect) {
            return Err(format!(
                "saga {}: step {} is local and logged_with_effect: a local step has no effect to carry its log",
                def.name, s.name
            ));
        }
        for (name, p) in def.policies() {
            validate_policy(&p).map_err(|e| format!("saga {} step {name}: {e}", def.name))?;
        }
        Ok(def)
    }

    /// The point of no return names a step; every step after it can only park (`stuck`),
    /// and has nothing to compensate, since nothing after that point is ever undone.
    fn check_point_of_no_return(&self) -> Result<(), String> {
        let Some(point) = &self.point_of_no_return else { return Ok(()) };
        let at = self
            .steps
            .iter()
            .position(|s| &s.name == point)
            .ok_or_else(|| format!("saga {}: point_of_no_return names no step: {point}", self.name))?;
        for s in &self.steps[at + 1..] {
            if s.on_exhausted != OnExhausted::Stuck || s.compensation.is_some() {
                return Err(format!(
                    "saga {}: step {} comes after the point of no return ({point}): it must be on_exhausted = \"stuck\" without a compensation",
                    self.name, s.name
                ));
            }
        }
        Ok(())
    }

    /// The policy of every step and compensation, by name, as the definition seeds them.
    pub fn policies(&self) -> BTreeMap<String, RetryPolicy> {
        let default: RetryPolicy = self.default_retry.into();
        let mut out = BTreeMap::new();
        for s in &self.steps {
            out.insert(s.name.clone(), s.retry.map_or(default, Into::into));
            if let Some(c) = &s.compensation {
                out.insert(c.clone(), s.compensation_retry.map_or(default, Into::into));
            }
        }
        out
    }

    /// Every handler name this saga needs.
    pub fn handler_names(&self) -> Vec<&str> {
        self.steps.iter().flat_map(|s| std::iter::once(s.name.as_str()).chain(s.compensation.as_deref())).collect()
    }
}

/// Bounds that keep a policy sane (an operator may PUT one).
pub fn validate_policy(p: &RetryPolicy) -> Result<(), String> {
    if p.max_attempts == 0 || p.max_attempts > 100 {
        return Err("max_attempts must be 1 to 100".into());
    }
    if p.initial_backoff_ms == 0 || p.initial_backoff_ms > 3_600_000 {
        return Err("initial_backoff_ms must be 1 to 3600000".into());
    }
    if !(1.0..=10.0).contains(&p.multiplier) {
        return Err("multiplier must be 1.0 to 10.0".into());
    }
    if p.max_backoff_ms < p.initial_backoff_ms || p.max_backoff_ms > 86_400_000 {
        return Err("max_backoff_ms must be at least initial_backoff_ms and at most 86400000".into());
    }
    Ok(())
}

/// The embedded definitions, parsed.
pub fn embedded() -> Result<Vec<SagaDefinition>, String> {
    EMBEDDED.iter().map(|(file, src)| SagaDefinition::parse(src).map_err(|e| format!("{file}: {e}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-step saga whose step is `name = "look"` and then `step`.
    fn one_step(step: &str) -> String {
        format!(
            "name = \"s\"\nversion = 1\n[default_retry]\nmax_attempts = 1\ninitial_backoff_ms = 1\n\
             multiplier = 1.0\nmax_backoff_ms = 1\n[[steps]]\nname = \"look\"\n{step}\n"
        )
    }

    #[test]
    fn a_local_step_may_not_have_a_compensation() {
        let source = &one_step("local = true\ncompensation = \"unlook\"");
        let e = SagaDefinition::parse(source).unwrap_err();
        assert!(e.contains("step look is local but has a compensation"), "{e}");
        let ok = SagaDefinition::parse(&source.replace("compensation = \"unlook\"", "")).unwrap();
        assert!(ok.steps[0].local);
    }

    #[test]
    fn a_local_step_has_no_effect_to_carry_its_log() {
        let source = &one_step("local = true\nlogged_with_effect = true");
        let e = SagaDefinition::parse(source).unwrap_err();
        assert!(e.contains("step look is local and logged_with_effect"), "{e}");
        let ok = SagaDefinition::parse(&source.replace("local = true", "")).unwrap();
        assert!(ok.steps[0].logged_with_effect && !ok.steps[0].local);
    }

    #[test]
    fn embedded_definitions_parse() {
        let defs = embedded().unwrap();
        let place = defs.iter().find(|d| d.name == "place_order").unwrap();
        assert_eq!(place.steps.len(), 7);
        assert_eq!(place.policies()["authorize_payment"].max_attempts, 4);
        assert_eq!(place.policies()["release_inventory"].max_attempts, 5);
        assert_eq!(place.steps[6].on_exhausted, OnExhausted::Stuck);
        let flags = |name: &str| place.steps.iter().find(|s| s.name == name).map(|s| (s.local, s.logged_with_effect));
        assert_eq!(flags("calculate_shipping"), Some((true, false)));
        assert_eq!(flags("create_order"), Some((false, true)));
        assert_eq!(flags("clear_cart"), Some((false, true)));
    }

    #[test]
    fn bad_definitions_are_refused() {
        let base = "name = \"x\"\nversion = 1\n[default_retry]\nmax_attempts = 3\ninitial_backoff_ms = 10\nmultiplier = 2.0\nmax_backoff_ms = 100\n";
        assert!(SagaDefinition::parse(base).is_err(), "no steps");
        let dup = format!("{base}[[steps]]\nname = \"a\"\n[[steps]]\nname = \"a\"\n");
        assert!(SagaDefinition::parse(&dup).unwrap_err().contains("twice"));
        let bad = base.replace("max_attempts = 3", "max_attempts = 0") + "[[steps]]\nname = \"a\"\n";
        assert!(SagaDefinition::parse(&bad).is_err());
        let unknown_point = format!("point_of_no_return = \"b\"\n{base}[[steps]]\nname = \"a\"\n");
        assert!(SagaDefinition::parse(&unknown_point).unwrap_err().contains("names no step: b"));
        let undone_after =
            format!("point_of_no_return = \"a\"\n{base}[[steps]]\nname = \"a\"\n[[steps]]\nname = \"b\"\n");
        assert!(SagaDefinition::parse(&undone_after).unwrap_err().contains("after the point of no return"));
    }

    #[test]
    fn every_shipped_definition_marks_its_point_of_no_return() {
        for def in embedded().unwrap() {
            let expected = match def.name.as_str() {
                "place_order" => "create_order",
                "cancel_order" => "cancel_order",
                "ship_order" => "mark_shipped",
                // One step, nothing to compensate: an operator may give up on it (and refund by hand).
                "refund_capture" => continue,
                other => panic!("unexpected saga {other}"),
            };
            assert_eq!(def.point_of_no_return.as_deref(), Some(expected), "{} v{}", def.name, def.version);
            assert!(def.forward_remedy.is_some(), "{} v{} says what to do instead of aborting", def.name, def.version);
        }
    }
}
