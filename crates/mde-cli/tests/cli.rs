//! The `mde` binary, run as a user runs it, against the simulator.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mde_sim::{Config, Simulator, generated_machine_id};
use serde_json::Value;

mod common;
use common::{against, kill_at, mde, run, run_off, scratch};

const MACHINES: [&str; 3] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "fb9ab6be3965095a09c057be7c90f0a2",
    "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f",
];

/// Snapshots with what changes from run to run replaced.
macro_rules! assert_redacted {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[guid]"),
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
                (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
                (r"in \d+\.\d s", "in [seconds] s"),
                (r"mde-journal-\S+\.jsonl", "[journal]"),
                (r"/tmp/\S+", "[path]"),
            ],
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

#[test]
fn test_package_collect_simulate_table() {
    let dir = scratch("table");
    let out = run(mde(dir.path())
        .args(["--simulate", "package", "collect"])
        .args(MACHINES)
        .args(["--comment", "Collect forensics due to alert 1234"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_redacted!("package_collect_table_stdout", out.stdout);
    // Progress goes to stderr, a line a machine when stderr is not a terminal, then the summary.
    for machine in MACHINES {
        assert!(
            out.stderr.contains(&format!("{machine} accepted action")),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .contains("accepted 3, already running 0, not found 0, failed 0"),
        "{}",
        out.stderr
    );
}

#[test]
fn test_package_collect_json() {
    let dir = scratch("json");
    let out = run(mde(dir.path())
        .args(["--simulate", "--output", "json", "package", "collect"])
        .args(MACHINES)
        .args(["0000000000000000000000000000000000000000", "--comment", "c"]));
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        4,
        "one object a machine on stdout, nothing else: {}",
        out.stdout
    );
    let mut sorted: Vec<String> = lines
        .iter()
        .map(|l| format!("{} {}", l["machine"], l["outcome"]))
        .collect();
    sorted.sort();
    assert_redacted!("package_collect_json", sorted.join("\n"));
    let created = lines.iter().find(|l| l["outcome"] == "accepted").unwrap();
    // The answer is tagged with its operation, so that a reader never guesses its type.
    assert_eq!(
        created["result"]["operation"], "collectInvestigationPackage",
        "{created}"
    );
    assert_eq!(created["result"]["answer"]["status"], "Pending");
    // Every well-formed id given is in the simulator's inventory, documented or not.
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn test_unknown_machine_is_a_partial_failure() {
    let dir = scratch("unknown");
    let out = run(mde(dir.path()).args([
        "--simulate",
        "--output",
        "json",
        "package",
        "collect",
        MACHINES[0],
        "not-a-machine-id",
        "--comment",
        "c",
    ]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains(r#""outcome":"not_found""#),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("accepted 1, already running 0, not found 1, failed 0"),
        "{}",
        out.stderr
    );
    // A name given where an id goes is still sent, with a hint; a well-formed id gets none.
    let hint = "warning: 1 machine id(s) are not 40 or 32 hex characters, as the service's ids are; sent as given: not-a-machine-id. A computer name goes with --machine-name.";
    assert!(out.stderr.contains(hint), "{}", out.stderr);
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
}

#[test]
fn test_investigation_start_warns_it_is_retired() {
    let dir = scratch("start");
    let out = run(mde(dir.path()).args([
        "--simulate",
        "investigation",
        "start",
        MACHINES[0],
        "--comment",
        "Test investigation",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("retired startInvestigation on 2026-09-01"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(MC1411577): mde scan --type full"),
        "{}",
        out.stderr
    );
    assert_redacted!("investigation_start_stdout", out.stdout);
}

#[test]
fn test_investigation_initiate() {
    let dir = scratch("initiate");
    let out = run(mde(dir.path()).args([
        "--simulate",
        "investigation",
        "initiate",
        MACHINES[1],
        "--comment",
        "c",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("investigation 63005"), "{}", out.stdout);
    assert_redacted!("investigation_initiate_stdout", out.stdout);
}

#[test]
fn test_package_collect_graph_warns_it_is_deprecated() {
    let dir = scratch("graph");
    let out = run(mde(dir.path()).args([
        "--simulate",
        "package",
        "collect",
        "--graph",
        MACHINES[2],
        "--comment",
        "c",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("deprecated Graph endpoint"),
        "{}",
        out.stderr
    );
    assert_redacted!("package_collect_graph_stdout", out.stdout);
}

#[test]
fn test_bad_input_exit_codes() {
    let dir = scratch("bad");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "--simulate",
                "package",
                "collect",
                MACHINES[0],
                "--comment",
                " ",
            ],
            2,
            "--comment must not be empty",
        ),
        (
            vec!["--simulate", "package", "collect", "--comment", "c"],
            2,
            "no machines: give ids as arguments or with --machines-file, names with --machine-name or --names-file, or a tag with --tag",
        ),
        (
            vec![
                "--simulate",
                "package",
                "collect",
                "--machines-file",
                "/nonexistent/fleet.txt",
                "--comment",
                "c",
            ],
            2,
            "cannot read /nonexistent/fleet.txt",
        ),
        (
            vec!["package", "collect", MACHINES[0], "--comment", "c"],
            3,
            "no credentials",
        ),
        (
            vec![
                "package",
                "collect",
                MACHINES[0],
                "--comment",
                "c",
                "--api-url",
                "http://example.com",
                "--token",
                "t",
            ],
            3,
            "plain http",
        ),
        (vec!["package", "collect", MACHINES[0]], 2, "--comment"),
        (
            vec![
                "--region",
                "mars",
                "package",
                "collect",
                MACHINES[0],
                "--comment",
                "c",
            ],
            2,
            "invalid value 'mars' for '--region <REGION>'",
        ),
        (
            vec![
                "--time-scale",
                "60",
                "package",
                "collect",
                MACHINES[0],
                "--comment",
                "c",
                "--token",
                "t",
            ],
            2,
            "--time-scale needs",
        ),
        (
            vec![
                "--simulate",
                "package",
                "collect",
                MACHINES[0],
                "--comment",
                "c",
                "--resume",
                "/nonexistent/journal",
            ],
            2,
            "/nonexistent/journal",
        ),
    ];
    for (args, code, says) in cases {
        let out = run(mde(dir.path()).args(&args));
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(says),
            "{args:?} should say {says:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
}

#[test]
fn test_secrets_are_never_echoed() {
    let dir = scratch("secret");
    let out = run(mde(dir.path())
        .args([
            "package",
            "collect",
            MACHINES[0],
            "--comment",
            "c",
            "--api-url",
            "http://127.0.0.1:1",
        ])
        .env("AZURE_TENANT_ID", "t")
        .env("AZURE_CLIENT_ID", "c")
        .env("AZURE_CLIENT_SECRET", "SECRET-never-shown"));
    assert_ne!(out.code, 0);
    let journal = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    for text in [&out.stdout, &out.stderr, &journal] {
        assert!(!text.contains("SECRET-never-shown"), "{text}");
    }
    let help = run(mde(dir.path())
        .arg("--help")
        .env("AZURE_CLIENT_SECRET", "SECRET-never-shown"));
    assert!(!help.stdout.contains("SECRET-never-shown"));
}

#[test]
fn test_machines_file_and_stdin_with_duplicates() {
    let dir = scratch("file");
    std::fs::write(
        dir.path().join("fleet.txt"),
        format!("# fleet\n{}\n\n{}  # again\n", MACHINES[0], MACHINES[0]),
    )
    .unwrap();
    let out = run(mde(dir.path()).args([
        "--simulate",
        "--output",
        "json",
        "package",
        "collect",
        "--machines-file",
        "fleet.txt",
        "--comment",
        "c",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(
        out.stderr.contains("given more than once"),
        "{}",
        out.stderr
    );

    let mut child = mde(dir.path())
        .args([
            "--simulate",
            "--output",
            "json",
            "package",
            "collect",
            "--machines-file",
            "-",
            "--comment",
            "c",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n{}\n", MACHINES[1], MACHINES[2]).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
}

#[test]
fn test_help_and_completions() {
    let dir = scratch("help");
    for args in [
        vec!["--help"],
        vec!["investigation", "start", "--help"],
        vec!["investigation", "initiate", "--help"],
        vec!["package", "collect", "--help"],
        vec!["completions", "--help"],
    ] {
        let out = run(mde(dir.path()).args(&args));
        assert_eq!(out.code, 0, "{args:?}");
        assert!(
            out.stdout.contains("Example"),
            "{args:?} has no example:\n{}",
            out.stdout
        );
    }
    let out = run(mde(dir.path()).args(["completions", "bash"]));
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("_mde()") && out.stdout.contains("--machines-file"),
        "{}",
        out.stdout
    );
}

/// Killed with SIGKILL mid-run, then resumed: no machine gets two actions, and none is
/// skipped: each has one action, or is reported unknown (sent, no answer recorded).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_resume_after_kill_sends_nothing_twice_and_skips_nothing() {
    let dir = scratch("resume");
    let n = 300;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 30.0,
        ..Config::default().with_generated_machines(n)
    };
    let sim = Simulator::start(config).await.unwrap();
    let ids: Vec<String> = (0..n).map(generated_machine_id).collect();
    std::fs::write(dir.path().join("fleet.txt"), ids.join("\n")).unwrap();
    let journal = dir.path().join("journal.jsonl");
    let args = |extra: &[&str]| {
        let mut command = mde(dir.path());
        command
            .args([
                "--api-url",
                sim.base_url(),
                "--login-url",
                sim.base_url(),
                "--time-scale",
                "30",
                "--output",
                "json",
            ])
            .args([
                "package",
                "collect",
                "--machines-file",
                "fleet.txt",
                "--comment",
                "fleet",
                "--yes",
            ])
            .args(extra)
            .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
            .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
            .stdin(Stdio::null());
        command
    };
    let mut first = args(&["--journal", journal.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first minute's 100 are answered and the second minute has begun.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .matches(r#""event":"done""#)
            .count();
        if done > 110 {
            break;
        }
        assert!(Instant::now() < deadline, "the run made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let sent_before = sim.actions().len();
    assert!(sent_before < n, "killed too late to test anything");

    let mut resume = args(&["--resume", journal.to_str().unwrap()]);
    let resumed = tokio::task::spawn_blocking(move || resume.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8(resumed.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n, "every machine reported once");

    let mut actions: Vec<String> = sim
        .actions()
        .iter()
        .map(|a| a.machine_id.clone().unwrap())
        .collect();
    actions.sort();
    let before = actions.len();
    actions.dedup();
    assert_eq!(actions.len(), before, "a machine got two actions");
    for line in &lines {
        let machine = line["machine"].as_str().unwrap().to_string();
        match line["outcome"].as_str().unwrap() {
            "accepted" => assert!(
                actions.binary_search(&machine).is_ok(),
                "{machine} accepted but has no action"
            ),
            "unknown" => assert_eq!(line["earlier"], true),
            other => panic!("{machine}: {other}"),
        }
    }
    let unknown = lines.iter().filter(|l| l["outcome"] == "unknown").count();
    assert!(
        unknown <= 32,
        "at most the requests in flight are unknown: {unknown}"
    );
    assert!(lines.iter().filter(|l| l["earlier"] == true).count() >= 100);
    // Unknown machines either reached the service or not; no other machine was skipped.
    assert!(
        actions.len() + unknown >= n,
        "{} actions + {unknown} unknown < {n}",
        actions.len()
    );
    sim.stop().await;
}

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
    let base = sim.base_url().to_string();
    let mde_at = move |dir: &std::path::Path, args: Vec<String>| {
        let mut command = mde(dir);
        command
            .args([
                "--api-url",
                &base,
                "--login-url",
                &base,
                "--time-scale",
                "600",
            ])
            .args(args)
            .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
            .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET);
        command
    };
    let path = dir.path().to_path_buf();
    let go = move |args: Vec<String>| {
        let mut command = mde_at(&path, args);
        tokio::task::spawn_blocking(move || run(&mut command))
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // The collections, as JSON, with `extra` options.
    let list = |extra: &[&str]| {
        let mut args = strings(&["--output", "json", "action", "list"]);
        args.extend(strings(&["--type", "CollectInvestigationPackage"]));
        args.extend(strings(extra));
        go(args)
    };
    let listed = list(&["--status", "Succeeded"]).await.unwrap();
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let found: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 3, "{}", listed.stdout);
    // `--since` is read as a time and sent in one form; the simulator applies it.
    let since = |at: &str| list(&["--since", at]);
    // The three that succeeded and the one still running.
    let all = since("2000-01-01").await.unwrap();
    assert_eq!(
        (all.code, all.stdout.lines().count()),
        (0, 4),
        "{}",
        all.stderr
    );
    let none = since("2999-01-01T00:00:00+02:00").await.unwrap();
    assert_eq!(
        (none.code, none.stdout.lines().count()),
        (0, 0),
        "{}",
        none.stderr
    );
    // A status the spec does not document is sent, with a warning that names those it does.
    let typo = go(strings(&["action", "list", "--status", "Suceeded"]))
        .await
        .unwrap();
    assert_eq!(typo.code, 0, "{}", typo.stderr);
    assert!(
        typo.stderr.contains(
            "warning: Suceeded is not a status the spec documents (Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled); sent as given"
        ),
        "{}",
        typo.stderr
    );
    assert!(!all.stderr.contains("warning"), "{}", all.stderr);
    let bad = since("yesterday' or status eq 'x").await.unwrap();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("is not a date (2026-11-01)"),
        "{}",
        bad.stderr
    );

    let mut download = strings(&["package", "download", "--out", "evidence"]);
    download.extend(ids.iter().cloned());
    download.push(running.clone());
    let first = go(download.clone()).await.unwrap();
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
    let evidence = dir.path().join("evidence");
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
    let second = go(download[..ids.len() + 4].to_vec()).await.unwrap();
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

    let verified = go(strings(&["package", "verify", "evidence"]))
        .await
        .unwrap();
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert_eq!(verified.stdout.matches("verified").count(), 3);
    let file = evidence.join(record["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let changed = go(strings(&["package", "verify", "evidence"]))
        .await
        .unwrap();
    assert_eq!(changed.code, 1);
    assert!(changed.stdout.contains("CHANGED"), "{}", changed.stdout);

    let cancel = go(strings(&[
        "--output",
        "json",
        "action",
        "cancel",
        &running,
        "--comment",
        "Machine action was canceled by automation",
    ]))
    .await
    .unwrap();
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    // An action id is a GUID, not a machine id: no hint about names.
    assert!(!cancel.stderr.contains("warning"), "{}", cancel.stderr);
    let line: Value = serde_json::from_str(cancel.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["result"]["answer"]["status"], "Cancelled", "{line}");
    sim.stop().await;
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

/// The run of `package collect --download` against a simulator of the test's own, as JSON.
fn collect_download(
    dir: &std::path::Path,
    sim: &Simulator,
    machines: &[String],
    extra: &[&str],
) -> Command {
    std::fs::write(dir.join("fleet.txt"), machines.join("\n")).unwrap();
    let mut command = mde(dir);
    command
        .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
        .args([
            "--time-scale",
            &sim.clock().scale().to_string(),
            "--output",
            "json",
        ])
        .args(["package", "collect", "--machines-file", "fleet.txt"])
        .args(["--comment", "case 7", "--download", "evidence", "--yes"])
        .args(["--poll-interval", "10"])
        .args(extra)
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
        .stdin(Stdio::null());
    command
}

/// The JSON lines of a run, by machine.
fn by_machine(stdout: &str) -> std::collections::HashMap<String, Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["machine"].as_str().unwrap().to_string(), v))
        .collect()
}

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
    let final_status: std::collections::HashMap<String, String> = sim
        .actions()
        .into_iter()
        .map(|a| (a.machine_id.unwrap(), a.status.unwrap().to_string()))
        .collect();
    for machine in &machines {
        let line = &lines[machine];
        let status = &final_status[machine];
        let detail = line["detail"].as_str().unwrap_or_default();
        if machine == &blocked {
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
    assert_eq!(final_status[&cancelled], "Cancelled");
    assert_eq!(final_status[&blocked], "Succeeded");
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
    // Nothing looks complete that is not: every zip in the folder is recorded and verifies.
    let verified = run(mde(dir.path()).args(["package", "verify", "evidence"]));
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    let zips = std::fs::read_dir(&evidence)
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

/// Every operation but `only` was never served: the run sent nothing else.
fn sent_only(sim: &Simulator, only: &[(mde_client::OperationId, usize)]) {
    for op in mde_client::operations::ALL {
        let expected = only
            .iter()
            .find(|(o, _)| *o == op.id)
            .map_or(0, |(_, n)| *n);
        assert_eq!(sim.calls(op.id), expected, "{} calls", op.id);
    }
}

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

    // --pick latest: the machine whose last report is the newest.
    let mut command = against(dir.path(), &sim);
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
    sim.stop().await;
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
