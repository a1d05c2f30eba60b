//! The `mde-sim` binary: prints its base URL first, serves, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mde-sim");

#[test]
fn help_names_the_default_app() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "sim-tenant",
        "sim-client",
        "sim-secret",
        "--listen",
        "--time-scale",
        "--app",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["--app", "nosecret"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ID:SECRET"));
}

#[cfg(unix)]
#[test]
fn serves_on_any_free_port_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("machines.txt");
    std::fs::write(&file, "# from a file\nfilemachine01  # a comment\n\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--machines",
            "3",
            "--machines-file",
        ])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first.trim();
    let port: u16 = base
        .strip_prefix("http://127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        mde_client::install_crypto_provider();
        let http = mde_client::reqwest::Client::new();
        let token = mde_sim::sign_in(
            base,
            mde_sim::DEFAULT_TENANT,
            mde_sim::DEFAULT_CLIENT_ID,
            mde_sim::DEFAULT_CLIENT_SECRET,
        )
        .await
        .unwrap();
        http.post(format!(
            "{base}/api/machines/filemachine01/collectInvestigationPackage"
        ))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(r#"{"Comment":"from the file"}"#)
        .send()
        .await
        .unwrap()
        .status()
    });
    // Served, with the machine of --machines-file in the inventory.
    assert_eq!(status, 201);

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}
