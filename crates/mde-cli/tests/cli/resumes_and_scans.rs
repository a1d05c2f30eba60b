//! mde against its embedded simulator: resumes and scans.

use super::*;

/// Failures on purpose, each ending clearly: collections that end Failed or TimeOut, one
/// cancelled while it runs, connections dropped mid-body (resumed), a package that cannot be
/// written. Then `--resume` saves the one that could not be written, with no second
/// collection, and leaves the others as they ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_collect_download_failures_end_clearly_and_resume() {
    let dir = scratch("pipeline-failures");
    let n = 12;
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        package_size: 300_000,
        collection_time: Duration::from_secs(1800),
        collection_failures: 0.3,
        download_faults: "drop:0.4".parse().unwrap(),
        seed: 7,
        ..Config::default().with_generated_machines(n)
    })
    .await
    .unwrap();
    let machines: Vec<String> = (0..n).map(generated_machine_id).collect();
    let mut first = collect_download(dir.path(), &sim, &machines, &["--journal", "j.jsonl"]);
    let first = tokio::task::spawn_blocking(move || {
        first
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    let first = first.await.unwrap();
    // While the collections run: cancel one, and block another's package with a folder
    // where its `.part` goes (a write that fails whoever runs the test).
    let client = sim.client_builder().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.actions().len() < n {
        assert!(
            Instant::now() < deadline,
            "the collections were not requested"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let actions = sim.actions();
    let of = |m: &str| {
        actions
            .iter()
            .find(|a| a.machine_id.as_deref() == Some(m))
            .unwrap()
            .id
            .clone()
            .unwrap()
    };
    let cancelled = machines[0].clone();
    client
        .cancel_machine_action(&of(&cancelled), "stop it")
        .await
        .unwrap();
    let blocked = machines[2].clone();
    let evidence = dir.path().join("evidence");
    let blocked_part = evidence.join(format!("{blocked}_{}.zip.part", of(&blocked)));
    std::fs::create_dir_all(&blocked_part).unwrap();
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines = by_machine(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(lines.len(), n, "{stderr}");
    let final_status =
        each_line_says_how_its_machine_ended(&sim, &lines, &machines, (&cancelled, &blocked));
    every_zip_is_recorded_and_verifies(dir.path(), &evidence);
    // Unblocked and resumed: the blocked package is saved; nothing is collected again.
    std::fs::remove_dir(&blocked_part).unwrap();
    let mut again = collect_download(dir.path(), &sim, &machines, &["--resume", "j.jsonl"]);
    let again = tokio::task::spawn_blocking(move || run(&mut again))
        .await
        .unwrap();
    let lines = by_machine(&again.stdout);
    assert_eq!(sim.actions().len(), n, "a second collection");
    assert_eq!(lines[&blocked]["outcome"], "saved", "{}", again.stderr);
    assert_eq!(lines[&blocked]["earlier"], false);
    let saved_before = final_status
        .iter()
        .filter(|(m, s)| *s == "Succeeded" && **m != blocked)
        .count();
    assert_eq!(
        lines.values().filter(|l| l["earlier"] == true).count(),
        saved_before,
        "{}",
        again.stdout
    );
    let verified = run(mde(dir.path()).args(["package", "verify", "evidence"]));
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    sim.stop().await;
}

/// Nothing looks complete that is not: every zip in the folder is recorded and verifies.
fn every_zip_is_recorded_and_verifies(dir: &std::path::Path, evidence: &std::path::Path) {
    // Nothing looks complete that is not: every zip in the folder is recorded and verifies.
    let verified = run(mde(dir).args(["package", "verify", "evidence"]));
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    let zips = std::fs::read_dir(evidence)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "zip")
        })
        .count();
    assert_eq!(zips, verified.stdout.matches("verified").count());
}

/// Each machine's line says how it ended: saved, its collection's end, or the blocked
/// file's failure. The final status of each machine's action.
fn each_line_says_how_its_machine_ended(
    sim: &Simulator,
    lines: &std::collections::HashMap<String, Value>,
    machines: &[String],
    (cancelled, blocked): (&String, &String),
) -> std::collections::HashMap<String, String> {
    let final_status: std::collections::HashMap<String, String> = sim
        .actions()
        .into_iter()
        .map(|a| (a.machine_id.unwrap(), a.status.unwrap().to_string()))
        .collect();
    for machine in machines {
        let line = &lines[machine];
        let status = &final_status[machine];
        let detail = line["detail"].as_str().unwrap_or_default();
        if machine == blocked {
            assert_eq!(line["outcome"], "failed", "{line}");
            assert!(detail.contains(".part"), "{line}");
        } else if status == "Succeeded" {
            assert_eq!(line["outcome"], "saved", "{line}");
            assert!(line["record"]["sha256"].is_string(), "{line}");
        } else {
            assert_eq!(line["outcome"], "failed", "{line}");
            assert_eq!(detail, format!("the collection ended {status}"), "{line}");
        }
    }
    // Seed 7 fails machines 1, 6 (Failed) and 7 (TimeOut); the blocked one succeeds.
    assert_eq!(final_status[cancelled], "Cancelled");
    assert_eq!(final_status[blocked], "Succeeded");
    assert_eq!(final_status[&machines[1]], "Failed");
    assert_eq!(final_status[&machines[7]], "TimeOut");
    assert!(
        lines
            .values()
            .any(|l| l["detail"].as_str().unwrap_or_default().contains("resumed")),
        "no cut transfer was resumed: {lines:?}"
    );
    assert!(
        final_status
            .values()
            .any(|s| s == "Failed" || s == "TimeOut"),
        "{final_status:?}"
    );
    final_status
}

/// `kill -9` at each stage of `package collect --download`, then `--resume`: every machine
/// ends with exactly one collection (the simulator's record) and one verified file (the
/// manifest), and no `.part` is left.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_kill_at_each_stage_then_resume_gives_one_collection_and_one_file() {
    const EACH: usize = 6;
    let stages = [
        "sending",
        "requested",
        "collecting",
        "ready",
        "downloading",
        "saved",
    ];
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        // About a second a download: the kill can land in the middle of one.
        package_size: 1_000_000,
        download_faults: "slow:1".parse().unwrap(),
        ..Config::default().with_generated_machines(EACH * stages.len())
    })
    .await
    .unwrap();
    for (k, stage) in stages.iter().enumerate() {
        let dir = scratch(&format!("kill-{stage}"));
        let machines: Vec<String> = (k * EACH..(k + 1) * EACH)
            .map(generated_machine_id)
            .collect();
        let journal = dir.path().join("j.jsonl");
        kill_at(
            collect_download(dir.path(), &sim, &machines, &["--journal", "j.jsonl"]),
            &journal,
            stage,
        )
        .await;

        let mut resume = collect_download(dir.path(), &sim, &machines, &["--resume", "j.jsonl"]);
        let resumed = tokio::task::spawn_blocking(move || run(&mut resume))
            .await
            .unwrap();
        assert_eq!(resumed.code, 0, "{stage}: {}", resumed.stderr);
        let lines = by_machine(&resumed.stdout);
        assert_eq!(lines.len(), EACH, "{stage}: {}", resumed.stdout);
        assert!(
            lines.values().all(|l| l["outcome"] == "saved"),
            "{stage}: {}",
            resumed.stdout
        );
        let collections: Vec<String> = sim
            .actions()
            .into_iter()
            .filter_map(|a| a.machine_id)
            .filter(|m| machines.contains(m))
            .collect();
        let mut unique = collections.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            (collections.len(), unique.len()),
            (EACH, EACH),
            "{stage}: one collection a machine"
        );
        let evidence = dir.path().join("evidence");
        let manifest = std::fs::read_to_string(evidence.join("manifest.jsonl")).unwrap();
        let mut recorded: Vec<String> = manifest
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["machine"].to_string())
            .collect();
        recorded.sort();
        recorded.dedup();
        assert_eq!(manifest.lines().count(), EACH, "{stage}: {manifest}");
        assert_eq!(recorded.len(), EACH, "{stage}: one record a machine");
        let names: Vec<String> = std::fs::read_dir(&evidence)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.ends_with(".part")),
            "{stage}: {names:?}"
        );
        assert_eq!(names.len(), EACH + 1, "{stage}: {names:?}");
        let verified = run(mde(dir.path()).args(["package", "verify", "evidence"]));
        assert_eq!(verified.code, 0, "{stage}: {}", verified.stdout);
    }
    sim.stop().await;
}

