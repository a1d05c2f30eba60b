//! A fleet collection, then a fleet isolation, of 1,000 machines each on the simulator's
//! accelerated clock (x60): how much of the documented limit each uses (the shortest run the
//! limits allow, over the run's length), how many 429s it receives, and for the isolation how
//! many list calls read the pending actions before sending (the duplicate-action race).
//!
//! `cargo bench -p mde-cli --bench fleet`

mod common;

use std::sync::atomic::Ordering;

use mde_cli::fleet::{self, Plan};
use mde_cli::journal::Journal;
use mde_cli::vocabulary::Kind;
use mde_client::operations::{self, AnyRequest};
use mde_client::{OperationId, minimum_duration, types};
use mde_sim::{Config, generated_machine_id};

const MACHINES: usize = 1000;
const SCALE: f64 = 60.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let collect =
        AnyRequest::CollectInvestigationPackage(operations::CollectInvestigationPackage {
            id: String::new(),
            body: types::CommentRequest {
                comment: "bench".try_into().unwrap(),
            },
        });
    run("collection", collect).await;
    let isolate = AnyRequest::IsolateMachine(operations::IsolateMachine {
        id: String::new(),
        body: types::IsolateRequest {
            comment: "bench".try_into().unwrap(),
            isolation_type: Some(types::IsolationType::Full),
        },
    });
    run("isolation", isolate).await;
}

async fn run(what: &str, template: AnyRequest) {
    let op = template.operation();
    let config = Config {
        time_scale: SCALE,
        ..Config::default().with_generated_machines(MACHINES)
    };
    let (sim, client, limited) = common::simulator_and_client(config).await;
    let path = std::env::temp_dir().join(format!("mde-fleet-bench-{}.jsonl", std::process::id()));
    let journal = Journal::create(&path).unwrap();
    let machines: Vec<String> = (0..MACHINES).map(generated_machine_id).collect();
    let started = sim.clock().elapsed();
    let real = std::time::Instant::now();
    // What a containment run reads first, whatever the fleet size.
    let pending = mde_cli::pending::read(&client, op).await.unwrap();
    let pre_send = sim.calls(OperationId::ListMachineActions);
    let plan = Plan {
        template: &template,
        retry_unknown: false,
        retry_failed: false,
    };
    let batch = fleet::Batch {
        plan,
        machines,
        journal: &journal,
        history: Default::default(),
    };
    let report = fleet::run(&client, batch, &mut |_| {}, std::future::pending()).await;
    assert!(report.local.is_none(), "{:?}", report.local);
    let took = sim.clock().elapsed() - started;
    let accepted = report
        .outcomes
        .iter()
        .filter(|o| o.kind == Kind::Accepted)
        .count();
    let required = minimum_duration(op, MACHINES);
    println!(
        "{what} of {MACHINES}: {accepted} accepted, {} 429s received, {} list call(s) before sending{}, {:.1} s simulated ({:.1} s real); the limits allow {} s: utilisation {:.2} %",
        limited.load(Ordering::SeqCst),
        pre_send,
        if pending.is_some() {
            " (the pending actions)"
        } else {
            ""
        },
        took.as_secs_f64(),
        real.elapsed().as_secs_f64(),
        required.as_secs(),
        100.0 * required.as_secs_f64() / took.as_secs_f64()
    );
    let _ = std::fs::remove_file(path);
    sim.stop().await;
}
