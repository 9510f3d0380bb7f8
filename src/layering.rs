//! The layering, checked: no two top-level modules (`src/<m>.rs`, `src/<m>/`) may depend on
//! each other, directly or through others. A dependency is any `crate::<m>` path in the
//! module's code (a `use` or a path in an expression or a type), comments, strings and
//! `#[cfg(test)]` items left out: tests may reach across layers, the shipped code may not.
//! Read from the source tree, so a new upward import fails here, naming the files that
//! close the cycle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Module -> the modules it names, each with the first place that names it.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = dependency_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "cycles between top-level modules:\n{}", cycles.join("\n"));
}

#[test]
fn the_errors_common_parts_sit_on_the_store_only() {
    let graph = dependency_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let above: Vec<_> = graph["error"].iter().filter(|(m, _)| m.as_str() != "store").collect();
    assert!(above.is_empty(), "error depends on layers above it: {above:?}");
}

/// Each layer returns its own error, and status and code are decided once, in
/// `http/error.rs`: no shipped code below the front door names the front door's error, and
/// no other file implements `Answer`.
#[test]
fn errors_meet_the_contract_in_http_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offending = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap().to_path_buf();
        let code = without_tests(&code_only(&std::fs::read_to_string(&file).unwrap()));
        let in_http = relative.starts_with("http") || relative.starts_with("app.rs");
        if !in_http && code.contains("ApiError") {
            offending.push(format!("{} names ApiError", relative.display()));
        }
        if relative != Path::new("http/error.rs") && code.contains("Answer for ") {
            offending.push(format!("{} decides an answer", relative.display()));
        }
    }
    assert!(offending.is_empty(), "{offending:#?}");
}

#[test]
fn the_reader_sees_paths_in_code_only() {
    let code = r##"
        use crate::a::X; // crate::b
        /* crate::c /* nested crate::d */ */
        fn f<'x>(s: &'x str) -> char { let _ = "crate::e \" crate::f"; let _ = r#"crate::g"#; '"' }
        use crate::{h::Y, i};
        #[cfg(test)]
        mod tests { use crate::j; fn g() { let _ = '{'; } }
        fn k() { crate::l::run(); }
    "##;
    let named: BTreeSet<String> = crate_paths(&without_tests(&code_only(code))).into_iter().collect();
    assert_eq!(named, ["a", "h", "i", "l"].map(String::from).into());
}

/// Each top-level module's dependencies on the others.
fn dependency_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let top = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = top.trim_end_matches(".rs").to_string();
        let is_test_file = relative.file_stem().is_some_and(|s| s == "tests");
        if module == "lib" || module == "main" || is_test_file {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = without_tests(&code_only(&text));
        let uses = graph.entry(module.clone()).or_default();
        for named in crate_paths(&code) {
            if named != module {
                uses.entry(named).or_insert_with(|| relative.display().to_string());
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// One shortest cycle through each edge that lies on a cycle, each written once, as
/// `a -> b (file) -> c (file) -> a (file)`.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for (from, uses) in graph {
        for to in uses.keys() {
            let Some(back) = shortest_path(graph, to, from) else { continue };
            let mut cycle = vec![from.clone(), to.clone()];
            cycle.extend(back);
            let mut key: Vec<_> = cycle[..cycle.len() - 1].to_vec();
            key.sort();
            if !seen.insert((key, cycle.len())) {
                continue;
            }
            let mut text = from.clone();
            for pair in cycle.windows(2) {
                text += &format!(" -> {} ({})", pair[1], graph[&pair[0]][&pair[1]]);
            }
            found.push(text);
        }
    }
    found
}

/// The modules after `from` on a shortest path to `to`, `to` included.
fn shortest_path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![to.to_string()];
            let mut step = to;
            while let Some(&before) = previous.get(step) {
                if before == from {
                    break;
                }
                path.push(before.to_string());
                step = before;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(at).into_iter().flat_map(|uses| uses.keys()) {
            if next != from && !previous.contains_key(next.as_str()) {
                previous.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The text with comments, string and char literals blanked (newlines kept).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    i += 2;
                } else if chars[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some((prefix, hashes)) = raw_string_start(rest).filter(|_| !after_ident(&out)) {
            i += prefix + hashes + 1;
            let end: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while i < chars.len() && !chars[i..].starts_with(&end) {
                blank(&mut out, chars[i]);
                i += 1;
            }
            i += end.len();
        } else if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                blank(&mut out, chars[i]);
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if chars[i] == '\'' && rest.get(1) == Some(&'\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if chars[i] == '\'' && rest.get(2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn after_ident(out: &str) -> bool {
    out.chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The length of the prefix (`r`, `br`) and the number of `#` of a raw string starting here.
fn raw_string_start(rest: &[char]) -> Option<(usize, usize)> {
    let after_r = match rest {
        ['b', 'r', ..] => &rest[2..],
        ['r', ..] => &rest[1..],
        _ => return None,
    };
    let hashes = after_r.iter().take_while(|&&c| c == '#').count();
    let prefix = rest.len() - after_r.len();
    (after_r.get(hashes) == Some(&'"')).then_some((prefix, hashes))
}

/// The code without the items marked `#[cfg(test)]` (a `mod tests { … }` or a `use …;`).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let item_end = match (rest.find('{'), rest.find(';')) {
            (Some(brace), Some(semi)) if semi < brace => semi + 1,
            (Some(brace), _) => brace + matching_brace(&rest[brace..]),
            (None, Some(semi)) => semi + 1,
            (None, None) => rest.len(),
        };
        rest = &rest[item_end..];
    }
    out.push_str(rest);
    out
}

/// The length up to and including the brace that closes the one `text` starts with.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return at + 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The top-level modules named by `crate::m` paths, `crate::{m, n::x}` groups included.
fn crate_paths(code: &str) -> Vec<String> {
    let mut named = Vec::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let after = code[at + "crate::".len()..].trim_start();
        if let Some(group) = after.strip_prefix('{') {
            // The group's text, without its closing brace.
            let group = &group[..matching_brace(&format!("{{{group}")) - 2];
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        named.push(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            named.push(ident(after));
        }
    }
    named.retain(|m| !m.is_empty() && m != "self");
    named
}
