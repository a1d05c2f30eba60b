//! From parsed arguments to a finished command and its exit code: which command runs. The
//! commands are in `commands`; what they share is in `session`.

use std::time::Duration;

use mde_client::operations::OperationId;

use crate::body_flags;
use crate::cli::{
    ActionCommand, ActionList, Cli, Command, InvestigationCommand, MachineCommand, MachineList,
    PackageCommand, TagCommand, Targets,
};
use crate::commands::{action, evidence_run, fleet_run, hunt, library, machine, package, profile};
use crate::pipeline;
use crate::vocabulary::{USAGE, fail};

/// Runs a command (not `completions`); returns the exit code.
#[allow(deprecated)] // the retired and deprecated operations stay reachable
pub async fn run(cli: Cli) -> u8 {
    match dispatch(cli).await {
        Ok(code) | Err(code) => code,
    }
}

/// Each command to what runs it; an action command's request, made from the body's flags
/// with the id left to set per machine, is its fleet run's template.
async fn dispatch(cli: Cli) -> Result<u8, u8> {
    let mut body = cli.body.clone();
    let (op, targets, wait) = match &cli.command {
        Command::Investigation(InvestigationCommand::Start(t)) => {
            (OperationId::StartInvestigation, t.clone(), None)
        }
        Command::Investigation(InvestigationCommand::Initiate(t)) => {
            (OperationId::InitiateInvestigation, t.clone(), None)
        }
        Command::Scan { targets, wait } => {
            (OperationId::RunAntiVirusScan, targets.clone(), wait.every())
        }
        Command::Isolate(c) => (OperationId::IsolateMachine, c.targets(), c.wait.every()),
        Command::Release(c) => (OperationId::UnisolateMachine, c.targets(), c.wait.every()),
        Command::Restrict(c) => (
            OperationId::RestrictCodeExecution,
            c.targets(),
            c.wait.every(),
        ),
        Command::Unrestrict(c) => (
            OperationId::UnrestrictCodeExecution,
            c.targets(),
            c.wait.every(),
        ),
        Command::Quarantine { targets, wait } => {
            sha1_checked(&cli)?;
            (
                OperationId::StopAndQuarantineFile,
                targets.clone(),
                wait.every(),
            )
        }
        Command::Tag(tagging) => {
            let (tagging, action) = tagged(tagging);
            body = tag_body(&tagging.value, action);
            (OperationId::SetMachineTag, tagging.targets.clone(), None)
        }
        Command::Live(live) => return live_run(&cli, live).await,
        Command::Library(command) => return library::run(&cli, command).await,
        Command::Profile(command) => return profile::run(&cli, command),
        Command::Hunt(args) => return hunt::run(&cli, args).await,
        Command::Offboard { targets, wait } => {
            (OperationId::OffboardMachine, targets.clone(), wait.every())
        }
        Command::Package(PackageCommand::Collect {
            targets,
            download: Some(dir),
            parallel,
            poll_interval,
            ..
        }) => {
            let settings = settings(dir, *poll_interval, *parallel);
            return package::collect_download(&cli, targets, settings).await;
        }
        Command::Package(PackageCommand::Collect { targets, graph, .. }) => match graph {
            true => (
                OperationId::CollectInvestigationPackageGraph,
                targets.clone(),
                None,
            ),
            false => (
                OperationId::CollectInvestigationPackage,
                targets.clone(),
                None,
            ),
        },
        Command::Package(PackageCommand::Download { ids, out }) => {
            return package::download(&cli, ids, out).await;
        }
        Command::Package(PackageCommand::Verify { dir }) => return package::verify(&cli, dir),
        Command::Action(ActionCommand::Show { ids }) => {
            return action::show(&cli, ids).await;
        }
        Command::Action(ActionCommand::List(list)) => {
            return action_list(&cli, list).await;
        }
        Command::Action(ActionCommand::Cancel {
            ids,
            confirm,
            journaling,
        }) => {
            let targets = Targets::of_actions(ids, confirm, journaling);
            (OperationId::CancelMachineAction, targets, None)
        }
        Command::Machine(MachineCommand::Show { ids, names }) => {
            return machine::show(&cli, ids, names).await;
        }
        Command::Machine(MachineCommand::List(list)) => {
            return machine_list(&cli, list).await;
        }
        Command::FromSpec { op, targets, wait } => (*op, targets.clone(), *wait),
        Command::Completions { .. } => unreachable!("handled before a runtime starts"),
    };
    let template = body_flags::template(op, &body).map_err(|e| fail(USAGE, e))?;
    warn_if_retired(op);
    fleet_run::run(&cli, &template, &targets, wait, None).await
}

