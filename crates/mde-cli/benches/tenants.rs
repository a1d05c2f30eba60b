//! Five tenants of 1,000 collections each in one `mde` run (the binary, a profile per tenant,
//! every machine given as `PROFILE,MACHINE`) against a simulator of five tenants on its
//! accelerated clock: the run's simulated time against the shortest time one tenant's 1,000
//! collections can take at the documented limits (the budgets work in parallel: the goal is at
//! most 1.02x), and from the simulator's record each tenant's collections and the requests
//! refused for its limits (429). x30, not the other benchmarks' x60: at x60 every real
//! millisecond is 60 simulated ones, and five clients and the simulator share two cores.
//!
//! `cargo bench -p mde-cli --bench tenants`

use mde_client::{OperationId, minimum_duration};
use mde_sim::{Config, Simulator, generated_machine_id, tenant_machine_id};

const TENANTS: usize = 5;
const MACHINES: usize = 1000;
const SCALE: f64 = 30.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tenants: Vec<String> = (1..=TENANTS).map(|i| format!("tenant-{i}")).collect();
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: tenants.clone(),
        time_scale: SCALE,
        ..Config::default().with_generated_machines(MACHINES)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let mut config = String::new();
    let mut fleet = String::new();
    for tenant in &tenants {
        config.push_str(&format!(
            "[profiles.{tenant}]\ntenant = \"{tenant}\"\nclient_id = \"{}\"\nsecret_env = \"BENCH_SECRET\"\napi_url = \"{base}\"\nlogin_url = \"{base}\"\n\n",
            mde_sim::DEFAULT_CLIENT_ID
        ));
        for i in 0..MACHINES {
            let id = tenant_machine_id(tenant, &generated_machine_id(i));
            fleet.push_str(&format!("{tenant},{id}\n"));
        }
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::write(dir.path().join("fleet.txt"), fleet).unwrap();

    let mut mde = std::process::Command::new(env!("CARGO_BIN_EXE_mde"));
    mde.current_dir(dir.path())
        .env("MDE_CONFIG", dir.path().join("config.toml"))
        .env("BENCH_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
        .env_remove("MDE_PROFILE")
        .env_remove("MDE_TOKEN")
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .args(["--time-scale", &SCALE.to_string(), "-o", "json"])
        .args(["package", "collect", "--machines-file", "fleet.txt"])
        .args(["--comment", "bench", "--yes", "--journal", "j.jsonl"])
        .stdin(std::process::Stdio::null());
    let started = sim.clock().elapsed();
    let real = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || mde.output().unwrap())
        .await
        .unwrap();
    let took = sim.clock().elapsed() - started;
    let real = real.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();

    let op = OperationId::CollectInvestigationPackage;
    let bound = minimum_duration(op, MACHINES);
    println!(
        "{TENANTS} tenants x {MACHINES} collections in one run: {:.1} s simulated ({:.1} s real); one tenant's bound at the documented limits {} s: {:.4}x (goal <= 1.02x)",
        took.as_secs_f64(),
        real.as_secs_f64(),
        bound.as_secs(),
        took.as_secs_f64() / bound.as_secs_f64()
    );
    // Where the time went: the journal's first request and last answer, in real time.
    let journal = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
    let times: Vec<chrono::DateTime<chrono::Utc>> = journal
        .lines()
        .filter(|l| l.contains("\"event\":\"sending\"") || l.contains("\"event\":\"done\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["at"].as_str()?.parse().ok())
        .collect();
    if let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) {
        let span = (*last - *first).to_std().unwrap_or_default();
        println!(
            "  first request to last answer: {:.1} s simulated; the rest ({:.1} s simulated, {:.0} ms real) is the process starting, signing in five times and ending",
            span.as_secs_f64() * SCALE,
            took.as_secs_f64() - span.as_secs_f64() * SCALE,
            (real.as_secs_f64() - span.as_secs_f64()) * 1000.0
        );
    }
    for tenant in &tenants {
        let accepted = stdout
            .lines()
            .filter(|l| l.contains(&format!("\"tenant\":\"{tenant}\"")))
            .filter(|l| l.contains("\"outcome\":\"accepted\""))
            .count();
        println!(
            "  {tenant}: {accepted} accepted, {} collections in the simulator's record, {} requests refused for the limits (429)",
            sim.actions_in(tenant).len(),
            sim.refused_in(tenant)
        );
    }
    sim.stop().await;
}
