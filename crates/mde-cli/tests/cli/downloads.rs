//! mde against its embedded simulator: downloads.

use super::*;

/// Ctrl-C stops sending, lets the requests in flight finish, and says how to resume.
#[cfg(unix)]
#[test]
fn test_ctrl_c_stops_and_prints_how_to_resume() {
    let dir = scratch("ctrlc");
    let ids: Vec<String> = (0..250).map(|i| format!("{i:040x}")).collect();
    std::fs::write(dir.path().join("fleet.txt"), ids.join("\n")).unwrap();
    let mut child = mde(dir.path())
        .args(["--simulate", "--time-scale", "10", "--output", "json"])
        .args([
            "package",
            "collect",
            "--journal",
            "j.jsonl",
            "--machines-file",
            "fleet.txt",
            "--comment",
            "c",
            "--yes",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // JSON lines come out as machines end: read them as they come, as a pipe to jq would.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout_pipe, &mut text).unwrap();
        text
    });
    // The first 100 go at once; the rest wait for the next minute (6 s at x10).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(dir.path().join("j.jsonl"))
        .unwrap_or_default()
        .matches(r#""event":"done""#)
        .count()
        < 100
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("Resume with:") && stderr.contains("--resume j.jsonl"),
        "{stderr}"
    );
    assert!(!stderr.contains("--journal j.jsonl --resume"), "{stderr}");
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    assert_eq!(
        journal.matches(r#""event":"sending""#).count(),
        journal.matches(r#""event":"done""#).count(),
        "every request sent has its outcome"
    );
    let stdout = reader.join().unwrap();
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(r#""outcome":"not_sent""#))
    );
    // Every machine answered before the interruption was printed, each once.
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(r#""outcome":"accepted""#))
            .count(),
        journal.matches(r#""outcome":"accepted""#).count()
    );
}

/// `mde action show` follows a collection started earlier: as a table, and as JSON lines, one
/// per id given; an unknown id is reported and makes the exit code 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_action_show_follows_a_collection() {
    let dir = scratch("action-show");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    })
    .await
    .unwrap();
    let client = sim.client_builder().build().unwrap();
    let machine = mde_client::operations::DOCUMENTED_MACHINE_IDS[0];
    let action = client
        .collect_investigation_package(machine, "to follow")
        .await
        .unwrap();
    let id = action.id.unwrap();
    let unknown = "00000000-0000-0000-0000-000000000000";
    // `mde` signs in at the simulator as its default app.
    let show = |output: &str, ids: &[&str]| {
        let mut command = mde(dir.path());
        command
            .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
            .args(["--output", output, "action", "show"])
            .args(ids)
            .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
            .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET);
        command
    };
    let mut command = show("table", &[&id, unknown]);
    let table = tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    assert_eq!(table.code, 1, "{}", table.stderr);
    assert_redacted!("action_show_table", table.stdout);

    sim.clock().advance(Config::default().collection_time);
    let mut command = show("json", &[&id]);
    let json = tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let line: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(line["action"]["status"], "Succeeded", "{line}");
    assert_eq!(line["action"]["machineId"], machine);
    sim.stop().await;
}

