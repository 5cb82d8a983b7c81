//! The code's shape: no two modules of a crate import each other, directly or round a
//! longer loop. A module and the modules inside it count as one (a child may use its
//! parent's items: it is part of it); a loop between siblings means a concern was split
//! in the wrong place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The crates whose modules are checked, by their source directory.
const CRATES: &[&str] = &[
    "host/src",
    "guest-sdk/src",
    "bench/src",
    "tests/src",
    "build-support/src",
];

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut loops = Vec::new();
    for dir in CRATES {
        let graph = module_graph(&root.join(dir));
        assert!(
            graph.len() > 1 || *dir == "build-support/src",
            "{dir}: no modules found"
        );
        for cycle in cycles(&graph) {
            loops.push(format!("{dir}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        loops.is_empty(),
        "modules that import each other:\n{}",
        loops.join("\n")
    );
}

#[test]
fn the_check_sees_a_loop() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    graph.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c", "a"]]);
}

/// Each module (by path, `a::b`) and the modules it names through `crate::`, `super::`
/// or `self::`, outside comments and test modules.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .map(|file| (module_of(src, &file), file))
        .collect();
    let paths = Regex::new(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+").expect("regex");
    let comment = Regex::new(r"//[^\n]*").expect("regex");
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let text = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let text = comment.replace_all(text, "");
        let here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let mut targets = BTreeSet::new();
        for found in paths.find_iter(&text) {
            let Some(target) = resolve(&here, found.as_str(), &modules) else {
                continue;
            };
            let related = target.is_empty()
                || target == *module
                || module.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{module}::"));
            if !related {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `tenants/state/mod.rs` is `tenants::state`; `lib.rs` and `main.rs` are the root, "".
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The module a path names: the longest prefix of it that is a module.
fn resolve(here: &[&str], path: &str, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segments = path.split("::").peekable();
    let mut base: Vec<&str> = match segments.next()? {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        _ => here[..here.len().checked_sub(1)?].to_vec(),
    };
    while segments.peek() == Some(&"super") {
        segments.next();
        base.pop()?;
    }
    base.extend(segments);
    (0..=base.len())
        .rev()
        .map(|end| base[..end].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// Every loop in the graph, each once, starting from its smallest module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, trail)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut cycle = trail.clone();
                    cycle.push(start.clone());
                    found.insert(cycle);
                } else if next > start && !trail.contains(next) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found.into_iter().collect()
}
