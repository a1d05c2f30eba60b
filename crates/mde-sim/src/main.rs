//! `mde-sim`: serves the simulator until Ctrl-C or SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mde_sim::serve::main(std::env::args_os()).await
}
