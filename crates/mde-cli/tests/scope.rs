//! A profile scopes the run: `mde` run as a binary against a simulator of two tenants whose
//! machines have the same names, the simulator's record the judge of what was sent. A machine
//! naming a profile outside the command line's (or `MDE_PROFILE`'s) is refused before anything
//! is sent, each line named; a bare line beside profiled ones is refused; a run of one profile
//! names its tenant in every output.

use mde_sim::{Config, Simulator};

mod common;
use common::{lines, mde, run_off, scratch};

const TENANTS: [&str; 2] = ["contoso", "fabrikam"];

async fn simulator() -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: TENANTS.map(String::from).to_vec(),
        names: vec!["ws-0001".into(), "ws-0002".into()],
        time_scale: 600.0,
        ..Config::default()
    })
    .await
    .unwrap()
}

/// `mde` with a profile for each tenant, both secrets set, no `MDE_PROFILE`.
fn with_profiles(dir: &std::path::Path, sim: &Simulator) -> std::process::Command {
    common::profiles(dir, sim.base_url(), &TENANTS);
    common::with_profiles(dir, sim, &TENANTS)
}

/// The names of `tenant`'s machines that carry `tag`, in the simulator's record.
fn tagged(sim: &Simulator, tenant: &str, tag: &str) -> Vec<String> {
    let mut names: Vec<String> = sim
        .machines_in(tenant)
        .into_iter()
        .filter(|m| m.machine_tags.iter().flatten().any(|t| t == tag))
        .filter_map(|m| m.computer_dns_name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_profile_scopes_the_run_and_another_profiles_machines_are_refused() {
    let dir = scratch("scope");
    let sim = simulator().await;
    let names = dir.path().join("names.txt");
    std::fs::write(
        &names,
        "contoso,ws-0001\ncontoso,ws-0002\nfabrikam,ws-0001\n",
    )
    .unwrap();
    let tag = |command: &mut std::process::Command| {
        command.args([
            "tag",
            "add",
            "ONLY-FAB",
            "--names-file",
            "names.txt",
            "--yes",
        ]);
    };

    // --profile fabrikam, then MDE_PROFILE=fabrikam: the two contoso lines refused, by line.
    for by_env in [false, true] {
        let mut command = with_profiles(dir.path(), &sim);
        match by_env {
            true => command.env("MDE_PROFILE", "fabrikam"),
            false => command.args(["--profile", "fabrikam"]),
        };
        tag(&mut command);
        let out = run_off(command).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("2 machine(s) refused, nothing was sent"),
            "{}",
            out.stderr
        );
        for line in [1, 2] {
            let said = format!(
                "names.txt line {line}: contoso,ws-000{line} names the profile contoso, outside this run's --profile fabrikam"
            );
            assert!(out.stderr.contains(&said), "{said}\n{}", out.stderr);
        }
        assert!(!out.stderr.contains("line 3"), "{}", out.stderr);
    }
    // --profile contoso with only fabrikam's machines: refused, not "left out" and sent.
    std::fs::write(&names, "fabrikam,ws-0001\n").unwrap();
    let mut command = with_profiles(dir.path(), &sim);
    command.args(["--profile", "contoso"]);
    tag(&mut command);
    let out = run_off(command).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("left out"), "{}", out.stderr);
    for tenant in TENANTS {
        assert_eq!(
            tagged(&sim, tenant, "ONLY-FAB"),
            Vec::<String>::new(),
            "{tenant}"
        );
    }

    // Both profiles given: each machine tagged in its own tenant, and nowhere else.
    std::fs::write(
        &names,
        "contoso,ws-0001\ncontoso,ws-0002\nfabrikam,ws-0001\n",
    )
    .unwrap();
    let mut command = with_profiles(dir.path(), &sim);
    command.args(["--profile", "contoso", "--profile", "fabrikam"]);
    tag(&mut command);
    let out = run_off(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        tagged(&sim, "contoso", "ONLY-FAB"),
        ["ws-0001.contoso.com", "ws-0002.contoso.com"]
    );
    assert_eq!(
        tagged(&sim, "fabrikam", "ONLY-FAB"),
        ["ws-0001.fabrikam.com"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_bare_line_beside_profiled_ones_is_refused_and_one_profile_names_its_tenant() {
    let dir = scratch("scope-bare");
    let sim = simulator().await;
    std::fs::write(dir.path().join("names.txt"), "contoso,ws-0001\nws-0002\n").unwrap();
    for profile in [None, Some("contoso")] {
        let mut command = with_profiles(dir.path(), &sim);
        command.args(profile.map(|p| ["--profile", p]).into_iter().flatten());
        command.args(["tag", "add", "MIXED", "--names-file", "names.txt", "--yes"]);
        let out = run_off(command).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("names.txt line 2: ws-0002 names no profile, while other machines do"),
            "{}",
            out.stderr
        );
    }
    for tenant in TENANTS {
        assert_eq!(tagged(&sim, tenant, "MIXED"), Vec::<String>::new());
    }

    // One profile in play: the dry run, the table and CSV name the tenant.
    let scan = |output: &str, extra: &str| {
        let mut command = with_profiles(dir.path(), &sim);
        command.args([
            "--profile",
            "fabrikam",
            "-o",
            output,
            "scan",
            "--type",
            "quick",
        ]);
        command.args([
            "--machine-name",
            "ws-0001",
            "--comment",
            "Incident 42",
            "--yes",
        ]);
        command.args([extra].into_iter().filter(|e| !e.is_empty()));
        command
    };
    let out = run_off(scan("json", "--dry-run")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = &lines(&out.stdout)[0];
    assert_eq!(plan["tenant"], "fabrikam", "{plan}");
    let out = run_off(scan("table", "")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut table = out.stdout.lines();
    assert!(
        table.next().unwrap().starts_with("TENANT    MACHINE"),
        "{}",
        out.stdout
    );
    assert!(
        table.next().unwrap().starts_with("fabrikam  "),
        "{}",
        out.stdout
    );
    assert_eq!(sim.actions_in("fabrikam").len(), 1);
    assert_eq!(sim.actions_in("contoso").len(), 0);
}

#[test]
fn test_two_ids_on_a_line_with_a_comma_are_refused_not_read_as_a_profile() {
    let dir = scratch("scope-comma");
    std::fs::write(
        dir.path().join("fleet.txt"),
        "1e5bc9d7e413ddd7902c2932e418702b84d0cc07, fb9ab6be3965095a09c057be7c90f0a2\n",
    )
    .unwrap();
    let out = common::run(mde(dir.path()).args([
        "--simulate",
        "scan",
        "--type",
        "quick",
        "--machines-file",
        "fleet.txt",
        "--comment",
        "c",
    ]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("fleet.txt line 1: holds more than one value"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("config.toml"), "{}", out.stderr);
}
