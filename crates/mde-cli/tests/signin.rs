//! Signing in without a secret, `mde` run as a binary against the simulator's managed
//! identity endpoint (App Service's protocol, through the Azure SDK's identity library): a
//! package collected; an endpoint that fails or never answers, each a clear error with no
//! secret printed and no retry storm.

use std::time::{Duration, Instant};

use mde_client::OperationId;
use mde_sim::{Config, IdentityFault, Simulator};

mod common;
use common::{mde, run_off, scratch};

async fn simulator(fault: Option<IdentityFault>) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity_fault: fault,
        ..Config::default()
    })
    .await
    .unwrap()
}

/// `mde` on the simulator with App Service's variables and nothing else to sign in with.
fn on_app_service(
    dir: &std::path::Path,
    sim: &Simulator,
    auth: Option<&str>,
) -> std::process::Command {
    let mut command = mde(dir);
    command
        .args(["--api-url", sim.base_url(), "-o", "json"])
        .env("IDENTITY_ENDPOINT", sim.identity_endpoint())
        .env("IDENTITY_HEADER", sim.identity_header())
        .env_remove("MDE_PROFILE")
        .env("MDE_CONFIG", dir.join("none.toml"));
    if let Some(auth) = auth {
        command.args(["--auth", auth]);
    }
    command
        .args(["package", "collect", "fb9ab6be3965095a09c057be7c90f0a2"])
        .args([
            "--comment",
            "Collect forensics due to alert 1234",
            "--journal",
            "j.jsonl",
        ]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_managed_identity_collects_a_package() {
    let dir = scratch("managed-identity");
    let sim = simulator(None).await;
    // Chosen from the environment: IDENTITY_ENDPOINT and no secret.
    let out = run_off(on_app_service(dir.path(), &sim, None)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("signing in with managed-identity"),
        "{}",
        out.stderr
    );
    assert_eq!(common::lines(&out.stdout)[0]["outcome"], "accepted");
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 1);
    assert_eq!(sim.identity_requests(), 1, "one token for the run");
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(sim.identity_header()), "{text}");
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_identity_endpoint_that_fails_or_hangs_is_a_clear_error() {
    for fault in [IdentityFault::ServerError, IdentityFault::Hang] {
        let dir = scratch("managed-identity-fault");
        let sim = simulator(Some(fault)).await;
        let started = Instant::now();
        let out = run_off(on_app_service(dir.path(), &sim, Some("managed-identity"))).await;
        assert_eq!(out.code, 3, "{fault:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("managed identity") || out.stderr.contains("ManagedIdentity"),
            "{fault:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(sim.identity_header()),
            "{}",
            out.stderr
        );
        // The first try and two retries at most; bounded by the sign-in timeout.
        assert!(
            (1..=3).contains(&sim.identity_requests()),
            "{fault:?}: {}",
            sim.identity_requests()
        );
        assert!(started.elapsed() < Duration::from_secs(60), "{fault:?}");
        assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 0);
        assert!(!dir.path().join("j.jsonl").exists(), "nothing journaled");
        sim.stop().await;
    }
}

