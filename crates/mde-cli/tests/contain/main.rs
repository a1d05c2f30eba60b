//! Containment and remediation, `mde` run as a binary against the simulator over loopback:
//! each command sends its documented request, followed with `--wait`, seen in the
//! simulator's own record.

use mde_client::OperationId;
use mde_client::types::{MachineActionStatus, MachineActionType};
use mde_sim::{Config, Simulator};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
use common::{against, lines, run_off, scratch, words};

const MACHINES: [&str; 2] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "fb9ab6be3965095a09c057be7c90f0a2",
];

async fn simulator() -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 120.0,
        names: vec!["ws-0001".into()],
        ..Config::default()
    })
    .await
    .unwrap()
}

mod containment;
mod pending;
mod race_and_tags;