/// Evidence on disk: `package download` saves each completed collection, verified, with its
/// manifest record; again, nothing is fetched twice; `package verify` accepts the folder,
/// then refuses it once a file changed; `action list` finds the collections and `action
/// cancel` cancels a running one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_package_download_manifest_and_verify() {
    let dir = scratch("evidence");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        package_size: 100_000,
        // getPackageUri allows 2 a minute: a minute passes in 0.1 s.
        time_scale: 600.0,
        // Long enough that the collection left running stays so while the test runs.
        collection_time: Duration::from_secs(10 * 3600),
        ..Config::default().with_generated_machines(3)
    })
    .await
    .unwrap();
    let client = sim.client_builder().build().unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let action = client
            .collect_investigation_package(&generated_machine_id(i), "case 42")
            .await
            .unwrap();
        ids.push(action.id.unwrap());
    }
    sim.clock().advance(Duration::from_secs(10 * 3600));
    let running = client
        .collect_investigation_package(&generated_machine_id(0), "to cancel")
        .await
        .unwrap()
        .id
        .unwrap();
    let at = At {
        base: sim.base_url().to_string(),
        dir: dir.path().to_path_buf(),
    };
    collections_are_listed(&at).await;
    let record = packages_are_saved_once(&at, &ids, &running).await;
    let evidence = dir.path().join("evidence");
    let verified = at.go(&["package", "verify", "evidence"]).await;
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert_eq!(verified.stdout.matches("verified").count(), 3);
    let file = evidence.join(record["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let changed = at.go(&["package", "verify", "evidence"]).await;
    assert_eq!(changed.code, 1);
    assert!(changed.stdout.contains("CHANGED"), "{}", changed.stdout);

    let comment = "Machine action was canceled by automation";
    let cancel = [
        "--output",
        "json",
        "action",
        "cancel",
        &running,
        "--comment",
        comment,
    ];
    let cancel = at.go(&cancel).await;
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    // An action id is a GUID, not a machine id: no hint about names.
    assert!(!cancel.stderr.contains("warning"), "{}", cancel.stderr);
    let line: Value = serde_json::from_str(cancel.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["result"]["answer"]["status"], "Cancelled", "{line}");
    sim.stop().await;
}

/// `mde` signing in to a simulator at `base`, a minute 0.1 s, run in `dir`.
struct At {
    base: String,
    dir: std::path::PathBuf,
}

impl At {
    async fn go(&self, args: &[&str]) -> common::Run {
        let mut command = mde(&self.dir);
        command
            .args(["--api-url", &self.base, "--login-url", &self.base])
            .args(["--time-scale", "600"])
            .args(args)
            .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
            .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET);
        tokio::task::spawn_blocking(move || run(&mut command))
            .await
            .unwrap()
    }

    /// The collections, as JSON, with `extra` options.
    async fn collections(&self, extra: &[&str]) -> common::Run {
        let mut args = vec!["--output", "json", "action", "list"];
        args.extend(["--type", "CollectInvestigationPackage"]);
        args.extend(extra);
        self.go(&args).await
    }
}

/// `action list` by status and `--since`, a status the spec does not document, a bad time.
async fn collections_are_listed(at: &At) {
    let listed = at.collections(&["--status", "Succeeded"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let found: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 3, "{}", listed.stdout);
    // `--since` is read as a time and sent in one form; the simulator applies it.
    // The three that succeeded and the one still running.
    let all = at.collections(&["--since", "2000-01-01"]).await;
    assert_eq!(
        (all.code, all.stdout.lines().count()),
        (0, 4),
        "{}",
        all.stderr
    );
    let none = at
        .collections(&["--since", "2999-01-01T00:00:00+02:00"])
        .await;
    assert_eq!(
        (none.code, none.stdout.lines().count()),
        (0, 0),
        "{}",
        none.stderr
    );
    // A status the spec does not document is sent, with a warning that names those it does.
    let typo = at.go(&["action", "list", "--status", "Suceeded"]).await;
    assert_eq!(typo.code, 0, "{}", typo.stderr);
    assert!(
        typo.stderr.contains(
            "warning: Suceeded is not a status the spec documents (Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled); sent as given"
        ),
        "{}",
        typo.stderr
    );
    assert!(!all.stderr.contains("warning"), "{}", all.stderr);
    let bad = at
        .collections(&["--since", "yesterday' or status eq 'x"])
        .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("is not a date (2026-11-01)"),
        "{}",
        bad.stderr
    );
}

