//! Live response, `mde` run as a binary against the simulator over loopback: the library,
//! sessions across machines with their commands in the documented order, a second session on
//! a device, the group without an automation level, and the run's journal and resume, each
//! checked against the simulator's own record.

use mde_client::OperationId;
use mde_client::types::{LiveResponseCommandType, MachineActionType};
use mde_sim::{Config, Simulator};

mod common;
use common::{against, lines, run_off, scratch};

const MACHINES: [&str; 2] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "fb9ab6be3965095a09c057be7c90f0a2",
];

async fn simulator(config: Config) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 120.0,
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

/// `mde library` uploads, lists and deletes; `mde live --ensure-script` uploads only what the
/// library lacks; a run by id and by name sends one session per machine, its commands in the
/// documented order whatever the flags' order, followed to `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_runs_one_session_per_machine_in_the_documented_order() {
    let dir = scratch("live");
    let sim = simulator(Config::default()).await;
    std::fs::write(dir.path().join("collect.ps1"), "Get-Process\n").unwrap();
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.args(["-o", "json"]).args(args);
        command
    };
    let up = run_off(mde(&[
        "library",
        "upload",
        "collect.ps1",
        "--description",
        "triage",
    ]))
    .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let listed = run_off(mde(&["library", "list"])).await;
    let listed = lines(&listed.stdout);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["file_name"], "collect.ps1");
    assert_eq!(listed[0]["description"], "triage");
    let again = run_off(mde(&["library", "upload", "collect.ps1"])).await;
    assert_ne!(again.code, 0, "a name taken without --overwrite");

    let live = |extra: &[&str]| {
        let mut command = mde(&["live", MACHINES[0], "--machine-name", "ws-0001"]);
        command
            .args(["--get", r"C:\windows\TEMP\triage.zip"])
            .args(["--run", "collect.ps1", "--args", "-Fast"])
            .args([
                "--put",
                "collect.ps1",
                "--comment",
                "Triage for incident 42",
            ])
            .args(extra);
        command
    };
    let dry = run_off(live(&["--dry-run"])).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(sim.calls(OperationId::RunLiveResponse), 0);

    // The same script again: the library holds it, nothing is uploaded.
    let uploads = sim.calls(OperationId::UploadLibraryFile);
    let out = run_off(live(&[
        "--ensure-script",
        "collect.ps1",
        "--wait",
        "--poll-interval",
        "10",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("same SHA-256"), "{}", out.stderr);
    assert_eq!(sim.calls(OperationId::UploadLibraryFile), uploads);
    for line in lines(&out.stdout) {
        assert_eq!(line["outcome"], "accepted", "{line}");
        assert_eq!(line["status"], "Succeeded", "{line}");
    }
    let held = sessions(&sim);
    assert_eq!(held.len(), 2, "one session per machine");
    for session in &held {
        let kinds: Vec<_> = session
            .commands
            .iter()
            .flatten()
            .map(|c| c.command.as_ref().unwrap().type_.clone())
            .collect();
        use LiveResponseCommandType as T;
        assert_eq!(kinds, [T::PutFile, T::RunScript, T::GetFile]);
        let run = &session.commands.as_ref().unwrap()[1]
            .command
            .as_ref()
            .unwrap()
            .params;
        assert_eq!(run[1].value, "-Fast", "the --args of its --run");
        assert_eq!(
            session.requestor_comment.as_deref(),
            Some("Triage for incident 42")
        );
    }

    // A changed script is uploaded again, replacing the library's.
    std::fs::write(dir.path().join("collect.ps1"), "Get-Service\n").unwrap();
    let dry = run_off(live(&["--ensure-script", "collect.ps1", "--dry-run"])).await;
    assert_eq!(dry.code, 0);
    assert_eq!(
        sim.calls(OperationId::UploadLibraryFile),
        uploads,
        "a dry run uploads nothing"
    );

    let deleted = run_off(mde(&["library", "delete", "collect.ps1"])).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let gone = run_off(mde(&["library", "delete", "collect.ps1"])).await;
    assert_ne!(gone.code, 0);
    sim.stop().await;
}

/// What the service would refuse is refused before anything is sent; a machine with a
/// session running is `already_running`; a group without an automation level says what to
/// change in the portal; a run interrupted by `kill -9` after its sessions were journaled
/// resumes without a second session on any machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_refuses_early_reports_running_sessions_and_resumes_once() {
    let dir = scratch("live-refusals");
    let sim = simulator(Config {
        no_automation: 1,
        ..Config::default().with_generated_machines(3)
    })
    .await;
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.args(["-o", "json", "live"]).args(args);
        command
    };
    for bad in [
        &["--run", "a b.ps1", "--comment", "c"][..],
        &["--put", "../x.ps1", "--comment", "c"][..],
        &["--comment", "c"][..],
        &["--get", r"C:\a", "--comment", ""][..],
        &["--args", "-x", "--run", "a.ps1", "--comment", "c"][..],
    ] {
        let mut command = mde(&[MACHINES[0]]);
        command.args(bad);
        let refused = run_off(command).await;
        assert_eq!(refused.code, 2, "{bad:?}: {}", refused.stderr);
    }
    assert_eq!(sim.calls(OperationId::RunLiveResponse), 0);

    let ids: Vec<String> = (0..3).map(mde_sim::generated_machine_id).collect();
    // The group without an automation level stops the run, saying what to change.
    let denied = run_off(mde(&[&ids[0], "--get", r"C:\a", "--comment", "c"])).await;
    assert_eq!(denied.code, 3, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("DisallowedOperation"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("minimum remediation level"),
        "{}",
        denied.stderr
    );
    assert_eq!(sessions(&sim).len(), 0);

    let first = run_off(mde(&[&ids[1], "--get", r"C:\a", "--comment", "first"])).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = [
        "--get",
        r"C:\a",
        "--comment",
        "second",
        "--journal",
        "j.jsonl",
    ];
    let mut command = mde(&[&ids[1], &ids[2]]);
    command.args(second);
    let out = run_off(command).await;
    let out_lines = lines(&out.stdout);
    let outcome = |id: &str| {
        out_lines
            .iter()
            .find(|l| l["machine"] == id)
            .map(|l| l["outcome"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(outcome(&ids[1]), "already_running", "{}", out.stdout);
    assert_eq!(outcome(&ids[2]), "accepted");

    // The journal's resume sends nothing again: every machine has its answer.
    let mut command = mde(&[&ids[1], &ids[2]]);
    command.args(&second[..4]).args(["--resume", "j.jsonl"]);
    let resumed = run_off(command).await;
    assert!(
        resumed.stderr.contains("sending to 0"),
        "{}",
        resumed.stderr
    );
    let per_machine = |id: &str| {
        sessions(&sim)
            .iter()
            .filter(|a| a.machine_id.as_deref() == Some(id))
            .count()
    };
    assert_eq!((per_machine(&ids[1]), per_machine(&ids[2])), (1, 1));
    sim.stop().await;
}
