//! mde against its embedded simulator: names and waits.

use super::*;

/// Names: a short name (the first label of ws-0002.fabrikam.com), a full name in another case,
/// a name two machines share (ambiguous, with their lastSeen and health), a name no machine
/// has (not found), mixed with an id; then `--pick latest` takes the newer of the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_scan_by_name_exact_short_ambiguous_unknown_and_ids() {
    let dir = scratch("names");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        names: vec![
            "ws-0001".into(),
            "ws-0002.fabrikam.com".into(),
            "ws-0003".into(),
        ],
        duplicate_names: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    // An id, a short name, a full name in other case, an ambiguous name, an unknown one.
    let scan = |journal: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .args(["scan", MACHINES[0], "--type", "quick"])
            .args(journal)
            .args(["--machine-name", "ws-0002"])
            .args(["--machine-name", "WS-0003.Contoso.COM"])
            .args(["--machine-name", "ws-0001", "--machine-name", "ws-0404"])
            .args(["--comment", "by name"]);
        run_off(command)
    };
    let out = scan(&["--journal", "j.jsonl"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_redacted!("scan_by_name_table", out.stdout);
    // Four names, one filtered call each; three scans, none on the ambiguous name.
    sent_only(
        &sim,
        &[
            (mde_client::OperationId::ListMachines, 4),
            (mde_client::OperationId::RunAntiVirusScan, 3),
        ],
    );
    let scanned: std::collections::HashSet<String> = sim
        .actions()
        .iter()
        .filter_map(|a| a.machine_id.clone())
        .collect();
    let expected: std::collections::HashSet<String> = [
        MACHINES[0].to_string(),
        mde_sim::named_machine_id("ws-0002.fabrikam.com", 0),
        mde_sim::named_machine_id("ws-0003", 0),
    ]
    .into();
    assert_eq!(scanned, expected);
    // The journal holds each name with its machine.
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    let resolved: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "resolved")
        .collect();
    assert_eq!(resolved.len(), 2, "{journal}");
    assert!(
        resolved
            .iter()
            .any(|e| e["name"] == "ws-0002" && e["machine"]["name"] == "ws-0002.fabrikam.com"),
        "{journal}"
    );

    // Resumed: the names the journal resolved are not looked up again (only the two that did
    // not resolve are), and no machine is scanned twice.
    let out = scan(&["--resume", "j.jsonl"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    sent_only(
        &sim,
        &[
            (mde_client::OperationId::ListMachines, 6),
            (mde_client::OperationId::RunAntiVirusScan, 3),
        ],
    );

    pick_latest_takes_the_newest(dir.path(), &sim).await;
    sim.stop().await;
}

/// --pick latest: the machine whose last report is the newest.
async fn pick_latest_takes_the_newest(dir: &std::path::Path, sim: &Simulator) {
    // --pick latest: the machine whose last report is the newest.
    let mut command = against(dir, sim);
    command
        .args(["--output", "json", "scan", "--type", "full"])
        .args([
            "--machine-name",
            "ws-0001",
            "--pick",
            "latest",
            "--comment",
            "c",
        ]);
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line["machine"], mde_sim::named_machine_id("ws-0001", 0));
    assert_eq!(line["name"], "ws-0001.contoso.com");
    let newest = sim
        .machines()
        .into_iter()
        .filter(|m| m.computer_dns_name.as_deref() == Some("ws-0001.contoso.com"))
        .max_by_key(|m| m.last_seen.as_ref().map(|t| t.instant()))
        .unwrap();
    assert_eq!(line["machine"].as_str(), newest.id.as_deref());
}

/// `--dry-run` resolves the names (a read call each), prints the plan and sends no action;
/// the simulator's own count of requests proves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dry_run_sends_nothing_but_the_name_lookups() {
    let dir = scratch("dry-run");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        names: vec!["ws-0001".into(), "ws-0002".into(), "ws-0003".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    std::fs::write(
        dir.path().join("names.txt"),
        "ws-0001\n# the second\nWS-0002\nws-0003.contoso.com\n",
    )
    .unwrap();
    let mut command = against(dir.path(), &sim);
    command
        .args([
            "package",
            "collect",
            MACHINES[1],
            "--names-file",
            "names.txt",
        ])
        .args([
            "--comment",
            "Collect forensics due to alert 1234",
            "--download",
            "evidence",
        ])
        .arg("--dry-run");
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_redacted!("collect_dry_run", out.stdout);
    sent_only(&sim, &[(mde_client::OperationId::ListMachines, 3)]);
    assert!(sim.actions().is_empty());
    assert!(
        !dir.path().join("evidence").exists(),
        "a dry run makes no folder"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "a dry run writes no journal"
    );

    // The same plan as one JSON object.
    let mut command = against(dir.path(), &sim);
    command
        .args([
            "--output",
            "json",
            "scan",
            "--type",
            "full",
            "--machine-name",
            "ws-0404",
        ])
        .args(["--comment", "c", "--dry-run"]);
    let out = run_off(command).await;
    assert_eq!(out.code, 1, "an unknown name: {}", out.stderr);
    let plan: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["operation"], "runAntiVirusScan");
    assert_eq!(plan["detail"], "ScanType Full");
    assert_eq!(plan["requests"], 0);
    assert_eq!(plan["unresolved"][0]["outcome"], "not_found");
    sent_only(&sim, &[(mde_client::OperationId::ListMachines, 4)]);
    sim.stop().await;
}

