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
    ExitCode::from(runtime.block_on(async {
        survive_file_size_limit();
        app::run(cli).await
    }))
}

/// A write past the file size limit (`RLIMIT_FSIZE`) then fails with EFBIG, as a write to a
/// full disk fails with ENOSPC, instead of SIGXFSZ killing the process mid-run: the run stops
/// on a local fault with its journal and output whole.
fn survive_file_size_limit() {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        // SIGXFSZ is 25 on both.
        let xfsz = tokio::signal::unix::SignalKind::from_raw(25);
        if let Ok(mut signal) = tokio::signal::unix::signal(xfsz) {
            tokio::spawn(async move { while signal.recv().await.is_some() {} });
        }
    }
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
