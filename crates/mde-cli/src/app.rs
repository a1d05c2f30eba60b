//! From parsed arguments to a finished run and its exit code: which command runs (the
//! commands are in `commands`), and what the commands share: the exit codes, the simulator
//! and the client, the machines of a run, their selection and the journal.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mde_client::operations::OperationId;
use mde_client::{Client, Error, WaitEvent};

use crate::cli::{
    ActionCommand, Cli, Command, Connection, InvestigationCommand, PackageCommand, Targets,
};
use crate::commands::{action, fleet_run, package};
use crate::fleet;
use crate::journal::{History, Journal};
use crate::pipeline;
use crate::selection::{self, Selection};
use crate::targets;

/// Every machine succeeded.
pub const OK: u8 = 0;
/// Some machines did not succeed (or were not sent to).
pub const PARTIAL: u8 = 1;
/// The command line or an input file is wrong.
pub const USAGE: u8 = 2;
/// Credentials, permission or configuration: nothing can succeed until they are fixed.
pub const AUTH: u8 = 3;
/// Stopped by Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// The simulator's speed when `--simulate` is given without `--time-scale`.
const DEFAULT_TIME_SCALE: f64 = 60.0;

pub(crate) fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("mde: {message}");
    code
}

/// The error and its causes, on one line: what a person reads.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

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

/// Ends a command on `e`: its exit code, and `what` went wrong with the error's chain.
pub(crate) fn failed(what: &str) -> impl Fn(Error) -> u8 + '_ {
    move |e| fail(code_of(&e), format!("{what}: {}", error_chain(&e)))
}

/// The exit code of an error that ends a command: 3 for what holds for every call.
pub(crate) fn code_of(e: &Error) -> u8 {
    match e {
        Error::Authentication(_) | Error::Permission { .. } | Error::Configuration(_) => AUTH,
        _ => PARTIAL,
    }
}

/// The client of a command that is not a fleet run (and the simulator of `--simulate`, empty):
/// every wait for a limit is said on stderr.
pub(crate) async fn connect(
    cli: &Cli,
    names: &[String],
) -> Result<(Option<mde_sim::Simulator>, Client), u8> {
    let conn = &cli.connection;
    let scale = time_scale(conn)?;
    let simulator = simulator(conn, scale, &[], names).await?;
    let client = client(conn, simulator.as_ref(), scale, |event: &WaitEvent| {
        eprintln!(
            "mde: waiting {} s for {:?}",
            event.wait.as_secs(),
            event.reason
        );
    })?;
    Ok((simulator, client))
}

pub(crate) fn credentials_error() -> String {
    "no credentials: set MDE_TOKEN, or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or give --token, or --tenant-id, --client-id and --client-secret), or try --simulate".into()
}

/// The ids and names of a run, each de-duplicated with a warning; a usage error when there
/// are none, or a name no machine could have.
pub(crate) fn machines(
    targets: &Targets,
    op: OperationId,
) -> Result<(Vec<String>, Vec<String>), u8> {
    if targets.comment.trim().is_empty() {
        return Err(fail(USAGE, "--comment must not be empty"));
    }
    let (machines, repeated) =
        targets::machine_ids(&targets.machines, targets.machines_file.as_deref())
            .map_err(|e| fail(USAGE, e))?;
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} machine id(s) given more than once, sent once: {}",
            repeated.len(),
            repeated.join(", ")
        );
    }
    // Sent as given (the service's ids are opaque), but a name given as an id is a likely slip.
    let odd: Vec<&str> = machines
        .iter()
        .filter(|id| targets::on_machines(op) && !targets::well_formed(id))
        .map(String::as_str)
        .collect();
    if !odd.is_empty() {
        eprintln!(
            "warning: {} machine id(s) are not 40 or 32 hex characters, as the service's ids are; sent as given: {}. A computer name goes with --machine-name.",
            odd.len(),
            odd.join(", ")
        );
    }
    let (names, repeated) = targets::machine_names(&targets.names, targets.names_file.as_deref())
        .map_err(|e| fail(USAGE, e))?;
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} machine name(s) given more than once, looked up once: {}",
            repeated.len(),
            repeated.join(", ")
        );
    }
    for name in &names {
        crate::names::check(name).map_err(|e| fail(USAGE, e))?;
    }
    if machines.is_empty() && names.is_empty() {
        return Err(fail(
            USAGE,
            "no machines: give ids as arguments or with --machines-file, or names with --machine-name or --names-file",
        ));
    }
    Ok((machines, names))
}

