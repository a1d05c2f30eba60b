//! Hunting from the command line, `mde` run as a binary against the simulator over loopback:
//! `mde hunt` prints a query's rows, and `--from-hunt` acts on the machines a query finds,
//! with a dry run, a confirmation, a journal and a resume that never runs the query again,
//! each checked against the simulator's own record.

use std::collections::BTreeSet;

use mde_client::OperationId;
use mde_client::types::MachineActionType;
use mde_sim::{App, Config, Simulator};

mod common;
use common::{against, kill_at, lines, run_off, scratch, words};

/// The machines that ran PowerShell in the last two days: about a third of the inventory
/// (two process events a machine a day, a tenth of them PowerShell).
const QUERY: &str = "DeviceProcessEvents | where FileName =~ 'powershell.exe' and Timestamp > ago(2d) | distinct DeviceId";

async fn simulator(config: Config) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 600.0,
        hunting_rows: 2,
        ..config
    })
    .await
    .unwrap()
}

/// The ids `mde hunt QUERY -o json` prints.
async fn hunted(dir: &std::path::Path, sim: &Simulator) -> BTreeSet<String> {
    let mut hunt = against(dir, sim);
    hunt.args(["hunt", QUERY, "-o", "json"]);
    let out = run_off(hunt).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("call(s)"), "the cost: {}", out.stderr);
    let rows = lines(&out.stdout);
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r["DeviceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), rows.len(), "distinct: each machine once");
    ids
}

/// The machines the simulator has an isolation of, with how many each.
fn isolated(sim: &Simulator) -> Vec<String> {
    let isolations = sim
        .actions()
        .into_iter()
        .filter(|a| a.type_ == Some(MachineActionType::Isolate));
    isolations.filter_map(|a| a.machine_id).collect()
}

/// `mde isolate --from-hunt QUERY`, with more words.
fn isolate(dir: &std::path::Path, sim: &Simulator, more: &str) -> std::process::Command {
    let mut command = against(dir, sim);
    command.args(words(
        "isolate --type full --comment Incident-42 --from-hunt",
    ));
    command.arg(QUERY).args(words(more));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hunt_then_isolate_acts_on_what_it_found_once() {
    let dir = scratch("hunt-isolate");
    let sim = simulator(Config::default().with_generated_machines(100)).await;
    let found = hunted(dir.path(), &sim).await;
    assert!(
        found.len() > 10 && found.len() < sim.machines().len(),
        "{}",
        found.len()
    );
    // The dry run: the query, its cost and its machines; nothing sent.
    let dry = run_off(isolate(dir.path(), &sim, "--dry-run -o json")).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stderr.contains("hunt (DeviceId of)") && dry.stderr.contains(QUERY),
        "{}",
        dry.stderr
    );
    assert!(
        dry.stderr.contains(&format!("{} machine(s)", found.len())),
        "{}",
        dry.stderr
    );
    assert!(sim.actions().is_empty());
    // Over 10 machines and no terminal: the count asked for, nothing sent.
    let unasked = run_off(isolate(dir.path(), &sim, "--journal unasked.jsonl")).await;
    assert_eq!(unasked.code, 2, "{}", unasked.stderr);
    assert!(
        unasked.stderr.contains(&found.len().to_string()),
        "{}",
        unasked.stderr
    );
    assert!(sim.actions().is_empty());
    // Killed once a request is on its way, then resumed: the query is not run again, and
    // every machine it found is isolated once.
    let journal = dir.path().join("j.jsonl");
    kill_at(
        isolate(dir.path(), &sim, "--yes --journal j.jsonl"),
        &journal,
        "sending",
    )
    .await;
    let queries = sim.calls(OperationId::RunHuntingQuery);
    let resumed = run_off(isolate(dir.path(), &sim, "--yes --resume j.jsonl")).await;
    // 1 when a request the kill cut off is unknown: it is not sent again.
    assert!([0, 1].contains(&resumed.code), "{}", resumed.stderr);
    assert_eq!(
        sim.calls(OperationId::RunHuntingQuery),
        queries,
        "not run again"
    );
    // The machines the run's hunt found, as journaled (the simulator's clock moves ten
    // minutes a second: rows leave the two days between one hunt and the next).
    let text = std::fs::read_to_string(&journal).unwrap();
    let hunts: Vec<_> = lines(&text)
        .into_iter()
        .filter(|l| l["event"] == "hunted")
        .collect();
    let [hunt] = &hunts[..] else {
        panic!("one hunt journaled: {text}")
    };
    let journaled: BTreeSet<String> = (hunt["machines"].as_array().unwrap().iter())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(journaled.intersection(&found).count() * 10 >= found.len() * 9);
    let isolations = isolated(&sim);
    let once: BTreeSet<String> = isolations.iter().cloned().collect();
    assert_eq!(once.len(), isolations.len(), "each once");
    assert!(once.is_subset(&journaled));
    // A request the kill cut off may not have left: unknown, and not sent again.
    let summary = resumed
        .stderr
        .rsplit(", unknown ")
        .next()
        .unwrap_or_default();
    let unknown: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        journaled.len() - once.len() <= unknown,
        "{}",
        resumed.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hunt_by_name_or_with_nothing_found_or_no_such_column() {
    let dir = scratch("hunt-names");
    let sim = simulator(Config::default().with_generated_machines(6)).await;
    // Names resolve as --machine-name's do.
    let mut by_name = against(dir.path(), &sim);
    by_name.args(words(
        "scan --type quick --comment c --id-column DeviceName --yes --from-hunt",
    ));
    by_name.arg("DeviceInfo | distinct DeviceName");
    let out = run_off(by_name).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let scanned: BTreeSet<String> = sim
        .actions()
        .into_iter()
        .filter_map(|a| a.machine_id)
        .collect();
    let all: BTreeSet<String> = sim.machines().into_iter().filter_map(|m| m.id).collect();
    assert_eq!(scanned, all);
    // A column the answer lacks: named, with those it has; nothing sent.
    let before = sim.actions().len();
    let mut missing = against(dir.path(), &sim);
    missing.args(words(
        "scan --type quick --comment c --id-column MachineId --from-hunt",
    ));
    missing.arg("DeviceInfo | project DeviceId, DeviceName");
    let out = run_off(missing).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no column MachineId") && out.stderr.contains("DeviceId, DeviceName"),
        "{}",
        out.stderr
    );
    // Nothing found: nothing sent, said, exit 0 (1 with --fail-empty).
    let none = "DeviceInfo | where DeviceName == 'nobody' | project DeviceId";
    for (more, code) in [("", 0), ("--fail-empty", 1)] {
        let mut empty = against(dir.path(), &sim);
        empty
            .args(words("scan --type quick --comment c --from-hunt"))
            .arg(none);
        empty.args(words(more).into_iter().filter(|w| !w.is_empty()));
        let out = run_off(empty).await;
        assert_eq!(out.code, code, "{}", out.stderr);
        assert!(out.stderr.contains("found no machine"), "{}", out.stderr);
    }
    assert_eq!(sim.actions().len(), before);
    // Refused before anything is sent: an empty query, a file that is not UTF-8.
    std::fs::write(dir.path().join("bad.kql"), b"DeviceInfo \xff").unwrap();
    for bad in ["--from-hunt @bad.kql", "--from-hunt @missing.kql"] {
        let mut refused = against(dir.path(), &sim);
        refused
            .args(words("scan --type quick --comment c"))
            .args(words(bad));
        assert_eq!(run_off(refused).await.code, 2);
    }
    // A query file as Windows tools save it (a byte-order mark, CRLF) is read.
    let windows = b"\xef\xbb\xbfDeviceInfo\r\n| distinct DeviceId\r\n";
    std::fs::write(dir.path().join("windows.kql"), windows).unwrap();
    let mut saved = against(dir.path(), &sim);
    saved.args(words(
        "scan --type quick --comment c --dry-run --from-hunt @windows.kql",
    ));
    let out = run_off(saved).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let all = format!("{} machine(s)", sim.machines().len());
    assert!(out.stderr.contains(&all), "{}", out.stderr);
    assert_eq!(sim.calls(OperationId::RunHuntingQuery), 5);
}

