//! Imports run one way, down the layers, in every crate of the workspace: the sources are
//! parsed (`syn`), each module's `crate::` and `super::` paths outside its tests are its
//! edges, and the test fails on any circle of modules and on any edge from a lower layer to
//! a higher one. Each crate declares its layers in the module docs of its `lib.rs`, a table
//! of `| layer | modules |` rows from the top down; a crate that declares none is held to no
//! circle only. The generated module's own imports are left out: they are the generator's
//! (progenitor's client reaches the hooks' `Inner`, the operation model names the one request
//! written by hand), and the file is never edited by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The crates whose modules are held to their layers.
const CRATES: [&str; 4] = ["mde-cli", "mde-client", "mde-sim", "mde-spec"];

/// Each module of a crate's `src` (`a`, `a::b`), with its file; `lib.rs` and `main.rs` are
/// roots, not modules.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &str, found: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let name = match prefix {
                "" => stem.clone(),
                _ => format!("{prefix}::{stem}"),
            };
            if path.is_dir() {
                walk(&path, &name, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                match (prefix, stem.as_str()) {
                    ("", "lib" | "main") => {}
                    (_, "mod") => {
                        found.insert(prefix.to_string(), path);
                    }
                    _ => {
                        found.insert(name, path);
                    }
                }
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(src, "", &mut found);
    found
}

/// The paths a file names (`crate::a::b`, `super::c`), each as its segments from the crate's
/// root, outside `#[cfg(test)]` items.
struct Paths {
    /// The file's module, as segments.
    module: Vec<String>,
    found: Vec<Vec<String>>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                let tokens = l.tokens.to_string();
                tokens == "test" || tokens.starts_with("test,") || tokens.contains("(test")
            })
    })
}

impl Paths {
    /// `segments` from the crate's root, when they start at `crate` or `super`.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut module = self.module.clone();
        let mut rest = segments;
        match rest.first()?.as_str() {
            "crate" => {
                module.clear();
                rest = &rest[1..];
            }
            "super" => {
                while rest.first().is_some_and(|s| s == "super") {
                    module.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => return None,
        }
        module.extend(rest.iter().cloned());
        Some(module)
    }

    fn add(&mut self, segments: Vec<String>) {
        if let Some(path) = self.absolute(&segments) {
            self.found.push(path);
        }
    }

    /// Every path of a `use` tree, flattened.
    fn tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree) {
        let with = |name: String| {
            let mut path = prefix.clone();
            path.push(name);
            path
        };
        match tree {
            syn::UseTree::Path(p) => self.tree(with(p.ident.to_string()), &p.tree),
            syn::UseTree::Name(n) => self.add(with(n.ident.to_string())),
            syn::UseTree::Rename(r) => self.add(with(r.ident.to_string())),
            syn::UseTree::Glob(_) => self.add(prefix),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.tree(prefix.clone(), tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test(&m.attrs) {
            return;
        }
        // An inline module is a level of its own for `super::`.
        self.module.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_test(&u.attrs) {
            self.tree(Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.add(segments);
        syn::visit::visit_path(self, path);
    }
}

/// The module a path from the root names: its longest prefix that is a module.
fn target(path: &[String], modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|name| modules.contains_key(name))
}

/// Each module's edges to the other modules of its crate.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut paths = Paths {
            module: name.split("::").map(str::to_string).collect(),
            found: Vec::new(),
        };
        paths.visit_file(&ast);
        let out = graph.entry(name.clone()).or_default();
        // The generated module's imports are the generator's (progenitor's client reaches
        // the hooks' `Inner`; the operation model names the request written by hand).
        if text.starts_with("// @generated") {
            continue;
        }
        for path in &paths.found {
            if let Some(to) = target(path, &modules)
                && to != *name
                // A module's own children and parent are one folder, not an import.
                && !to.starts_with(&format!("{name}::"))
                && !name.starts_with(&format!("{to}::"))
            {
                out.insert(to);
            }
        }
    }
    graph
}

/// The circles of a graph: its strongly connected parts of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut part = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                part.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if part.len() > 1 {
                part.sort();
                s.found.push(part);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

/// The layers a crate's `lib.rs` declares, top down: each module (or folder) with its rank,
/// from the rows under its `| layer | modules |` header.
fn layers(src: &Path) -> Vec<(String, usize)> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let rows = lib
        .lines()
        .skip_while(|l| l.replace(' ', "") != "//!|layer|modules|")
        .skip(2)
        .map_while(|l| l.strip_prefix("//! |"));
    let mut declared = Vec::new();
    for (rank, row) in rows.enumerate() {
        let cells: Vec<&str> = row.split('|').collect();
        for module in cells.get(1).into_iter().flat_map(|c| c.split(',')) {
            let module = module.trim().trim_matches('`');
            if !module.is_empty() {
                declared.push((module.to_string(), rank));
            }
        }
    }
    declared
}

/// The rank of a module: its own, or its folder's.
fn rank(module: &str, declared: &[(String, usize)]) -> Option<usize> {
    declared
        .iter()
        .filter(|(name, _)| module == name || module.starts_with(&format!("{name}::")))
        .max_by_key(|(name, _)| name.len())
        .map(|(_, rank)| *rank)
}

#[test]
fn imports_run_down_the_layers_with_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut wrong = Vec::new();
    for krate in CRATES {
        let src = root.join(krate).join("src");
        let graph = edges(&src);
        assert!(graph.len() > 3, "{krate}: the sources were not found");
        let found = circles(&graph);
        let count: usize = graph.values().map(BTreeSet::len).sum();
        // The figure the closing notes quote (`cargo test --test layers -- --nocapture`).
        println!(
            "{krate}: {} modules, {count} imports between them, {} circle(s)",
            graph.len(),
            found.len()
        );
        for circle in found {
            wrong.push(format!("{krate}: a circle of {}", circle.join(", ")));
        }
        let declared = layers(&src);
        if declared.is_empty() {
            continue;
        }
        for module in graph.keys() {
            if rank(module, &declared).is_none() {
                wrong.push(format!("{krate}: {module} is in no layer of lib.rs"));
            }
        }
        for (from, to) in graph
            .iter()
            .flat_map(|(f, t)| t.iter().map(move |t| (f, t)))
        {
            if let (Some(a), Some(b)) = (rank(from, &declared), rank(to, &declared))
                && b < a
            {
                wrong.push(format!("{krate}: {from} imports {to}, a higher layer"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_circle_and_an_upward_edge_are_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(circles(&graph), [["a", "b", "c"]]);
    let declared = vec![("d".to_string(), 0), ("a".to_string(), 1)];
    assert_eq!(rank("a::x", &declared), Some(1));
    assert_eq!(rank("e", &declared), None);
}
