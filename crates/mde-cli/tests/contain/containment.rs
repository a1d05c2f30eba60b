//! Containment and remediation: containment.

use super::*;

/// Isolate by id and by name, selectively, followed to `Succeeded`; the simulator holds
/// exactly those isolations, with their scope. The dry run says the isolation type and sends
/// nothing; the journal records it, and a resume with another type is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_isolate_sends_the_documented_request_and_waits() {
    let dir = scratch("isolate");
    let sim = simulator().await;
    let isolate = |extra: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .args([
                "-o",
                "json",
                "isolate",
                MACHINES[0],
                "--machine-name",
                "ws-0001",
            ])
            .args(["--comment", "Isolate machine due to alert 1234"])
            .args(extra);
        command
    };
    let dry = run_off(isolate(&["--type", "selective", "--dry-run"])).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("IsolationType Selective"),
        "{}",
        dry.stdout
    );
    assert_eq!(sim.calls(OperationId::IsolateMachine), 0);

    let out = run_off(isolate(&[
        "--type",
        "selective",
        "--wait",
        "--poll-interval",
        "10",
        "--journal",
        "j.jsonl",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = lines(&out.stdout);
    assert_eq!(out.len(), 2);
    for line in &out {
        // Followed with --wait, each outcome is its action's end.
        assert_eq!(line["outcome"], "succeeded", "{line}");
        assert_eq!(line["status"], "Succeeded", "{line}");
    }
    let isolations: Vec<_> = sim
        .actions()
        .into_iter()
        .filter(|a| a.type_ == Some(MachineActionType::Isolate))
        .collect();
    assert_eq!(isolations.len(), 2);
    for action in &isolations {
        assert_eq!(action.scope.as_deref(), Some("Selective"));
        assert_eq!(action.status, Some(MachineActionStatus::Succeeded));
    }
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    assert!(journal.contains(r#""request":{"Comment":"Isolate machine due to alert 1234","IsolationType":"Selective"}"#), "{journal}");
    let other = run_off(isolate(&["--type", "full", "--resume", "j.jsonl"])).await;
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(
        other.stderr.contains("the request: recorded"),
        "{}",
        other.stderr
    );
    assert_eq!(sim.calls(OperationId::IsolateMachine), 2);

    // Isolated already: said so, with since when, and not sent unless asked.
    let again = run_off(isolate(&[])).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    for line in lines(&again.stdout) {
        assert_eq!(line["outcome"], "already_in_effect", "{line}");
        let said = line["error"]["message"].as_str().unwrap();
        assert!(said.starts_with("already isolated since "), "{said}");
    }
    assert_eq!(sim.calls(OperationId::IsolateMachine), 2, "not sent");
    let forced = run_off(isolate(&["--again"])).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(sim.calls(OperationId::IsolateMachine), 4, "sent when asked");
    sim.stop().await;
}

/// Release, restrict, unrestrict and quarantine each create their documented type of action;
/// a SHA-1 that is not 40 hex characters is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_each_remediation_sends_its_action() {
    let dir = scratch("remediate");
    let sim = simulator().await;
    // Unrestrict goes to another machine: the pending restriction would be a conflict.
    let send = |args: &[&str]| {
        let machine = if args[0] == "unrestrict" {
            "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f"
        } else {
            MACHINES[1]
        };
        let mut command = against(dir.path(), &sim);
        command
            .arg("-o")
            .arg("json")
            .args(args)
            .args(["--comment", "c", machine]);
        run_off(command)
    };
    for (args, kind) in [
        (&["release"][..], MachineActionType::Unisolate),
        (&["restrict"][..], MachineActionType::RestrictCodeExecution),
        (
            &["unrestrict"][..],
            MachineActionType::UnrestrictCodeExecution,
        ),
        (
            &[
                "quarantine",
                "--sha1",
                "87662bc3d60e4200ceaf7aae249d1c343f4b83c9",
            ][..],
            MachineActionType::StopAndQuarantineFile,
        ),
    ] {
        let out = send(args).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let line = &lines(&out.stdout)[0];
        assert_eq!(line["outcome"], "accepted", "{line}");
        let action = sim.actions().into_iter().last().unwrap();
        assert_eq!(action.type_, Some(kind.clone()), "{args:?}");
        if kind == MachineActionType::StopAndQuarantineFile {
            let file = action.related_file_info.unwrap();
            assert_eq!(
                file.file_identifier.as_deref(),
                Some("87662bc3d60e4200ceaf7aae249d1c343f4b83c9")
            );
        }
    }
    let before = sim.actions().len();
    let bad = send(&[
        "quarantine",
        "--sha1",
        "87662bc3d60e4200ceaf7aae249d1c343f4b83cZ",
    ])
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("--sha1 must be a SHA-1: 40 hex characters"),
        "{}",
        bad.stderr
    );
    assert_eq!(sim.actions().len(), before);
    sim.stop().await;
}

/// Offboarding cannot be undone: it asks even for one machine, and without a terminal it
/// needs --yes; with it, the service's 200 is an accepted offboarding. A repeated isolation
/// is already_running, whichever way the service says it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_offboard_always_asks_and_a_repeated_isolation_is_already_running() {
    let dir = scratch("offboard");
    let sim = simulator().await;
    let offboard = |extra: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .args([
                "-o",
                "json",
                "offboard",
                MACHINES[0],
                "--comment",
                "Offboard machine by automation",
            ])
            .args(extra);
        run_off(command)
    };
    let refused = offboard(&[]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("needs a confirmation"),
        "{}",
        refused.stderr
    );
    assert_eq!(sim.actions().len(), 0);
    let done = offboard(&["--yes"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(lines(&done.stdout)[0]["outcome"], "accepted");
    assert_eq!(sim.actions()[0].type_, Some(MachineActionType::Offboard));

    let isolate = || {
        let mut command = against(dir.path(), &sim);
        command.args(["-o", "json", "isolate", MACHINES[1], "--comment", "c"]);
        run_off(command)
    };
    assert_eq!(isolate().await.code, 0);
    let again = isolate().await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(
        lines(&again.stdout)[0]["outcome"],
        "already_running",
        "{}",
        again.stdout
    );
    let isolations = sim
        .actions()
        .iter()
        .filter(|a| a.type_ == Some(MachineActionType::Isolate))
        .count();
    assert_eq!(isolations, 1, "no second isolation");
    sim.stop().await;
}

/// The duplicate-action race (#5903), read before anything is sent, with one list call: an
/// isolation already pending makes a second isolation `already_running` and a release a
/// `conflict`, neither sent (the simulator's record shows it); the dry run shows the
/// conflict; `--cancel-pending` cancels the isolation first, then releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_the_duplicate_action_race_is_read_before_sending() {
    let dir = scratch("race");
    // Real time: the pending isolation stays pending while the commands run.
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    })
    .await
    .unwrap();
    let client = sim.client_builder().build().unwrap();
    let pending = client
        .send(mde_client::operations::IsolateMachine {
            id: MACHINES[0].into(),
            body: mde_client::types::IsolateRequest {
                comment: "first".try_into().unwrap(),
                isolation_type: None,
            },
        })
        .await
        .unwrap();
    let mde = |args: &[&str]| run_off(on_first_machine(dir.path(), &sim, args));
    let lists = || sim.calls(OperationId::ListMachineActions);

    let again = mde(&["isolate"]).await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    let line = &lines(&again.stdout)[0];
    assert_eq!(line["outcome"], "already_running", "{line}");
    assert_eq!(
        line["action_id"],
        pending.id.clone().unwrap().as_str(),
        "{line}"
    );
    assert_eq!(sim.calls(OperationId::IsolateMachine), 1, "not sent again");
    assert_eq!(lists(), 1, "one list call read the pending actions");

    let release = mde(&["release"]).await;
    assert_eq!(release.code, 1, "{}", release.stderr);
    let line = &lines(&release.stdout)[0];
    assert_eq!(line["outcome"], "conflict", "{line}");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains(pending.id.as_deref().unwrap()),
        "{line}"
    );
    let dry = mde(&["release", "--dry-run"]).await;
    assert!(dry.stdout.contains("conflict"), "{}", dry.stdout);
    assert_eq!(
        sim.calls(OperationId::UnisolateMachine),
        0,
        "nothing released"
    );

    a_cancelled_pending_action_is_told_and_journaled(
        dir.path(),
        &sim,
        pending.id.as_deref().unwrap(),
    )
    .await;
    sim.stop().await;
}

