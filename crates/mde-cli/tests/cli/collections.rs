//! mde against its embedded simulator: collections.

use super::*;

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
    for (args, code, says) in bad_inputs() {
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

/// Command lines `mde` refuses: the arguments, the exit code and what stderr says.
fn bad_inputs() -> Vec<(Vec<&'static str>, i32, &'static str)> {
    vec![
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
            "no machines: give ids as arguments or with --machines-file, names with --machine-name or --names-file, a tag with --tag, or a query with --from-hunt",
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
    ]
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

    nothing_sent_twice_nothing_skipped(&sim, &lines, n);
    sim.stop().await;
}

/// One action a machine at most; each line accepted with its action, or unknown (in flight
/// when killed) and journaled earlier; no machine skipped.
fn nothing_sent_twice_nothing_skipped(sim: &Simulator, lines: &[Value], n: usize) {
    let mut actions: Vec<String> = sim
        .actions()
        .iter()
        .map(|a| a.machine_id.clone().unwrap())
        .collect();
    actions.sort();
    let before = actions.len();
    actions.dedup();
    assert_eq!(actions.len(), before, "a machine got two actions");
    for line in lines {
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
}
