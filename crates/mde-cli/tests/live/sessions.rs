//! Live response: sessions.

use super::*;

/// `mde library` uploads, lists and deletes; `mde live --ensure-script` uploads only what the
/// library lacks; a run by id and by name sends one session per machine, its commands in the
/// documented order whatever the flags' order, followed to `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_runs_one_session_per_machine_in_the_documented_order() {
    let dir = scratch("live");
    let sim = simulator(Config::default()).await;
    std::fs::write(dir.path().join("collect.ps1"), "Get-Process\n").unwrap();
    let mde = |args: &[&str]| json_mde(dir.path(), &sim, args);
    let up = run_off(mde(&words(
        "library upload collect.ps1 --description triage",
    )))
    .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let listed = run_off(mde(&["library", "list"])).await;
    let listed = lines(&listed.stdout);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["file_name"], "collect.ps1");
    assert_eq!(listed[0]["description"], "triage");
    let again = run_off(mde(&words("library upload collect.ps1"))).await;
    assert_ne!(again.code, 0, "a name taken without --overwrite");
    assert!(
        again.stderr.contains("give --overwrite to replace it"),
        "{}",
        again.stderr
    );

    let live = |extra: &[&str]| triage(dir.path(), &sim, extra);
    let dry = run_off(live(&["--dry-run"])).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(sim.calls(OperationId::RunLiveResponse), 0);

    // The same script again: the library holds it, nothing is uploaded.
    let uploads = sim.calls(OperationId::UploadLibraryFile);
    let out = run_off(live(&words(
        "--ensure-script collect.ps1 --wait --poll-interval 10",
    )))
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("same SHA-256"), "{}", out.stderr);
    assert_eq!(sim.calls(OperationId::UploadLibraryFile), uploads);
    for line in lines(&out.stdout) {
        // Followed with --wait, each outcome is its session's end.
        assert_eq!(line["outcome"], "succeeded", "{line}");
        assert_eq!(line["status"], "Succeeded", "{line}");
    }
    one_session_a_machine_in_the_documented_order(&sim);
    a_changed_script_is_replaced_only_when_asked(dir.path(), &sim, uploads).await;
    let deleted = run_off(mde(&words("library delete collect.ps1"))).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let gone = run_off(mde(&words("library delete collect.ps1"))).await;
    assert_ne!(gone.code, 0);
    sim.stop().await;
}

/// A changed script: the dry run names the file it would replace, with both SHA-256s; the
/// run refuses to replace a file of other content (perhaps a colleague's) without
/// --overwrite, and with it keeps the file's description.
async fn a_changed_script_is_replaced_only_when_asked(
    dir: &std::path::Path,
    sim: &Simulator,
    uploads: usize,
) {
    let mde = |args: &[&str]| json_mde(dir, sim, args);
    let live = |extra: &[&str]| triage(dir, sim, extra);
    // A changed script: the dry run names the file it would replace, with both SHA-256s; the
    // run refuses to replace a file of other content (perhaps a colleague's) without
    // --overwrite, and with it keeps the file's description.
    std::fs::write(dir.join("collect.ps1"), "Get-Service\n").unwrap();
    let dry = run_off(live(&words("--ensure-script collect.ps1 --dry-run"))).await;
    assert_eq!(dry.code, 0);
    let ours = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(b"Get-Service\n")
    );
    assert!(
        dry.stderr
            .contains("would replace it with this file's (SHA-256")
            && dry.stderr.contains(&ours),
        "{}",
        dry.stderr
    );
    let sessions_before = sim.calls(OperationId::RunLiveResponse);
    let refused = run_off(live(&words("--ensure-script collect.ps1 --yes"))).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("give --overwrite"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        sim.calls(OperationId::RunLiveResponse),
        sessions_before,
        "nothing sent"
    );
    assert_eq!(
        sim.calls(OperationId::UploadLibraryFile),
        uploads,
        "neither run uploaded"
    );
    let replaced = run_off(live(&words(
        "--ensure-script collect.ps1 --overwrite --yes",
    )))
    .await;
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    let listed = lines(&run_off(mde(&["library", "list"])).await.stdout);
    assert_eq!(listed[0]["sha256"], ours.as_str());
    assert_eq!(listed[0]["description"], "triage", "the description kept");
}

/// `mde -o json ARGS` against the simulator.
fn json_mde(dir: &std::path::Path, sim: &Simulator, args: &[&str]) -> std::process::Command {
    let mut command = against(dir, sim);
    command.args(["-o", "json"]).args(args);
    command
}

/// The triage session on the first machine and ws-0001: put, run with arguments, get.
fn triage(dir: &std::path::Path, sim: &Simulator, extra: &[&str]) -> std::process::Command {
    let mut command = json_mde(
        dir,
        sim,
        &["live", MACHINES[0], "--machine-name", "ws-0001"],
    );
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
}

