//! Every outcome told as it ended, and nothing sent that is not journaled: `mde` run as a
//! binary against a simulator, whose own record decides what was sent. With `--wait` a
//! machine's outcome is its action's end; an accepted action whose wait could not go on is
//! still on stdout with its id; a journal that cannot be written stops the run on a local
//! fault (exit 4) with every request in flight shown, and the resume finishes the rest.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use mde_client::OperationId;
use mde_sim::{Config, Simulator, generated_machine_id};

mod common;
use common::{against, lines, run_off, scratch};

/// The simulator's status of each machine's one action.
fn statuses(sim: &Simulator) -> HashMap<String, String> {
    sim.actions()
        .iter()
        .map(|a| {
            let status = a.status.as_ref().unwrap().to_string();
            (a.machine_id.clone().unwrap(), status)
        })
        .collect()
}

/// `command` run under `prlimit --fsize=BYTES`: no file it writes grows past `bytes`, as on a
/// disk that is full.
fn with_file_size_limit(command: &Command, bytes: u64) -> Command {
    let mut limited = Command::new("prlimit");
    limited
        .arg(format!("--fsize={bytes}"))
        .arg("--")
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    limited.current_dir(command.get_current_dir().unwrap());
    limited
}

/// The resume line a stopped run printed after "then resume with", as a command run in `dir`
/// signing in as the simulator's default app.
fn resumed(dir: &std::path::Path, stderr: &str) -> Command {
    let line = stderr
        .lines()
        .skip_while(|l| !l.contains("then resume with"))
        .nth(1)
        .unwrap_or_else(|| panic!("a resume line: {stderr}"));
    let args = shlex::split(line.trim()).unwrap();
    assert!(args.iter().any(|a| a == "--resume"), "{line}");
    let mut command = common::mde(dir);
    command
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
        .args(&args[1..]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_wait_reports_each_action_as_it_ended() {
    let dir = scratch("wait-ends");
    let n = 6;
    let machines: Vec<String> = (0..n).map(generated_machine_id).collect();
    let seed = common::seed_failing(&machines, 0.5, 2);
    for output in ["csv", "json"] {
        let sim = Simulator::start(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            time_scale: 600.0,
            scan_time: Duration::from_secs(1200),
            scan_failures: 0.5,
            seed,
            ..Config::default().with_generated_machines(n)
        })
        .await
        .unwrap();
        let mut command = against(dir.path(), &sim);
        command
            .args(["-o", output, "scan", "--type", "full", "--comment", "sweep"])
            .args(["--wait", "--poll-interval", "120"])
            .args(&machines);
        let out = run_off(command).await;
        assert_eq!(out.code, 1, "two scans failed: {}", out.stderr);
        assert!(out.stderr.contains("failed 2"), "{}", out.stderr);
        assert!(out.stderr.contains("succeeded 4"), "{}", out.stderr);
        let status = statuses(&sim);
        assert_eq!(status.len(), n, "one scan a machine, whichever run");
        let rows: Vec<(String, String, String)> = match output {
            "csv" => out
                .stdout
                .lines()
                .skip(1)
                .map(|row| {
                    let cells: Vec<&str> = row.split(',').collect();
                    let error = cells[5].to_string();
                    (cells[0].to_string(), cells[4].to_string(), error)
                })
                .collect(),
            _ => lines(&out.stdout)
                .iter()
                .map(|l| {
                    let error = l["error"]["code"].as_str().unwrap_or_default().to_string();
                    let machine = l["machine"].as_str().unwrap().to_string();
                    (machine, l["outcome"].as_str().unwrap().to_string(), error)
                })
                .collect(),
        };
        assert_eq!(rows.len(), n, "{}", out.stdout);
        for (machine, outcome, error) in rows {
            let expected = match status[&machine].as_str() {
                "Succeeded" => "succeeded",
                "Failed" => "failed",
                other => panic!("{other}"),
            };
            assert_eq!(outcome, expected, "{machine}: {}", out.stdout);
            assert_eq!(
                error.is_empty(),
                expected == "succeeded",
                "{machine}: {error}"
            );
        }
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_expired_token_during_wait_keeps_every_accepted_line() {
    let dir = scratch("wait-expired");
    let machines: Vec<String> = (0..3).map(generated_machine_id).collect();
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        token_lifetime: Duration::from_secs(300),
        scan_time: Duration::from_secs(1200),
        ..Config::default().with_generated_machines(3)
    })
    .await
    .unwrap();
    let token = mde_sim::sign_in(
        sim.base_url(),
        mde_sim::DEFAULT_TENANT,
        mde_sim::DEFAULT_CLIENT_ID,
        mde_sim::DEFAULT_CLIENT_SECRET,
    )
    .await
    .unwrap();
    let mut command = common::mde(dir.path());
    command
        .env("MDE_TOKEN", &token)
        .args(["--api-url", sim.base_url(), "--time-scale", "60"])
        .args(["-o", "json", "scan", "--type", "quick", "--comment", "c"])
        .args(["--wait", "--poll-interval", "60"])
        .args(&machines);
    let out = run_off(command).await;
    // The scans were started: not 3, "nothing was sent".
    assert_eq!(out.code, 1, "{}", out.stderr);
    let started: Vec<String> = sim.actions().iter().filter_map(|a| a.id.clone()).collect();
    assert_eq!(started.len(), 3);
    let told = lines(&out.stdout);
    assert_eq!(told.len(), 3, "{}", out.stdout);
    for line in &told {
        assert_eq!(line["outcome"], "still_running", "{line}");
        let id = line["action_id"].as_str().unwrap();
        assert!(started.iter().any(|s| s == id), "{id}");
        assert!(out.stderr.contains(id), "{id} to follow: {}", out.stderr);
    }
    assert!(
        out.stderr.contains("could not follow the actions"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("mde action show "), "{}", out.stderr);
    assert!(!out.stderr.contains(&token), "no token printed");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_journal_that_cannot_be_written_stops_sending_and_loses_nothing() {
    let dir = scratch("journal-full");
    let n = 300;
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        ..Config::default().with_generated_machines(n)
    })
    .await
    .unwrap();
    let fleet: String = (0..n).map(|i| generated_machine_id(i) + "\n").collect();
    std::fs::write(dir.path().join("fleet.txt"), fleet).unwrap();
    let journal = dir.path().join("j.jsonl");
    let mut command = against(dir.path(), &sim);
    command
        .args([
            "-o",
            "json",
            "tag",
            "add",
            "Contained",
            "--machines-file",
            "fleet.txt",
        ])
        .args(["--yes", "--journal", "j.jsonl"]);

    // A journal that cannot hold its first line: no journal left, nothing sent.
    let out = run_off(with_file_size_limit(&command, 10)).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot write the journal"),
        "{}",
        out.stderr
    );
    assert!(!journal.exists(), "no journal of a run that never began");
    assert_eq!(sim.calls(OperationId::SetMachineTag), 0);

    // Room for some machines' lines: sending stops, every request in flight told.
    let out = run_off(with_file_size_limit(&command, 40_000)).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    let tagged = sim.calls(OperationId::SetMachineTag);
    assert!(tagged > 0 && tagged < n, "{tagged} of {n} tagged");
    let told = lines(&out.stdout);
    let accepted = told.iter().filter(|l| l["outcome"] == "accepted").count();
    assert_eq!(
        accepted, tagged,
        "every request the service acted on is on stdout"
    );
    // Each request that went out was journaled first.
    let text = std::fs::read_to_string(&journal).unwrap();
    let sending = text.matches(r#""event":"sending""#).count();
    assert!(
        sending >= tagged,
        "{sending} sending lines, {tagged} tagged"
    );
    // Space freed: the resume line, as printed, sends to the rest only.
    let out = run_off(resumed(dir.path(), &out.stderr)).await;
    assert!(matches!(out.code, 0 | 1), "{}", out.stderr);
    // Paced by the documented limit (a minute's wait is 0.1 s here): no line says a wait of
    // under a second.
    assert!(!out.stderr.contains("(0 s)"), "{}", out.stderr);
    assert_eq!(
        sim.calls(OperationId::SetMachineTag),
        n,
        "each machine tagged once"
    );
    let machines = sim.machines();
    let tagged = machines
        .iter()
        .filter(|m| m.machine_tags.iter().flatten().any(|t| t == "Contained"))
        .count();
    assert_eq!(tagged, n);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_full_evidence_disk_stops_the_run_and_the_resume_finishes_it() {
    let dir = scratch("evidence-full");
    let n = 3;
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        package_size: 2_000_000,
        ..Config::default().with_generated_machines(n)
    })
    .await
    .unwrap();
    let machines: Vec<String> = (0..n).map(generated_machine_id).collect();
    let mut command = against(dir.path(), &sim);
    command
        .args(["package", "collect", "--comment", "c", "--download", "ev"])
        .args(["--poll-interval", "60", "--journal", "j.jsonl"])
        .args(&machines);
    // No file may grow past 1 MB: every package fails to be written.
    let out = run_off(with_file_size_limit(&command, 1_000_000)).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("Free the space"), "{}", out.stderr);
    let out = run_off(resumed(dir.path(), &out.stderr)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        sim.calls(OperationId::CollectInvestigationPackage),
        n,
        "one collection each"
    );
    let mut verify = common::mde(dir.path());
    verify.args(["package", "verify", "ev"]);
    let verified = run_off(verify).await;
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    sim.stop().await;
}
