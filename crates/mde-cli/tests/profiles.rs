//! Profiles, `mde` run as a binary: a configuration file (MDE_CONFIG) naming the simulator,
//! chosen with --profile or MDE_PROFILE, listed and shown without a secret, and the errors
//! that say what to fix.

use mde_sim::{Config, Simulator};

mod common;
use common::{mde, run_off, scratch};

async fn simulator() -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: vec!["contoso".into()],
        ..Config::default()
    })
    .await
    .unwrap()
}

/// `mde` with only the configuration file to go by: no AZURE_* variable.
fn with_config(dir: &std::path::Path) -> std::process::Command {
    let mut command = mde(dir);
    command
        .env("MDE_CONFIG", dir.join("config.toml"))
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("MDE_TOKEN")
        .env_remove("MDE_PROFILE");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_profile_connects_and_is_shown_without_its_secret() {
    let dir = scratch("profiles");
    let sim = simulator().await;
    let base = sim.base_url();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            r#"
[profiles.contoso]
tenant = "contoso"
client_id = "{client}"
auth = "secret"
secret_env = "CONTOSO_SECRET"
api_url = "{base}"
login_url = "{base}"

[profiles.home]
tenant = "{home}"
client_id = "{client}"
secret_env = "HOME_SECRET"
api_url = "{base}"
login_url = "{base}"
"#,
            client = mde_sim::DEFAULT_CLIENT_ID,
            home = mde_sim::DEFAULT_TENANT,
        ),
    )
    .unwrap();
    let secret = mde_sim::DEFAULT_CLIENT_SECRET;

    // The contoso profile lists contoso's machines, not the home tenant's.
    let mut list = with_config(dir.path());
    list.args(["--profile", "contoso", "-o", "json", "machine", "list"])
        .env("CONTOSO_SECRET", secret);
    let out = run_off(list).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let contoso: Vec<String> = sim
        .machines_in("contoso")
        .into_iter()
        .filter_map(|m| m.id)
        .collect();
    let listed = common::lines(&out.stdout);
    assert_eq!(listed.len(), contoso.len());
    assert!(
        listed
            .iter()
            .all(|l| contoso.iter().any(|id| l["machine"] == *id))
    );
    assert!(out.stderr.contains("tenant contoso"), "{}", out.stderr);

    // MDE_PROFILE chooses as --profile does; a flag on the command line still wins.
    let mut chosen = with_config(dir.path());
    chosen
        .args(["-o", "json", "machine", "list"])
        .env("MDE_PROFILE", "home")
        .env("HOME_SECRET", secret);
    let out = run_off(chosen).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(common::lines(&out.stdout).len(), sim.machines().len());
    let mut overridden = with_config(dir.path());
    overridden
        .args([
            "--profile",
            "home",
            "--client-secret",
            "wrong",
            "machine",
            "list",
        ])
        .env("HOME_SECRET", secret);
    assert_eq!(run_off(overridden).await.code, 3);

    profiles_are_shown_without_the_secret(dir.path(), secret).await;
    what_to_fix_is_said(dir.path()).await;
    sim.stop().await;
}

/// Listed and shown: the variable's name and whether it is set, never the secret.
async fn profiles_are_shown_without_the_secret(dir: &std::path::Path, secret: &str) {
    // Listed and shown: the variable's name and whether it is set, never the secret.
    let mut shown = with_config(dir);
    shown
        .args(["profile", "show", "contoso"])
        .env("CONTOSO_SECRET", secret);
    let out = run_off(shown).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("secret_env = \"CONTOSO_SECRET\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CONTOSO_SECRET is set"),
        "{}",
        out.stdout
    );
    let mut listed = with_config(dir);
    listed
        .args(["profile", "list"])
        .env("CONTOSO_SECRET", secret);
    let out = run_off(listed).await;
    assert!(
        out.stdout.contains("contoso") && out.stdout.contains("home"),
        "{}",
        out.stdout
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(secret), "{text}");
    }
}

/// What to fix: an unset variable (exit 3), an unknown profile (exit 2, the known ones), a
/// secret kept in the file (refused, saying where a secret goes).
async fn what_to_fix_is_said(dir: &std::path::Path) {
    // What to fix: an unset variable (exit 3), an unknown profile (exit 2, the known ones).
    let mut unset = with_config(dir);
    unset.args(["--profile", "contoso", "machine", "list"]);
    let out = run_off(unset).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("CONTOSO_SECRET, which is not set"),
        "{}",
        out.stderr
    );
    let mut unknown = with_config(dir);
    unknown.args(["--profile", "fabrikam", "machine", "list"]);
    let out = run_off(unknown).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("it has contoso, home"),
        "{}",
        out.stderr
    );

    std::fs::write(
        dir.join("config.toml"),
        "[profiles.x]\ntenant = \"t\"\nclient_id = \"c\"\nsecret = \"hunter2\"\n",
    )
    .unwrap();
    let mut kept = with_config(dir);
    kept.args(["profile", "list"]);
    let out = run_off(kept).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("secret_env") && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );
}
