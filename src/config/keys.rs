//! Refusing settings nobody reads. The embedded `default.toml` names every key, so any other
//! key in the merged layers is a typo (`storage.pth`) or a setting that does not exist
//! (`CARTWRIGHT__QUEUE__KIND`); starting anyway would run with the default the operator
//! meant to replace.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use config::{ConfigError, Value, ValueKind};

use super::DEFAULT_TOML;

/// The dotted key of every leaf of the embedded defaults.
pub(super) fn known() -> &'static BTreeSet<String> {
    static KNOWN: OnceLock<BTreeSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let table: toml::Table = toml::from_str(DEFAULT_TOML).expect("the embedded default.toml parses");
        let mut out = BTreeSet::new();
        collect_toml(&table, "", &mut out);
        out
    })
}

fn collect_toml(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = join(prefix, key);
        match value {
            toml::Value::Table(inner) => collect_toml(inner, &path, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// Errs naming every unknown key of the merged layers, where it came from, and the closest
/// known key.
pub(super) fn refuse_unknown(merged: &Value) -> Result<(), ConfigError> {
    let mut unknown = Vec::new();
    collect_unknown(merged, "", &mut unknown);
    if unknown.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = unknown.iter().map(|(key, origin)| describe(key, origin.as_deref())).collect();
    Err(ConfigError::Message(lines.join("; ")))
}

fn collect_unknown(value: &Value, prefix: &str, out: &mut Vec<(String, Option<String>)>) {
    match &value.kind {
        ValueKind::Table(table) => {
            for (key, inner) in table {
                collect_unknown(inner, &join(prefix, key), out);
            }
        }
        _ if !known().contains(prefix) => out.push((prefix.to_string(), value.origin().map(str::to_string))),
        _ => {}
    }
}

fn describe(key: &str, origin: Option<&str>) -> String {
    let mut line = format!("unknown setting {key}");
    if let Some(hint) = closest(key) {
        line.push_str(&format!(" (did you mean {hint}?)"));
    }
    match origin {
        // The `config` crate names the environment source this way.
        Some("the environment") => line.push_str(&format!(" from environment variable {}", env_var(key))),
        Some(file) => line.push_str(&format!(" in {file}")),
        None => {}
    }
    line
}

/// The known key with the smallest edit distance, if it is close enough to be a typo of it.
pub(super) fn closest(key: &str) -> Option<&'static str> {
    known()
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .min()
        .filter(|(distance, k)| *distance <= key.len().max(k.len()) / 2)
        .map(|(_, k)| k.as_str())
}

/// `server.addr` is set by `CARTWRIGHT__SERVER__ADDR`.
pub fn env_var(key: &str) -> String {
    format!("CARTWRIGHT__{}", key.replace('.', "__").to_uppercase())
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}
