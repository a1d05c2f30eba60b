//! Containment and remediation: race and tags.

use super::*;

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
    let isolate_twice = async |machine: &str| isolate_twice(&client, machine).await;
    let status = |id: &str| status_of(&sim, id);
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(700));
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.arg("-o").arg("json").args(args);
        run_off(command)
    };
    let isolated = async || isolated(dir.path(), &sim).await;

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

/// Isolates `machine` twice: the two actions' ids, the duplicate a new action.
async fn isolate_twice(client: &mde_client::Client, machine: &str) -> Vec<String> {
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
}

/// The status of the simulator's action `id`.
fn status_of(sim: &Simulator, id: &str) -> MachineActionStatus {
    sim.actions()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id))
        .and_then(|a| a.status)
        .unwrap()
}

/// The machines `mde machine list --isolated` lists.
async fn isolated(dir: &std::path::Path, sim: &Simulator) -> Vec<String> {
    let mut command = against(dir, sim);
    command.args(["-o", "json", "machine", "list", "--isolated"]);
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    lines(&out.stdout)
        .iter()
        .map(|l| l["machine"].as_str().unwrap().to_string())
        .collect()
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
    let added = mde(&words(
        "-o json tag add Contained --machine-name ws-0001 --machine-name ws-0002",
    ))
    .await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert_eq!(lines(&added.stdout).len(), 2);
    assert_eq!(tags_of("ws-0001.contoso.com"), ["Contained"]);
    assert!(tags_of("ws-0003.contoso.com").is_empty());
    assert_eq!(sim.calls(OperationId::SetMachineTag), 2);

    let finds = || sim.calls(OperationId::FindMachinesByTag);
    let dry = mde(&words("isolate --tag Contained --comment c --dry-run")).await;
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

    let isolate = words("-o json isolate --tag contain --tag-prefix --comment c");
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
    let other = mde(&words(
        "isolate --tag Contained --comment c --resume j.jsonl",
    ))
    .await;
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(
        other
            .stderr
            .contains("the tag: recorded contain*, now Contained"),
        "{}",
        other.stderr
    );

    let removed = mde(&words("-o csv tag remove Contained --tag Contained")).await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert_eq!(
        removed.stdout.lines().count(),
        3,
        "a header and a row a machine"
    );
    assert!(tags_of("ws-0001.contoso.com").is_empty());

    let none = mde(&words("-o json restrict --tag Contained --comment c")).await;
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
