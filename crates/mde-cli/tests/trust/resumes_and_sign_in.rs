//! What a run can be trusted with: resumes and sign in.

use super::*;

/// A resume with another scan type, another host or other machines is refused, naming the
/// difference, and sends nothing; `--journal` naming an existing journal is refused; the
/// same command resumes and sends nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_resume_refuses_another_request_host_or_machines() {
    let dir = scratch("resume-same");
    let sim = simulator(60.0).await;
    let other = simulator(60.0).await;
    let scan = |sim: &Simulator, kind: &str, extra: &[&str]| {
        let mut command = against(dir.path(), sim);
        command
            .args(["scan", "--type", kind, "--comment", "Alert 3212"])
            .args(MACHINES)
            .args(extra);
        command
    };
    let first = run_off(scan(&sim, "full", &["--journal", "j.jsonl"])).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(sim.actions().len(), 2);

    let quick = run_off(scan(&sim, "quick", &["--resume", "j.jsonl"])).await;
    assert_eq!(quick.code, 2, "{}", quick.stderr);
    assert!(
        quick.stderr.contains(
            r#"the request: recorded {"Comment":"Alert 3212","ScanType":"Full"}, now {"Comment":"Alert 3212","ScanType":"Quick"}"#
        ),
        "{}",
        quick.stderr
    );
    let elsewhere = run_off(scan(&other, "full", &["--resume", "j.jsonl"])).await;
    assert_eq!(elsewhere.code, 2, "{}", elsewhere.stderr);
    assert!(
        elsewhere.stderr.contains(&format!(
            "the API: recorded {}, now {}",
            sim.base_url(),
            other.base_url()
        )),
        "{}",
        elsewhere.stderr
    );
    let mut tenant = scan(&sim, "full", &["--resume", "j.jsonl"]);
    tenant.env("AZURE_TENANT_ID", "fabrikam.onmicrosoft.com");
    let tenant = run_off(tenant).await;
    assert_eq!(tenant.code, 2, "{}", tenant.stderr);
    assert!(
        tenant
            .stderr
            .contains("the tenant: recorded sim-tenant, now fabrikam.onmicrosoft.com"),
        "{}",
        tenant.stderr
    );
    let more = "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f";
    let grown = run_off(scan(&sim, "full", &[more, "--resume", "j.jsonl"])).await;
    assert_eq!(grown.code, 2, "{}", grown.stderr);
    assert!(
        grown
            .stderr
            .contains(&format!("1 machine ids not in the run: {more}")),
        "{}",
        grown.stderr
    );
    let again = run_off(scan(&sim, "full", &["--journal", "j.jsonl"])).await;
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("the journal j.jsonl exists: resume its run with --resume j.jsonl"),
        "{}",
        again.stderr
    );
    // Refused runs sent nothing, here or there.
    assert_eq!((sim.actions().len(), other.actions().len()), (2, 0));

    // A hex id in capitals is the same machine.
    let mut command = scan(&sim, "full", &["--resume", "j.jsonl"]);
    command.args(["-o", "json"]).arg(MACHINES[0].to_uppercase());
    let same = run_off(command).await;
    assert_eq!(same.code, 0, "{}", same.stderr);
    let out = lines(&same.stdout);
    assert_eq!(out.len(), 2, "{}", same.stdout);
    assert!(out.iter().all(|l| l["earlier"] == true), "{}", same.stdout);
    assert_eq!(sim.actions().len(), 2);
    sim.stop().await;
    other.stop().await;
}

