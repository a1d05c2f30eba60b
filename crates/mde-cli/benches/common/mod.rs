//! What the benchmarks share: a simulator, and a client of it that counts the 429s it waited
//! out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mde_client::{Client, WaitReason};
use mde_sim::{Config, Simulator};

/// A simulator on a free loopback port, and its client; the counter holds the 429 answers.
pub async fn simulator_and_client(config: Config) -> (Simulator, Client, Arc<AtomicUsize>) {
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .unwrap();
    let limited = Arc::new(AtomicUsize::new(0));
    let counter = limited.clone();
    let client = sim
        .client_builder()
        .on_wait(move |e| {
            if e.reason == WaitReason::RetryAfter {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    (sim, client, limited)
}
