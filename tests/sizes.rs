//! Files and functions a reader can hold: no hand-written file over 600 lines and no function
//! over 100, in every crate, test and tool of the workspace. Exempt: the generated module, an
//! exhaustive `match` over every operation (one arm each), and the xtask's quoted code
//! templates. Anything else over fails.

use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::Visit;

const FILE_LIMIT: usize = 600;
const FN_LIMIT: usize = 100;

/// Over the limits by design: `FILE` or `FILE FUNCTION`.
const EXEMPT: [&str; 3] = [
    // The simulator's answer to each operation: one arm each, the compiler's list of them.
    "crates/mde-sim/src/api/mod.rs perform",
    // The operation model's code, quoted.
    "xtask/src/operations.rs",
    "xtask/src/operations.rs operations_module",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every hand-written Rust file of the workspace, relative to its root.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && name != "target" && name != "snapshots" {
                walk(&path, found);
            } else if name.ends_with(".rs") && name != "generated.rs" {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for dir in ["crates", "xtask", "tests"] {
        walk(&root().join(dir), &mut found);
    }
    let mut files: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

/// Each function of a file (free, in an `impl` or a trait, nested in a module) with its lines.
#[derive(Default)]
struct Functions(Vec<(String, usize)>);

impl Functions {
    fn add(&mut self, name: &syn::Ident, item: &impl Spanned) {
        let span = item.span();
        self.0
            .push((name.to_string(), span.end().line - span.start().line + 1));
    }
}

impl<'a> Visit<'a> for Functions {
    fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
        self.add(&f.sig.ident, f);
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
        self.add(&f.sig.ident, f);
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'a syn::TraitItemFn) {
        if f.default.is_some() {
            self.add(&f.sig.ident, f);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

/// Every file and function over its limit: `FILE` or `FILE FUNCTION`, with its lines.
fn over_the_limits() -> Vec<(String, usize)> {
    let mut over = Vec::new();
    for file in sources() {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        let lines = text.lines().count();
        if lines > FILE_LIMIT {
            over.push((file.clone(), lines));
        }
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut functions = Functions::default();
        functions.visit_file(&parsed);
        for (name, lines) in functions.0 {
            if lines > FN_LIMIT {
                over.push((format!("{file} {name}"), lines));
            }
        }
    }
    over
}

#[test]
fn no_file_or_function_is_over_the_limits_but_the_exempt() {
    let over = over_the_limits();
    for (what, lines) in &over {
        println!("{lines:5}  {what}");
    }
    let unexempt: Vec<String> = over
        .iter()
        .filter(|(what, _)| !EXEMPT.contains(&what.as_str()))
        .map(|(what, lines)| format!("{what}: {lines} lines"))
        .collect();
    assert!(
        unexempt.is_empty(),
        "over the limits ({FILE_LIMIT} lines a file, {FN_LIMIT} a function):\n{}",
        unexempt.join("\n")
    );
}

#[test]
fn a_long_function_is_measured() {
    let body = "    let x = 1;\n".repeat(120);
    let parsed = syn::parse_file(&format!("fn long() {{\n{body}}}\nfn short() {{}}\n")).unwrap();
    let mut functions = Functions::default();
    functions.visit_file(&parsed);
    assert_eq!(
        functions.0,
        vec![("long".to_string(), 122), ("short".to_string(), 1)]
    );
}
