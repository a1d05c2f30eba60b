//! Signing in without a secret, `mde` run as a binary against the simulator's managed
//! identity endpoint (App Service's protocol, through the Azure SDK's identity library): a
//! package collected; an endpoint that fails or never answers, each a clear error with no
//! secret printed and no retry storm.

use std::time::{Duration, Instant};

use mde_client::OperationId;
use mde_sim::{Config, IdentityFault, Simulator};

mod common;
use common::{mde, run_off, scratch};

async fn simulator(fault: Option<IdentityFault>) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity_fault: fault,
        ..Config::default()
    })
    .await
    .unwrap()
}

/// `mde` on the simulator with App Service's variables and nothing else to sign in with.
fn on_app_service(
    dir: &std::path::Path,
    sim: &Simulator,
    auth: Option<&str>,
) -> std::process::Command {
    let mut command = mde(dir);
    command
        .args(["--api-url", sim.base_url(), "-o", "json"])
        .env("IDENTITY_ENDPOINT", sim.identity_endpoint())
        .env("IDENTITY_HEADER", sim.identity_header())
        .env_remove("MDE_PROFILE")
        .env("MDE_CONFIG", dir.join("none.toml"));
    if let Some(auth) = auth {
        command.args(["--auth", auth]);
    }
    command
        .args(["package", "collect", "fb9ab6be3965095a09c057be7c90f0a2"])
        .args([
            "--comment",
            "Collect forensics due to alert 1234",
            "--journal",
            "j.jsonl",
        ]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_managed_identity_collects_a_package() {
    let dir = scratch("managed-identity");
    let sim = simulator(None).await;
    // Chosen from the environment: IDENTITY_ENDPOINT and no secret.
    let out = run_off(on_app_service(dir.path(), &sim, None)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("signing in with managed-identity"),
        "{}",
        out.stderr
    );
    assert_eq!(common::lines(&out.stdout)[0]["outcome"], "accepted");
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 1);
    assert_eq!(sim.identity_requests(), 1, "one token for the run");
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(sim.identity_header()), "{text}");
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_identity_endpoint_that_fails_or_hangs_is_a_clear_error() {
    for fault in [IdentityFault::ServerError, IdentityFault::Hang] {
        let dir = scratch("managed-identity-fault");
        let sim = simulator(Some(fault)).await;
        let started = Instant::now();
        let out = run_off(on_app_service(dir.path(), &sim, Some("managed-identity"))).await;
        assert_eq!(out.code, 3, "{fault:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("managed identity") || out.stderr.contains("ManagedIdentity"),
            "{fault:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(sim.identity_header()),
            "{}",
            out.stderr
        );
        // The first try and two retries at most; bounded by the sign-in timeout.
        assert!(
            (1..=3).contains(&sim.identity_requests()),
            "{fault:?}: {}",
            sim.identity_requests()
        );
        assert!(started.elapsed() < Duration::from_secs(60), "{fault:?}");
        assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 0);
        assert!(!dir.path().join("j.jsonl").exists(), "nothing journaled");
        sim.stop().await;
    }
}
