//! What a run can be trusted with: inputs and output.

use super::*;

/// A `--download` folder packages cannot be written in stops the run before its first
/// request; a folder others can read is reported.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_evidence_folder_is_probed_before_the_first_request() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("probe");
    let sim = simulator(60.0).await;
    let collect = |folder: &str| {
        let mut command = against(dir.path(), &sim);
        command
            .args(["package", "collect", "--comment", "c", MACHINES[0]])
            .args(["--download", folder]);
        command
    };
    // A folder no one can write in, root included.
    let refused = run_off(collect("/proc")).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot write packages in /proc"),
        "{}",
        refused.stderr
    );
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 0);
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let warned = run_off(collect("open")).await;
    assert_eq!(warned.code, 0, "{}", warned.stderr);
    assert!(
        warned
            .stderr
            .contains("open can be read by other users (mode 755) and packages hold forensic data: chmod 700 open"),
        "{}",
        warned.stderr
    );
    sim.stop().await;
}

/// Machine lists as Windows tools write them: a UTF-8 byte-order mark and CRLF are read;
/// UTF-16 is refused with what to do; two ids on one line are refused; a hex id in capitals
/// is the same machine; control characters in an id never reach the terminal.
#[test]
fn test_machine_files_as_windows_tools_write_them() {
    let dir = scratch("windows-files");
    let collect = |file: &[u8]| {
        std::fs::write(dir.path().join("fleet.txt"), file).unwrap();
        run(mde(dir.path())
            .args(["--simulate", "-o", "json", "package", "collect"])
            .args(["--machines-file", "fleet.txt", "--comment", "c"]))
    };
    let bom = collect(format!("\u{feff}{}\r\n{}\r\n", MACHINES[0], MACHINES[1]).as_bytes());
    assert_eq!(bom.code, 0, "{}", bom.stderr);
    let out = lines(&bom.stdout);
    assert_eq!(out.len(), 2);
    assert!(
        out.iter().all(|l| l["outcome"] == "accepted"),
        "{}",
        bom.stdout
    );

    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(MACHINES[0].encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let refused = collect(&utf16);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("fleet.txt is UTF-16 text, not UTF-8: save it as UTF-8"),
        "{}",
        refused.stderr
    );

    let two = collect(format!("{} {}\n", MACHINES[0], MACHINES[1]).as_bytes());
    assert_eq!(two.code, 2, "{}", two.stderr);
    assert!(
        two.stderr
            .contains("fleet.txt line 1: holds more than one value"),
        "{}",
        two.stderr
    );

    let cased = collect(format!("{}\n{}\n", MACHINES[0], MACHINES[0].to_uppercase()).as_bytes());
    assert_eq!(lines(&cased.stdout).len(), 1, "{}", cased.stdout);
    assert!(
        cased
            .stderr
            .contains("1 machine id(s) given more than once"),
        "{}",
        cased.stderr
    );

    let hostile = collect(b"\x1b]0;pwned\x07\n");
    assert_eq!(hostile.code, 1, "{}", hostile.stderr);
    for text in [&hostile.stdout, &hostile.stderr] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
    assert!(
        hostile.stderr.contains(r"\u{1b}]0;pwned\u{7}"),
        "{}",
        hostile.stderr
    );
}

/// An empty `MDE_TOKEN` (exported empty) is no token: the `AZURE_*` credentials are used,
/// and `mde` says once which credential it signs in with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_empty_token_is_unset_and_the_credential_is_named() {
    let dir = scratch("empty-token");
    let sim = simulator(60.0).await;
    let mut command = against(dir.path(), &sim);
    command
        .env("MDE_TOKEN", "")
        .args(["package", "collect", MACHINES[0], "--comment", "c"]);
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let said = "mde: signing in as client sim-client of tenant sim-tenant with the secret of AZURE_CLIENT_SECRET";
    assert_eq!(out.stderr.matches(said).count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains(mde_sim::DEFAULT_CLIENT_SECRET));
    sim.stop().await;
}