/// More than 10 machines without `--yes` and without a terminal: refused, exit 2, nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_large_run_without_a_terminal_needs_yes() {
    let dir = scratch("confirm");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default().with_generated_machines(11)
    })
    .await
    .unwrap();
    let machines: Vec<String> = (0..11).map(generated_machine_id).collect();
    let mut command = against(dir.path(), &sim);
    command
        .args(["scan", "--type", "quick", "--comment", "sweep"])
        .args(&machines);
    let out = run_off(command).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("runAntiVirusScan on 11 machines needs a confirmation, and stdin is not a terminal to ask on: add --yes"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    sent_only(&sim, &[]);
    // Ten machines do not ask.
    let mut command = against(dir.path(), &sim);
    command
        .args(["scan", "--type", "quick", "--comment", "sweep"])
        .args(&machines[..10]);
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    sent_only(&sim, &[(mde_client::OperationId::RunAntiVirusScan, 10)]);
    sim.stop().await;
}

/// `scan --wait`: every scan followed to its final status with one list call per interval;
/// the statuses reported are the simulator's own, and a failed scan makes the exit code 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_scan_wait_follows_every_scan_to_its_final_status() {
    let dir = scratch("wait");
    let n = 6;
    let machines: Vec<String> = (0..n).map(generated_machine_id).collect();
    let seed = common::seed_failing(&machines, 0.3, 2);
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        scan_time: Duration::from_secs(1800),
        scan_failures: 0.3,
        seed,
        ..Config::default().with_generated_machines(n)
    })
    .await
    .unwrap();
    let mut command = against(dir.path(), &sim);
    command
        .args(["scan", "--type", "full", "--comment", "sweep", "--wait"])
        .args(["--poll-interval", "120"])
        .args(&machines);
    let started = Instant::now();
    let out = run_off(command).await;
    assert_eq!(out.code, 1, "two scans failed: {}", out.stderr);
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    assert_redacted!("scan_wait_table", out.stdout);
    let statuses: std::collections::HashMap<String, String> = sim
        .actions()
        .iter()
        .map(|a| {
            (
                a.machine_id.clone().unwrap(),
                a.status.as_ref().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), n, "one scan a machine");
    for line in out.stdout.lines().skip(1) {
        let mut cells = line.split_whitespace();
        let (machine, outcome) = (cells.next().unwrap(), cells.next().unwrap());
        // Followed, each machine's outcome is its scan's end.
        let ended = match statuses[machine].as_str() {
            "Succeeded" => "succeeded",
            "Failed" => "failed",
            other => panic!("{other}"),
        };
        assert_eq!(outcome, ended, "{line}");
    }
    assert_eq!(statuses.values().filter(|s| *s == "Failed").count(), 2);
    // 1800 s of scan, a look every 120 s: about 16 list calls, never one per machine.
    let lists = sim.calls(mde_client::OperationId::ListMachineActions);
    assert!((14..=18).contains(&lists), "{lists} list calls");
    sim.stop().await;
}
