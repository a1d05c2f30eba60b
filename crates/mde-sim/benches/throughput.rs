//! Requests per second the simulator answers for `collectInvestigationPackage` on loopback,
//! with the load generated in the same process (so both share the machine's cores):
//! accepted collections (201) and rate-limited ones (429).
//!
//! `cargo bench -p mde-sim --bench throughput`

use std::sync::Arc;
use std::time::Instant;

use mde_client::reqwest;
use mde_sim::{App, Config, Simulator, generated_machine_id};

const CONCURRENCY: usize = 32;
const APPS: usize = 200;
const PER_APP: usize = 100; // one minute's budget of collections per app

/// Sends every (token, machine) request with `CONCURRENCY` in flight; returns requests/s and
/// how many got `expected`.
async fn run(base: &str, requests: Vec<(String, String)>, expected: u16) -> (f64, usize) {
    mde_client::install_crypto_provider();
    let http = reqwest::Client::new();
    let total = requests.len();
    let queue = Arc::new(std::sync::Mutex::new(requests));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, queue, base) = (http.clone(), queue.clone(), base.to_string());
        workers.push(tokio::spawn(async move {
            let mut hits = 0;
            loop {
                let Some((token, machine)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let status = http
                    .post(format!(
                        "{base}/api/machines/{machine}/collectInvestigationPackage"
                    ))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(r#"{"Comment":"throughput"}"#)
                    .send()
                    .await
                    .unwrap()
                    .status();
                hits += usize::from(status.as_u16() == expected);
            }
            hits
        }));
    }
    let mut hits = 0;
    for w in workers {
        hits += w.await.unwrap();
    }
    (total as f64 / started.elapsed().as_secs_f64(), hits)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let apps: Vec<App> = (0..APPS)
        .map(|i| App::parse(&format!("bench{i}:secret:Machine.CollectForensics")).unwrap())
        .collect();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        apps: apps.clone(),
        ..Config::default().with_generated_machines(APPS * PER_APP)
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut tokens = Vec::new();
    for app in &apps {
        tokens.push(
            mde_sim::sign_in(sim.base_url(), &app.tenant, &app.client_id, &app.secret)
                .await
                .unwrap(),
        );
    }

    // Accepted: each app collects on its own 100 machines, within its minute's budget.
    let accepted: Vec<(String, String)> = (0..APPS * PER_APP)
        .map(|i| (tokens[i / PER_APP].clone(), generated_machine_id(i)))
        .collect();
    let n = accepted.len();
    let (rate, created) = run(sim.base_url(), accepted, 201).await;
    println!("collect, accepted (201): {n} requests, {created} created, {rate:.0} requests/s");

    // Refused: one app, its budget spent, is answered 429 with Retry-After.
    let refused: Vec<(String, String)> = (0..n)
        .map(|i| (tokens[0].clone(), generated_machine_id(i)))
        .collect();
    let (rate, limited) = run(sim.base_url(), refused, 429).await;
    println!("collect, rate-limited (429): {n} requests, {limited} limited, {rate:.0} requests/s");
    sim.stop().await;
}