/// The simulated seconds per real second: `--time-scale`, only where it cannot outrun the
/// real service's limits.
pub(crate) fn time_scale(conn: &Connection) -> Result<f64, u8> {
    if conn.time_scale.is_some() && !conn.simulate && conn.api_url.is_none() {
        // Against the real service a faster clock would send faster than the documented limits.
        return Err(fail(
            USAGE,
            "--time-scale needs --simulate or a simulator's --api-url",
        ));
    }
    let scale = conn.time_scale.unwrap_or(DEFAULT_TIME_SCALE);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(fail(USAGE, "--time-scale must be a positive number"));
    }
    Ok(scale)
}

/// How many times faster than real time the run's clock goes: `scale` against a simulator
/// (`--simulate`, or one's `--api-url` with `--time-scale`), 1 against the service.
pub(crate) fn speed(conn: &Connection, scale: f64) -> f64 {
    if conn.simulate || conn.time_scale.is_some() {
        scale
    } else {
        1.0
    }
}

/// What the resumed journal recorded (nothing for a new run); it must be a run of `op`.
pub(crate) fn history(cli: &Cli, op: OperationId) -> Result<History, u8> {
    let Some(path) = &cli.run.resume else {
        return Ok(History::default());
    };
    let history = Journal::history(path).map_err(|e| {
        fail(
            USAGE,
            format!("cannot read the journal {}: {e}", path.display()),
        )
    })?;
    if let Some(recorded) = history.operation.filter(|o| *o != op) {
        return Err(fail(
            USAGE,
            format!("{} records a {recorded} run, not {op}", path.display()),
        ));
    }
    Ok(history)
}

/// The embedded simulator of `--simulate`, with the run's well-formed ids and its names in its
/// inventory.
pub(crate) async fn simulator(
    conn: &Connection,
    scale: f64,
    machines: &[String],
    names: &[String],
) -> Result<Option<mde_sim::Simulator>, u8> {
    if !conn.simulate {
        return Ok(None);
    }
    let config = mde_sim::Config {
        listen: "127.0.0.1:0".parse().expect("a loopback address"),
        time_scale: scale,
        machines: machines
            .iter()
            .filter(|id| targets::well_formed(id))
            .cloned()
            .collect(),
        names: names.to_vec(),
        ..mde_sim::Config::default()
    };
    let sim = mde_sim::Simulator::start(config)
        .await
        .map_err(|e| fail(AUTH, format!("cannot start the simulator: {e}")))?;
    eprintln!(
        "mde: simulating at {} (time x{scale}; tenant sim-tenant, client sim-client)",
        sim.base_url()
    );
    Ok(Some(sim))
}

/// The client: of the simulator, or of the service with the given credentials; every wait
/// shown by `on_wait`.
pub(crate) fn client(
    conn: &Connection,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
) -> Result<Client, u8> {
    let mut builder = match simulator {
        Some(sim) => sim.client_builder(),
        None => Client::builder(),
    }
    .cloud(conn.cloud)
    .region(conn.region)
    .on_wait(on_wait);
    if let Some(path) = &conn.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| fail(USAGE, format!("cannot read {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(pem);
    }
    if simulator.is_none() {
        if let Some(url) = &conn.api_url {
            builder = builder.base_url(url);
        }
        if let Some(url) = &conn.login_url {
            builder = builder.login_url(url);
        }
        builder = match (
            &conn.token,
            &conn.tenant_id,
            &conn.client_id,
            &conn.client_secret,
        ) {
            (Some(token), ..) => builder.bearer_token(token.as_str()),
            (None, Some(tenant), Some(client), Some(secret)) => {
                builder.client_credentials(tenant, client, secret.as_str())
            }
            _ => return Err(fail(AUTH, credentials_error())),
        };
        if conn.time_scale.is_some() {
            // Against a simulator of its own (--api-url), at the speed it was told.
            builder = builder.clock(Arc::new(mde_sim::Clock::scaled(scale)));
        }
    }
    builder.build().map_err(|e| fail(AUTH, e))
}

/// The journal: the one resumed, the one named, or a new one here.
pub(crate) fn open_journal(cli: &Cli) -> Result<(PathBuf, Journal), u8> {
    let path = cli
        .run
        .resume
        .clone()
        .or_else(|| cli.run.journal.clone())
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "mde-journal-{}.jsonl",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            ))
        });
    let journal = Journal::open(&path).map_err(|e| {
        fail(
            USAGE,
            format!("cannot write the journal {}: {e}", path.display()),
        )
    })?;
    eprintln!("mde: journal {}", path.display());
    Ok((path, journal))
}

