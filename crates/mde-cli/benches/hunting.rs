//! Advanced hunting, on loopback:
//! 1. `mde hunt` of a 300,000-row answer into a CSV file: the calls made against the fewest
//!    the 100,000-row cap allows, rows a second, and the peak resident memory of `mde`
//!    (`/usr/bin/time -v`; the simulator runs in this process, not in `mde`'s);
//! 2. 100 queries at once in one tenant against the 45-a-minute bound: the shortest time the
//!    quota allows over the time taken, and the 429s met (none expected);
//! 3. 5 tenants x 100 queries at once against one tenant's 100: each tenant has its own
//!    budget, so the five take the time of one. (45 a tenant would all go at once and
//!    measure only the simulator's speed.)
//!
//! `cargo bench -p mde-cli --bench hunting` (needs `/usr/bin/time`)

use std::process::Command;
use std::time::{Duration, Instant};

use mde_client::hunting::Hunt;
use mde_client::{Client, OperationId};
use mde_sim::{Config, Simulator};

const ROWS_A_DAY: u32 = 100;
const MACHINES: usize = 100;
const TENANTS: [&str; 5] = ["t1", "t2", "t3", "t4", "t5"];

fn main() {
    // The simulator on a runtime of its own, as a service would be.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = server.block_on(start(600.0));
    client.block_on(to_csv(&sim));
    server.block_on(sim.stop());
    // Slower, so that the simulator's own work on 500 queries at once (two cores) is not
    // counted as the client's pace: a real millisecond is 10 simulated ones.
    let sim = server.block_on(start(10.0));
    client.block_on(quota(&sim));
    server.block_on(sim.stop());
}

async fn start(scale: f64) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: scale,
        hunting_rows: ROWS_A_DAY,
        tenants: TENANTS.map(String::from).to_vec(),
        ..Config::default().with_generated_machines(MACHINES)
    })
    .await
    .unwrap()
}

/// 1. A 300,000-row hunt into a CSV file.
async fn to_csv(sim: &Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new("/usr/bin/time");
    run.arg("-v")
        .arg(env!("CARGO_BIN_EXE_mde"))
        .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
        .args(["--time-scale", "600", "hunt", "-o", "csv", "--out", "rows.csv"])
        .arg("DeviceFileEvents | project Timestamp, DeviceId, DeviceName, FileName, FolderPath, SHA1")
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
        .current_dir(dir.path());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let number = |after: &str| -> u64 {
        let line = stderr.lines().find(|l| l.contains(after)).expect(after);
        let text = line.split(after).nth(1).unwrap().trim();
        text.split([' ', '(']).next().unwrap().parse().unwrap()
    };
    let rss_kb = number("Maximum resident set size (kbytes):");
    let cost = stderr.lines().find(|l| l.contains("row(s) in")).unwrap();
    let words: Vec<&str> = cost.split_whitespace().collect();
    let rows: u64 = words[1].parse().unwrap();
    let calls: u64 = words[4].parse().unwrap();
    let written = std::fs::read_to_string(dir.path().join("rows.csv")).unwrap();
    assert_eq!(
        written.lines().count() as u64,
        rows + 1,
        "a header and every row"
    );
    println!(
        "mde hunt to CSV, {rows} rows: {calls} calls (the fewest {}), {:.0} rows/s, peak RSS {:.1} MB, {:.1} s",
        rows.div_ceil(100_000),
        rows as f64 / took.as_secs_f64(),
        rss_kb as f64 / 1024.0,
        took.as_secs_f64()
    );
}

/// `n` queries at once through `client`; how long they took on the simulator's clock.
async fn queries(sim: &Simulator, client: &Client, n: usize) -> Duration {
    let started = sim.clock().elapsed();
    let hunt = Hunt::new("DeviceInfo | take 1");
    let runs = (0..n).map(|_| client.hunt(&hunt));
    for result in futures_util::future::join_all(runs).await {
        result.unwrap();
    }
    sim.clock().elapsed() - started
}

/// 2 and 3. The call quota, in one tenant and in five at once.
async fn quota(sim: &Simulator) {
    const N: usize = 100;
    let bound = mde_client::minimum_duration(OperationId::RunHuntingQuery, N);
    let of = |tenant: &str| {
        sim.client_builder()
            .client_credentials(
                tenant,
                mde_sim::DEFAULT_CLIENT_ID,
                mde_sim::DEFAULT_CLIENT_SECRET,
            )
            .build()
            .unwrap()
    };
    let one = queries(sim, &of(mde_sim::DEFAULT_TENANT), N).await;
    println!(
        "{N} queries in one tenant: {:.1} s of simulated time, the quota's bound {:.1} s: {:.1} % of the bound's pace, {} 429s",
        one.as_secs_f64(),
        bound.as_secs_f64(),
        100.0 * bound.as_secs_f64() / one.as_secs_f64(),
        sim.refused_in(mde_sim::DEFAULT_TENANT)
    );
    let clients: Vec<Client> = TENANTS.iter().map(|t| of(t)).collect();
    let started = sim.clock().elapsed();
    let each = clients.iter().map(|c| async move {
        let hunt = Hunt::new("DeviceInfo | take 1");
        let runs = (0..N).map(|_| c.hunt(&hunt));
        futures_util::future::join_all(runs).await
    });
    for results in futures_util::future::join_all(each).await {
        assert!(results.iter().all(Result::is_ok));
    }
    let five = sim.clock().elapsed() - started;
    let refused: usize = TENANTS.iter().map(|t| sim.refused_in(t)).sum();
    println!(
        "{} tenants x {N} queries at once: {:.1} s against one tenant's {:.1} s: {:.3}x, {refused} 429s",
        TENANTS.len(),
        five.as_secs_f64(),
        one.as_secs_f64(),
        five.as_secs_f64() / one.as_secs_f64()
    );
}