/// One session a machine, its commands in the documented order, the --args of its --run and
/// its comment.
fn one_session_a_machine_in_the_documented_order(sim: &Simulator) {
    let held = sessions(sim);
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

/// Every result saved into the evidence folder with its chain-of-custody record (machine,
/// action, command index, the device path or the script and its arguments, requestor,
/// comment, times, size, SHA-256); the transcript read into its type for the table; and
/// `mde package verify` checks the folder as it checks packages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_out_saves_every_result_with_its_record() {
    let dir = scratch("live-out");
    let sim = simulator(Config {
        live_file_size: 300_000,
        nonzero_exits: 0.5,
        time_scale: 600.0,
        ..Config::default().with_generated_machines(4)
    })
    .await;
    with_script(dir.path(), &sim).await;
    let machines: Vec<String> = (0..4).map(mde_sim::generated_machine_id).collect();
    let out = run_off(live_out(dir.path(), &sim, &machines, &[])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = lines(&out.stdout);
    assert_eq!(out.len(), 4);
    let mut exits = Vec::new();
    for line in &out {
        assert_eq!(line["outcome"], "saved", "{line}");
        let commands = line["commands"].as_array().unwrap();
        assert_eq!(commands.len(), 2, "{line}");
        // The first line the script wrote, past the transcript's header.
        assert!(
            commands[0]["output"]
                .as_str()
                .unwrap()
                .ends_with(" ran collect.ps1 -Fast"),
            "{line}"
        );
        exits.push(commands[0]["exit_code"].as_i64().unwrap());
        assert_eq!(commands[1]["record"]["size"], 300_000);
    }
    assert!(
        exits.contains(&0) && exits.contains(&1),
        "the seeded exit codes: {exits:?}"
    );
    let manifest = std::fs::read_to_string(dir.path().join("evidence/manifest.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 8, "{manifest}");
    for record in &records {
        assert!(machines.iter().any(|m| record["machine"] == *m), "{record}");
        assert_eq!(record["comment"], "case 7");
        assert_eq!(record["requestor"], mde_sim::DEFAULT_CLIENT_ID);
        match record["command_index"].as_i64() {
            Some(0) => {
                assert_eq!(
                    (record["script"].as_str(), record["args"].as_str()),
                    (Some("collect.ps1"), Some("-Fast"))
                );
                let file = dir
                    .path()
                    .join("evidence")
                    .join(record["file"].as_str().unwrap());
                let transcript: mde_client::types::RunScriptTranscript =
                    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
                assert!(
                    transcript.script_output.unwrap().ends_with('\u{0}'),
                    "NULs kept"
                );
            }
            Some(1) => assert_eq!(record["device_path"], r"C:\windows\TEMP\triage.zip"),
            other => panic!("{other:?}: {record}"),
        }
        assert!(
            record["created"].is_string() && record["completed"].is_string(),
            "{record}"
        );
        assert_eq!(record["sha256"].as_str().unwrap().len(), 64);
    }
    let mut verify = against(dir.path(), &sim);
    verify.args(["package", "verify", "evidence"]);
    let verified = run_off(verify).await;
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    assert_eq!(
        verified.stdout.matches("verified").count(),
        8,
        "{}",
        verified.stdout
    );
    // A tampered result is found as a tampered package would be.
    let file = records[1]["file"].as_str().unwrap();
    std::fs::write(dir.path().join("evidence").join(file), b"tampered").unwrap();
    let mut verify = against(dir.path(), &sim);
    verify.args(["package", "verify", "evidence"]);
    assert_eq!(run_off(verify).await.code, 1);
    sim.stop().await;
}

/// Each failure ends clearly and leaves nothing that looks complete: a GetFile of a file the
/// device lacks fails (the transcript before it saved, the machine failed, saying which
/// command and that the later ones did not run); a device offline past the 2 hours ends
/// `TimeOut`, saying so; the folder verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_out_failures_end_clearly() {
    let dir = scratch("live-out-failures");
    let sim = simulator(Config {
        live_file_size: 100_000,
        missing_files: 1.0,
        offline: 0.5,
        time_scale: 3600.0,
        ..Config::default().with_generated_machines(6)
    })
    .await;
    with_script(dir.path(), &sim).await;
    let machines: Vec<String> = (0..6).map(mde_sim::generated_machine_id).collect();
    let out = run_off(live_out(dir.path(), &sim, &machines, &[])).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (mut timed_out, mut missing) = (0, 0);
    for line in lines(&out.stdout) {
        assert_eq!(line["outcome"], "failed", "{line}");
        let detail = line["detail"].as_str().unwrap();
        if detail.contains("TimeOut") {
            timed_out += 1;
            assert!(detail.contains("2 hours"), "{detail}");
        } else {
            missing += 1;
            assert!(
                detail.contains("command 1") && detail.contains("does not exist"),
                "{detail}"
            );
            assert!(
                detail.contains("not run") && detail.contains("saved 1 result"),
                "{detail}"
            );
        }
    }
    assert!(timed_out > 0 && missing > 0, "the seed takes both paths");
    let manifest = std::fs::read_to_string(dir.path().join("evidence/manifest.jsonl")).unwrap();
    assert_eq!(
        manifest.lines().count(),
        missing,
        "one transcript a machine that ran"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("evidence"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
    let mut verify = against(dir.path(), &sim);
    verify.args(["package", "verify", "evidence"]);
    assert_eq!(run_off(verify).await.code, 0);
    sim.stop().await;
}

/// `kill -9` at each stage of `mde live --out`, then `--resume`: every machine ends with
/// exactly one session (the simulator's record) and one verified file per result (the
/// manifest), and no `.part` is left.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_kill_at_each_stage_then_resume_gives_one_session_and_one_file_per_result() {
    const EACH: usize = 4;
    let stages = [
        "sending",
        "requested",
        "collecting",
        "ready",
        "downloading",
        "saved",
    ];
    let sim = simulator(Config {
        time_scale: 600.0,
        // About a second a download: the kill can land in the middle of one.
        live_file_size: 1_000_000,
        download_faults: "slow:1".parse().unwrap(),
        ..Config::default().with_generated_machines(EACH * stages.len())
    })
    .await;
    for (k, stage) in stages.iter().enumerate() {
        let dir = scratch(&format!("live-kill-{stage}"));
        with_script(dir.path(), &sim).await;
        let machines: Vec<String> = (k * EACH..(k + 1) * EACH)
            .map(mde_sim::generated_machine_id)
            .collect();
        let journal = dir.path().join("j.jsonl");
        kill_at(
            live_out(dir.path(), &sim, &machines, &["--journal", "j.jsonl"]),
            &journal,
            stage,
        )
        .await;

        let resumed = run_off(live_out(
            dir.path(),
            &sim,
            &machines,
            &["--resume", "j.jsonl"],
        ))
        .await;
        assert_eq!(resumed.code, 0, "{stage}: {}", resumed.stderr);
        let out = lines(&resumed.stdout);
        assert_eq!(out.len(), EACH, "{stage}: {}", resumed.stdout);
        assert!(
            out.iter().all(|l| l["outcome"] == "saved"),
            "{stage}: {}",
            resumed.stdout
        );
        for machine in &machines {
            let held = sessions(&sim)
                .iter()
                .filter(|a| a.machine_id.as_deref() == Some(machine))
                .count();
            assert_eq!(held, 1, "{stage}: one session a machine");
        }
        let evidence = dir.path().join("evidence");
        let manifest = std::fs::read_to_string(evidence.join("manifest.jsonl")).unwrap();
        let mut keys: Vec<String> = manifest
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|r| format!("{}#{}", r["action_id"], r["command_index"]))
            .collect();
        assert_eq!(keys.len(), 2 * EACH, "{stage}: {manifest}");
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 2 * EACH, "{stage}: one record a result");
        let names: Vec<String> = std::fs::read_dir(&evidence)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.ends_with(".part")),
            "{stage}: {names:?}"
        );
        let mut verify = against(dir.path(), &sim);
        verify.args(["package", "verify", "evidence"]);
        let verified = run_off(verify).await;
        assert_eq!(verified.code, 0, "{stage}: {}", verified.stdout);
    }
    sim.stop().await;
}

