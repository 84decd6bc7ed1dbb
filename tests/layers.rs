//! The crate's layers point one way and its modules import each other in no
//! cycle. Each layer is a folder under `src/`; a module may use modules of its
//! own layer and of the layers before it, never of a later one.
//!
//! `format` → `trust` → `reader` → `checks` → `sources` → `sbom` → `store` →
//! `commands` → `cli`

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 9] = [
    "format", "trust", "reader", "checks", "sources", "sbom", "store", "commands", "cli",
];

/// Folders whose files are all one module (their submodules are private parts).
const WHOLE: [&str; 2] = ["store", "sbom"];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file belongs to: `src/LAYER/NAME.rs` → NAME; `src/LAYER/mod.rs`
/// and deeper files → LAYER (or the first folder below it).
fn unit_of(rel: &[&str]) -> String {
    let layer = rel[0];
    if WHOLE.contains(&layer) || rel.len() == 1 {
        return layer.to_string();
    }
    let name = rel[1].trim_end_matches(".rs");
    if name == "mod" {
        layer.to_string()
    } else {
        name.to_string()
    }
}

/// Source without `#[cfg(test)] mod tests { .. }` blocks and comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` path and `use crate::{a, b::c}` group member, as (a, b).
fn crate_paths(code: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                let a = ident(item);
                let b = item
                    .strip_prefix(&a)
                    .and_then(|r| r.strip_prefix("::"))
                    .map(ident);
                if !a.is_empty() {
                    out.push((a, b));
                }
            }
            continue;
        }
        let a = ident(rest);
        let b = rest[a.len()..].strip_prefix("::").map(ident);
        out.push((a, b));
    }
    out
}

#[test]
fn layers_point_one_way_and_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    // Module → layer, from where the files are.
    let mut layer_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_file = Vec::new();
    for f in &files {
        let rel: Vec<String> = f
            .strip_prefix(&src)
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
        // Unit-test files (`mod tests;`) may use anything.
        if rel == ["lib.rs"] || rel == ["main.rs"] || rel.last() == Some(&"tests.rs") {
            continue;
        }
        let layer = LAYERS
            .iter()
            .position(|l| *l == rel[0])
            .unwrap_or_else(|| panic!("src/{} is in no layer folder", rel.join("/")));
        let unit = unit_of(&rel);
        layer_of.insert(unit.clone(), layer);
        per_file.push((
            rel.join("/"),
            unit,
            layer,
            std::fs::read_to_string(f).unwrap(),
        ));
    }
    for (i, l) in LAYERS.iter().enumerate() {
        layer_of.entry(l.to_string()).or_insert(i);
    }
    let mut wrong = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, unit, layer, text) in &per_file {
        for (a, b) in crate_paths(&code_of(text)) {
            // `crate::LAYER::NAME` names NAME when it is a module of that layer.
            let dep = match (LAYERS.contains(&a.as_str()), b) {
                (true, Some(b)) if layer_of.contains_key(&b) && !WHOLE.contains(&a.as_str()) => b,
                _ => a,
            };
            let Some(&dep_layer) = layer_of.get(&dep) else {
                continue; // Error, Result re-exported at the root
            };
            if dep_layer > *layer {
                wrong.push(format!(
                    "src/{file} ({}) uses {dep} ({})",
                    LAYERS[*layer], LAYERS[dep_layer]
                ));
            }
            if dep != *unit {
                edges.entry(unit.clone()).or_default().insert(dep);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layer order:\n{}",
        wrong.join("\n")
    );
    // No cycle between modules: depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap();
                let mut cycle = path[at..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, &edges, &mut state, &mut Vec::new()) {
            panic!("modules import each other in a cycle: {}", c.join(" → "));
        }
    }
}