/// A copy of a fixture in `dir`, readable by its owner only (git keeps no such mode).
fn private_copy(dir: &std::path::Path, fixture: &str, mode: u32) -> std::path::PathBuf {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let to = dir.join(fixture);
    std::fs::copy(from, &to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    to
}

/// A client certificate, PEM and PKCS#12, signs in at the simulator over HTTPS (the identity
/// library takes no other authority) with a client assertion the simulator checks against the
/// certificate registered with the app; an unregistered certificate, a key others can read
/// and a wrong PKCS#12 password are each a clear error that prints no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_client_certificate_signs_in_and_a_bad_one_is_refused() {
    let dir = scratch("certificate");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let registered = std::fs::read_to_string(fixtures.join("app-cert.crt")).unwrap();
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: true,
        app_certs: vec![(
            mde_sim::DEFAULT_TENANT.into(),
            mde_sim::DEFAULT_CLIENT_ID.into(),
            registered,
        )],
        ..Config::default()
    })
    .await
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), sim.ca_pem().unwrap()).unwrap();
    let collect = |certificate: &std::path::Path, password| {
        collect_with(dir.path(), &sim, certificate, password)
    };
    let pem = private_copy(dir.path(), "app-cert.pem", 0o600);
    let out = run_off(collect(&pem, None)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("signing in with certificate"),
        "{}",
        out.stderr
    );
    let p12 = private_copy(dir.path(), "app-cert.p12", 0o600);
    // A second collection on the same machine is the documented 400: a token was had.
    let out = run_off(collect(&p12, Some("mde-test"))).await;
    assert_eq!(
        common::lines(&out.stdout)[0]["outcome"],
        "already_running",
        "{}",
        out.stderr
    );
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 2);

    let unregistered = private_copy(dir.path(), "unregistered.pem", 0o600);
    let out = run_off(collect(&unregistered, None)).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("AADSTS700027"), "{}", out.stderr);
    let wrong = run_off(collect(&p12, Some("not-it"))).await;
    assert_eq!(wrong.code, 3, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("does not open this PKCS#12 archive"),
        "{}",
        wrong.stderr
    );
    // No password at all: the variable to set is named, not the MAC that did not match.
    let none = run_off(collect(&p12, None)).await;
    assert_eq!(none.code, 3, "{}", none.stderr);
    assert!(
        none.stderr
            .contains("set AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        "{}",
        none.stderr
    );
    let out = an_untrusted_host_names_its_fix(dir.path(), &sim, &pem).await;
    #[cfg(unix)]
    {
        let open = private_copy(&dir.path().join(""), "app-cert.pem", 0o644);
        let out = run_off(collect(&open, None)).await;
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    }
    for text in [&out.stderr, &wrong.stderr] {
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("MII"),
            "{text}"
        );
    }
    assert_eq!(
        sim.calls(OperationId::CollectInvestigationPackage),
        2,
        "refused ones send nothing"
    );
    sim.stop().await;
}