/// `-v` shows each request with its answer status, and each error with its correlation id;
/// `RUST_LOG` is read too; neither ever shows a token or a secret.
#[test]
fn test_verbose_shows_each_request_and_never_a_secret() {
    let dir = scratch("verbose");
    let collect = |flag: Option<&str>, rust_log: Option<&str>| {
        let mut command = mde(dir.path());
        command
            .args(flag)
            .args(["--simulate", "package", "collect"]);
        command.args([MACHINES[0], "not-a-machine", "--comment", "c"]);
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        run(&mut command)
    };
    for out in [collect(Some("-v"), None), collect(Some("--debug"), None)] {
        assert!(
            out.stderr.contains(r#"mde-client: answered operation="collectInvestigationPackage" method=POST path="/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/collectInvestigationPackage" status=201"#),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(r#"status=404 correlation_id=""#),
            "{}",
            out.stderr
        );
        for secret in [mde_sim::DEFAULT_CLIENT_SECRET, "Bearer", "access_token"] {
            assert!(!out.stderr.contains(secret), "{secret}: {}", out.stderr);
        }
    }
    let traced = collect(None, Some("trace"));
    assert!(
        traced.stderr.contains("mde-client: answered"),
        "{}",
        traced.stderr
    );
    let quiet = collect(None, None);
    assert!(!quiet.stderr.contains("mde-client:"), "{}", quiet.stderr);
}

/// `--help` groups the options every command shares under their own headings, and does not
/// show a command options that do not apply to it; the completions know the clouds.
#[test]
fn test_help_shows_the_options_that_apply() {
    let dir = scratch("help");
    let help = |args: &[&str]| run(mde(dir.path()).args(args).arg("--help")).stdout;
    let scan = help(&["scan"]);
    for heading in [
        "Journal and resume:",
        "Connection (every command that calls the service):",
        "Output (every command):",
    ] {
        assert!(scan.contains(heading), "{heading}: {scan}");
    }
    assert!(
        scan.contains("[possible values: commercial, gcc, gcc-high, dod]"),
        "{scan}"
    );
    let verify = help(&["package", "verify"]);
    for absent in ["--cloud", "--token", "--simulate", "--resume"] {
        assert!(!verify.contains(absent), "{absent}: {verify}");
    }
    assert!(verify.contains("--output"), "{verify}");
    let show = help(&["action", "show"]);
    assert!(
        show.contains("--cloud") && !show.contains("--resume"),
        "{show}"
    );
    let completions = run(mde(dir.path()).args(["completions", "bash"])).stdout;
    assert!(
        completions.contains("gcc-high") && completions.contains("aea"),
        "{completions}"
    );
}

/// Every command's JSON lines have one shape: `machine`, `name`, `action_id`, `status`,
/// `outcome` and `error` (with `code`, `message` and the whole `correlation_id`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_every_command_writes_one_json_shape() {
    let dir = scratch("json-shape");
    let sim = simulator(60.0).await;
    let json = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.arg("-o").arg("json").args(args);
        command
    };
    let shape = |line: &Value| {
        for key in ["machine", "name", "action_id", "status", "outcome", "error"] {
            assert!(line.get(key).is_some(), "no {key}: {line}");
        }
    };
    let collected = run_off(json(&[
        "package",
        "collect",
        MACHINES[0],
        "not-a-machine",
        "--comment",
        "c",
    ]))
    .await;
    let out = lines(&collected.stdout);
    out.iter().for_each(shape);
    let accepted = out.iter().find(|l| l["outcome"] == "accepted").unwrap();
    assert_eq!(accepted["status"], "Pending");
    assert_eq!(accepted["machine"], MACHINES[0]);
    let id = accepted["action_id"].as_str().unwrap().to_string();
    let missing = out.iter().find(|l| l["outcome"] == "not_found").unwrap();
    assert_eq!(missing["error"]["code"], "ResourceNotFound", "{missing}");
    let correlation = missing["error"]["correlation_id"].as_str().unwrap();
    assert_eq!(correlation.len(), 36, "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains(correlation)
    );
    // The table and the final block say it whole too.
    assert!(
        collected.stderr.contains(correlation),
        "{}",
        collected.stderr
    );

    sim.clock().advance(Duration::from_secs(3600));
    let checks: [(&[&str], &str); 4] = [
        (&["action", "show", &id], "found"),
        (&["action", "list", "--machine", MACHINES[0]], "listed"),
        (&["package", "download", &id, "--out", "evidence"], "saved"),
        (&["package", "verify", "evidence"], "verified"),
    ];
    for (args, outcome) in checks {
        let out = run_off(json(args)).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let out = lines(&out.stdout);
        assert!(!out.is_empty(), "{args:?}");
        for line in &out {
            shape(line);
            assert_eq!(line["outcome"], outcome, "{args:?}: {line}");
            assert_eq!(line["action_id"], id.as_str(), "{args:?}: {line}");
            assert_eq!(line["machine"], MACHINES[0], "{args:?}: {line}");
            assert_eq!(line["error"], Value::Null, "{args:?}: {line}");
        }
    }
    sim.stop().await;
}

