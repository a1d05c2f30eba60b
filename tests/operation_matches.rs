//! The book's "Adding an operation" names every hand-written place that matches on each
//! operation: the places are found here in the sources (a `match` whose arms name every
//! `OperationId` or `Answer` variant), and the list must be exactly them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::visit::Visit;

/// Every variant name of `OperationId` (and so of `Answer`).
fn variants() -> Vec<String> {
    mde_client::OperationId::ALL
        .iter()
        .map(|op| {
            let id = op.as_str();
            id[..1].to_uppercase() + &id[1..]
        })
        .collect()
}

/// The Rust files written by hand: every crate's sources and tests but the generated file.
fn hand_written(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["target", "snapshots", ".git"].contains(&name.as_str()) {
                hand_written(&path, found);
            }
        } else if name.ends_with(".rs") && name != "generated.rs" {
            found.push(path);
        }
    }
}

/// The functions of a file that hold a match over every operation.
struct Finder<'a> {
    variants: &'a [String],
    function: Vec<String>,
    found: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function.push(f.sig.ident.to_string());
        syn::visit::visit_item_fn(self, f);
        self.function.pop();
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function.push(f.sig.ident.to_string());
        syn::visit::visit_impl_item_fn(self, f);
        self.function.pop();
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        let patterns: String = m
            .arms
            .iter()
            .map(|arm| arm.pat.to_token_stream().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let words: BTreeSet<&str> = patterns.split([' ', '(', ')', ',', '|']).collect();
        if self.variants.iter().all(|v| words.contains(v.as_str()))
            && let Some(function) = self.function.last()
        {
            self.found.insert(function.clone());
        }
        syn::visit::visit_expr_match(self, m);
    }
}

/// `path (function)` of every hand-written match over every operation.
fn places() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for dir in ["crates", "tests", "xtask"] {
        hand_written(&root.join(dir), &mut files);
    }
    let variants = variants();
    let mut places = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let Ok(parsed) = syn::parse_file(&text) else {
            continue;
        };
        let mut finder = Finder {
            variants: &variants,
            function: Vec::new(),
            found: BTreeSet::new(),
        };
        finder.visit_file(&parsed);
        let relative = file.strip_prefix(root).unwrap().display().to_string();
        for function in finder.found {
            places.insert(format!("{relative} ({function})"));
        }
    }
    places
}

/// The places the book's "Adding an operation" lists: its lines "- `PATH` (`FUNCTION`)".
fn listed() -> BTreeSet<String> {
    include_str!("../docs/src/contributing/adding-an-operation.md")
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("- `")?;
            let (path, rest) = rest.split_once("` (`")?;
            let (function, _) = rest.split_once("`)")?;
            Some(format!("{path} ({function})"))
        })
        .collect()
}

#[test]
fn the_book_lists_every_hand_written_match_over_the_operations() {
    let (found, listed) = (places(), listed());
    assert!(
        !found.is_empty(),
        "no match over the operations found: the finder is broken"
    );
    assert_eq!(
        found, listed,
        "the book's \"Adding an operation\" must list exactly the hand-written matches over every operation"
    );
}
