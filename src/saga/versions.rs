//! The definitions this build runs, every version that ever shipped, by name then version,
//! and the checks that keep an upgrade from stranding a saga: every step a definition
//! names has a handler, and every unfinished saga's own step list and version can run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::definition::SagaDefinition;
use super::instance::SagaInstance;
use super::steps::StepHandler;

pub type Definitions = HashMap<String, BTreeMap<u32, SagaDefinition>>;
pub type Handlers = HashMap<&'static str, Arc<dyn StepHandler>>;

/// Every step and compensation a definition (of any version) names must have a handler in
/// this build, and a version is defined once.
pub fn check_definitions(defs: Vec<SagaDefinition>, handlers: &Handlers) -> anyhow::Result<Definitions> {
    let mut out: Definitions = HashMap::new();
    for def in defs {
        if let Some(missing) = def.handler_names().into_iter().find(|n| !handlers.contains_key(n)) {
            anyhow::bail!("saga definition {} v{} names step {missing:?}, which has no handler", def.name, def.version);
        }
        let (name, version) = (def.name.clone(), def.version);
        if out.entry(name.clone()).or_default().insert(version, def).is_some() {
            anyhow::bail!("saga definition {name} v{version} is defined twice");
        }
    }
    Ok(out)
}

/// Every unfinished saga must run under a definition version this build has, and every
/// step and compensation its own (persisted) step list names must have a handler: else the
/// saga would park STUCK with "no handler" for ever. Names every problem at once.
pub fn check_instances(active: &[SagaInstance], definitions: &Definitions, handlers: &Handlers) -> anyhow::Result<()> {
    let mut problems = BTreeSet::new();
    for saga in active {
        let (ty, v) = (&saga.saga_type, saga.definition_version);
        if definitions.get(ty).and_then(|d| d.get(&v)).is_none() {
            problems.insert(format!("{ty} v{v} (saga {}): no such definition version", saga.saga_id));
        }
        let names = saga
            .steps
            .iter()
            .flat_map(|r| std::iter::once(&r.step.name).chain(r.compensation.as_ref().map(|c| &c.name)));
        for name in names.filter(|n| !handlers.contains_key(n.as_str())) {
            problems.insert(format!("{ty} v{v}: step {name:?} has no handler"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems.into_iter().collect();
    anyhow::bail!("unfinished sagas this build cannot run: {}", list.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::definition;
    use crate::saga::steps;
    use serde_json::json;

    #[test]
    fn a_definition_naming_an_unknown_step_is_refused_by_name() {
        let handlers = steps::handlers();
        assert!(check_definitions(definition::embedded().unwrap(), &handlers).is_ok());
        let src = definition::EMBEDDED[0].1.replace("name = \"load_cart\"", "name = \"load_the_cart\"");
        let def = SagaDefinition::parse(&src).unwrap();
        let err = check_definitions(vec![def], &handlers).unwrap_err().to_string();
        assert!(err.contains("place_order") && err.contains("load_the_cart"), "{err}");
    }

    fn instance(def: &SagaDefinition) -> SagaInstance {
        let policies = def.policies();
        SagaInstance::new(def, |n| policies[n], json!({}), None, None)
    }

    #[test]
    fn boot_refuses_unfinished_sagas_it_cannot_run_and_names_what_is_missing() {
        let handlers = steps::handlers();
        let definitions = check_definitions(definition::embedded().unwrap(), &handlers).unwrap();
        // Every shipped version of cancel_order and ship_order runs, the old ones included.
        let all: Vec<SagaInstance> = definitions.values().flat_map(BTreeMap::values).map(instance).collect();
        assert!(all.iter().any(|s| s.saga_type == "cancel_order" && s.definition_version == 1));
        check_instances(&all, &definitions, &handlers).unwrap();

        let v1 = &definitions["ship_order"][&1];
        let mut unknown_step = instance(v1);
        unknown_step.steps[4].step.name = "notify_by_pigeon".into();
        let mut unknown_version = instance(v1);
        unknown_version.definition_version = 9;
        let err = check_instances(&[unknown_step, unknown_version], &definitions, &handlers).unwrap_err().to_string();
        assert!(err.contains("\"notify_by_pigeon\" has no handler"), "{err}");
        assert!(err.contains("ship_order v9") && err.contains("no such definition version"), "{err}");
    }
}
