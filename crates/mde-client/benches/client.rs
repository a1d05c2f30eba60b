//! Two measurements, against the simulator on loopback:
//!
//! 1. Per-call cost of `mde_client` against a `reqwest` call doing the same work (POST with a
//!    bearer token, read the answer, decode the MachineAction) with the same timeouts, one call
//!    at a time; and of the generated client through the hooks alone (without `Call`: no
//!    checks, no retries), to tell the two layers apart.
//! 2. How long a caller waits when it fires 120 collections at once, and how many 429s it gets.
//!
//! `cargo bench -p mde-client --bench client`

use std::sync::Arc;
use std::time::{Duration, Instant};

use mde_client::{Client, WaitReason, reqwest, types};
use mde_sim::{Config, Simulator, generated_machine_id};

const CALLS: usize = 20_000;

/// The median of per-call times.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[allow(deprecated)] // the Graph variant: the one operation without a documented rate limit
async fn overhead(sim: &Simulator) {
    let token = mde_sim::sign_in(
        sim.base_url(),
        mde_sim::DEFAULT_TENANT,
        mde_sim::DEFAULT_CLIENT_ID,
        mde_sim::DEFAULT_CLIENT_SECRET,
    )
    .await
    .unwrap();
    let base = sim.base_url().to_string();
    // The same transport settings as the client's defaults (a request timeout costs a timer).
    mde_client::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let client = Client::builder()
        .base_url(&base)
        .bearer_token(token.as_str())
        .build()
        .unwrap();
    let mut machine = 0;
    let mut next = || {
        machine += 1;
        generated_machine_id(machine)
    };
    // Warm both connections.
    for _ in 0..200 {
        client
            .collect_investigation_package_graph(&next(), "warm")
            .await
            .unwrap();
    }
    // Alternating one call of each, so that drift on the shared machine hits both alike; the
    // median of each side's per-call times.
    let (mut raw_samples, mut client_samples, mut gen_samples) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CALLS {
        let started = Instant::now();
        let answer = http
            .post(format!(
                "{base}/testwdatppreview/machines/{}/collectInvestigationPackage",
                next()
            ))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "Comment": "bench" }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        let bytes = answer.bytes().await.unwrap();
        let _: types::MachineAction = serde_json::from_slice(&bytes).unwrap();
        raw_samples.push(started.elapsed());

        let started = Instant::now();
        client
            .collect_investigation_package_graph(&next(), "bench")
            .await
            .unwrap();
        client_samples.push(started.elapsed());

        let started = Instant::now();
        #[allow(deprecated)]
        client
            .raw(mde_client::OperationId::CollectInvestigationPackageGraph)
            .unwrap()
            .collect_investigation_package_graph()
            .id(next())
            .body_map(|b| b.comment("bench"))
            .send()
            .await
            .unwrap();
        gen_samples.push(started.elapsed());
    }

    let (raw, typed, generated) = (
        median(raw_samples),
        median(client_samples),
        median(gen_samples),
    );
    println!(
        "per call, median of {CALLS} alternating calls each: reqwest {raw:?}, mde-client {typed:?}, ratio {:.3} (the generated client through the hooks alone: {generated:?}, {:.3})",
        typed.as_secs_f64() / raw.as_secs_f64(),
        generated.as_secs_f64() / raw.as_secs_f64()
    );
}

async fn fleet_of_120() {
    // Six simulated seconds a real one: the minute the limit requires passes in ten.
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 6.0,
        ..Config::default().with_generated_machines(120)
    };
    let sim = Simulator::start(config).await.unwrap();
    let retry_afters = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = retry_afters.clone();
    let client = sim
        .client_builder()
        .on_wait(move |e| {
            if e.reason == WaitReason::RetryAfter {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let started = sim.clock().elapsed();
    let calls = (0..120).map(|i| {
        let client = client.clone();
        async move {
            client
                .collect_investigation_package(&generated_machine_id(i), "fleet")
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let waited = sim.clock().elapsed() - started;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let required =
        mde_client::minimum_duration(mde_client::OperationId::CollectInvestigationPackage, 120);
    println!(
        "120 collections at once: {ok} created, {} 429s received, all done after {:.2} s (simulated); the documented limits require {} s",
        retry_afters.load(std::sync::atomic::Ordering::SeqCst),
        waited.as_secs_f64(),
        required.as_secs()
    );
    sim.stop().await;
}

fn main() {
    // The simulator on a runtime of its own, as a service would be; the callers on one
    // thread, so that what is measured is their work rather than the wake-ups between the
    // two sides' threads.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default().with_generated_machines(CALLS * 3 + 1000)
    };
    let sim = server.block_on(Simulator::start(config)).unwrap();
    let callers = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    callers.block_on(overhead(&sim));
    server.block_on(sim.stop());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(fleet_of_120());
}
