//! `mde`: start investigations and collect investigation packages, one device or a fleet.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use mde_cli::app;
use mde_cli::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "mde", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
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
