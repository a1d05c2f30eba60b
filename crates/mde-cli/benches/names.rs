//! Resolving 10,000 machine names (short names, the first label of each fully qualified
//! name) against a simulator inventory of 20,000 machines: the listMachines calls it takes and
//! the simulated time, against the shortest time the documented limits allow for those calls
//! and for one filtered call per name; then a few names, one filtered call each.
//!
//! `cargo bench -p mde-cli --bench names`

mod common;

use std::sync::atomic::Ordering;

use mde_cli::names::{self, Resolved};
use mde_cli::vocabulary::duration;
use mde_client::{OperationId, minimum_duration};
use mde_sim::Config;

const INVENTORY: usize = 20_000;
const NAMES: usize = 10_000;
const SCALE: f64 = 60.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let config = Config {
        time_scale: SCALE,
        ..Config::default().with_generated_machines(INVENTORY)
    };
    let (sim, client, limited) = common::simulator_and_client(config).await;
    // Every other machine, by its short name.
    let machines = sim.machines();
    let wanted: Vec<(String, String)> = machines
        .iter()
        .take(INVENTORY)
        .step_by(INVENTORY / NAMES)
        .map(|m| {
            let fqdn = m.computer_dns_name.clone().unwrap();
            let short = fqdn.split('.').next().unwrap().to_string();
            (short, m.id.clone().unwrap())
        })
        .collect();
    let given: Vec<String> = wanted.iter().map(|(n, _)| n.clone()).collect();

    for (label, given) in [("many", &given[..]), ("few", &given[..names::FEW])] {
        let calls_before = sim.calls(OperationId::ListMachines);
        let started = sim.clock().elapsed();
        let real = std::time::Instant::now();
        let resolution = names::resolve(&client, given, false).await.unwrap();
        let took = sim.clock().elapsed() - started;
        let real = real.elapsed();
        let calls = sim.calls(OperationId::ListMachines) - calls_before;
        assert_eq!(
            calls, resolution.calls,
            "the calls counted are the calls served"
        );
        let right = resolution
            .names
            .iter()
            .zip(&wanted)
            .filter(|((name, r), (wanted_name, id))| {
                name == wanted_name && matches!(r, Resolved::Machine(m) if &m.id == id)
            })
            .count();
        assert_eq!(right, given.len(), "every name resolved to its machine");
        let bound = minimum_duration(OperationId::ListMachines, calls);
        let one_each = minimum_duration(OperationId::ListMachines, given.len());
        println!(
            "{label}: {} names in {INVENTORY} machines: {calls} listMachines call(s), {:.1} s simulated ({:.2} s real at x{SCALE}); the limits allow those calls in {}; one filtered call per name would need {} calls and at least {}",
            given.len(),
            took.as_secs_f64(),
            real.as_secs_f64(),
            duration(bound),
            given.len(),
            duration(one_each),
        );
    }
    println!("429 answers: {}", limited.load(Ordering::SeqCst));
    sim.stop().await;
}
