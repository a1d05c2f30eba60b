//! From parsed arguments to a finished command and its exit code: which command runs. The
//! commands are in `commands`; what they share is in `session`.

use std::time::Duration;

use mde_client::operations::{self, AnyRequest};
use mde_client::types;

use crate::cli::{ActionCommand, Cli, Command, InvestigationCommand, PackageCommand, Targets};
use crate::commands::{action, fleet_run, package};
use crate::pipeline;
use crate::session::comment_body;

/// Runs a command (not `completions`); returns the exit code.
#[allow(deprecated)] // the retired and deprecated operations stay reachable
pub async fn run(cli: Cli) -> u8 {
    let done = |result: Result<u8, u8>| match result {
        Ok(code) | Err(code) => code,
    };
    // Each action command's request, its id left to set per machine: the run's template.
    let id = String::new;
    let (template, targets, wait) = match &cli.command {
        Command::Investigation(InvestigationCommand::Start(t)) => {
            let body = try_or!(done, comment_body(t));
            let request = operations::StartInvestigation { id: id(), body };
            (AnyRequest::StartInvestigation(request), t.clone(), None)
        }
        Command::Investigation(InvestigationCommand::Initiate(t)) => {
            let body = try_or!(done, comment_body(t));
            let request = operations::InitiateInvestigation { id: id(), body };
            (AnyRequest::InitiateInvestigation(request), t.clone(), None)
        }
        Command::Scan {
            targets,
            scan_type,
            wait,
            poll_interval,
        } => {
            let comment = try_or!(done, comment_body(targets)).comment;
            let body = types::RunAntiVirusScanRequest {
                comment: comment
                    .as_str()
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("checked")),
                scan_type: scan_type.as_type(),
            };
            let request = operations::RunAntiVirusScan { id: id(), body };
            let wait = wait.then(|| Duration::from_secs(*poll_interval));
            (AnyRequest::RunAntiVirusScan(request), targets.clone(), wait)
        }
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
        Command::Package(PackageCommand::Collect { targets, graph, .. }) => {
            let body = try_or!(done, comment_body(targets));
            let request = if *graph {
                AnyRequest::CollectInvestigationPackageGraph(
                    operations::CollectInvestigationPackageGraph { id: id(), body },
                )
            } else {
                AnyRequest::CollectInvestigationPackage(operations::CollectInvestigationPackage {
                    id: id(),
                    body,
                })
            };
            (request, targets.clone(), None)
        }
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
        }) => {
            let targets = Targets {
                machines: ids.clone(),
                machines_file: None,
                names: Vec::new(),
                names_file: None,
                pick: None,
                comment: comment.clone(),
                confirm: confirm.clone(),
                journaling: journaling.clone(),
            };
            let body = try_or!(done, comment_body(&targets));
            let request = operations::CancelMachineAction { id: id(), body };
            (AnyRequest::CancelMachineAction(request), targets, None)
        }
        Command::Completions { .. } => unreachable!("handled before a runtime starts"),
    };
    let op = template.operation();
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
    done(fleet_run::run(&cli, &template, &targets, wait).await)
}

/// The value of `$result`, or the command ends with its exit code.
macro_rules! try_or {
    ($done:ident, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(code) => return $done(Err(code)),
        }
    };
}
use try_or;
