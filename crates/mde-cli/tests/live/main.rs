//! Live response, `mde` run as a binary against the simulator over loopback: the library,
//! sessions across machines with their commands in the documented order, a second session on
//! a device, the group without an automation level, and the run's journal and resume, each
//! checked against the simulator's own record.

use mde_client::OperationId;
use mde_client::types::{LiveResponseCommandType, MachineActionType};
use mde_sim::{Config, Simulator};

#[path = "../common/mod.rs"]
mod common;
use common::{against, kill_at, lines, run_off, scratch, words};

const MACHINES: [&str; 2] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "fb9ab6be3965095a09c057be7c90f0a2",
];

/// A simulator at `config`, at 120 times real time unless it says otherwise.
async fn simulator(config: Config) -> Simulator {
    let time_scale = if config.time_scale == 1.0 {
        120.0
    } else {
        config.time_scale
    };
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale,
        names: vec!["ws-0001".into()],
        ..config
    })
    .await
    .unwrap()
}

fn sessions(sim: &Simulator) -> Vec<mde_client::types::MachineAction> {
    sim.actions()
        .into_iter()
        .filter(|a| a.type_ == Some(MachineActionType::LiveResponse))
        .collect()
}

mod sessions;

/// `mde live` with a machines file, `--out evidence` and the JSON output, against `sim`.
fn live_out(
    dir: &std::path::Path,
    sim: &Simulator,
    machines: &[String],
    extra: &[&str],
) -> std::process::Command {
    std::fs::write(dir.join("fleet.txt"), machines.join("\n")).unwrap();
    let mut command = against(dir, sim);
    command
        .args(["-o", "json", "live", "--machines-file", "fleet.txt"])
        .args(["--run", "collect.ps1", "--args", "-Fast"])
        .args(["--get", r"C:\windows\TEMP\triage.zip"])
        .args(["--comment", "case 7", "--out", "evidence", "--yes"])
        .args(["--wait", "--poll-interval", "10"])
        .args(extra);
    command
}

async fn with_script(dir: &std::path::Path, sim: &Simulator) {
    std::fs::write(dir.join("collect.ps1"), "Get-Process\n").unwrap();
    let mut upload = against(dir, sim);
    upload.args(["library", "upload", "collect.ps1", "--overwrite"]);
    assert_eq!(run_off(upload).await.code, 0);
}
