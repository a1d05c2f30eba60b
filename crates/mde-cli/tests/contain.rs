//! Containment and remediation, `mde` run as a binary against the simulator over loopback:
//! each command sends its documented request, followed with `--wait`, seen in the
//! simulator's own record.

use mde_client::OperationId;
use mde_client::types::{MachineActionStatus, MachineActionType};
use mde_sim::{Config, Simulator};
use serde_json::Value;

mod common;
use common::{against, lines, run_off, scratch};

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
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .arg("-o")
            .arg("json")
            .args(args)
            .args([MACHINES[0], "--comment", "c"]);
        run_off(command)
    };
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

    let cancelled = mde(&["release", "--cancel-pending", "--journal", "jc.jsonl"]).await;
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
    assert_eq!(told[0]["action_id"], pending.id.clone().unwrap().as_str());
    let journal = std::fs::read_to_string(dir.path().join("jc.jsonl")).unwrap();
    let id = pending.id.clone().unwrap();
    for event in ["cancelling", "cancelled"] {
        let line = journal
            .lines()
            .find(|l| l.contains(&format!(r#""event":"{event}""#)))
            .unwrap_or_else(|| panic!("{event}: {journal}"));
        assert!(line.contains(&id), "{line}");
    }
    assert!(journal.contains(r#""status":"Cancelled""#), "{journal}");
    let isolation = sim
        .actions()
        .into_iter()
        .find(|a| a.id == pending.id)
        .unwrap();
    assert_eq!(isolation.status, Some(MachineActionStatus::Cancelled));
    assert_eq!(sim.calls(OperationId::UnisolateMachine), 1);
    sim.stop().await;
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
            id: isolated_id.clone(),
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
    sim.stop().await;
}

/// A sequence of isolate, isolate, release against a service with the stale-duplicate race
/// (#5903): the second isolation stays pending and completes after the release. Sent by
/// hand, the device ends isolated; `mde release` sees the pending isolation and refuses,
/// sending nothing, and with `--cancel-pending` cancels it first, so the device ends
/// released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_the_stale_duplicate_isolation_is_reproduced_then_avoided() {
    let dir = scratch("stale");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 300.0,
        stale_duplicates: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let client = sim.client_builder().build().unwrap();
    let isolate_twice = async |machine: &str| {
        let mut ids = Vec::new();
        for comment in ["first", "again"] {
            let request = mde_client::operations::IsolateMachine {
                id: machine.into(),
                body: mde_client::types::IsolateRequest {
                    comment: comment.try_into().unwrap(),
                    isolation_type: None,
                },
            };
            ids.push(client.send(request).await.unwrap().id.unwrap());
        }
        assert_ne!(ids[0], ids[1], "the duplicate is a new action");
        ids
    };
    let status = |id: &str| {
        sim.actions()
            .into_iter()
            .find(|a| a.id.as_deref() == Some(id))
            .and_then(|a| a.status)
            .unwrap()
    };
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(700));
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.arg("-o").arg("json").args(args);
        run_off(command)
    };
    let isolated = async || {
        let out = mde(&["machine", "list", "--isolated"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        lines(&out.stdout)
            .iter()
            .map(|l| l["machine"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    // Reproduced: released by hand, isolated again by the duplicate.
    let ids = isolate_twice(MACHINES[0]).await;
    settle().await;
    assert_eq!(status(&ids[0]), MachineActionStatus::Succeeded);
    assert_eq!(status(&ids[1]), MachineActionStatus::Pending, "stuck");
    let release = mde_client::operations::UnisolateMachine {
        id: MACHINES[0].into(),
        body: mde_client::types::CommentRequest {
            comment: "by hand".try_into().unwrap(),
        },
    };
    client.send(release).await.unwrap();
    settle().await;
    assert_eq!(status(&ids[1]), MachineActionStatus::Succeeded);
    assert_eq!(
        isolated().await,
        [MACHINES[0]],
        "isolated after the release"
    );

    // Avoided: mde reads the pending duplicate before it releases.
    let ids = isolate_twice(MACHINES[1]).await;
    settle().await;
    let releases = sim.calls(OperationId::UnisolateMachine);
    let refused = mde(&["release", MACHINES[1], "--comment", "c"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let line = &lines(&refused.stdout)[0];
    assert_eq!(line["outcome"], "conflict", "{line}");
    assert!(line["error"]["message"].as_str().unwrap().contains(&ids[1]));
    assert_eq!(
        sim.calls(OperationId::UnisolateMachine),
        releases,
        "not sent"
    );
    let out = mde(&[
        "release",
        MACHINES[1],
        "--comment",
        "c",
        "--cancel-pending",
        "--wait",
        "--poll-interval",
        "10",
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(status(&ids[1]), MachineActionStatus::Cancelled);
    settle().await;
    assert_eq!(
        isolated().await,
        [MACHINES[0]],
        "the second machine is released"
    );
    sim.stop().await;
}

/// The platform notes of the pages: no isolation of macOS, selective isolation and
/// offboarding of Windows only; the service's 400 `OsPlatformNotSupported` comes out as that
/// machine's failure, the others go on. An offboarded machine becomes `Inactive` once the
/// offboarding succeeded, still onboarded (#5909).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_platforms_the_pages_exclude_are_refused_and_offboarded_machines_go_inactive() {
    let dir = scratch("platforms");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 120.0,
        platforms: "macOS:0.3,Linux:0.3".parse().unwrap(),
        ..Config::default().with_generated_machines(30)
    })
    .await
    .unwrap();
    let on = |os: &str| -> Vec<String> {
        sim.machines()
            .into_iter()
            .filter(|m| m.os_platform.as_deref() == Some(os))
            .map(|m| m.id.unwrap())
            .collect()
    };
    let (mac, linux, windows) = (on("macOS"), on("Linux"), on("Windows11"));
    assert!(mac.len() >= 2 && linux.len() >= 2 && !windows.is_empty());
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .args(["-o", "json"])
            .args(args)
            .args(["--comment", "c"]);
        run_off(command)
    };
    // Each machine's outcome and error code, in the order the machines were given.
    let outcomes = |stdout: &str, given: &[&String]| -> Vec<(String, String)> {
        let lines = lines(stdout);
        given
            .iter()
            .map(|id| {
                let l = lines.iter().find(|l| l["machine"] == id.as_str()).unwrap();
                let code = l["error"]["code"].as_str().unwrap_or("").to_string();
                (l["outcome"].as_str().unwrap().to_string(), code)
            })
            .collect()
    };
    let refused = ("failed".to_string(), "OsPlatformNotSupported".to_string());
    let accepted = ("accepted".to_string(), String::new());

    let full = mde(&["isolate", &mac[0], &linux[0]]).await;
    assert_eq!(full.code, 1, "{}", full.stderr);
    let full = outcomes(&full.stdout, &[&mac[0], &linux[0]]);
    assert_eq!(full, [refused.clone(), accepted.clone()]);
    let selective = mde(&["isolate", "--type", "selective", &linux[1]]).await;
    let selective = outcomes(&selective.stdout, &[&linux[1]]);
    assert_eq!(selective[0], refused);
    let offboard = mde(&["offboard", "--yes", &mac[1], &windows[0], "--wait"]).await;
    let offboard = outcomes(&offboard.stdout, &[&mac[1], &windows[0]]);
    // Followed with --wait: the offboarding's end.
    let succeeded = ("succeeded".to_string(), String::new());
    assert_eq!(offboard, [refused, succeeded]);
    let mut show = against(dir.path(), &sim);
    show.args(["machine", "show", &windows[0]]);
    let shown = run_off(show).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let machine = sim
        .machines()
        .into_iter()
        .find(|m| m.id.as_deref() == Some(windows[0].as_str()))
        .unwrap();
    assert_eq!(
        machine.health_status,
        Some(mde_client::types::HealthStatus::Inactive)
    );
    assert_eq!(machine.onboarding_status.as_deref(), Some("onboarded"));
    assert!(shown.stdout.contains("Inactive"), "{}", shown.stdout);
    sim.stop().await;
}

/// Tags: `mde tag add` and `remove` on machines by name, then `--tag` (and `--tag-prefix`)
/// selects the machines that carry one for any action, with one findMachinesByTag call,
/// journaled and reused on resume; a tag no machine carries is that tag's `not_found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_tags_are_set_and_select_the_machines_of_a_run() {
    let dir = scratch("tags");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 120.0,
        names: vec!["ws-0001".into(), "ws-0002".into(), "ws-0003".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.args(args);
        run_off(command)
    };
    let tags_of = |name: &str| {
        sim.machines()
            .into_iter()
            .find(|m| m.computer_dns_name.as_deref() == Some(name))
            .and_then(|m| m.machine_tags)
            .unwrap_or_default()
    };
    let added = mde(&[
        "-o",
        "json",
        "tag",
        "add",
        "Contained",
        "--machine-name",
        "ws-0001",
        "--machine-name",
        "ws-0002",
    ])
    .await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert_eq!(lines(&added.stdout).len(), 2);
    assert_eq!(tags_of("ws-0001.contoso.com"), ["Contained"]);
    assert!(tags_of("ws-0003.contoso.com").is_empty());
    assert_eq!(sim.calls(OperationId::SetMachineTag), 2);

    let finds = || sim.calls(OperationId::FindMachinesByTag);
    let dry = mde(&[
        "isolate",
        "--tag",
        "Contained",
        "--comment",
        "c",
        "--dry-run",
    ])
    .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("ws-0001.contoso.com") && dry.stdout.contains("ws-0002.contoso.com"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("1 findMachinesByTag call"),
        "{}",
        dry.stdout
    );
    assert_eq!((finds(), sim.calls(OperationId::IsolateMachine)), (1, 0));

    let isolate = [
        "-o",
        "json",
        "isolate",
        "--tag",
        "contain",
        "--tag-prefix",
        "--comment",
        "c",
    ];
    let out = mde(&[&isolate[..], &["--journal", "j.jsonl", "--wait"]].concat()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut named: Vec<String> = lines(&out.stdout)
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    assert_eq!(named, ["ws-0001.contoso.com", "ws-0002.contoso.com"]);
    assert_eq!((finds(), sim.calls(OperationId::IsolateMachine)), (2, 2));
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    assert!(journal.contains(r#""tag":"contain*""#), "{journal}");
    assert!(journal.contains(r#""event":"tagged""#), "{journal}");
    // A resume reuses the journaled machines of the tag: no second lookup, nothing sent again.
    let resumed = mde(&[&isolate[..], &["--resume", "j.jsonl"]].concat()).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!((finds(), sim.calls(OperationId::IsolateMachine)), (2, 2));
    let other = mde(&[
        "isolate",
        "--tag",
        "Contained",
        "--comment",
        "c",
        "--resume",
        "j.jsonl",
    ])
    .await;
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(
        other
            .stderr
            .contains("the tag: recorded contain*, now Contained"),
        "{}",
        other.stderr
    );

    let removed = mde(&[
        "-o",
        "csv",
        "tag",
        "remove",
        "Contained",
        "--tag",
        "Contained",
    ])
    .await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert_eq!(
        removed.stdout.lines().count(),
        3,
        "a header and a row a machine"
    );
    assert!(tags_of("ws-0001.contoso.com").is_empty());

    let none = mde(&[
        "-o",
        "json",
        "restrict",
        "--tag",
        "Contained",
        "--comment",
        "c",
    ])
    .await;
    assert_eq!(none.code, 1, "{}", none.stderr);
    let line = &lines(&none.stdout)[0];
    assert_eq!(line["machine"], "tag:Contained");
    assert_eq!(line["outcome"], "not_found");
    assert_eq!(sim.calls(OperationId::RestrictCodeExecution), 0);
    sim.stop().await;
}

/// Every containment and remediation command takes every machine selector and follows its
/// action: for each, a dry run by tag sends nothing, then a run by name with `--wait` ends
/// `Succeeded`, as the simulator's record shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_each_command_by_tag_and_by_name_with_wait() {
    let dir = scratch("each");
    let commands = [
        ("isolate", &[][..], MachineActionType::Isolate),
        ("release", &[][..], MachineActionType::Unisolate),
        (
            "restrict",
            &[][..],
            MachineActionType::RestrictCodeExecution,
        ),
        (
            "unrestrict",
            &[][..],
            MachineActionType::UnrestrictCodeExecution,
        ),
        (
            "quarantine",
            &["--sha1", "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"][..],
            MachineActionType::StopAndQuarantineFile,
        ),
        ("offboard", &["--yes"][..], MachineActionType::Offboard),
    ];
    let names: Vec<String> = (1..=commands.len()).map(|i| format!("ws-{i:04}")).collect();
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 120.0,
        names: names.clone(),
        ..Config::default()
    })
    .await
    .unwrap();
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.args(args);
        run_off(command)
    };
    let of_kind = |kind: &MachineActionType| {
        sim.actions()
            .into_iter()
            .filter(|a| a.type_.as_ref() == Some(kind))
            .collect::<Vec<_>>()
    };
    for ((command, extra, kind), name) in commands.iter().zip(&names) {
        let tag = format!("case-{command}");
        let tagged = mde(&["tag", "add", &tag, "--machine-name", name]).await;
        assert_eq!(tagged.code, 0, "{command}: {}", tagged.stderr);
        let dry = [
            &[*command, "--tag", &tag, "--comment", "c", "--dry-run"][..],
            extra,
        ]
        .concat();
        let dry = mde(&dry).await;
        assert_eq!(dry.code, 0, "{command}: {}", dry.stderr);
        assert!(
            dry.stdout.contains(&format!("{name}.contoso.com")),
            "{}",
            dry.stdout
        );
        assert!(
            of_kind(kind).is_empty(),
            "{command}: the dry run sent nothing"
        );

        let args = [
            &[
                "-o",
                "json",
                command,
                "--machine-name",
                name,
                "--comment",
                "c",
            ][..],
            &["--wait", "--poll-interval", "10"][..],
            extra,
        ]
        .concat();
        let out = mde(&args).await;
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
        let line = &lines(&out.stdout)[0];
        assert_eq!(line["status"], "Succeeded", "{command}: {line}");
        assert_eq!(line["name"], format!("{name}.contoso.com"));
        let sent = of_kind(kind);
        assert_eq!(sent.len(), 1, "{command}");
        assert_eq!(sent[0].status, Some(MachineActionStatus::Succeeded));
        assert_eq!(
            sent[0].computer_dns_name.as_deref(),
            Some(&*format!("{name}.contoso.com"))
        );
    }
    sim.stop().await;
}

/// Least privilege: an app holding only `Machine.Isolate` cannot read the pending actions the
/// race check needs; the run stops before sending and says which permission and which flag
/// (with its risk); `--skip-pending-check` sends without the check. `--help` names each
/// command's permissions, from the spec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_least_privilege_isolation_needs_the_check_or_its_flag() {
    let dir = scratch("least-privilege");
    let isolator = mde_sim::App {
        client_id: "isolator".into(),
        permissions: vec!["Machine.Isolate".into()],
        ..mde_sim::App::default_app()
    };
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        apps: vec![mde_sim::App::default_app(), isolator],
        ..Config::default()
    })
    .await
    .unwrap();
    let isolate = |extra: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .env("AZURE_CLIENT_ID", "isolator")
            .args(["isolate", MACHINES[0], "--comment", "c"])
            .args(extra);
        run_off(command)
    };
    let refused = isolate(&[]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    for said in [
        "cannot read the pending actions",
        "Machine.Read.All",
        "--skip-pending-check",
    ] {
        assert!(refused.stderr.contains(said), "{said}: {}", refused.stderr);
    }
    assert_eq!(sim.calls(OperationId::IsolateMachine), 0, "nothing sent");
    let sent = isolate(&["--skip-pending-check"]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let isolations = sim
        .actions()
        .into_iter()
        .filter(|a| a.type_ == Some(MachineActionType::Isolate))
        .count();
    assert_eq!(isolations, 1);

    let help = run_off({
        let mut command = against(dir.path(), &sim);
        command.args(["isolate", "--help"]);
        command
    })
    .await;
    assert!(
        help.stdout
            .contains("Permissions: Machine.Isolate (application)"),
        "{}",
        help.stdout
    );
    assert!(
        help.stdout
            .contains("--skip-pending-check sends without it"),
        "{}",
        help.stdout
    );
    sim.stop().await;
}

/// An isolation still pending is its own state, `isolating`, listed with `--isolated`; `machine
/// show` takes names as every command does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_pending_isolation_is_listed_as_isolating_and_show_takes_names() {
    let dir = scratch("machine-pending");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        // No device picks it up while the test runs.
        response_time: std::time::Duration::from_secs(3600),
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
    let pending = mde(&["isolate", "--machine-name", "ws-0002", "--comment", "c"]).await;
    assert_eq!(pending.code, 0, "{}", pending.stderr);
    let listed = lines(
        &mde(&["-o", "json", "machine", "list", "--isolated"])
            .await
            .stdout,
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "ws-0002.contoso.com");
    assert_eq!(listed[0]["isolated"], Value::Null);
    assert_eq!(
        listed[0]["isolation_pending"]["state"], "isolating",
        "{listed:?}"
    );
    let shown = mde(&["machine", "show", "--machine-name", "ws-0002"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("isolating ("), "{}", shown.stdout);
    let unknown = mde(&["machine", "show", "--machine-name", "ws-9999"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stdout);
    assert!(
        unknown.stdout.contains("no machine is named ws-9999"),
        "{}",
        unknown.stdout
    );
    sim.stop().await;
}
