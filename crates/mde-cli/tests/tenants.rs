//! A run across tenants, `mde` run as a binary against a simulator of three tenants, each
//! profile of the configuration file one of them: every tenant's part signs in and sends on
//! its own budget, names resolve in their own tenant, a tenant whose secret is wrong or whose
//! app lacks a permission stops alone (the summary names it), `--resume` continues each part
//! where it stopped, and each tenant's evidence has a folder of its own.

use mde_sim::{Config, Simulator, generated_machine_id, tenant_machine_id};

mod common;
use common::{lines, mde, run_off, scratch};

const TENANTS: [&str; 3] = ["contoso", "fabrikam", "northwind"];
/// Machines of each tenant given by id.
const PER_TENANT: usize = 4;

async fn simulator() -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: TENANTS.map(String::from).to_vec(),
        names: vec!["ws-0001".into()],
        time_scale: 600.0,
        ..Config::default().with_generated_machines(PER_TENANT)
    })
    .await
    .unwrap()
}

/// A profile for each tenant, its secret in `TENANT_SECRET`.
fn config(dir: &std::path::Path, sim: &Simulator) {
    common::profiles(dir, sim.base_url(), &TENANTS);
}

/// `mde` with the configuration file, each tenant's secret set (northwind's as given), on the
/// simulator's clock.
fn with_secrets(dir: &std::path::Path, sim: &Simulator, northwind: &str) -> std::process::Command {
    let mut command = common::with_profiles(dir, sim, &TENANTS);
    command.env("NORTHWIND_SECRET", northwind);
    command
}

/// Each tenant's machines, `PROFILE,ID` a line, and one machine of fabrikam by name.
fn machines_file(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut given = Vec::new();
    for tenant in TENANTS {
        for i in 0..PER_TENANT {
            given.push((
                tenant.to_string(),
                tenant_machine_id(tenant, &generated_machine_id(i)),
            ));
        }
    }
    let text: String = given.iter().map(|(t, id)| format!("{t},{id}\n")).collect();
    std::fs::write(dir.join("fleet.txt"), format!("# tenant,machine\n{text}")).unwrap();
    given
}