/// Sixty machines and sessions of ten minutes: at 10 a minute the fiftieth is running when the
/// fifty-first is asked for; the service's 429 makes it wait for a session to end (not a fixed
/// time), and the simulator's own record never holds more than 50 running at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_the_session_limit_waits_for_a_session_and_never_holds_more_than_fifty() {
    let dir = scratch("live-sessions");
    let n = 60;
    let sim = simulator(Config {
        command_time: std::time::Duration::from_secs(600),
        time_scale: 3600.0,
        ..Config::default().with_generated_machines(n)
    })
    .await;
    let machines: Vec<String> = (0..n).map(mde_sim::generated_machine_id).collect();
    std::fs::write(dir.path().join("fleet.txt"), machines.join("\n")).unwrap();
    let mut command = against(dir.path(), &sim);
    command
        .args(["-o", "json", "live", "--machines-file", "fleet.txt"])
        .args(["--get", r"C:\a", "--comment", "fleet", "--yes"])
        .args(["--wait", "--poll-interval", "60"]);
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("waiting for a live response session to end"),
        "{}",
        out.stderr
    );
    let out = lines(&out.stdout);
    assert_eq!(out.len(), n);
    assert!(out.iter().all(|l| l["status"] == "Succeeded"), "{out:?}");
    // One session a machine, some asked for twice: the 429s of the session limit.
    let held = sessions(&sim);
    assert_eq!(held.len(), n);
    assert!(
        sim.calls(OperationId::RunLiveResponse) > n,
        "the limit was reached"
    );
    // The most running at once, from the record's own times.
    let mut edges: Vec<(String, i32)> = held
        .iter()
        .flat_map(|a| {
            let start = a.creation_date_time_utc.as_ref().unwrap().to_string();
            let end = a.last_update_date_time_utc.as_ref().unwrap().to_string();
            [(start, 1), (end, -1)]
        })
        .collect();
    // An end before a start at the same instant: a session that ended frees its place.
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut running, mut most) = (0, 0);
    for (_, step) in edges {
        running += step;
        most = most.max(running);
    }
    assert_eq!(
        most,
        mde_client::SESSIONS as i32,
        "never more than 50, and 50 reached"
    );
    sim.stop().await;
}