/// What a dry run says of a run besides its machines: the operation, what else the request
/// carries, and the calls that follow each request.
pub(crate) type Intent = (OperationId, Option<String>, Option<OperationId>);

/// The machines of a run: the names resolved (or taken from the resumed journal). With
/// `--dry-run` the plan is printed and the command ends (`Err` with its exit code); an action
/// on more than 10 machines is confirmed first.
pub(crate) async fn select(
    cli: &Cli,
    targets: &Targets,
    client: &Client,
    history: &History,
    (ids, names): (Vec<String>, Vec<String>),
    (op, detail, then): Intent,
) -> Result<Selection, u8> {
    let selection = selection::select(client, ids, &names, targets.pick.is_some(), history)
        .await
        .map_err(failed("cannot resolve the machine names"))?;
    if targets.confirm.dry_run {
        let plan = selection::DryRun {
            op,
            detail,
            comment: &targets.comment,
            selection: &selection,
            then,
        };
        let mut stdout = std::io::stdout().lock();
        let _ = plan
            .print(cli.run.output, &mut stdout)
            .and_then(|()| stdout.flush());
        return Err(if selection.unresolved.is_empty() {
            OK
        } else {
            PARTIAL
        });
    }
    let to_send = selection
        .machines
        .iter()
        .filter(|m| !history.done.contains_key(*m))
        .count();
    // A simulated run acts on nothing real: it never asks.
    let yes = targets.confirm.yes || cli.connection.simulate;
    selection::confirm(op, to_send, yes).map_err(|e| fail(USAGE, e))?;
    Ok(selection)
}

/// What a run of `op` sends to each machine, from the command line.
pub(crate) fn plan<'a>(
    cli: &Cli,
    targets: &'a Targets,
    op: OperationId,
    scan_type: Option<mde_client::types::ScanType>,
) -> fleet::Plan<'a> {
    fleet::Plan {
        op,
        comment: &targets.comment,
        retry_unknown: cli.run.retry_unknown,
        scan_type,
    }
}

/// Resolves at Ctrl-C: a run stops sending, and lets what is in flight end.
pub(crate) async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Opens the journal of a run and records the names it resolved.
pub(crate) fn start_journal(cli: &Cli, selection: &Selection) -> Result<(PathBuf, Journal), u8> {
    let (path, journal) = open_journal(cli)?;
    selection.record(&journal).map_err(|e| {
        fail(
            USAGE,
            format!("cannot write the journal {}: {e}", path.display()),
        )
    })?;
    Ok((path, journal))
}

/// The command line that resumes this run: the same, with `--resume JOURNAL` for `--journal`,
/// and secrets given as flags left out (shown as `[secret]`, to be given again).
pub(crate) fn resume_command(
    args: Vec<String>,
    journal: &std::path::Path,
    resuming: bool,
) -> Vec<String> {
    const SECRETS: [&str; 2] = ["--token", "--client-secret"];
    let mut out: Vec<String> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if SECRETS.contains(&arg.as_str()) {
            args.next();
            out.extend([arg, "[secret]".into()]);
        } else if let Some(flag) = SECRETS.iter().find(|s| arg.starts_with(&format!("{s}="))) {
            out.push(format!("{flag}=[secret]"));
        } else if arg == "--journal" && !resuming {
            args.next();
        } else if resuming || !arg.starts_with("--journal=") {
            out.push(arg);
        }
    }
    if !resuming {
        out.push("--resume".into());
        out.push(journal.display().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_command_keeps_no_secret_and_resumes_the_journal() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let journal = std::path::Path::new("j.jsonl");
        let resumed = resume_command(
            args(
                "mde --token T0KEN --client-secret=S3CRET --journal j.jsonl package collect a --comment c",
            ),
            journal,
            false,
        );
        let line = resumed.join(" ");
        assert_eq!(
            line,
            "mde --token [secret] --client-secret=[secret] package collect a --comment c --resume j.jsonl"
        );
        let again = resume_command(
            args("mde package collect a --comment c --resume j.jsonl"),
            journal,
            true,
        );
        assert_eq!(
            again.join(" "),
            "mde package collect a --comment c --resume j.jsonl"
        );
    }
}