/// Two runs started in the same second write a journal each.
#[test]
fn test_runs_started_together_have_their_own_journals() {
    let dir = scratch("journal-names");
    let start = || {
        mde(dir.path())
            .args([
                "--simulate",
                "package",
                "collect",
                MACHINES[0],
                "--comment",
                "c",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (start(), start());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let journals: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mde-journal-"))
        .collect();
    assert_eq!(journals.len(), 2, "{journals:?}");
    for journal in journals {
        let text = std::fs::read_to_string(dir.path().join(journal)).unwrap();
        assert_eq!(text.matches(r#""event":"run""#).count(), 1, "{text}");
        assert_eq!(text.matches(r#""event":"done""#).count(), 1, "{text}");
    }
}

/// A wrong secret, or a sign-in host that does not answer, ends the run with exit 3 before
/// any request: nothing is sent, no machine is journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sign_in_failures_stop_before_the_first_request() {
    let dir = scratch("sign-in");
    let sim = simulator(60.0).await;
    let collect = |mut command: Command, journal: &str| {
        command
            .args(["package", "collect", "--comment", "c", "--journal", journal])
            .args(MACHINES);
        run_off(command)
    };
    let mut wrong = against(dir.path(), &sim);
    wrong.env("AZURE_CLIENT_SECRET", "not-the-secret");
    let wrong = collect(wrong, "a.jsonl").await;
    assert_eq!(wrong.code, 3, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("cannot sign in, nothing was sent"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-secret"), "{}", wrong.stderr);
    let login_down = format!("http://127.0.0.1:{}", closed_port());
    let down = signing_in_at(dir.path(), sim.base_url(), &login_down);
    let down = collect(down, "b.jsonl").await;
    assert_eq!(down.code, 3, "{}", down.stderr);
    assert!(
        down.stderr.contains("Connection refused"),
        "{}",
        down.stderr
    );
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 0);
    for journal in ["a.jsonl", "b.jsonl"] {
        assert!(!dir.path().join(journal).exists(), "{journal} was written");
    }
    sim.stop().await;
}

/// Requests that never left (connection refused) are `not_sent`; after ten in a row the run
/// stops sending, says the service looks unreachable and how to resume, and the rest are
/// `not_sent` too. The journal records them so: a resume sends to every one of them.
#[test]
fn test_an_unreachable_service_stops_the_run_and_nothing_is_failed() {
    let dir = scratch("unreachable");
    let ids: Vec<String> = (0..60).map(|i| format!("{i:040x}")).collect();
    std::fs::write(dir.path().join("fleet.txt"), ids.join("\n")).unwrap();
    let api = format!("http://127.0.0.1:{}", closed_port());
    let out = run(mde(dir.path())
        .args(["--api-url", &api, "-o", "json"])
        .env("MDE_TOKEN", "t0ken")
        .args([
            "package",
            "collect",
            "--journal",
            "j.jsonl",
            "--machines-file",
            "fleet.txt",
        ])
        .args(["--comment", "c", "--yes"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the service looks unreachable (10 requests in a row got no answer"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Once it answers, resume with:"),
        "{}",
        out.stderr
    );
    // The cause, not cut: what a person acts on.
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    let out = lines(&out.stdout);
    assert_eq!(out.len(), 60);
    assert!(out.iter().all(|l| l["outcome"] == "not_sent"), "{out:?}");
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    assert!(!journal.contains(r#""outcome":"failed""#), "{journal}");
    // Ten in a row, and those already in flight then (at most 32 at once).
    let tried = journal.matches(r#""outcome":"not_sent""#).count();
    assert!((10..=42).contains(&tried), "{tried} tried");
}

/// A request that left and got no answer (the connection dropped after it was read) is
/// `unknown`, so that `--retry-unknown` applies; never a final `failed`.
#[test]
fn test_a_dropped_connection_is_unknown() {
    let dir = scratch("dropped");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut buffer = [0u8; 4096];
            // Read the request, then close without a word.
            let _ = std::io::Read::read(&mut stream, &mut buffer);
        }
    });
    let out = run(mde(dir.path())
        .args(["--api-url", &api, "-o", "json"])
        .env("MDE_TOKEN", "t0ken")
        .args([
            "package",
            "collect",
            "--journal",
            "j.jsonl",
            MACHINES[0],
            "--comment",
            "c",
        ]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let out = lines(&out.stdout);
    assert_eq!(out[0]["outcome"], "unknown", "{out:?}");
    let history = mde_cli::journal::Journal::history(&dir.path().join("j.jsonl"), None).unwrap();
    assert_eq!(history.unknown, [MACHINES[0]]);
    assert!(history.done.is_empty());
}

/// SIGTERM stops a run as Ctrl-C does (the requests in flight answered and journaled, the
/// summary, the resume line), with exit 143; the resume line, pasted into a shell, keeps a
/// comment with spaces whole and finishes the run.
#[cfg(unix)]
#[test]
fn test_sigterm_stops_the_run_and_the_resume_line_runs_as_printed() {
    let dir = scratch("sigterm");
    let ids: Vec<String> = (0..150).map(|i| format!("{i:040x}")).collect();
    std::fs::write(dir.path().join("fleet.txt"), ids.join("\n")).unwrap();
    let child = mde(dir.path())
        .args(["--simulate", "--time-scale", "10", "-o", "json"])
        .args(["package", "collect", "--journal", "j.jsonl"])
        .args([
            "--machines-file",
            "fleet.txt",
            "--comment",
            "interrupt me",
            "--yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first 100 go at once; the rest wait for the next minute (6 s at x10).
    wait_for(&dir.path().join("j.jsonl"), "done", 100);
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("accepted 100"), "{stderr}");
    let line = stderr
        .lines()
        .skip_while(|l| !l.contains("Resume with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume line: {stderr}"));
    let words = shlex::split(line.trim()).unwrap();
    let comment = words.iter().position(|w| w == "--comment").unwrap();
    assert_eq!(words[comment + 1], "interrupt me", "{line}");
    assert_eq!(&words[words.len() - 2..], ["--resume", "j.jsonl"], "{line}");
    let resumed = run(Command::new(&words[0])
        .args(&words[1..])
        .current_dir(dir.path())
        .env_remove("MDE_TOKEN"));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let out = lines(&resumed.stdout);
    assert_eq!(out.len(), 150);
    let earlier = out.iter().filter(|l| l["earlier"] == true).count();
    assert_eq!(earlier, 100, "{}", resumed.stdout);
}

/// `--retry-failed` sends again to the machines whose earlier answer was a failure, and not
/// to those where the action was already running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_retry_failed_sends_again_only_to_failures() {
    let dir = scratch("retry-failed");
    let sim = simulator(60.0).await;
    let collect = |extra: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command
            .args(["-o", "json", "package", "collect", "--comment", "c"])
            .args(MACHINES)
            .args(extra);
        command
    };
    let first = run_off(collect(&["--journal", "j.jsonl"])).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // As if the first machine's answer had been a failure, the second's already running.
    let path = dir.path().join("j.jsonl");
    let journal: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            if !line.contains(r#""event":"done""#) {
                line.to_string()
            } else if line.contains(MACHINES[0]) {
                line.replace(r#""outcome":"accepted""#, r#""outcome":"failed""#)
            } else {
                line.replace(r#""outcome":"accepted""#, r#""outcome":"already_running""#)
            }
        })
        .collect();
    std::fs::write(&path, journal.join("\n") + "\n").unwrap();
    let plain = run_off(collect(&["--resume", "j.jsonl"])).await;
    assert_eq!(plain.code, 1, "{}", plain.stderr);
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 2);
    let retried = run_off(collect(&["--resume", "j.jsonl", "--retry-failed"])).await;
    let out = lines(&retried.stdout);
    let sent: Vec<&Value> = out.iter().filter(|l| l["earlier"] == false).collect();
    assert_eq!(sent.len(), 1, "{}", retried.stdout);
    assert_eq!(sent[0]["machine"], MACHINES[0]);
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 3);
    sim.stop().await;
}

/// A `--download` run stopped after its requests, then resumed against a service that does
/// not have its collections (a simulator restarted at the same address): each machine fails,
/// saying so, after a few looks; the run ends.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_following_collections_the_service_does_not_list_ends() {
    let dir = scratch("unlisted");
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        collection_time: Duration::from_secs(3600),
        ..Config::default()
    };
    let sim = Simulator::start(config.clone()).await.unwrap();
    let address = sim.base_url().trim_start_matches("http://").to_string();
    let collect = |sim: &Simulator, extra: &[&str]| {
        let mut command = against(dir.path(), sim);
        command
            .args(["-o", "json", "package", "collect", "--comment", "c"])
            .args(["--download", "evidence"])
            .args(MACHINES)
            .args(extra);
        command
    };
    let child = collect(&sim, &["--journal", "j.jsonl"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&dir.path().join("j.jsonl"), "done", 2);
    signal(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(143));
    sim.stop().await;

    let restarted = Simulator::start(Config {
        listen: address.parse().unwrap(),
        ..config
    })
    .await
    .unwrap();
    let resumed = run_off(collect(&restarted, &["--resume", "j.jsonl"])).await;
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    let out = lines(&resumed.stdout);
    assert_eq!(out.len(), 2, "{}", resumed.stdout);
    for line in &out {
        assert_eq!(line["outcome"], "failed", "{line}");
        assert!(
            line["detail"]
                .as_str()
                .unwrap()
                .contains("the service does not list the collection"),
            "{line}"
        );
    }
    let looks = restarted.calls(OperationId::ListMachineActions);
    assert!(
        looks <= 1 + mde_client::UNLISTED_LOOKS as usize,
        "{looks} looks"
    );
    restarted.stop().await;
}

/// `--simulate --download` cannot be resumed (its collections ended with its simulator):
/// said before anything is sent.
#[test]
fn test_a_simulated_download_run_is_not_resumable() {
    let dir = scratch("sim-download");
    std::fs::write(dir.path().join("j.jsonl"), "").unwrap();
    let out = run(mde(dir.path())
        .args([
            "--simulate",
            "package",
            "collect",
            MACHINES[0],
            "--comment",
            "c",
        ])
        .args(["--download", "evidence", "--resume", "j.jsonl"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("a --simulate --download run cannot be resumed"),
        "{}",
        out.stderr
    );
}

/// `package verify` fails on any doubt: a manifest line that is not a record, a file the
/// manifest does not list, an empty manifest; only a torn last line (a crash while writing
/// it) is forgiven, with a warning. The summary line counts each.
#[test]
fn test_package_verify_fails_on_any_doubt() {
    let dir = scratch("verify");
    let saved = run(mde(dir.path())
        .args(["--simulate", "package", "collect", "--comment", "c"])
        .args(MACHINES)
        .args(["--download", "evidence"]));
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let evidence = dir.path().join("evidence");
    let manifest_path = evidence.join("manifest.jsonl");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let verify = || run(mde(dir.path()).args(["package", "verify", "evidence"]));
    let whole = verify();
    assert_eq!(whole.code, 0, "{}{}", whole.stdout, whole.stderr);
    assert!(
        whole.stderr.ends_with("mde: 2 verified\n"),
        "{}",
        whole.stderr
    );

    // The manifest's times are on one clock: each package downloaded after it completed.
    for line in manifest.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let time = |field: &str| {
            mde_client::chrono::DateTime::parse_from_rfc3339(record[field].as_str().unwrap())
                .unwrap()
        };
        assert!(time("downloaded") >= time("completed"), "{record}");
    }

    // A line that is not a record: that package is never checked, so the folder fails.
    std::fs::write(&manifest_path, format!("{{\"tampered\":true}}\n{manifest}")).unwrap();
    let tampered = verify();
    assert_eq!(tampered.code, 1, "{}", tampered.stdout);
    assert!(
        tampered
            .stdout
            .contains("UNREADABLE  manifest.jsonl line 1 is not a record"),
        "{}",
        tampered.stdout
    );
    assert!(
        tampered.stderr.contains("2 verified, 1 unreadable line(s)"),
        "{}",
        tampered.stderr
    );
    // A torn last line is a crash, not a doubt: a warning.
    std::fs::write(&manifest_path, format!("{manifest}{{\"machine_id\":\"ab")).unwrap();
    let torn = verify();
    assert_eq!(torn.code, 0, "{}", torn.stderr);
    assert!(
        torn.stderr.contains("warning: the last line"),
        "{}",
        torn.stderr
    );
    std::fs::write(&manifest_path, &manifest).unwrap();

    unrecorded_missing_and_absent_files_fail(dir.path(), &manifest);
}

/// A second copy of a zip and a file of another kind: unrecorded; a package gone: missing;
/// an empty manifest, and none: nothing recorded.
fn unrecorded_missing_and_absent_files_fail(dir: &std::path::Path, manifest: &str) {
    let evidence = dir.join("evidence");
    let manifest_path = evidence.join("manifest.jsonl");
    let verify = || run(mde(dir).args(["package", "verify", "evidence"]));
    // A second copy of a zip and a file of another kind: unrecorded.
    let first: Value = serde_json::from_str(manifest.lines().next().unwrap()).unwrap();
    let zip = evidence.join(first["file"].as_str().unwrap());
    std::fs::copy(&zip, evidence.join("copy.zip")).unwrap();
    std::fs::create_dir(evidence.join("more")).unwrap();
    std::fs::write(evidence.join("more/notes.txt"), "x").unwrap();
    let extra = verify();
    assert_eq!(extra.code, 1, "{}", extra.stdout);
    assert!(
        extra.stdout.contains("UNRECORDED  copy.zip"),
        "{}",
        extra.stdout
    );
    assert!(
        extra.stdout.contains("UNRECORDED  more/notes.txt"),
        "{}",
        extra.stdout
    );
    std::fs::remove_file(&zip).unwrap();
    let missing = verify();
    assert!(
        missing
            .stderr
            .contains("1 verified, 1 missing, 2 unrecorded"),
        "{}",
        missing.stderr
    );

    std::fs::write(&manifest_path, "").unwrap();
    let empty = verify();
    assert_eq!(empty.code, 1);
    assert!(
        empty
            .stderr
            .contains("manifest.jsonl is empty: no package recorded"),
        "{}",
        empty.stderr
    );
    std::fs::remove_file(&manifest_path).unwrap();
    let none = verify();
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("no manifest.jsonl in evidence"),
        "{}",
        none.stderr
    );
}
