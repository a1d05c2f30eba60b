//! From parsed arguments to a finished run and its exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mde_client::{Client, WaitEvent, WaitReason};

use mde_client::operations::{self, OperationId};
use mde_client::{Error, types};

use crate::cli::{
    ActionCommand, Cli, Command, Connection, InvestigationCommand, Output, PackageCommand, Targets,
};
use crate::fleet::{self, Progress};
use crate::journal::{History, Journal};
use crate::pipeline;
use crate::selection::{self, Selection};
use crate::{output, targets};

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

fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
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
            return done(collect_download(&cli, targets, settings).await);
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
            return done(package_download(&cli, ids, out).await);
        }
        Command::Package(PackageCommand::Verify { dir }) => return done(package_verify(&cli, dir)),
        Command::Action(ActionCommand::Show { ids }) => return done(action_show(&cli, ids).await),
        Command::Action(ActionCommand::List {
            machine,
            name,
            pick,
            status,
            kind,
            since,
        }) => {
            let by = match (machine, name) {
                (Some(id), _) => Some(MachineBy::Id(id.clone())),
                (None, Some(name)) => Some(MachineBy::Name(name.clone(), pick.is_some())),
                (None, None) => None,
            };
            return done(action_list(&cli, by, status, kind, since).await);
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
    done(fleet_run(&cli, op, &targets, scan_type, wait).await)
}

/// The machine of `mde action list`.
enum MachineBy {
    Id(String),
    /// A name, and whether to pick the machine seen last among several.
    Name(String, bool),
}

/// The exit code of an error that ends a command: 3 for what holds for every call.
fn code_of(e: &Error) -> u8 {
    match e {
        Error::Authentication(_) | Error::Permission { .. } | Error::Configuration(_) => AUTH,
        _ => PARTIAL,
    }
}

