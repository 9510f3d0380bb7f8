//! The repository stands on its own: every flow id the code and docs cite (`SEQ-…`) is
//! defined in docs/flows.md, and no text points to documents outside the repository.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The text files a reader of the repository reads: sources, docs, saga definitions, the
/// examples, CI scripts and the README.
fn texts() -> Vec<(PathBuf, String)> {
    let mut files = vec![root().join("README.md")];
    for dir in ["src", "docs", "sagas", "examples", ".ci", "tests"] {
        collect(&root().join(dir), &mut files);
    }
    files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| ["rs", "md", "toml", "sh", "cjs"].contains(&e.to_str().unwrap())))
        .filter_map(|f| Some((f.strip_prefix(root()).ok()?.to_path_buf(), std::fs::read_to_string(&f).ok()?)))
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every `SEQ-AREA-NNN` in `text`: a range `SEQ-AREA-001..003` gives each of its ids, and
/// `SEQ-AREA-001/002` both.
fn flow_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (at, _) in text.match_indices("SEQ-") {
        let rest = &text[at + 4..];
        let area: String = rest.chars().take_while(char::is_ascii_uppercase).collect();
        let Some(digits) = rest[area.len()..].strip_prefix('-') else { continue };
        let first: String = digits.chars().take_while(char::is_ascii_digit).collect();
        let (Ok(from), false) = (first.parse::<u32>(), area.is_empty()) else { continue };
        let last = digits[first.len()..]
            .strip_prefix("..")
            .map(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>())
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(from);
        ids.extend((from..=last).map(|n| format!("SEQ-{area}-{n:03}")));
        let second = digits[first.len()..].strip_prefix('/').map(|r| r.chars().take_while(char::is_ascii_digit));
        if let Some(n) = second.and_then(|d| d.collect::<String>().parse::<u32>().ok()) {
            ids.push(format!("SEQ-{area}-{n:03}"));
        }
    }
    ids
}

#[test]
fn every_flow_id_cited_is_defined_in_docs_flows() {
    let flows = std::fs::read_to_string(root().join("docs/flows.md")).unwrap();
    let defined: Vec<String> = flows.lines().filter_map(|l| l.strip_prefix("## ")).flat_map(flow_ids).collect();
    let mut missing = Vec::new();
    for (file, text) in texts() {
        for id in flow_ids(&text) {
            if !defined.contains(&id) && !file.ends_with("self_contained.rs") {
                missing.push(format!("{id} ({})", file.display()));
            }
        }
    }
    missing.dedup();
    assert!(missing.is_empty(), "cited but not defined in docs/flows.md: {missing:?}");
    assert_eq!(
        flow_ids("SEQ-CART-001..003 and SEQ-INV-002"),
        ["SEQ-CART-001", "SEQ-CART-002", "SEQ-CART-003", "SEQ-INV-002"]
    );
}

#[test]
fn nothing_points_outside_the_repository() {
    // Each pointer is written in two halves, so that this file does not point outside
    // itself and needs no exception.
    let outside: Vec<String> = [
        ["..", "/shared"],
        ["API", ".md"],
        ["DEPENDENCIES", ".md"],
        ["sequence", "-design"],
        ["the issue", " asks"],
        ["original", " design"],
    ]
    .iter()
    .map(|halves| halves.concat())
    .collect();
    let mut found = Vec::new();
    for (file, text) in texts() {
        for pointer in &outside {
            if text.contains(pointer.as_str()) {
                found.push(format!("{pointer} in {}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}
