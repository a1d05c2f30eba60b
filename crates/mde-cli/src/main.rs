//! `mde`: start investigations and collect investigation packages, one device or a fleet.

use std::process::ExitCode;

use mde_cli::app;
use mde_cli::cli::{self, Command};

fn main() -> ExitCode {
    let cli = cli::parse();
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut cli::command(), "mde", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    logging(cli.run.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mde: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(app::run(cli)))
}

/// Logs on stderr: what `RUST_LOG` asks for (`mde_client=trace`), or with `-v` each request
/// of the client and each wait. Off otherwise: the progress and the summary say enough.
fn logging(verbose: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let asked = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok());
    let filter = asked.or_else(|| {
        verbose.then(|| {
            Targets::new()
                .with_target("mde_client", tracing::Level::DEBUG)
                .with_target("mde_cli", tracing::Level::DEBUG)
        })
    });
    if let Some(filter) = filter {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false);
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init();
    }
}