/// The `$filter` of `mde action list`: each option given, joined with `and`.
fn action_filter(
    machine: &Option<String>,
    status: &Option<String>,
    kind: &Option<String>,
    since: &Option<String>,
) -> Option<String> {
    // OData quotes a quote by doubling it.
    let quoted = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let parts: Vec<String> = [
        machine
            .as_deref()
            .map(|m| format!("machineId eq {}", quoted(m))),
        status
            .as_deref()
            .map(|s| format!("status eq {}", quoted(s))),
        kind.as_deref().map(|t| format!("type eq {}", quoted(t))),
        since
            .as_deref()
            .map(|t| format!("creationDateTimeUtc ge {t}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// The client of a command that is not a fleet run (and the simulator of `--simulate`, empty):
/// every wait for a limit is said on stderr.
async fn connect(cli: &Cli, names: &[String]) -> Result<(Option<mde_sim::Simulator>, Client), u8> {
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

/// `mde action list`: one filtered call, newest first (and one to resolve a machine name).
async fn action_list(
    cli: &Cli,
    by: Option<MachineBy>,
    status: &Option<String>,
    kind: &Option<String>,
    since: &Option<String>,
) -> Result<u8, u8> {
    let names: Vec<String> = match &by {
        Some(MachineBy::Name(name, _)) => {
            crate::names::check(name).map_err(|e| fail(USAGE, e))?;
            vec![name.clone()]
        }
        _ => Vec::new(),
    };
    let (simulator, client) = connect(cli, &names).await?;
    let machine = match by {
        None => None,
        Some(MachineBy::Id(id)) => Some(id),
        Some(MachineBy::Name(name, latest)) => {
            let resolved = crate::names::resolve(&client, &names, latest)
                .await
                .map_err(|e| fail(code_of(&e), error_chain(&e)))?;
            match resolved.names.into_iter().next().map(|(_, r)| r) {
                Some(crate::names::Resolved::Machine(m)) => {
                    eprintln!("mde: {name} is {} ({})", m.id, m.name);
                    Some(m.id)
                }
                Some(crate::names::Resolved::Ambiguous(candidates)) => {
                    let list: Vec<String> = candidates.iter().map(|c| c.describe()).collect();
                    return Err(fail(
                        PARTIAL,
                        format!(
                            "{} machines are named {name}: {}; give the id, or --pick latest",
                            list.len(),
                            list.join("; ")
                        ),
                    ));
                }
                _ => return Err(fail(PARTIAL, format!("no machine is named {name}"))),
            }
        }
    };
    let filter = action_filter(&machine, status, kind, since);
    let page = client
        .send(operations::ListMachineActions {
            filter,
            top: Some(10_000),
            skip: None,
        })
        .await;
    let page = page.map_err(|e| fail(code_of(&e), error_chain(&e)))?;
    let mut stdout = std::io::stdout().lock();
    if cli.run.output == Output::Table {
        let _ = writeln!(stdout, "{}", output::ACTION_HEADER);
    }
    for action in &page.value {
        let id = action.id.as_deref().unwrap_or_default();
        let line = match cli.run.output {
            Output::Table => output::action_row(id, action),
            Output::Json => serde_json::to_string(action).unwrap_or_default(),
        };
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
    eprintln!("mde: {} action(s)", page.value.len());
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(OK)
}

/// `mde package download`: each completed collection's package, saved, verified and recorded
/// in the folder's manifest; one already recorded and still verified is not fetched again.
async fn package_download(cli: &Cli, ids: &[String], out: &std::path::Path) -> Result<u8, u8> {
    use crate::evidence;
    let (simulator, client) = connect(cli, &[]).await?;
    evidence::folder(out).map_err(|e| {
        fail(
            USAGE,
            format!("cannot make the folder {}: {e}", out.display()),
        )
    })?;
    let recorded = evidence::read(out).map_err(|e| {
        fail(
            USAGE,
            format!("cannot read the manifest in {}: {e}", out.display()),
        )
    })?;
    let mut code = OK;
    let mut stdout = std::io::stdout().lock();
    let mut say = |id: &str, outcome: &str, detail: String, record: Option<&evidence::Record>| {
        let line = match cli.run.output {
            Output::Table => format!("{id:<36}  {outcome:<13}  {detail}"),
            Output::Json => serde_json::json!({ "action": id, "outcome": outcome, "detail": detail, "record": record }).to_string(),
        };
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    };
    for id in ids {
        if let Some(record) = recorded.iter().rev().find(|r| r.action_id == *id) {
            match evidence::verify(out, record) {
                Ok(evidence::Verdict::Verified) => {
                    say(id, "already_saved", record.file.clone(), Some(record));
                    continue;
                }
                verdict => {
                    code = PARTIAL;
                    say(
                        id,
                        "failed",
                        format!(
                            "{} is recorded but not as recorded ({verdict:?}); not replaced",
                            record.file
                        ),
                        None,
                    );
                    continue;
                }
            }
        }
        let action = match client
            .send(operations::GetMachineAction { id: id.clone() })
            .await
        {
            Ok(action) => action,
            Err(
                e @ (Error::Authentication(_) | Error::Permission { .. } | Error::Configuration(_)),
            ) => {
                return Err(fail(AUTH, error_chain(&e)));
            }
            Err(e) => {
                code = PARTIAL;
                say(id, "failed", error_chain(&e), None);
                continue;
            }
        };
        if action.status != Some(types::MachineActionStatus::Succeeded) {
            code = PARTIAL;
            let status = action
                .status
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            say(id, "not_ready", format!("the collection is {status}"), None);
            continue;
        }
        let machine = action.machine_id.clone().unwrap_or_default();
        let file = evidence::file_name(&machine, id);
        match client.download_package(id, None, &out.join(&file)).await {
            Ok(saved) => {
                let record = evidence::Record::new(&action, &file, saved.size, &saved.sha256);
                evidence::append(out, &record).map_err(|e| {
                    fail(
                        USAGE,
                        format!("cannot write the manifest in {}: {e}", out.display()),
                    )
                })?;
                say(
                    id,
                    "saved",
                    format!("{file} {} bytes sha256 {}", saved.size, saved.sha256),
                    Some(&record),
                );
            }
            Err(e) => {
                code = PARTIAL;
                say(id, "failed", error_chain(&e), None);
            }
        }
    }
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(code)
}

/// `mde package verify`: every record's file, re-hashed.
fn package_verify(cli: &Cli, dir: &std::path::Path) -> Result<u8, u8> {
    use crate::evidence::{self, Verdict};
    let records = evidence::read(dir).map_err(|e| {
        fail(
            PARTIAL,
            format!("cannot read the manifest in {}: {e}", dir.display()),
        )
    })?;
    if records.is_empty() {
        return Err(fail(
            PARTIAL,
            format!("no {} in {}", evidence::MANIFEST, dir.display()),
        ));
    }
    let mut code = OK;
    let mut stdout = std::io::stdout().lock();
    for record in &records {
        let verdict = evidence::verify(dir, record).map_err(|e| {
            fail(
                PARTIAL,
                format!("cannot read {}: {e}", dir.join(&record.file).display()),
            )
        })?;
        if verdict != Verdict::Verified {
            code = PARTIAL;
        }
        let line = match (cli.run.output, &verdict) {
            (Output::Json, _) => serde_json::json!({ "file": record.file, "action": record.action_id, "result": verdict }).to_string(),
            (Output::Table, Verdict::Verified) => format!("verified  {}", record.file),
            (Output::Table, Verdict::Missing) => format!("MISSING   {}", record.file),
            (Output::Table, Verdict::Mismatch { size, sha256 }) => format!(
                "CHANGED   {} ({size} bytes, sha256 {sha256}; recorded {} bytes, sha256 {})",
                record.file, record.size, record.sha256
            ),
        };
        let _ = writeln!(stdout, "{line}");
    }
    Ok(code)
}

fn credentials_error() -> String {
    "no credentials: set MDE_TOKEN, or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or give --token, or --tenant-id, --client-id and --client-secret), or try --simulate".into()
}

/// The ids and names of a run, each de-duplicated with a warning; a usage error when there
/// are none, or a name no machine could have.
fn machines(targets: &Targets, op: OperationId) -> Result<(Vec<String>, Vec<String>), u8> {
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
fn time_scale(conn: &Connection) -> Result<f64, u8> {
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

/// What the resumed journal recorded (nothing for a new run); it must be a run of `op`.
fn history(cli: &Cli, op: OperationId) -> Result<History, u8> {
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
async fn simulator(
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
fn client(
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
fn open_journal(cli: &Cli) -> Result<(PathBuf, Journal), u8> {
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
type Intent = (OperationId, Option<String>, Option<OperationId>);

/// The machines of a run: the names resolved (or taken from the resumed journal). With
/// `--dry-run` the plan is printed and the command ends (`Err` with its exit code); an action
/// on more than 10 machines is confirmed first.
async fn select(
    cli: &Cli,
    targets: &Targets,
    client: &Client,
    history: &History,
    (ids, names): (Vec<String>, Vec<String>),
    (op, detail, then): Intent,
) -> Result<Selection, u8> {
    let selection = selection::select(client, ids, &names, targets.pick.is_some(), history)
        .await
        .map_err(|e| {
            fail(
                code_of(&e),
                format!("cannot resolve the machine names: {}", error_chain(&e)),
            )
        })?;
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

/// Opens the journal of a run and records the names it resolved.
fn start_journal(cli: &Cli, selection: &Selection) -> Result<(PathBuf, Journal), u8> {
    let (path, journal) = open_journal(cli)?;
    selection.record(&journal).map_err(|e| {
        fail(
            USAGE,
            format!("cannot write the journal {}: {e}", path.display()),
        )
    })?;
    Ok((path, journal))
}

/// Sends `op` to every machine of `targets`, journaled, and reports; with `wait`, follows
/// every scan to its final status, looking every `wait`.
async fn fleet_run(
    cli: &Cli,
    op: OperationId,
    targets: &Targets,
    scan_type: Option<types::ScanType>,
    wait: Option<Duration>,
) -> Result<u8, u8> {
    let conn = &cli.connection;
    let (ids, names) = machines(targets, op)?;
    let scale = time_scale(conn)?;
    let history = history(cli, op)?;
    let simulator = simulator(conn, scale, &ids, &names).await?;

    let bar = (std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} ({per_sec}) {msg}")
                .expect("a valid template"),
        );
        bar
    });
    // The end of the current wait, in real time: the bar shows it until then.
    let waiting_until = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let on_wait = {
        let bar = bar.clone();
        let waiting_until = waiting_until.clone();
        let real = if conn.simulate || conn.time_scale.is_some() {
            scale
        } else {
            1.0
        };
        move |event: &WaitEvent| {
            let end = wait_message(event, real, bar.as_ref());
            *waiting_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
        }
    };
    let client = client(conn, simulator.as_ref(), scale, on_wait)?;
    let intent = (op, scan_type.map(|t| format!("ScanType {t}")), None);
    let selection = select(cli, targets, &client, &history, (ids, names), intent).await?;
    let machines = selection.machines.clone();
    let (path, journal) = start_journal(cli, &selection)?;

    let total = machines.len();
    let started = std::time::Instant::now();
    let json = cli.run.output == Output::Json;
    // JSON lines go out as each machine ends (with --wait, as its scan ends), so that a pipe
    // sees them live.
    let print_json = |outcome: &fleet::Outcome| {
        let mut stdout = std::io::stdout().lock();
        let line = output::json_line(&selection.named(outcome));
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    };
    let live = json && wait.is_none();
    if json {
        selection.unresolved.iter().for_each(print_json);
    }
    let mut progress = |event: Progress<'_>| match (event, &bar) {
        (Progress::Earlier(outcome), _) => {
            if live {
                print_json(outcome);
            }
        }
        (Progress::Start(n), Some(bar)) => bar.set_length(n as u64),
        (Progress::Start(n), None) => {
            if n < total {
                eprintln!(
                    "mde: {} of {total} machines already done by the journal; sending to {n}",
                    total - n
                );
            }
        }
        (Progress::Done(outcome), bar) => {
            if live {
                print_json(outcome);
            }
            match bar {
                Some(bar) => {
                    bar.inc(1);
                    let mut until = waiting_until.lock().unwrap_or_else(|e| e.into_inner());
                    if until.is_some_and(|end| end <= std::time::Instant::now()) {
                        *until = None;
                        bar.set_message("");
                    }
                }
                None => eprintln!("{}", output::line(&selection.named(outcome))),
            }
        }
    };
    let plan = fleet::Plan {
        op,
        comment: &targets.comment,
        retry_unknown: cli.run.retry_unknown,
        scan_type,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let batch = fleet::Batch {
        plan,
        machines,
        journal: &journal,
        history,
    };
    let mut report = fleet::run(&client, batch, &mut progress, stop)
        .await
        .map_err(|e| {
            fail(
                USAGE,
                format!("cannot write the journal {}: {e}", path.display()),
            )
        })?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let mut waited = None;
    if let Some(interval) = wait.filter(|_| report.fatal.is_none() && report.not_sent.is_empty()) {
        eprintln!(
            "mde: following the scans to their final status: one listMachineActions call every {}",
            output::duration(interval)
        );
        let mut ended = |outcome: &fleet::Outcome| {
            if json {
                print_json(outcome);
            } else {
                eprintln!("{}", output::line(&selection.named(outcome)));
            }
        };
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let followed = crate::wait::follow(&client, &mut report, interval, &mut ended, stop)
            .await
            .map_err(|e| {
                fail(
                    code_of(&e),
                    format!("cannot follow the scans: {}", error_chain(&e)),
                )
            })?;
        waited = Some(followed);
    }
    report.outcomes = report
        .outcomes
        .iter()
        .map(|o| selection.named(o))
        .chain(selection.unresolved.iter().cloned())
        .collect();

    let mut stdout = std::io::stdout().lock();
    let written = match cli.run.output {
        Output::Table => output::table(&report, &mut stdout),
        Output::Json => output::json_not_sent(&report, &mut stdout),
    };
    let _ = written.and_then(|()| stdout.flush());
    eprintln!(
        "mde: {} in {:.1} s{}",
        output::summary(&report),
        started.elapsed().as_secs_f64(),
        match &waited {
            Some(w) => format!(
                "; {} listMachineActions call(s) followed the scans",
                w.list_calls
            ),
            None => String::new(),
        }
    );
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    if let Some(fatal) = &report.fatal {
        return Ok(fail(AUTH, format!("stopped: {fatal}")));
    }
    if !report.not_sent.is_empty() {
        let args = resume_command(std::env::args().collect(), &path, cli.run.resume.is_some());
        eprintln!(
            "mde: interrupted; the requests in flight were answered and journaled. Resume with:\n  {}",
            args.join(" ")
        );
        return Ok(INTERRUPTED);
    }
    if let Some(left) = waited.as_ref().and_then(|w| w.interrupted.as_ref()) {
        eprintln!(
            "mde: stopped waiting; the scans go on. Follow them with:\n  mde action show {}",
            left.join(" ")
        );
        return Ok(INTERRUPTED);
    }
    let all_ok = match waited {
        Some(_) => crate::wait::all_succeeded(&report),
        None => report
            .outcomes
            .iter()
            .all(|o| o.outcome == fleet::Kind::Succeeded),
    };
    Ok(if all_ok { OK } else { PARTIAL })
}

/// `mde package collect --download`: each machine from its collection to a verified package
/// in the evidence folder, journaled at every stage.
async fn collect_download(
    cli: &Cli,
    targets: &Targets,
    settings: pipeline::Settings<'_>,
) -> Result<u8, u8> {
    let conn = &cli.connection;
    let op = OperationId::CollectInvestigationPackage;
    let scan_type = None;
    let (ids, names) = machines(targets, op)?;
    let scale = time_scale(conn)?;
    let history = history(cli, op)?;
    let simulator = simulator(conn, scale, &ids, &names).await?;
    // Waits for the limits are the pace here, not news: the bar's ETA says them.
    let client = client(conn, simulator.as_ref(), scale, |_: &WaitEvent| {})?;
    let intent = (op, None, Some(OperationId::GetPackageUri));
    let selection = select(cli, targets, &client, &history, (ids, names), intent).await?;
    // Names that came to no single machine end here, as their own lines.
    for outcome in &selection.unresolved {
        match cli.run.output {
            Output::Json => println!("{}", output::json_line(outcome)),
            Output::Table => eprintln!("{}", output::line(outcome)),
        }
    }
    let machines = selection.machines.clone();
    crate::evidence::folder(settings.dir).map_err(|e| {
        fail(
            USAGE,
            format!("cannot make the folder {}: {e}", settings.dir.display()),
        )
    })?;
    let (path, journal) = start_journal(cli, &selection)?;
    let real = if conn.simulate || conn.time_scale.is_some() {
        scale
    } else {
        1.0
    };
    let in_real = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / real);
    let shortest = mde_client::minimum_duration(OperationId::GetPackageUri, machines.len());
    eprintln!(
        "mde: {} package(s) need at least {} at getPackageUri's documented limits (2 a minute, 120 an hour){}",
        machines.len(),
        output::duration(shortest),
        if real == 1.0 {
            String::new()
        } else {
            format!(
                "; {} here at time x{real}",
                output::duration(in_real(shortest))
            )
        }
    );

    let bar = (std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(machines.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("a valid template"),
        );
        bar
    });
    let started = std::time::Instant::now();
    let json = cli.run.output == Output::Json;
    let mut last_line = None::<std::time::Instant>;
    let named = |package: &pipeline::Package| pipeline::Package {
        name: selection.names.get(&package.machine).cloned(),
        ..package.clone()
    };
    let mut progress = |board: &pipeline::Board, ended: Option<&pipeline::Package>| {
        if let Some(package) = ended.map(named).as_ref() {
            if json {
                let mut stdout = std::io::stdout().lock();
                let line = serde_json::to_string(package).unwrap_or_default();
                let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
            }
            if bar.is_none() {
                eprintln!("{}", output::package_line(package));
            }
        }
        let eta = output::duration(in_real(board.shortest_left()));
        let text = format!("{} · ETA {eta}", output::stages(board));
        match &bar {
            Some(bar) => {
                bar.set_position(
                    (board.count(pipeline::Stage::Saved) + board.count(pipeline::Stage::Failed))
                        as u64,
                );
                bar.set_message(text);
            }
            None => {
                if last_line.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    last_line = Some(std::time::Instant::now());
                    eprintln!("mde: {text}");
                }
            }
        }
    };
    let plan = fleet::Plan {
        op,
        comment: &targets.comment,
        retry_unknown: cli.run.retry_unknown,
        scan_type,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let batch = fleet::Batch {
        plan,
        machines,
        journal: &journal,
        history,
    };
    let mut report = pipeline::run(&client, batch, settings, &mut progress, stop)
        .await
        .map_err(|e| fail(USAGE, format!("cannot go on: {e}")))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    report.packages = report.packages.iter().map(named).collect();
    let mut stdout = std::io::stdout().lock();
    let written = match cli.run.output {
        Output::Table => output::packages_table(&report, &mut stdout),
        Output::Json => output::json_not_sent(
            &fleet::Report {
                not_sent: report.not_sent.clone(),
                ..fleet::Report::default()
            },
            &mut stdout,
        ),
    };
    let _ = written.and_then(|()| stdout.flush());
    eprintln!(
        "mde: {} in {:.1} s; {} listMachineActions call(s) followed them",
        output::packages_summary(&report),
        started.elapsed().as_secs_f64(),
        report.list_calls
    );
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    if let Some(fatal) = &report.fatal {
        return Ok(fail(AUTH, format!("stopped: {fatal}")));
    }
    if report.interrupted {
        let args = resume_command(std::env::args().collect(), &path, cli.run.resume.is_some());
        eprintln!(
            "mde: interrupted; every stage reached is journaled. Resume with:\n  {}",
            args.join(" ")
        );
        return Ok(INTERRUPTED);
    }
    let all_saved = report.not_sent.is_empty()
        && selection.unresolved.is_empty()
        && report
            .packages
            .iter()
            .all(|p| p.stage == pipeline::Stage::Saved);
    Ok(if all_saved { OK } else { PARTIAL })
}

/// `mde action show`: each action as the service has it now, in the order given.
async fn action_show(cli: &Cli, ids: &[String]) -> Result<u8, u8> {
    let (simulator, client) = connect(cli, &[]).await?;
    let mut stdout = std::io::stdout().lock();
    if cli.run.output == Output::Table {
        let _ = writeln!(stdout, "{}", output::ACTION_HEADER);
    }
    let mut code = OK;
    for id in ids {
        let shown = client
            .send(operations::GetMachineAction { id: id.clone() })
            .await;
        let line = match (&shown, cli.run.output) {
            (Ok(action), Output::Table) => output::action_row(id, action),
            (Ok(action), Output::Json) => {
                serde_json::json!({ "id": id, "action": action }).to_string()
            }
            (Err(e), Output::Table) => format!("{id}  {}", error_chain(e)),
            (Err(e), Output::Json) => {
                serde_json::json!({ "id": id, "error": error_chain(e) }).to_string()
            }
        };
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        match shown {
            Ok(_) => {}
            Err(
                e @ (Error::Authentication(_) | Error::Permission { .. } | Error::Configuration(_)),
            ) => {
                return Err(fail(AUTH, error_chain(&e)));
            }
            Err(_) => code = PARTIAL,
        }
    }
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(code)
}

/// The command line that resumes this run: the same, with `--resume JOURNAL` for `--journal`,
/// and secrets given as flags left out (shown as `[secret]`, to be given again).
fn resume_command(args: Vec<String>, journal: &std::path::Path, resuming: bool) -> Vec<String> {
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

/// Shows a wait, on the bar or as a line; returns when it ends, in real time.
fn wait_message(event: &WaitEvent, scale: f64, bar: Option<&ProgressBar>) -> std::time::Instant {
    let real = Duration::from_secs_f64(event.wait.as_secs_f64() / scale);
    let until = chrono::Local::now() + chrono::Duration::from_std(real).unwrap_or_default();
    let why = match event.reason {
        WaitReason::RateLimit => "the documented rate limit",
        WaitReason::RetryAfter => "the service's Retry-After",
        WaitReason::Backoff => "a retry",
    };
    let message = format!("waiting for {why} until {}", until.format("%H:%M:%S"));
    match bar {
        Some(bar) => bar.set_message(message),
        None => eprintln!("mde: {message} ({} s)", event.wait.as_secs()),
    }
    std::time::Instant::now() + real
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
