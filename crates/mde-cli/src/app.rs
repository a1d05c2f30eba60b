//! From parsed arguments to a finished command and its exit code: which command runs. The
//! commands are in `commands`; what they share is in `session`.

use std::time::Duration;

use mde_client::operations::{self, AnyRequest};
use mde_client::types;

use crate::cli::IsolationKind;
use crate::cli::{
    ActionCommand, Cli, Command, InvestigationCommand, MachineCommand, PackageCommand, Targets,
};
use crate::commands::{action, fleet_run, machine, package};
use crate::pipeline;
use crate::session::{USAGE, comment, comment_body, fail};

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
        } => {
            let body = types::RunAntiVirusScanRequest {
                comment: try_or!(done, comment(targets)),
                scan_type: scan_type.as_type(),
            };
            let request = operations::RunAntiVirusScan { id: id(), body };
            (
                AnyRequest::RunAntiVirusScan(request),
                targets.clone(),
                wait.every(),
            )
        }
        Command::Isolate {
            targets,
            isolation,
            cancel_pending,
            wait,
        } => {
            let body = types::IsolateRequest {
                comment: try_or!(done, comment(targets)),
                isolation_type: isolation.map(IsolationKind::as_type),
            };
            let request = operations::IsolateMachine { id: id(), body };
            let targets = cancelling(targets, *cancel_pending);
            (AnyRequest::IsolateMachine(request), targets, wait.every())
        }
        Command::Release {
            targets,
            cancel_pending,
            wait,
        } => {
            let body = try_or!(done, comment_body(targets));
            let request = operations::UnisolateMachine { id: id(), body };
            let targets = cancelling(targets, *cancel_pending);
            (AnyRequest::UnisolateMachine(request), targets, wait.every())
        }
        Command::Restrict {
            targets,
            cancel_pending,
            wait,
        } => {
            let body = try_or!(done, comment_body(targets));
            let request = operations::RestrictCodeExecution { id: id(), body };
            let targets = cancelling(targets, *cancel_pending);
            (
                AnyRequest::RestrictCodeExecution(request),
                targets,
                wait.every(),
            )
        }
        Command::Unrestrict {
            targets,
            cancel_pending,
            wait,
        } => {
            let body = try_or!(done, comment_body(targets));
            let request = operations::UnrestrictCodeExecution { id: id(), body };
            let targets = cancelling(targets, *cancel_pending);
            (
                AnyRequest::UnrestrictCodeExecution(request),
                targets,
                wait.every(),
            )
        }
        Command::Quarantine {
            targets,
            sha1,
            wait,
        } => {
            let hex = sha1.len() == 40 && sha1.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return fail(USAGE, "--sha1 must be a SHA-1: 40 hex characters");
            }
            let sha1 = sha1.as_str().try_into();
            let body = types::StopAndQuarantineFileRequest {
                comment: try_or!(done, comment(targets)),
                sha1: try_or!(
                    done,
                    sha1.map_err(|_| fail(USAGE, "--sha1 must be 40 characters"))
                ),
            };
            let request = operations::StopAndQuarantineFile { id: id(), body };
            (
                AnyRequest::StopAndQuarantineFile(request),
                targets.clone(),
                wait.every(),
            )
        }
        Command::Offboard { targets, wait } => {
            let body = try_or!(done, comment_body(targets));
            let request = operations::OffboardMachine { id: id(), body };
            (
                AnyRequest::OffboardMachine(request),
                targets.clone(),
                wait.every(),
            )
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
                cancel_pending: false,
            };
            let body = try_or!(done, comment_body(&targets));
            let request = operations::CancelMachineAction { id: id(), body };
            (AnyRequest::CancelMachineAction(request), targets, None)
        }
        Command::Machine(MachineCommand::Show { ids }) => {
            return done(machine::show(&cli, ids).await);
        }
        Command::Machine(MachineCommand::List {
            isolated,
            restricted,
            tag,
            tag_prefix,
            health,
        }) => {
            let only = machine::Only {
                isolated: *isolated,
                restricted: *restricted,
                tag: tag.as_deref(),
                tag_prefix: *tag_prefix,
                health: health.as_deref(),
            };
            return done(machine::list(&cli, only).await);
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

/// `targets`, cancelling a pending opposite action first when asked.
fn cancelling(targets: &Targets, cancel_pending: bool) -> Targets {
    Targets {
        cancel_pending,
        ..targets.clone()
    }
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