/// A permission the app lacks (403) stops the run with exit 3 and journals no machine as
/// failed: each is `not_sent`, and a resume sends to every one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_refused_permission_journals_nothing_failed() {
    let dir = scratch("permission");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        apps: vec![mde_sim::App::parse("reader:reader-secret:").unwrap()],
        ..Config::default()
    })
    .await
    .unwrap();
    let collect = |extra: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .env("AZURE_CLIENT_ID", "reader")
            .env("AZURE_CLIENT_SECRET", "reader-secret")
            .args(["-o", "json", "package", "collect", "--comment", "c"])
            .args(MACHINES)
            .args(extra);
        command
    };
    let first = run_off(collect(&["--journal", "j.jsonl"])).await;
    assert_eq!(first.code, 3, "{}", first.stderr);
    assert!(
        first.stderr.contains("permission denied"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("No machine is journaled as failed"),
        "{}",
        first.stderr
    );
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    assert!(!journal.contains(r#""outcome":"failed""#), "{journal}");
    let sent = |journal: &str| journal.matches(r#""event":"sending""#).count();
    let refused = sent(&journal);
    assert!(refused >= 1, "{journal}");
    let history = mde_cli::journal::Journal::history(&dir.path().join("j.jsonl"), None).unwrap();
    assert!(
        history.done.is_empty() && history.unknown.is_empty(),
        "{history:?}"
    );
    let again = run_off(collect(&["--resume", "j.jsonl"])).await;
    assert_eq!(again.code, 3, "{}", again.stderr);
    // Sent again: none was taken for done.
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    assert!(sent(&journal) > refused, "{journal}");
    sim.stop().await;
}

/// With `--download`, `--retry-failed` asks for a new collection where one ended `Failed`
/// or `TimeOut`; a plain resume does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_retry_failed_asks_for_a_new_collection() {
    let dir = scratch("retry-collection");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        collection_failures: 1.0,
        ..Config::default()
    })
    .await
    .unwrap();
    let collect = |extra: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .args(["-o", "json", "package", "collect", "--comment", "c"])
            .args(["--download", "evidence", "--poll-interval", "10"])
            .args(MACHINES)
            .args(extra);
        command
    };
    let first = run_off(collect(&["--journal", "j.jsonl"])).await;
    assert_eq!(first.code, 1, "{}", first.stderr);
    let out = lines(&first.stdout);
    assert!(
        out.iter().all(|l| l["outcome"] == "failed"),
        "{}",
        first.stdout
    );
    assert!(
        out.iter()
            .all(|l| ["Failed", "TimeOut"].contains(&l["status"].as_str().unwrap())),
        "{}",
        first.stdout
    );
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 2);
    let plain = run_off(collect(&["--resume", "j.jsonl"])).await;
    assert_eq!(plain.code, 1, "{}", plain.stderr);
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 2);
    let retried = run_off(collect(&["--resume", "j.jsonl", "--retry-failed"])).await;
    assert_eq!(retried.code, 1, "{}", retried.stderr);
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 4);
    let actions: Vec<String> = sim
        .actions()
        .iter()
        .filter_map(|a| a.machine_id.clone())
        .collect();
    for machine in MACHINES {
        assert_eq!(
            actions.iter().filter(|m| *m == machine).count(),
            2,
            "{actions:?}"
        );
    }
    sim.stop().await;
}

/// `--output csv`: a header, then one row per machine with the fields of the JSON shape, for a
/// ticket; a value a spreadsheet would run as a formula is defused, a comma quoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_csv_output_has_a_row_per_machine() {
    let dir = scratch("csv");
    let sim = simulator(60.0).await;
    let mut command = against(dir.path(), &sim);
    command
        .args(["-o", "csv", "package", "collect", "--comment", "c"])
        .args([MACHINES[0], "=cmd|calc"]);
    let out = run_off(command).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows[0], mde_cli::json::CSV_HEADER);
    assert_eq!(rows.len(), 3, "{}", out.stdout);
    let accepted = rows.iter().find(|r| r.starts_with(MACHINES[0])).unwrap();
    assert!(accepted.contains(",Pending,accepted,,,"), "{accepted}");
    let hostile = rows.iter().find(|r| r.starts_with("'=cmd|calc")).unwrap();
    assert!(
        hostile.contains(",not_found,ResourceNotFound,"),
        "{hostile}"
    );
    let listed = run_off({
        let mut command = against(dir.path(), &sim);
        command.args(["-o", "csv", "action", "list"]);
        command
    })
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{}", listed.stdout);
    assert!(rows[1].contains(",listed,"), "{}", rows[1]);
    // The type and the times the table shows, in columns of their own.
    assert_eq!(
        rows[0],
        format!("{},type,created,updated", mde_cli::json::CSV_HEADER)
    );
    let cells: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(cells[8], "CollectInvestigationPackage", "{}", rows[1]);
    assert!(
        cells[9].ends_with('Z') && cells[10].ends_with('Z'),
        "{}",
        rows[1]
    );
    sim.stop().await;
}
