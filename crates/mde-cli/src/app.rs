//! From parsed arguments to a finished command and its exit code: which command runs. The
//! commands are in `commands`; what they share is in `session`.

use std::time::Duration;

use mde_client::operations::OperationId;

use crate::cli::{ActionCommand, Cli, Command, InvestigationCommand, PackageCommand, Targets};
use crate::commands::{action, fleet_run, package};
use crate::pipeline;

/// Runs a command (not `completions`); returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    let done = |result: Result<u8, u8>| match result {
        Ok(code) | Err(code) => code,
    };
    let (op, targets, scan_type, wait) = match &cli.command {
        Command::Investigation(InvestigationCommand::Start(t)) => {
            (OperationId::StartInvestigation, t.clone(), None, None)
        }
        Command::Investigation(InvestigationCommand::Initiate(t)) => {
            (OperationId::InitiateInvestigation, t.clone(), None, None)
        }
        Command::Scan {
            targets,
            scan_type,
            wait,
            poll_interval,
        } => (
            OperationId::RunAntiVirusScan,
            targets.clone(),
            Some(scan_type.as_type()),
            wait.then(|| Duration::from_secs(*poll_interval)),
        ),
        Command::Package(PackageCommand::Collect {
            targets,
            download: Some(dir),
            parallel,
            poll_interval,
            ..
        }) => {
            let settings = pipeline::Settings {
                dir,
                interval: Duration::from_secs(*poll_interval),
                parallel: usize::from(*parallel),
            };
            return done(package::collect_download(&cli, targets, settings).await);
        }
        Command::Package(PackageCommand::Collect { targets, graph, .. }) => (
            if *graph {
                OperationId::CollectInvestigationPackageGraph
            } else {
                OperationId::CollectInvestigationPackage
            },
            targets.clone(),
            None,
            None,
        ),
        Command::Package(PackageCommand::Download { ids, out }) => {
            return done(package::download(&cli, ids, out).await);
        }
        Command::Package(PackageCommand::Verify { dir }) => {
            return done(package::verify(&cli, dir));
        }
        Command::Action(ActionCommand::Show { ids }) => {
            return done(action::show(&cli, ids).await);
        }
        Command::Action(ActionCommand::List {
            machine,
            name,
            pick,
            status,
            kind,
            since,
        }) => {
            let by = match (machine, name) {
                (Some(id), _) => Some(action::MachineBy::Id(id.clone())),
                (None, Some(name)) => Some(action::MachineBy::Name(name.clone(), pick.is_some())),
                (None, None) => None,
            };
            return done(action::list(&cli, by, status, kind, *since).await);
        }
        Command::Action(ActionCommand::Cancel {
            ids,
            comment,
            confirm,
            journaling,
        }) => (
            OperationId::CancelMachineAction,
            Targets {
                machines: ids.clone(),
                machines_file: None,
                names: Vec::new(),
                names_file: None,
                pick: None,
                comment: comment.clone(),
                confirm: confirm.clone(),
                journaling: journaling.clone(),
            },
            None,
            None,
        ),
        Command::Completions { .. } => unreachable!("handled before a runtime starts"),
    };
    let facts = op.facts();
    if let Some(date) = facts.retired {
        eprintln!(
            "warning: the service retired {op} on {date}; what it answers now is undocumented. Microsoft names a full antivirus scan as the on-demand replacement (MC1411577): mde scan --type full"
        );
    } else if facts.deprecated {
        eprintln!(
            "warning: --graph uses {op}, a deprecated Graph endpoint; use `mde package collect` without --graph"
        );
    }
    done(fleet_run::run(&cli, op, &targets, scan_type, wait).await)
}