/// `release --cancel-pending`: the pending isolation cancelled, told and journaled beside the
/// release.
async fn a_cancelled_pending_action_is_told_and_journaled(
    dir: &std::path::Path,
    sim: &Simulator,
    pending: &str,
) {
    let args = ["release", "--cancel-pending", "--journal", "jc.jsonl"];
    let cancelled = run_off(on_first_machine(dir, sim, &args)).await;
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    // The cancellation is told and journaled, beside the release.
    let told = lines(&cancelled.stdout);
    let outcomes: Vec<&str> = told
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["cancelled_pending", "accepted"],
        "{}",
        cancelled.stdout
    );
    assert_eq!(told[0]["action_id"], pending);
    let journal = std::fs::read_to_string(dir.join("jc.jsonl")).unwrap();
    for event in ["cancelling", "cancelled"] {
        let line = journal
            .lines()
            .find(|l| l.contains(&format!(r#""event":"{event}""#)))
            .unwrap_or_else(|| panic!("{event}: {journal}"));
        assert!(line.contains(pending), "{line}");
    }
    assert!(journal.contains(r#""status":"Cancelled""#), "{journal}");
    let isolation = sim
        .actions()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(pending))
        .unwrap();
    assert_eq!(isolation.status, Some(MachineActionStatus::Cancelled));
    assert_eq!(sim.calls(OperationId::UnisolateMachine), 1);
}

/// `mde -o json ARGS` on the first machine, with a comment.
fn on_first_machine(
    dir: &std::path::Path,
    sim: &Simulator,
    args: &[&str],
) -> std::process::Command {
    let mut command = against(dir, sim);
    command
        .arg("-o")
        .arg("json")
        .args(args)
        .args([MACHINES[0], "--comment", "c"]);
    command
}

/// The README's containment demo on one simulator: a machine given by name is isolated, the
/// isolated machines are listed (from the completed actions, as the simulator holds them),
/// then it is released and the list is empty; `machine show` and `--restricted`, `--tag`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_machine_list_shows_what_contains_each_machine() {
    let dir = scratch("machine-list");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        names: vec!["ws-0001".into(), "ws-0002".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.args(args);
        run_off(command)
    };
    let contain = mde(&[
        "isolate",
        "--machine-name",
        "ws-0001",
        "--type",
        "selective",
        "--comment",
        "Contain ws-0001 due to alert 1234",
        "--wait",
    ])
    .await;
    assert_eq!(contain.code, 0, "{}", contain.stderr);
    let restrict = mde(&[
        "restrict",
        "--machine-name",
        "ws-0002",
        "--comment",
        "c",
        "--wait",
    ])
    .await;
    assert_eq!(restrict.code, 0, "{}", restrict.stderr);
    let isolated_id = sim
        .actions()
        .into_iter()
        .find(|a| a.type_ == Some(MachineActionType::Isolate))
        .unwrap()
        .machine_id
        .unwrap();

    let listed = mde(&["-o", "json", "machine", "list", "--isolated"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let out = lines(&listed.stdout);
    assert_eq!(out.len(), 1, "{}", listed.stdout);
    assert_eq!(out[0]["machine"], isolated_id.as_str());
    assert_eq!(out[0]["name"], "ws-0001.contoso.com");
    assert_eq!(out[0]["isolated"]["scope"], "Selective");
    let table = mde(&["machine", "list", "--isolated"]).await;
    assert!(
        table.stdout.contains("ws-0001.contoso.com") && table.stdout.contains("Selective since"),
        "{}",
        table.stdout
    );
    let restricted = lines(
        &mde(&["-o", "json", "machine", "list", "--restricted"])
            .await
            .stdout,
    );
    assert_eq!(restricted.len(), 1);
    assert_eq!(restricted[0]["name"], "ws-0002.contoso.com");
    let shown = lines(
        &mde(&["-o", "json", "machine", "show", &isolated_id])
            .await
            .stdout,
    );
    assert_ne!(shown[0]["isolated"], Value::Null, "{:?}", shown);

    released_then_listed_by_tag(dir.path(), &sim, &isolated_id).await;
    sim.stop().await;
}

/// Released, the machine is no longer listed as isolated; tagged, it is listed by its tag.
async fn released_then_listed_by_tag(dir: &std::path::Path, sim: &Simulator, isolated_id: &str) {
    let mde = |args: &[&str]| {
        let mut command = against(dir, sim);
        command.args(args);
        run_off(command)
    };
    let release = mde(&[
        "release",
        "--machine-name",
        "ws-0001",
        "--comment",
        "Released after triage",
        "--wait",
    ])
    .await;
    assert_eq!(release.code, 0, "{}", release.stderr);
    let after = mde(&["-o", "json", "machine", "list", "--isolated"]).await;
    assert_eq!(after.stdout, "", "released: none isolated");

    let client = sim.client_builder().build().unwrap();
    client
        .send(mde_client::operations::SetMachineTag {
            id: isolated_id.to_string(),
            body: mde_client::types::MachineTagRequest {
                value: "Contained".try_into().unwrap(),
                action: mde_client::types::MachineTagAction::Add,
            },
        })
        .await
        .unwrap();
    let tagged = lines(
        &mde(&[
            "-o",
            "json",
            "machine",
            "list",
            "--tag",
            "contain",
            "--tag-prefix",
        ])
        .await
        .stdout,
    );
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0]["tags"][0], "Contained");
}