/// The second demo: `package collect --download` takes each machine to a verified package and
/// a manifest `package verify` accepts; every stage is journaled.
#[test]
fn test_collect_download_simulate() {
    let dir = scratch("pipeline");
    let out = run(mde(dir.path())
        .args(["--simulate", "--time-scale", "600"])
        .args(["package", "collect", "--journal", "j.jsonl"])
        .args(MACHINES)
        .args(["--comment", "Collect forensics due to alert 1234"])
        .args(["--download", "evidence"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_redacted!("collect_download_table_stdout", out.stdout);
    assert!(
        out.stderr.contains(
            "3 package(s) need at least 1m 0s at getPackageUri's documented limits (2 a minute, 120 an hour)"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("saved 3, failed 0"), "{}", out.stderr);
    // Progress without a terminal: the stages and the least time the limits leave.
    assert!(
        out.stderr
            .contains("mde: requested 0 · collecting 0 · ready 0 · downloading 0 · saved 0 · failed 0 · at least"),
        "{}",
        out.stderr
    );
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    for machine in MACHINES {
        let stages: Vec<String> = journal
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "stage" && e["machine"] == machine)
            .map(|e| e["stage"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            stages,
            ["requested", "collecting", "ready", "downloading", "saved"],
            "{machine}"
        );
    }
    let verified = run(mde(dir.path()).args(["package", "verify", "evidence"]));
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    assert_eq!(verified.stdout.matches("verified").count(), 3);
}

/// A machine given by name is named in the packages table, on its progress line and in its
/// JSON line; one given by id is not.
#[test]
fn test_collect_download_names_the_machines_given_by_name() {
    let dir = scratch("pipeline-names");
    let collect = |output: &str, folder: &str| {
        run(mde(dir.path())
            .args(["--simulate", "--time-scale", "600", "--output", output])
            .args([
                "package",
                "collect",
                MACHINES[0],
                "--machine-name",
                "ws-0001",
            ])
            .args(["--comment", "Collect forensics due to alert 1234"])
            .args(["--download", folder]))
    };
    let table = collect("table", "evidence");
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert_redacted!("collect_download_names_table", table.stdout);
    let progress = |name: &str| {
        table
            .stderr
            .lines()
            .filter(|l| l.contains(&format!("{name} saved ")))
            .count()
    };
    assert_eq!(progress(" (ws-0001.contoso.com)"), 1, "{}", table.stderr);
    assert_eq!(progress(MACHINES[0]), 1, "{}", table.stderr);

    let json = collect("json", "evidence-json");
    assert_eq!(json.code, 0, "{}", json.stderr);
    let lines = by_machine(&json.stdout);
    assert_eq!(lines.len(), 2, "{}", json.stdout);
    // Every line has every field of the shape; null where it does not apply.
    assert_eq!(lines[MACHINES[0]]["name"], Value::Null, "{}", json.stdout);
    let named: Vec<&Value> = lines.values().filter(|l| l["name"].is_string()).collect();
    assert_eq!(named.len(), 1, "{}", json.stdout);
    assert_eq!(named[0]["name"], "ws-0001.contoso.com");
    assert!(
        lines.values().all(|l| l["outcome"] == "saved"),
        "{}",
        json.stdout
    );
}

/// The packages of the completed collections saved, recorded and kept private, the running
/// one not ready; again, nothing fetched twice. The first record.
async fn packages_are_saved_once(at: &At, ids: &[String], running: &str) -> Value {
    let mut download = vec!["package", "download", "--out", "evidence"];
    download.extend(ids.iter().map(String::as_str));
    download.push(running);
    let first = at.go(&download).await;
    assert_eq!(
        first.code, 1,
        "the running one is not ready: {}",
        first.stderr
    );
    assert_eq!(
        first.stdout.matches(" saved ").count(),
        3,
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("not_ready"), "{}", first.stdout);
    let evidence = at.dir.join("evidence");
    let manifest = std::fs::read_to_string(evidence.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 3);
    let record: Value = serde_json::from_str(manifest.lines().next().unwrap()).unwrap();
    assert_eq!(record["comment"], "case 42");
    assert_eq!(record["requestor"], mde_sim::DEFAULT_CLIENT_ID);
    for field in [
        "machine",
        "name",
        "action_id",
        "created",
        "completed",
        "downloaded",
        "file",
        "size",
        "sha256",
    ] {
        assert!(!record[field].is_null(), "{field}: {record}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&evidence), 0o700);
        assert_eq!(
            mode(&evidence.join(record["file"].as_str().unwrap())),
            0o600
        );
    }

    // Again: nothing fetched twice.
    let second = at.go(&download[..ids.len() + 4]).await;
    assert_eq!(
        second.stdout.matches("already_saved").count(),
        3,
        "{}",
        second.stdout
    );
    assert_eq!(
        std::fs::read_to_string(evidence.join("manifest.jsonl")).unwrap(),
        manifest
    );
    record
}