/// setMachineTag's body: the tag, added or removed.
fn tag_body(value: &str, action: &str) -> serde_json::Map<String, serde_json::Value> {
    let body = serde_json::json!({ "Value": value, "Action": action });
    body.as_object().cloned().unwrap_or_default()
}

/// `mde action list`, its filters as given.
async fn action_list(cli: &Cli, list: &ActionList) -> Result<u8, u8> {
    let by = match (&list.machine, &list.name) {
        (Some(id), _) => Some(action::MachineBy::Id(id.clone())),
        (None, Some(name)) => Some(action::MachineBy::Name(name.clone(), list.pick.is_some())),
        (None, None) => None,
    };
    action::list(cli, by, &list.status, &list.kind, list.since).await
}

/// `mde machine list`, its filters as given.
async fn machine_list(cli: &Cli, list: &MachineList) -> Result<u8, u8> {
    let only = machine::Only {
        isolated: list.isolated,
        restricted: list.restricted,
        tag: list.tag.as_deref(),
        tag_prefix: list.tag_prefix,
        health: list.health.as_deref(),
    };
    machine::list(cli, only).await
}

/// Says when the operation is retired or deprecated, and what to use instead.
fn warn_if_retired(op: OperationId) {
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
}

/// The spec states `Sha1`'s length; that every character is hex is the service's check
/// (`InvalidHashValue`), made here before anything is sent.
fn sha1_checked(cli: &Cli) -> Result<(), u8> {
    let sha1 = cli.body.get("Sha1").and_then(|v| v.as_str());
    match sha1
        .unwrap_or_default()
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
    {
        true => Ok(()),
        false => Err(fail(USAGE, "--sha1 must be a SHA-1: 40 hex characters")),
    }
}

/// A tag command's tag and machines, and the body's `Action`.
fn tagged(tagging: &TagCommand) -> (&crate::cli::Tagging, &'static str) {
    match tagging {
        TagCommand::Add(t) => (t, "Add"),
        TagCommand::Remove(t) => (t, "Remove"),
    }
}

/// An evidence run's settings: its folder, how often it looks, how many transfers at once.
fn settings(dir: &std::path::Path, poll_interval: u64, parallel: u16) -> pipeline::Settings<'_> {
    pipeline::Settings {
        dir,
        interval: Duration::from_secs(poll_interval),
        parallel: usize::from(parallel),
    }
}

/// `mde live`: the session's request, made with the typed builder (refused here, before
/// anything is sent, when the service would refuse it), sent to every machine as a run.
async fn live_run(cli: &Cli, live: &crate::cli::Live) -> Result<u8, u8> {
    let mut session = mde_client::LiveResponse::new();
    for name in &live.session.put {
        session = session.put_file(name);
    }
    for (i, script) in live.session.run.iter().enumerate() {
        let args = live.args_of_run.get(i).cloned().flatten();
        session = session.run_script(script, args.as_deref());
    }
    for path in &live.session.get {
        session = session.get_file(path);
    }
    let body = session
        .build(&live.session.comment)
        .map_err(|e| fail(USAGE, format!("{e}; nothing was sent")))?;
    let template = mde_client::operations::AnyRequest::RunLiveResponse(
        mde_client::operations::RunLiveResponse {
            id: String::new(),
            body,
        },
    );
    let mut ensure = live
        .ensure_script
        .as_deref()
        .map(library::read)
        .transpose()?;
    // Whether a library file of another content may be replaced: --overwrite.
    if let Some(script) = &mut ensure {
        script.override_if_exists = Some(live.overwrite);
    }
    // The comment as the other commands' bodies carry it (the dry run and the journal read it).
    let mut cli = cli.clone();
    cli.body
        .insert("Comment".into(), live.session.comment.clone().into());
    match &live.out {
        // Followed to the end, whether --wait is given or not: the results come after it.
        Some(dir) => {
            let settings = settings(dir, live.wait.poll_interval, live.parallel);
            evidence_run::run(&cli, &live.targets, &template, settings, ensure).await
        }
        None => fleet_run::run(&cli, &template, &live.targets, live.wait.every(), ensure).await,
    }
}
