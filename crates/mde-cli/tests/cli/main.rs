//! The `mde` binary, run as a user runs it, against the simulator.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mde_sim::{Config, Simulator, generated_machine_id};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
use common::{against, kill_at, mde, run, run_off, scratch};

const MACHINES: [&str; 3] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "fb9ab6be3965095a09c057be7c90f0a2",
    "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f",
];

/// Snapshots with what changes from run to run replaced.
macro_rules! assert_redacted {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[guid]"),
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
                (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
                (r"in \d+\.\d s", "in [seconds] s"),
                (r"mde-journal-\S+\.jsonl", "[journal]"),
                (r"/tmp/\S+", "[path]"),
                // A link that expired under a loaded machine's clock (a second of real time
                // at --time-scale 600) is asked for again: timing, not the table's shape.
                (r" \(resumed \d+ time\(s\) after a cut, \d+ new link\(s\)\)", ""),
            ],
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

mod collections;
mod downloads;
mod names_and_waits;
mod resumes_and_scans;

/// The run of `package collect --download` against a simulator of the test's own, as JSON.
fn collect_download(
    dir: &std::path::Path,
    sim: &Simulator,
    machines: &[String],
    extra: &[&str],
) -> Command {
    std::fs::write(dir.join("fleet.txt"), machines.join("\n")).unwrap();
    let mut command = mde(dir);
    command
        .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
        .args([
            "--time-scale",
            &sim.clock().scale().to_string(),
            "--output",
            "json",
        ])
        .args(["package", "collect", "--machines-file", "fleet.txt"])
        .args(["--comment", "case 7", "--download", "evidence", "--yes"])
        .args(["--poll-interval", "10"])
        .args(extra)
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
        .stdin(Stdio::null());
    command
}

/// The JSON lines of a run, by machine.
fn by_machine(stdout: &str) -> std::collections::HashMap<String, Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["machine"].as_str().unwrap().to_string(), v))
        .collect()
}

/// Every operation but `only` was never served: the run sent nothing else.
fn sent_only(sim: &Simulator, only: &[(mde_client::OperationId, usize)]) {
    for op in mde_client::operations::ALL {
        let expected = only
            .iter()
            .find(|(o, _)| *o == op.id)
            .map_or(0, |(_, n)| *n);
        assert_eq!(sim.calls(op.id), expected, "{} calls", op.id);
    }
}
