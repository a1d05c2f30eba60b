//! 100 packages of 15 MB (the reported average) on loopback:
//! - the peak resident memory of `mde package collect --download` collecting and saving them
//!   all (`/usr/bin/time -v`; the simulator runs in this process, not in `mde`'s);
//! - the client's download throughput against `curl` fetching the same links, one at a time.
//!
//! `cargo bench -p mde-cli --bench packages` (needs `/usr/bin/time` and `curl`; writes about
//! 3 GB to the temporary folder, a set at a time)

use std::process::Command;

use futures_util::StreamExt;
use std::time::{Duration, Instant};

use mde_sim::{Config, Simulator, generated_machine_id};

const N: usize = 100;
const SIZE: u64 = 15_000_000;
const SCALE: f64 = 6000.0;

fn main() {
    // The simulator on a runtime of its own, as a service would be: the client's work (and
    // curl's) is measured beside it, not in its queue.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = server.block_on(start());
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    client.block_on(bench(&sim));
    server.block_on(sim.stop());
}

async fn start() -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: SCALE,
        package_size: SIZE,
        // Links outlive the run however fast its clock: both passes use the same ones.
        package_link_lifetime: Duration::from_secs(1000 * 3600),
        ..Config::default().with_generated_machines(N)
    })
    .await
    .unwrap()
}

async fn bench(sim: &Simulator) {
    let machines: Vec<String> = (0..N).map(generated_machine_id).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.txt"), machines.join("\n")).unwrap();

    peak_memory(sim, dir.path()).await;
    throughput(sim, dir.path()).await;
}

/// 1. Peak memory of the whole pipeline.
async fn peak_memory(sim: &Simulator, dir: &std::path::Path) {
    let scale = SCALE.to_string();
    let mut run = Command::new("/usr/bin/time");
    run.arg("-v")
        .arg(env!("CARGO_BIN_EXE_mde"))
        .args(["--api-url", sim.base_url(), "--login-url", sim.base_url()])
        .args(["--time-scale", &scale, "--journal", "j.jsonl"])
        .args(["package", "collect", "--machines-file", "fleet.txt"])
        .args(["--comment", "bench", "--download", "evidence", "--yes"])
        .env("AZURE_TENANT_ID", mde_sim::DEFAULT_TENANT)
        .env("AZURE_CLIENT_ID", mde_sim::DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mde_sim::DEFAULT_CLIENT_SECRET)
        .current_dir(dir);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss_kb: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .expect("/usr/bin/time -v reports the peak");
    println!(
        "mde package collect --download, {N} x {SIZE} bytes: peak RSS {:.1} MB, {:.1} s",
        rss_kb as f64 / 1024.0,
        took.as_secs_f64()
    );
    std::fs::remove_dir_all(dir.join("evidence")).unwrap();
}

/// 2. Throughput, on the same (already written) packages: the client, then curl.
async fn throughput(sim: &Simulator, dir: &std::path::Path) {
    let client = sim.client_builder().build().unwrap();
    let mut links = Vec::new();
    for action in sim.actions() {
        let id = action.id.unwrap();
        links.push((id.clone(), client.package_link(&id).await.unwrap()));
    }
    let bytes = SIZE as f64 * N as f64;
    // curl before and after the client, the faster taken: the disk's writeback noise
    // favours neither.
    let urls: Vec<String> = links.iter().map(|(_, l)| l.expose().to_string()).collect();
    let curl_pass = |name: &'static str| {
        let into = dir.join(name);
        let urls = urls.clone();
        async move {
            std::fs::create_dir(&into).unwrap();
            let target = into.clone();
            let took = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                for (i, url) in urls.iter().enumerate() {
                    let status = Command::new("curl")
                        .args(["-sS", "--fail", "-o"])
                        .arg(target.join(format!("{i}.zip")))
                        .arg(url)
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
                started.elapsed()
            })
            .await
            .unwrap();
            std::fs::remove_dir_all(&into).unwrap();
            took
        }
    };
    let curl_before = curl_pass("curl-before").await;
    // One at a time, as curl; then four at once, as `--download` does by default.
    let mut ours = Vec::new();
    for parallel in [1, 4] {
        let into = dir.join(format!("client-{parallel}"));
        std::fs::create_dir(&into).unwrap();
        let started = Instant::now();
        futures_util::stream::iter(links.iter().enumerate())
            .for_each_concurrent(parallel, |(i, (id, link))| {
                let dest = into.join(format!("{i}.zip"));
                let client = &client;
                async move {
                    client
                        .download_package(id, Some(link.clone()), &dest)
                        .await
                        .unwrap();
                }
            })
            .await;
        ours.push(started.elapsed());
        std::fs::remove_dir_all(&into).unwrap();
    }
    let curl = curl_before.min(curl_pass("curl-after").await);
    let rate = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!(
        "curl, one at a time: {:.0} MB/s ({:.2} s)",
        rate(curl),
        curl.as_secs_f64()
    );
    for (parallel, took) in [1, 4].iter().zip(&ours) {
        println!(
            "mde-client, {parallel} at a time (SHA-256 and fdatasync included): {:.0} MB/s ({:.2} s): {:.2}x curl",
            rate(*took),
            took.as_secs_f64(),
            curl.as_secs_f64() / took.as_secs_f64()
        );
    }
}
