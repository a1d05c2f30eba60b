//! Every demo and recipe of `README.md` and of the book (`docs/src`), run as written: each
//! ` ```sh ` block is read from the markdown itself and run by bash in a scratch folder, with
//! `mde` the binary under test and `mde-sim` this test binary serving the simulator (a
//! ` ```sh,no_run ` block is shown, not run). Each `mde` the block runs must exit 0, and a
//! ` ```text ` block right after it is output the block must print (a word with `…` in it, an
//! id cut short, matches any word). An edit that breaks a demo
//! fails here. A few demos are checked further, against snapshots.

mod markdown;
mod run;

use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("mde-sim") {
        // The block's `mde-sim`: serve as its flags say until killed.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let code = runtime.block_on(mde_sim::serve::main(args[1..].iter().map(Into::into)));
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }
    // Arguments that are not flags filter the pages (`cargo test --test demos -- guide`).
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let mut failed = Vec::new();
    let mut ran = 0;
    for page in pages() {
        let shown = page.strip_prefix(root()).unwrap().display().to_string();
        if !filters.is_empty() && !filters.iter().any(|f| shown.contains(f.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(&page).unwrap();
        for block in markdown::blocks(&text) {
            ran += 1;
            let name = format!("{shown}:{}", block.line);
            match run::block(&block) {
                Ok(invocations) => {
                    checks::more(&shown, &block, &invocations);
                    println!("demo {name} ... ok ({} mde runs)", invocations.len());
                }
                Err(e) => {
                    println!("demo {name} ... FAILED");
                    failed.push(format!("{name}: {e}"));
                }
            }
        }
    }
    assert!(!filters.is_empty() || ran >= 10, "only {ran} demos found");
    if !failed.is_empty() {
        eprintln!(
            "\n{} demo(s) failed:\n\n{}",
            failed.len(),
            failed.join("\n\n")
        );
        std::process::exit(101);
    }
    println!("\ntest result: ok. {ran} demos passed");
}

mod checks;

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// README.md, then every page of the book.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs/src")];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages
}
