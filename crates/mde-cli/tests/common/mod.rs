//! What the tests of the `mde` binary share: a scratch folder, the binary without
//! credentials from the environment, its run, and the simulator it runs against.
#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use mde_sim::Simulator;

/// A command line's words, split at spaces (for arguments without one): a line a reader
/// can take in at once, instead of one word a line.
pub fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// A scratch directory of the test's own.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mde-cli-{name}-"))
        .tempdir()
        .unwrap()
}

/// `mde` with no credentials from the environment, run in `dir`.
pub fn mde(dir: &std::path::Path) -> Command {
    let mut command = Command::cargo_bin("mde").unwrap();
    for var in [
        "MDE_TOKEN",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ] {
        command.env_remove(var);
    }
    command.current_dir(dir);
    command
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(command: &mut Command) -> Run {
    let out = command.stdin(Stdio::null()).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `mde` against a simulator of the test's own, as its default app, on its clock.
pub fn against(dir: &std::path::Path, sim: &Simulator) -> Command {
    let mut command = signing_in_at(dir, sim.base_url(), sim.base_url());
    command.args(["--time-scale", &sim.clock().scale().to_string()]);
    command
}

/// `mde` sending to `api`, signing in at `login` as the simulator's default app.
pub fn signing_in_at(dir: &std::path::Path, api: &str, login: &str) -> Command {
    let mut command = mde(dir);
    command
        .args(["--api-url", api, "--login-url", login])
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET);
    command
}

/// Runs `mde` off the runtime the simulator serves on.
pub async fn run_off(mut command: Command) -> Run {
    tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap()
}

/// The JSON lines of stdout, each parsed.
pub fn lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Starts `command` with its output dropped and kills it (SIGKILL) as soon as `journal`
/// shows `stage`: `sending` (a request on its way) or a stage of the evidence pipeline.
pub async fn kill_at(mut command: Command, journal: &std::path::Path, stage: &str) {
    use std::time::{Duration, Instant};
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = match stage {
        "sending" => r#""event":"sending""#.to_string(),
        stage => format!(r#""stage":"{stage}""#),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(journal)
        .unwrap_or_default()
        .contains(&marker)
    {
        assert!(Instant::now() < deadline, "{stage}: never reached");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A configuration file in `dir` with a profile for each of `tenants` of the simulator at
/// `base`, its secret in `TENANT_SECRET`.
pub fn profiles(dir: &std::path::Path, base: &str, tenants: &[&str]) {
    let profiles: String = tenants
        .iter()
        .map(|tenant| {
            format!(
                "[profiles.{tenant}]\ntenant = \"{tenant}\"\nclient_id = \"{client}\"\nauth = \"secret\"\nsecret_env = \"{upper}_SECRET\"\napi_url = \"{base}\"\nlogin_url = \"{base}\"\n\n",
                client = mde_sim::DEFAULT_CLIENT_ID,
                upper = tenant.to_uppercase(),
            )
        })
        .collect();
    std::fs::write(dir.join("config.toml"), profiles).unwrap();
}

/// A simulator seed under which `--scan-failures share` fails the first scan of exactly
/// `failed` of the machines: some scans fail and others not.
pub fn seed_failing(machines: &[String], share: f64, failed: usize) -> u64 {
    (0..)
        .find(|s| {
            let n = machines
                .iter()
                .filter(|m| mde_sim::dice(*s, &[m.as_str(), "scan", "0"]) < share)
                .count();
            n == failed
        })
        .unwrap()
}

/// `mde` with the configuration file of [`profiles`] for `tenants`, each secret set as the
/// simulator's default app has it, no `MDE_PROFILE`, on the simulator's clock.
pub fn with_profiles(dir: &std::path::Path, sim: &Simulator, tenants: &[&str]) -> Command {
    let mut command = mde(dir);
    command
        .env("MDE_CONFIG", dir.join("config.toml"))
        .env_remove("MDE_PROFILE")
        .args(["--time-scale", &sim.clock().scale().to_string()]);
    for tenant in tenants {
        let variable = format!("{}_SECRET", tenant.to_uppercase());
        command.env(variable, mde_sim::DEFAULT_CLIENT_SECRET);
    }
    command
}