/// Three tenants, one whose app lacks ThreatHunting.Read.All: `mde hunt` prints the others'
/// rows with a tenant column and names the one refused; `--from-hunt` acts in each tenant on
/// what its own hunt found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_hunt_at_once_and_one_refused_stops_alone() {
    let tenants = ["contoso", "fabrikam", "northwind"];
    let dir = scratch("hunt-tenants");
    let limited = format!(
        "northwind/{}:{}:Machine.Read.All,Machine.Scan",
        mde_sim::DEFAULT_CLIENT_ID,
        mde_sim::DEFAULT_CLIENT_SECRET
    );
    let config = Config {
        tenants: tenants.map(String::from).to_vec(),
        apps: vec![App::default_app(), App::parse(&limited).unwrap()],
        ..Config::default().with_generated_machines(3)
    };
    let sim = simulator(config).await;
    common::profiles(dir.path(), sim.base_url(), &tenants);
    let profiles = || {
        let mut command = common::with_profiles(dir.path(), &sim, &tenants);
        for t in tenants {
            command.args(["--profile", t]);
        }
        command
    };
    let mut hunt = profiles();
    hunt.args(["hunt", "DeviceInfo | distinct DeviceId", "-o", "csv"]);
    let out = run_off(hunt).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("northwind: stopped") && out.stderr.contains("ThreatHunting.Read.All"),
        "{}",
        out.stderr
    );
    let mut rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows.remove(0), "tenant,DeviceId");
    for tenant in &tenants[..2] {
        let ids: BTreeSet<&str> = rows
            .iter()
            .filter_map(|r| r.strip_prefix(&format!("{tenant},")))
            .collect();
        let known: BTreeSet<String> = sim
            .machines_in(tenant)
            .into_iter()
            .filter_map(|m| m.id)
            .collect();
        assert_eq!(ids, known.iter().map(String::as_str).collect(), "{tenant}");
    }
    let mut scan = profiles();
    scan.args(words("scan --type quick --comment c --yes --from-hunt"))
        .arg("DeviceInfo | distinct DeviceId");
    let out = run_off(scan).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    for tenant in &tenants[..2] {
        let scanned: BTreeSet<String> = sim
            .actions_in(tenant)
            .into_iter()
            .filter_map(|a| a.machine_id)
            .collect();
        let known: BTreeSet<String> = sim
            .machines_in(tenant)
            .into_iter()
            .filter_map(|m| m.id)
            .collect();
        assert_eq!(scanned, known, "{tenant}");
    }
    assert!(sim.actions_in("northwind").is_empty());
}