/// A sign-in host whose CA is not trusted: the certificate error and its fix, not only the
/// retry policy's end. Its run.
async fn an_untrusted_host_names_its_fix(
    dir: &std::path::Path,
    sim: &Simulator,
    pem: &std::path::Path,
) -> common::Run {
    let mut untrusted = collect_with(dir, sim, pem, None);
    untrusted.env("MDE_CONFIG", dir.join("none.toml"));
    let args: Vec<std::ffi::OsString> = untrusted
        .get_args()
        .filter(|a| *a != "--ca-cert" && *a != "ca.pem")
        .map(|a| a.to_os_string())
        .collect();
    let mut untrusted = mde(dir);
    untrusted
        .args(args)
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("MDE_CONFIG", dir.join("none.toml"));
    let out = run_off(untrusted).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    // The cause from the chain (rustls's words), then the fix.
    assert!(
        out.stderr.contains("invalid peer certificate") || out.stderr.contains("UnknownIssuer"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("give its CA with --ca-cert"),
        "{}",
        out.stderr
    );
    out
}

/// `mde package collect` signing in with `certificate` (its password in the environment,
/// when given), trusting the simulator's CA.
fn collect_with(
    dir: &std::path::Path,
    sim: &Simulator,
    certificate: &std::path::Path,
    password: Option<&str>,
) -> std::process::Command {
    let mut command = mde(dir);
    command
        .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
        .args(["--ca-cert", "ca.pem", "--auth", "certificate", "-o", "json"])
        .arg("--certificate")
        .arg(certificate)
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("MDE_CONFIG", dir.join("none.toml"))
        .args(["package", "collect", "fb9ab6be3965095a09c057be7c90f0a2"])
        .args(["--comment", "Collect forensics due to alert 1234"]);
    if let Some(password) = password {
        command.env("AZURE_CLIENT_CERTIFICATE_PASSWORD", password);
    }
    command
}

/// Workload identity federation: the token a workload holds (the simulator's own issuer, the
/// subject the app trusts) is exchanged through the identity library over HTTPS and a package
/// collected; an expired token and a subject the app does not trust are each Entra ID's clear
/// refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_workload_identity_exchanges_the_federated_token() {
    let dir = scratch("workload-identity");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: true,
        ..Config::default()
    })
    .await
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), sim.ca_pem().unwrap()).unwrap();
    let collect = |token: String| {
        let file = dir.path().join("token");
        std::fs::write(&file, token).unwrap();
        let mut command = mde(dir.path());
        command
            .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
            .args(["--ca-cert", "ca.pem", "-o", "json"])
            .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
            .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
            .env("AZURE_FEDERATED_TOKEN_FILE", &file)
            .env("MDE_CONFIG", dir.path().join("none.toml"))
            .args(["package", "collect", "fb9ab6be3965095a09c057be7c90f0a2"])
            .args(["--comment", "Collect forensics due to alert 1234"]);
        command
    };
    // Chosen from the environment: AZURE_FEDERATED_TOKEN_FILE.
    let out = run_off(collect(
        sim.federated_token(mde_sim::FEDERATED_SUBJECT, 3600),
    ))
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("signing in with workload-identity"),
        "{}",
        out.stderr
    );
    assert_eq!(common::lines(&out.stdout)[0]["outcome"], "accepted");

    let expired = run_off(collect(
        sim.federated_token(mde_sim::FEDERATED_SUBJECT, -3600),
    ))
    .await;
    assert_eq!(expired.code, 3, "{}", expired.stderr);
    assert!(
        expired.stderr.contains("AADSTS700024"),
        "{}",
        expired.stderr
    );
    let stranger = run_off(collect(
        sim.federated_token("repo:someone/else:ref:refs/heads/main", 3600),
    ))
    .await;
    assert_eq!(stranger.code, 3, "{}", stranger.stderr);
    assert!(
        stranger.stderr.contains("AADSTS70021"),
        "{}",
        stranger.stderr
    );
    assert_eq!(sim.calls(OperationId::CollectInvestigationPackage), 1);
    sim.stop().await;
}

/// The Azure CLI's account: the identity library runs `az account get-access-token`; an `az`
/// of the test's own, first on PATH, answers as Azure CLI 2.54+ does with a token the
/// simulator issued, and then as an `az` that is not logged in does.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_the_azure_cli_account_signs_in() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("azure-cli");
    let sim = simulator(None).await;
    let token = mde_sim::sign_in(
        sim.base_url(),
        mde_sim::DEFAULT_TENANT,
        mde_sim::DEFAULT_CLIENT_ID,
        mde_sim::DEFAULT_CLIENT_SECRET,
    )
    .await
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let az = |script: String| {
        std::fs::write(bin.join("az"), script).unwrap();
        std::fs::set_permissions(bin.join("az"), std::fs::Permissions::from_mode(0o700)).unwrap();
    };
    let expires = chrono::Utc::now().timestamp() + 3000;
    az(format!(
        "#!/bin/sh\necho '{{\"accessToken\":\"{token}\",\"expiresOn\":\"2030-01-02 03:04:05.000000\",\"expires_on\":{expires},\"subscription\":\"s\",\"tenant\":\"{}\",\"tokenType\":\"Bearer\"}}'\n",
        mde_sim::DEFAULT_TENANT
    ));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let collect = || {
        let mut command = mde(dir.path());
        command
            .args([
                "--api-url",
                sim.base_url(),
                "--auth",
                "azure-cli",
                "-o",
                "json",
            ])
            .env("PATH", &path)
            .env("MDE_CONFIG", dir.path().join("none.toml"))
            .args(["package", "collect", "fb9ab6be3965095a09c057be7c90f0a2"])
            .args(["--comment", "Collect forensics due to alert 1234"]);
        command
    };
    let out = run_off(collect()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("signing in with azure-cli"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&token), "{}", out.stderr);

    az("#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n".into());
    let out = run_off(collect()).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("az login"), "{}", out.stderr);
    sim.stop().await;
}
