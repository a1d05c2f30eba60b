//! `cargo xtask build-cost`: what a consumer pays to compile the client, against progenitor's
//! own macro route on the same spec.
//!
//! Two scratch crates: one depends on `mde-client` (default features, TLS on); the other
//! calls `progenitor::generate_api!` on `spec/openapi.yaml` with reqwest's default TLS and
//! the dependencies progenitor's documentation names. Each pair builds both, in debug, each
//! in a fresh target directory (the registry already fetched), alternating so that the
//! machine's noise falls on both; it prints the wall time, the crates compiled and the ratio.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// One clean build: seconds and crates compiled.
fn build(dir: &Path, target: &Path) -> Result<(f64, usize), String> {
    let started = Instant::now();
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--message-format", "json"])
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let took = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "cargo build in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let crates = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .count();
    Ok((took, crates))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the two crates under `scratch`; the macro's spec is what the xtask gives
/// progenitor (`codegen::progenitor_input`: progenitor's macro refuses the multipart upload).
fn scaffold(root: &Path, scratch: &Path) -> Result<(), String> {
    let client = root.join("crates/mde-client");
    let spec = mde_spec::Spec::load(&root.join("spec/openapi.yaml"))
        .map_err(|e| format!("spec/openapi.yaml: {e}"))?;
    let mut document = spec.document().clone();
    crate::codegen::progenitor_input(&spec, &mut document);
    let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    let spec = scratch.join("openapi.json");
    write(&spec, &text)?;
    write(
        &scratch.join("client/Cargo.toml"),
        &format!(
            r#"[package]
name = "uses-mde-client"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
mde-client = {{ path = {client:?} }}
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}

[workspace]
"#
        ),
    )?;
    write(
        &scratch.join("client/src/main.rs"),
        r#"#[tokio::main]
async fn main() {
    let client = mde_client::Client::builder().bearer_token("t").build().unwrap();
    let _ = client.collect_investigation_package("0", "c");
}
"#,
    )?;
    write(
        &scratch.join("macro/Cargo.toml"),
        r#"[package]
name = "uses-progenitor-macro"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
chrono = { version = "0.4", features = ["serde"] }
futures = "0.3"
progenitor = "0.15.1"
reqwest = { version = "0.13", features = ["json", "query", "stream"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }

[workspace]
"#,
    )?;
    write(
        &scratch.join("macro/src/main.rs"),
        &format!(
            r#"progenitor::generate_api!({:?});

#[tokio::main]
async fn main() {{
    let _client = Client::new("https://api.security.microsoft.com");
}}
"#,
            spec.display().to_string()
        ),
    )
}

/// Builds both `pairs` times, alternating, and reports.
pub fn run(root: &Path, pairs: usize) -> Result<String, String> {
    let scratch = std::env::temp_dir().join(format!("mde-build-cost-{}", std::process::id()));
    scaffold(root, &scratch)?;
    // Resolve and fetch first, so that no build times the network.
    for krate in ["client", "macro"] {
        let fetched = Command::new(env!("CARGO"))
            .args(["fetch", "--quiet"])
            .current_dir(scratch.join(krate))
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !fetched.success() {
            return Err(format!("cargo fetch failed in {krate}"));
        }
    }
    let mut report = String::from(
        "| pair | mde-client (s, crates) | progenitor macro (s, crates) | ratio |\n|---|---|---|---|\n",
    );
    let mut ratios = Vec::new();
    for pair in 1..=pairs {
        let mut times = [(0.0, 0); 2];
        // Alternate which goes first.
        let order: [usize; 2] = if pair % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            let krate = ["client", "macro"][i];
            let target = scratch.join(format!("target-{krate}-{pair}"));
            times[i] = build(&scratch.join(krate), &target)?;
            let _ = std::fs::remove_dir_all(&target);
            eprintln!(
                "pair {pair}: {krate} {:.1} s, {} crates",
                times[i].0, times[i].1
            );
        }
        let ratio = times[0].0 / times[1].0;
        ratios.push(ratio);
        report.push_str(&format!(
            "| {pair} | {:.1} s, {} | {:.1} s, {} | {ratio:.2}x |\n",
            times[0].0, times[0].1, times[1].0, times[1].1
        ));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    ratios.sort_by(f64::total_cmp);
    report.push_str(&format!(
        "\nratio {:.2}x to {:.2}x over {pairs} pair(s) (debug builds, fresh target directories)",
        ratios[0],
        ratios[ratios.len() - 1]
    ));
    Ok(report)
}