/// Ctrl-C during `collect --download`: links and downloads in flight are dropped, the run
/// exits 130 with the command that resumes it, and that command saves every package.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_ctrl_c_during_collect_download_then_resume() {
    let dir = scratch("pipeline-ctrlc");
    let n = 6;
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        package_size: 1_000_000,
        download_faults: "slow:1".parse().unwrap(),
        ..Config::default().with_generated_machines(n)
    })
    .await
    .unwrap();
    let machines: Vec<String> = (0..n).map(generated_machine_id).collect();
    let journal = dir.path().join("j.jsonl");
    let child = collect_download(dir.path(), &sim, &machines, &["--journal", "j.jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains(r#""stage":"downloading""#)
    {
        assert!(Instant::now() < deadline, "no download started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let resume_line = stderr
        .lines()
        .skip_while(|l| !l.contains("Resume with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        resume_line.contains("--resume j.jsonl") && !resume_line.contains("--journal"),
        "{resume_line}"
    );
    let told = by_machine(&String::from_utf8(out.stdout).unwrap());
    let saved_first = told.values().filter(|l| l["outcome"] == "saved").count();
    assert!(saved_first < n, "interrupted too late to test anything");
    // Every machine has its line, those still on their way too.
    assert_eq!(told.len(), n, "{told:?}");

    let mut resume = collect_download(dir.path(), &sim, &machines, &["--resume", "j.jsonl"]);
    let resumed = tokio::task::spawn_blocking(move || run(&mut resume))
        .await
        .unwrap();
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let lines = by_machine(&resumed.stdout);
    assert!(
        lines.values().all(|l| l["outcome"] == "saved"),
        "{}",
        resumed.stdout
    );
    assert_eq!(
        lines.values().filter(|l| l["earlier"] == true).count(),
        saved_first
    );
    assert_eq!(sim.actions().len(), n, "no second collection");
    sim.stop().await;
}

/// A link asked for as soon as the list shows the collection complete, while the service
/// still answers 404: waited out at the next polls, not a failure. The link's query (its
/// token) is in no output and not in the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_collect_download_waits_out_an_early_404_and_never_shows_the_link() {
    let dir = scratch("pipeline-early");
    let n = 2;
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Slow enough that a poll late on a loaded machine still meets the 404s.
        time_scale: 60.0,
        collection_time: Duration::from_secs(60),
        package_size: 100_000,
        package_delay: Duration::from_secs(35),
        ..Config::default().with_generated_machines(n)
    })
    .await
    .unwrap();
    let machines: Vec<String> = (0..n).map(generated_machine_id).collect();
    let mut first = collect_download(dir.path(), &sim, &machines, &["--journal", "j.jsonl"]);
    let out = tokio::task::spawn_blocking(move || run(&mut first))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = by_machine(&out.stdout);
    for line in lines.values() {
        assert_eq!(line["outcome"], "saved", "{line}");
        assert!(
            line["detail"]
                .as_str()
                .unwrap()
                .contains("the link was not ready"),
            "{line}"
        );
    }
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    for text in [&out.stdout, &out.stderr, &journal] {
        assert!(!text.contains("token="), "{text}");
        assert!(!text.contains("safedownload"), "{text}");
    }
    sim.stop().await;
}

/// `mde scan`: a full scan on each machine (the documented body, `ScanType` `Full`).
#[test]
fn test_scan_each_machine() {
    let dir = scratch("scan");
    let out = run(mde(dir.path())
        .args(["--simulate", "--output", "json", "scan"])
        .args(MACHINES)
        .args([
            "--type",
            "full",
            "--comment",
            "Check machine for viruses due to alert 3212",
        ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in out.stdout.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["result"]["operation"], "runAntiVirusScan", "{line}");
        let answer = &line["result"]["answer"];
        assert_eq!(answer["type"], "RunAntiVirusScan", "{line}");
        assert_eq!(answer["scope"], "Full", "{line}");
        assert_eq!(
            answer["requestorComment"],
            "Check machine for viruses due to alert 3212"
        );
    }

    assert_redacted!("scan_json", {
        let mut lines: Vec<String> = out
            .stdout
            .lines()
            .map(|l| {
                let l: Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {} {}",
                    l["machine"], l["outcome"], l["result"]["answer"]["status"]
                )
            })
            .collect();
        lines.sort();
        lines.join("\n")
    });
}

/// A repeated scan is answered either with 400 "Action is already in progress" or with the
/// pending scan again (the simulator's dice say which): both are reported already running,
/// no second scan is counted, and `--wait` follows the scan that runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_repeated_scan_is_already_running_whichever_way_the_service_says_it() {
    let machine = generated_machine_id(0);
    for refused in [true, false] {
        let dir = scratch("repeated-scan");
        // A seed whose dice answer this machine's second and third scans the same way.
        let seed = (0..)
            .find(|s| {
                ["1", "2"]
                    .iter()
                    .all(|nth| (mde_sim::dice(*s, &[&machine, "scan", nth]) >= 0.5) == refused)
            })
            .unwrap();
        let sim = Simulator::start(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            seed,
            time_scale: 600.0,
            scan_time: Duration::from_secs(1800),
            ..Config::default().with_generated_machines(1)
        })
        .await
        .unwrap();
        let scan = |kind: &str, extra: &[&str]| {
            let mut command = against(dir.path(), &sim);
            command
                .args(["--output", "json", "scan", &machine, "--type", kind])
                .args(["--comment", "sweep"])
                .args(extra);
            run_off(command)
        };
        let first = scan("quick", &[]).await;
        assert_eq!(first.code, 0, "{}", first.stderr);
        let again = scan("full", &[]).await;
        assert_eq!(again.code, 1, "{}", again.stderr);
        let line: Value = serde_json::from_str(again.stdout.trim()).unwrap();
        assert_eq!(
            line["outcome"], "already_running",
            "refused {refused}: {line}"
        );
        let said = line["error"]["message"].as_str().unwrap();
        if refused {
            assert!(said.contains("Action is already in progress"), "{said}");
        } else {
            // The pending scan, shown as what it is.
            assert!(said.contains("answered with the pending action"), "{said}");
            assert_eq!(line["result"]["answer"]["scope"], "Quick", "{line}");
        }
        // --wait follows the scan that runs, found by the list when the service did not say.
        let waited = scan("full", &["--wait", "--poll-interval", "60"]).await;
        assert_eq!(waited.code, 0, "{}", waited.stderr);
        let line: Value = serde_json::from_str(waited.stdout.trim()).unwrap();
        // Followed, the machine's outcome is the running scan's end.
        assert_eq!(line["outcome"], "succeeded", "{line}");
        assert_eq!(line["result"]["answer"]["status"], "Succeeded", "{line}");
        assert_eq!(line["result"]["answer"]["scope"], "Quick", "{line}");
        assert_eq!(sim.actions().len(), 1, "one scan");
        assert_eq!(sim.calls(mde_client::OperationId::RunAntiVirusScan), 3);
        sim.stop().await;
    }
}
