//! `mde package collect --download` on 1,000 machines, on the simulator's accelerated clock:
//! how much of getPackageUri's documented budget (2 a minute, 120 an hour: the limit that
//! sets the pace) the run uses, how many 429s it receives, and how many listMachineActions
//! calls it takes to follow the collections (at most one per polling interval).
//!
//! `cargo bench -p mde-cli --bench pipeline` (about a minute; `MDE_BENCH_SCALE` sets the
//! clock's speed, 300 by default)

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mde_cli::fleet::{self, Plan};
use mde_cli::journal::Journal;
use mde_cli::pipeline::{self, Settings};
use mde_cli::vocabulary::Stage;
use mde_client::operations::{self, AnyRequest};
use mde_client::{OperationId, minimum_duration, types};
use mde_sim::{Config, generated_machine_id};

const MACHINES: usize = 1000;
const INTERVAL: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale: f64 = std::env::var("MDE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300.0);
    let config = Config {
        time_scale: scale,
        // Small packages: the run is about the limits, not the bytes.
        package_size: 4096,
        ..Config::default().with_generated_machines(MACHINES)
    };
    let (sim, client, limited) = common::simulator_and_client(config).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::create(&dir.path().join("journal.jsonl")).unwrap();
    let evidence = dir.path().join("evidence");
    mde_cli::evidence::folder(&evidence).unwrap();
    let machines: Vec<String> = (0..MACHINES).map(generated_machine_id).collect();
    let template =
        AnyRequest::CollectInvestigationPackage(operations::CollectInvestigationPackage {
            id: String::new(),
            body: types::CommentRequest {
                comment: "bench".try_into().unwrap(),
            },
        });
    let plan = Plan {
        template: &template,
        retry_unknown: false,
        retry_failed: false,
    };
    let settings = Settings {
        dir: &evidence,
        interval: INTERVAL,
        parallel: 4,
    };
    let started = sim.clock().elapsed();
    let real = std::time::Instant::now();
    // When the first package was ready: no link can be asked before.
    let mut first_ready = None;
    let clock = sim.clock().clone();
    let mut progress = |board: &pipeline::Board, _: Option<&pipeline::Package>| {
        if first_ready.is_none() && board.count(Stage::Ready) > 0 {
            first_ready = Some(clock.elapsed());
        }
    };
    let batch = fleet::Batch {
        plan,
        machines,
        journal: &journal,
        history: Default::default(),
    };
    let report = pipeline::run(
        &client,
        batch,
        settings,
        &mut progress,
        std::future::pending(),
    )
    .await
    .unwrap();
    let took = sim.clock().elapsed() - started;
    let saved = report
        .packages
        .iter()
        .filter(|p| p.stage == Stage::Saved)
        .count();
    let required = minimum_duration(OperationId::GetPackageUri, MACHINES);
    let intervals = took.as_secs_f64() / INTERVAL.as_secs_f64();
    println!(
        "collect --download of {MACHINES} (time x{scale}): {saved} saved, {} 429s received, {:.0} s simulated ({:.1} s real)",
        limited.load(Ordering::SeqCst),
        took.as_secs_f64(),
        real.elapsed().as_secs_f64(),
    );
    let first_ready = first_ready.expect("a package was ready") - started;
    println!(
        "getPackageUri: the limits allow {} s for {MACHINES} links: utilisation {:.2} % of the whole run; {:.2} % from the first package ready ({:.0} s, the collection's time) to the end",
        required.as_secs(),
        100.0 * required.as_secs_f64() / took.as_secs_f64(),
        100.0 * required.as_secs_f64() / (took - first_ready).as_secs_f64(),
        first_ready.as_secs_f64(),
    );
    println!(
        "listMachineActions: {} calls over {intervals:.0} polling intervals of {} s ({:.2} a interval)",
        report.list_calls,
        INTERVAL.as_secs(),
        report.list_calls as f64 / intervals
    );
    sim.stop().await;
}