/// The machines of `tenant` the simulator has an action of, one each.
fn acted_on(sim: &Simulator, tenant: &str) -> Vec<String> {
    sim.actions_in(tenant)
        .into_iter()
        .filter_map(|a| a.machine_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_three_tenants_run_at_once_and_a_wrong_secret_stops_only_its_own() {
    let dir = scratch("tenants");
    let sim = simulator().await;
    config(dir.path(), &sim);
    let given = machines_file(dir.path());
    let journal = dir.path().join("j.jsonl");
    each_tenant_plans_its_part(dir.path(), &sim).await;
    // Northwind's secret is wrong: contoso and fabrikam finish, northwind is named.
    let mut first = with_secrets(dir.path(), &sim, "not-the-secret");
    scan_fleet(&mut first);
    first.args(["--journal", "j.jsonl"]);
    let out = run_off(first).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("mde: northwind: stopped before sending: cannot sign in"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("northwind: stopped:"), "{}", out.stderr);
    assert!(out.stderr.contains("--resume j.jsonl"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-secret"), "{}", out.stderr);
    let outcomes = lines(&out.stdout);
    for (tenant, id) in &given {
        let line = outcomes
            .iter()
            .find(|l| l["machine"] == *id)
            .unwrap_or_else(|| panic!("{id} of {tenant}: no line in {}", out.stdout));
        assert_eq!(line["tenant"], *tenant.as_str());
        let expected = if tenant == "northwind" {
            "not_sent"
        } else {
            "accepted"
        };
        assert_eq!(line["outcome"], expected, "{line}");
    }
    // The name resolved in fabrikam, to fabrikam's machine.
    let named = outcomes
        .iter()
        .find(|l| l["name"].as_str().is_some_and(|n| n.starts_with("ws-0001")))
        .expect("the named machine's line");
    assert_eq!(named["tenant"], "fabrikam");
    let fabrikam_ws = sim
        .machines_in("fabrikam")
        .into_iter()
        .find(|m| {
            m.computer_dns_name
                .as_deref()
                .is_some_and(|n| n.starts_with("ws-0001"))
        })
        .and_then(|m| m.id)
        .unwrap();
    assert_eq!(named["machine"], *fabrikam_ws.as_str());
    // The simulator's record: one scan per machine in the tenants that signed in.
    assert_eq!(acted_on(&sim, "contoso").len(), PER_TENANT);
    assert_eq!(acted_on(&sim, "fabrikam").len(), PER_TENANT + 1);
    assert!(acted_on(&sim, "northwind").is_empty());
    assert!(acted_on(&sim, mde_sim::DEFAULT_TENANT).is_empty());
    // Every line of the journal after its own run's names its tenant.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.lines().all(|l| TENANTS
            .iter()
            .any(|t| l.contains(&format!("\"profile\":\"{t}\"")))),
        "{text}"
    );

    another_set_of_profiles_cannot_resume(dir.path(), &sim).await;
    // Fixed, the resume sends northwind's scans only: no second scan anywhere.
    let mut resumed = with_secrets(dir.path(), &sim, mde_sim::DEFAULT_CLIENT_SECRET);
    scan_fleet(&mut resumed);
    resumed.args(["--resume", "j.jsonl"]);
    let out = run_off(resumed).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(acted_on(&sim, "contoso").len(), PER_TENANT);
    assert_eq!(acted_on(&sim, "fabrikam").len(), PER_TENANT + 1);
    assert_eq!(acted_on(&sim, "northwind").len(), PER_TENANT);
    let outcomes = lines(&out.stdout);
    let earlier = outcomes.iter().filter(|l| l["earlier"] == true).count();
    assert_eq!(earlier, 2 * PER_TENANT + 1, "{}", out.stdout);
    assert!(
        outcomes
            .iter()
            .all(|l| l["outcome"] == "accepted" && l["tenant"].is_string())
    );
    sim.stop().await;
}

/// A resume of another set of profiles is refused, sending nothing.
async fn another_set_of_profiles_cannot_resume(dir: &std::path::Path, sim: &Simulator) {
    // A resume of another set of profiles is refused, sending nothing.
    let mut two = with_secrets(dir, sim, mde_sim::DEFAULT_CLIENT_SECRET);
    two.args([
        "-o",
        "json",
        "scan",
        "--type",
        "quick",
        "--machine-name",
        "fabrikam,ws-0001",
        "contoso,x",
        "--comment",
        "Incident 42",
        "--yes",
        "--resume",
        "j.jsonl",
    ]);
    let out = run_off(two).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("records a run of the profiles contoso, fabrikam, northwind"),
        "{}",
        out.stderr
    );
}

/// The dry run: each tenant's plan, then the run's shortest time, its longest part's.
async fn each_tenant_plans_its_part(dir: &std::path::Path, sim: &Simulator) {
    // The dry run: each tenant's plan, then the run's shortest time, its longest part's.
    let mut dry = with_secrets(dir, sim, mde_sim::DEFAULT_CLIENT_SECRET);
    scan_fleet(&mut dry);
    dry.arg("--dry-run");
    let out = run_off(dry).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plans = lines(&out.stdout);
    let planned: Vec<(&str, usize)> = plans
        .iter()
        .filter_map(|p| Some((p["tenant"].as_str()?, p["requests"].as_u64()? as usize)))
        .collect();
    assert_eq!(
        planned,
        [
            ("contoso", PER_TENANT),
            ("fabrikam", PER_TENANT + 1),
            ("northwind", PER_TENANT)
        ]
    );
    let longest = plans.last().unwrap();
    assert_eq!(longest["tenants"], 3);
    let fabrikam =
        mde_client::minimum_duration(mde_client::OperationId::RunAntiVirusScan, PER_TENANT + 1);
    assert_eq!(longest["shortest_seconds"], fabrikam.as_secs());
    assert!(TENANTS.iter().all(|t| acted_on(sim, t).is_empty()));
}

/// The run of the test: a quick scan of the fleet file and fabrikam's ws-0001, as JSON.
fn scan_fleet(command: &mut std::process::Command) {
    command
        .args([
            "-o",
            "json",
            "scan",
            "--type",
            "quick",
            "--machines-file",
            "fleet.txt",
        ])
        .args([
            "--machine-name",
            "fabrikam,ws-0001",
            "--comment",
            "Incident 42",
            "--yes",
        ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_table_and_csv_carry_the_tenant_and_bare_ids_are_refused() {
    let dir = scratch("tenants-table");
    let sim = simulator().await;
    config(dir.path(), &sim);
    let contoso = tenant_machine_id("contoso", &generated_machine_id(0));
    let fabrikam = tenant_machine_id("fabrikam", &generated_machine_id(0));

    // With several profiles, a machine without its profile is refused: nothing is sent.
    let mut bare = with_secrets(dir.path(), &sim, mde_sim::DEFAULT_CLIENT_SECRET);
    bare.args([
        "--profile",
        "contoso",
        "--profile",
        "fabrikam",
        "isolate",
        &contoso,
        "--comment",
        "c",
    ]);
    let out = run_off(bare).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("PROFILE,MACHINE"), "{}", out.stderr);

    let mut csv = with_secrets(dir.path(), &sim, mde_sim::DEFAULT_CLIENT_SECRET);
    csv.args([
        "-o",
        "csv",
        "isolate",
        &format!("contoso,{contoso}"),
        &format!("fabrikam,{fabrikam}"),
        "--comment",
        "c",
    ]);
    let out = run_off(csv).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        rows[0],
        format!("{},tenant", mde_cli::json::CSV_HEADER),
        "{}",
        out.stdout
    );
    for (tenant, id) in [("contoso", &contoso), ("fabrikam", &fabrikam)] {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(id.as_str()) && r.ends_with(&format!(",{tenant}"))),
            "{}",
            out.stdout
        );
    }

    let mut table = with_secrets(dir.path(), &sim, mde_sim::DEFAULT_CLIENT_SECRET);
    table.args([
        "restrict",
        &format!("contoso,{contoso}"),
        &format!("fabrikam,{fabrikam}"),
        "--comment",
        "c",
    ]);
    let out = run_off(table).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let header = out.stdout.lines().next().unwrap();
    assert!(header.starts_with("TENANT    MACHINE"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("fabrikam  ") && l.contains(&fabrikam)),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("mde: contoso: accepted 1"),
        "{}",
        out.stderr
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_evidence_of_two_tenants_is_saved_in_a_folder_each() {
    let dir = scratch("tenants-evidence");
    let sim = simulator().await;
    config(dir.path(), &sim);
    let ids: Vec<(&str, String)> = ["contoso", "fabrikam"]
        .into_iter()
        .flat_map(|t| (0..2).map(move |i| (t, tenant_machine_id(t, &generated_machine_id(i)))))
        .collect();
    let mut collect = with_secrets(dir.path(), &sim, mde_sim::DEFAULT_CLIENT_SECRET);
    collect.args(["-o", "json", "package", "collect"]);
    collect.args(ids.iter().map(|(t, id)| format!("{t},{id}")));
    collect.args([
        "--comment",
        "Incident 42",
        "--download",
        "evidence",
        "--poll-interval",
        "10",
    ]);
    let out = run_off(collect).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let saved = lines(&out.stdout);
    for (tenant, id) in &ids {
        let line = saved
            .iter()
            .find(|l| l["machine"] == *id.as_str())
            .unwrap_or_else(|| panic!("{id}: no line in {}", out.stdout));
        assert_eq!(
            (&line["tenant"], &line["outcome"]),
            (&(*tenant).into(), &"saved".into())
        );
        // The package is in its tenant's folder, as its manifest records it.
        let file = line["record"]["file"].as_str().unwrap();
        assert!(
            dir.path()
                .join("evidence")
                .join(tenant)
                .join(file)
                .is_file()
        );
        assert_eq!(
            acted_on(&sim, tenant).iter().filter(|m| *m == id).count(),
            1
        );
    }
    for tenant in ["contoso", "fabrikam"] {
        let mut verify = mde(dir.path());
        verify.args(["package", "verify", &format!("evidence/{tenant}")]);
        let out = run_off(verify).await;
        assert_eq!(out.code, 0, "{tenant}: {}", out.stderr);
    }
    assert!(!dir.path().join("evidence").join("manifest.jsonl").exists());
    // The run's own folder has no manifest: verifying it names each tenant's, and fails.
    let mut whole = mde(dir.path());
    whole.args(["package", "verify", "evidence"]);
    let out = run_off(whole).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("verify each: evidence/contoso, evidence/fabrikam"),
        "{}",
        out.stderr
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_tenant_refused_permission_stops_alone() {
    let dir = scratch("tenants-permission");
    // In fabrikam the app may read machines, not isolate them.
    let reader = mde_sim::App {
        tenant: "fabrikam".into(),
        permissions: vec!["Machine.Read.All".into()],
        ..mde_sim::App::default_app()
    };
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: TENANTS.map(String::from).to_vec(),
        apps: vec![mde_sim::App::default_app(), reader],
        time_scale: 600.0,
        ..Config::default().with_generated_machines(2)
    })
    .await
    .unwrap();
    config(dir.path(), &sim);
    let given: Vec<(&str, String)> = ["contoso", "fabrikam"]
        .into_iter()
        .flat_map(|t| (0..2).map(move |i| (t, tenant_machine_id(t, &generated_machine_id(i)))))
        .collect();
    let mut isolate = with_secrets(dir.path(), &sim, mde_sim::DEFAULT_CLIENT_SECRET);
    isolate.args(["-o", "json", "isolate"]);
    isolate.args(given.iter().map(|(t, id)| format!("{t},{id}")));
    isolate.args(["--comment", "Incident 42"]);
    let out = run_off(isolate).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("mde: fabrikam: stopped:"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("mde: contoso: stopped"),
        "{}",
        out.stderr
    );
    assert_eq!(acted_on(&sim, "contoso").len(), 2);
    assert!(acted_on(&sim, "fabrikam").is_empty());
    for line in lines(&out.stdout) {
        let expected = match line["tenant"].as_str() {
            Some("contoso") => "accepted",
            Some("fabrikam") => "not_sent",
            other => panic!("{other:?}: {line}"),
        };
        assert_eq!(line["outcome"], expected, "{line}");
    }
    sim.stop().await;
}
