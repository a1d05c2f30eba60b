//! The run's promises at their edges, `mde` run as a binary against the simulator over
//! loopback: a resume continues the same run or refuses, failures are told by what the
//! service may have done, and a signal or an unreachable service stops a run cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mde_client::OperationId;
use mde_sim::{Config, Simulator};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
use common::{against, lines, mde, run, run_off, scratch, signing_in_at};

const MACHINES: [&str; 2] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "fb9ab6be3965095a09c057be7c90f0a2",
];

async fn simulator(scale: f64) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: scale,
        ..Config::default()
    })
    .await
    .unwrap()
}

/// A loopback port nothing listens on: connections to it are refused.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until the journal holds `n` lines of `event`.
fn wait_for(journal: &std::path::Path, event: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let needle = format!(r#""event":"{event}""#);
    while std::fs::read_to_string(journal)
        .unwrap_or_default()
        .matches(&needle)
        .count()
        < n
    {
        assert!(Instant::now() < deadline, "no {n} {event} lines in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

mod inputs_and_output;
mod resumes_and_sign_in;
