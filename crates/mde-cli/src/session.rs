//! What the commands share, below them: the exit codes, the simulator and the client, the
//! machines of a run and their selection, the run's record and journal, and the signals that
//! stop a run.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use mde_client::operations::{AnyRequest, OperationId};
use mde_client::{Client, Error, WaitEvent};

use crate::cli::{Cli, Connection, Targets};
use crate::fleet;
use crate::journal::{Entry, History, Journal, Recorded, RunRecord};
use crate::selection::{self, Selection};
use crate::targets;
use crate::vocabulary::{
    AUTH, INTERRUPTED, LOCAL, OK, PARTIAL, TERMINATED, USAGE, code_of, fail, failed,
};

/// The simulator's speed when `--simulate` is given without `--time-scale`.
const DEFAULT_TIME_SCALE: f64 = 60.0;

/// The client of a command that is not a fleet run (and the simulator of `--simulate`, empty):
/// every wait for a limit is said on stderr.
pub(crate) async fn connect(
    cli: &Cli,
    names: &[String],
) -> Result<(Option<mde_sim::Simulator>, Client), u8> {
    let conn = &cli.connection;
    if conn.profile.len() > 1 {
        return Err(fail(
            USAGE,
            "only a run of actions on machines goes to several profiles at once; give this command one --profile",
        ));
    }
    let scale = time_scale(conn)?;
    let simulator = simulator(conn, scale, &[], names).await?;
    let client = client(conn, simulator.as_ref(), scale, |event: &WaitEvent| {
        // The documented pace is expected: a wait of it under a second is not worth a line.
        if event.wait.as_secs() >= 1 || event.reason != mde_client::WaitReason::RateLimit {
            eprintln!(
                "mde: waiting {} s for {:?}",
                event.wait.as_secs(),
                event.reason
            );
        }
    })?;
    sign_in(&client).await?;
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
    scope: &[String],
) -> Result<(Vec<String>, Vec<String>), u8> {
    let (machines, repeated) =
        targets::machine_ids(&targets.machines, targets.machines_file.as_deref(), scope)
            .map_err(|e| fail(USAGE, e))?;
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} machine id(s) given more than once, sent once: {}",
            repeated.len(),
            escaped(&repeated)
        );
    }
    // Sent as given (the service's ids are opaque), but a name given as an id is a likely slip.
    let odd: Vec<&str> = machines
        .iter()
        .filter(|id| {
            targets::on_machines(op) && !targets::well_formed(crate::vocabulary::qualified(id).1)
        })
        .map(String::as_str)
        .collect();
    if !odd.is_empty() {
        eprintln!(
            "warning: {} machine id(s) are not 40 or 32 hex characters, as the service's ids are; sent as given: {}. A computer name goes with --machine-name.",
            odd.len(),
            escaped(&odd)
        );
    }
    let (names, repeated) =
        targets::machine_names(&targets.names, targets.names_file.as_deref(), scope)
            .map_err(|e| fail(USAGE, e))?;
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} machine name(s) given more than once, looked up once: {}",
            repeated.len(),
            escaped(&repeated)
        );
    }
    for name in &names {
        crate::names::check(crate::vocabulary::qualified(name).1).map_err(|e| fail(USAGE, e))?;
    }
    if machines.is_empty() && names.is_empty() && targets.tag.is_none() {
        return Err(fail(
            USAGE,
            "no machines: give ids as arguments or with --machines-file, names with --machine-name or --names-file, or a tag with --tag",
        ));
    }
    Ok((machines, names))
}

/// The tag the machines are given by, if any.
pub(crate) fn tag(targets: &Targets) -> selection::Tag<'_> {
    targets.tag.as_deref().map(|t| (t, targets.tag_prefix))
}

/// Ids or names as a list a terminal shows as it is.
fn escaped(items: &[impl AsRef<str>]) -> String {
    items
        .iter()
        .map(|i| crate::vocabulary::escape(i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
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

/// What the run is, to journal and to hold a resume to: the plan's request, where it goes
/// and as whom, and the machines as given.
pub(crate) fn run_record(
    conn: &Connection,
    plan: &fleet::Plan<'_>,
    (ids, names, tag): (&[String], &[String], selection::Tag<'_>),
    download: Option<&std::path::Path>,
) -> RunRecord {
    let (tenant, client_id) = if conn.simulate {
        (
            Some(mde_sim::DEFAULT_TENANT.to_string()),
            Some(mde_sim::DEFAULT_CLIENT_ID.to_string()),
        )
    } else if crate::signin::token(conn).is_some() {
        (None, None)
    } else {
        (conn.tenant_id.clone(), conn.client_id.clone())
    };
    let api = if conn.simulate {
        "simulator".to_string()
    } else {
        match &conn.api_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => mde_client::Endpoints::of(conn.cloud, conn.region)
                .map(|e| e.api)
                .unwrap_or_else(|e| e),
        }
    };
    let mut machines: Vec<String> = ids.iter().map(|id| targets::id_key(id)).collect();
    machines.sort();
    let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.sort();
    RunRecord {
        operation: plan.op(),
        request: plan.body(),
        tenant,
        client_id,
        api,
        machines,
        names,
        tag: selection::tag_key(tag),
        download: download.map(|d| d.display().to_string()),
    }
}

/// The resumed journal, read once (nothing for a new run), when it records a run of the same
/// profiles (`profiles`: the run's, none for a run of one connection); `download`: the run
/// saves evidence, which a simulated run cannot resume.
pub(crate) fn recorded(
    conn: &Connection,
    targets: &Targets,
    download: bool,
    profiles: &[&str],
) -> Result<Option<Recorded>, u8> {
    let Some(path) = &targets.journaling.resume else {
        return Ok(None);
    };
    if conn.simulate && download {
        return Err(fail(USAGE, SIMULATED_DOWNLOAD));
    }
    let recorded = Recorded::read(path).map_err(|e| {
        fail(
            USAGE,
            format!("cannot read the journal {}: {e}", path.display()),
        )
    })?;
    let parts = recorded.profiles();
    if parts.len() != profiles.len() || profiles.iter().any(|p| !parts.iter().any(|r| r == p)) {
        let list = |p: &[&str]| match p {
            [] => "one connection (no --profile, or one)".to_string(),
            _ => format!("the profiles {}", p.join(", ")),
        };
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        return Err(fail(
            USAGE,
            format!(
                "{} records a run of {}, not of {}; resume it as it was started, or start a new run without --resume",
                path.display(),
                list(&parts),
                list(profiles)
            ),
        ));
    }
    Ok(Some(recorded))
}

/// What the resumed journal recorded of `profile`'s part (nothing for a new run). A resume
/// continues the same run or is refused: another request, tenant, client, host or machine
/// set is named.
pub(crate) fn history(
    targets: &Targets,
    record: &RunRecord,
    (profile, recorded): (Option<&str>, Option<&Recorded>),
) -> Result<History, u8> {
    let (Some(path), Some(recorded)) = (&targets.journaling.resume, recorded) else {
        return Ok(History::default());
    };
    let history = recorded.history(profile);
    let Some(run) = &history.run else {
        return Err(fail(
            USAGE,
            format!(
                "{} records no run (its first line is not a run of this mde); start a new run without --resume",
                path.display()
            ),
        ));
    };
    let differences = run.differences(record);
    if !differences.is_empty() {
        return Err(fail(
            USAGE,
            format!(
                "{} records another run; resume it as it was started, or start a new run without --resume:\n  {}",
                path.display(),
                differences.join("\n  ")
            ),
        ));
    }
    Ok(history)
}

/// Why a simulated `--download` run cannot be resumed.
pub(crate) const SIMULATED_DOWNLOAD: &str = "a --simulate --download run cannot be resumed: its collections lived in the embedded simulator, which ended with the run; start it again without --resume";

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
    client_of(conn, simulator, scale, on_wait).map_err(|(code, why)| fail(code, why))
}

/// [`client`], its error its exit code and what to say.
pub(crate) fn client_of(
    conn: &Connection,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
) -> Result<Client, (u8, String)> {
    let mut builder = match simulator {
        Some(sim) => sim.client_builder(),
        None => Client::builder(),
    }
    .cloud(conn.cloud)
    .region(conn.region)
    .on_wait(on_wait);
    if let Some(path) = &conn.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| (USAGE, format!("cannot read {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(pem);
    }
    if simulator.is_none() {
        if let Some(url) = &conn.api_url {
            builder = builder.base_url(url);
        }
        if let Some(url) = &conn.login_url {
            builder = builder.login_url(url);
        }
        let secret = conn.client_secret.as_deref().filter(|s| !s.is_empty());
        let auth = crate::signin::chosen(conn);
        let identity = match auth {
            Some(auth) => crate::signin::credential(auth, conn).map_err(|e| (AUTH, e))?,
            None => None,
        };
        builder = if let Some(credential) = identity {
            let auth = auth.map_or("", |a| a.as_str());
            eprintln!("mde: signing in with {auth}");
            builder.token_credential(credential)
        } else {
            match (
                crate::signin::token(conn),
                &conn.tenant_id,
                &conn.client_id,
                secret,
            ) {
                (Some(token), ..) => {
                    let from = if std::env::var("MDE_TOKEN").is_ok_and(|t| t == token) {
                        "MDE_TOKEN"
                    } else {
                        "--token"
                    };
                    eprintln!("mde: signing in with the bearer token of {from}");
                    builder.bearer_token(token)
                }
                (None, Some(tenant), Some(client), Some(secret)) => {
                    let from = match &conn.secret_from {
                        Some(variable) => variable.as_str(),
                        None if std::env::var("AZURE_CLIENT_SECRET").is_ok_and(|s| s == secret) => {
                            "AZURE_CLIENT_SECRET"
                        }
                        None => "--client-secret",
                    };
                    eprintln!(
                        "mde: signing in as client {} of tenant {} with the secret of {from}",
                        crate::vocabulary::escape(client),
                        crate::vocabulary::escape(tenant)
                    );
                    builder.client_credentials(tenant, client, secret)
                }
                _ => return Err((AUTH, credentials_error())),
            }
        };
        if conn.time_scale.is_some() {
            // Against a simulator of its own (--api-url), at the speed it was told.
            builder = builder.clock(Arc::new(mde_sim::Clock::scaled(scale)));
        }
    }
    builder.build().map_err(|e| (AUTH, e.to_string()))
}

/// Gets a token before the first request: wrong credentials or an unreachable sign-in
/// host end the command (exit 3) before anything is sent or journaled.
pub(crate) async fn sign_in(client: &Client) -> Result<(), u8> {
    sign_in_of(client)
        .await
        .map_err(|(code, why)| fail(code, why))
}

/// [`sign_in`], its error its exit code and what to say.
pub(crate) async fn sign_in_of(client: &Client) -> Result<(), (u8, String)> {
    client.sign_in().await.map_err(|e| {
        let text = crate::vocabulary::error_text(&e);
        // rustls's words for a host whose certificate no trusted CA signed.
        let untrusted = ["UnknownIssuer", "invalid peer certificate", "self-signed"]
            .iter()
            .any(|t| text.contains(t));
        let fix = match untrusted {
            true => "\nThe sign-in host's TLS certificate is not trusted: give its CA with --ca-cert FILE (or a profile's ca_cert).",
            false => "",
        };
        (AUTH, format!("cannot sign in, nothing was sent: {text}{fix}"))
    })
}

/// The journal: the one resumed, or a new one (the one named, or one here with a name of
/// its own: milliseconds and the process id), created exclusively with the run's record
/// (each part's, in a run of several profiles).
fn open_journal(
    journaling: &crate::cli::Journaling,
    records: &[(Option<&str>, &RunRecord)],
) -> Result<(PathBuf, Journal), u8> {
    let cannot = |path: &std::path::Path, e: std::io::Error| {
        fail(
            LOCAL,
            format!(
                "cannot write the journal {}: {e}; nothing was sent",
                path.display()
            ),
        )
    };
    if let Some(path) = &journaling.resume {
        let journal = Journal::open(path).map_err(|e| cannot(path, e))?;
        eprintln!("mde: journal {} (resumed)", path.display());
        return Ok((path.clone(), journal));
    }
    let path = journaling.journal.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "mde-journal-{}-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        ))
    });
    let journal = Journal::create(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => fail(
            USAGE,
            format!(
                "the journal {} exists: resume its run with --resume {0}, or name a new file",
                path.display()
            ),
        ),
        _ => cannot(&path, e),
    })?;
    for (profile, record) in records {
        let entry = Entry::Run {
            run: (*record).clone(),
            at: crate::journal::now(),
        };
        let written = journal.of_profile(*profile).append(&entry);
        if let Err(e) = written.and_then(|()| journal.sync()) {
            // Nothing was sent: no journal of a run that never began is left behind.
            let _ = std::fs::remove_file(&path);
            return Err(cannot(&path, e));
        }
    }
    eprintln!("mde: journal {}", path.display());
    Ok((path, journal))
}

/// What a dry run says of a run besides its machines: the operation, what else the request
/// carries, and the calls that follow each request.
pub(crate) type Intent = (OperationId, Option<String>, Option<OperationId>);

/// The machines of one tenant's part of a run, before anything is sent.
#[derive(Debug)]
pub(crate) struct Chosen {
    /// The machines: those given by id, by name, by tag.
    pub selection: Selection,
    /// With `--cancel-pending`: the opposite actions to cancel first (machine, action).
    pub to_cancel: Vec<(String, mde_client::types::MachineAction)>,
}

/// The machines of a part: the names and the tag resolved (or taken from the resumed
/// journal); for a containment, the machines where the same or the opposite action is pending
/// taken out (with `--cancel-pending`, the opposite actions to cancel first).
pub(crate) async fn resolve(
    targets: &Targets,
    client: &Client,
    history: &History,
    (ids, names): (Vec<String>, Vec<String>),
    op: OperationId,
) -> Result<Chosen, (u8, String)> {
    let given = (&names[..], tag(targets));
    let mut selection = selection::select(client, ids, given, targets.pick.is_some(), history)
        .await
        .map_err(|e| {
            let text = crate::vocabulary::error_text(&e);
            (code_of(&e), format!("cannot resolve the machines: {text}"))
        })?;
    let to_cancel = race(client, targets, op, &mut selection)
        .await
        .map_err(|e| {
            let list = OperationId::ListMachineActions.facts();
            (
                code_of(&e),
                format!(
                    "cannot read the pending actions, the check against the duplicate-action race (#5903): {}. Give the app {} (application), or send without the check with --skip-pending-check: a duplicate or opposite action still pending is then not seen, and one that completes after this run's can undo it",
                    crate::vocabulary::error_text(&e),
                    list.application_permissions.join(" or ")
                ),
            )
        })?;
    Ok(Chosen {
        selection,
        to_cancel,
    })
}

/// Prints what the run would send, each part under its profile, and in a run of several
/// the run's shortest time (its longest part's: they run at once); returns the exit code.
pub(crate) fn dry_run(
    cli: &Cli,
    parts: &[(Option<&str>, &Chosen)],
    stopped: &[&str],
    (op, detail, then): Intent,
) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let mut longest = std::time::Duration::ZERO;
    for (profile, chosen) in parts {
        if !chosen.to_cancel.is_empty() {
            eprintln!(
                "mde: {}would cancel {} pending opposite action(s) first (--cancel-pending)",
                profile.map(|p| format!("{p}: ")).unwrap_or_default(),
                chosen.to_cancel.len()
            );
        }
        let plan = selection::DryRun {
            op,
            detail: detail.clone(),
            comment: comment_of(cli),
            selection: &chosen.selection,
            then,
            tenant: *profile,
        };
        let _ = plan.print(cli.run.output, &mut stdout);
        longest = longest.max(plan.shortest());
    }
    if parts.len() + stopped.len() > 1 {
        let _ =
            selection::print_longest(cli.run.output, parts.len(), stopped, longest, &mut stdout);
    }
    let _ = stdout.flush();
    if parts.iter().all(|(_, c)| c.selection.unresolved.is_empty()) {
        OK
    } else {
        PARTIAL
    }
}

/// Asks before sending to the parts' machines (those their history does not show as done),
/// when [`selection::confirm`] says to.
pub(crate) fn confirm(
    cli: &Cli,
    targets: &Targets,
    op: OperationId,
    parts: &[(Option<&str>, &Chosen, &History)],
) -> Result<(), u8> {
    // A simulated run acts on nothing real: it never asks.
    let yes = targets.confirm.yes || cli.connection.simulate;
    let asked: Vec<selection::ToConfirm<'_>> = parts
        .iter()
        .map(|(profile, chosen, history)| {
            let selection = &chosen.selection;
            let machines = selection
                .machines
                .iter()
                .filter(|m| !history.done.contains_key(*m))
                .map(|m| (m.as_str(), selection.names.get(m).map(String::as_str)))
                .collect();
            (*profile, machines)
        })
        .collect();
    selection::confirm(op, &asked, yes).map_err(|e| fail(USAGE, e))
}

/// Cancels the pending opposite actions of `--cancel-pending` first, each journaled before
/// it is sent and after it ends; a machine whose action stays pending is a `conflict`, not
/// sent to. The machines to send to.
pub(crate) async fn cancel_first(
    cli: &Cli,
    client: &Client,
    op: OperationId,
    chosen: Chosen,
    journal: &Journal,
) -> Result<Selection, u8> {
    let Chosen {
        mut selection,
        to_cancel,
    } = chosen;
    if to_cancel.is_empty() {
        return Ok(selection);
    }
    let cannot = |e: std::io::Error| {
        let path = journal.path().display();
        fail(
            LOCAL,
            format!("cannot write the journal {path}: {e}; nothing was sent"),
        )
    };
    for (machine, action) in &to_cancel {
        let action = action.id.clone().unwrap_or_default();
        let entry = Entry::Cancelling {
            machine: machine.clone(),
            action,
            at: crate::journal::now(),
        };
        journal.append(&entry).map_err(cannot)?;
    }
    journal.sync().map_err(cannot)?;
    let actions: Vec<_> = to_cancel.iter().map(|(_, a)| a.clone()).collect();
    let why = format!("Cancelled by mde before {op}: {}", comment_of(cli));
    eprintln!(
        "mde: cancelling {} pending opposite action(s) first",
        actions.len()
    );
    let interval = std::time::Duration::from_secs(30);
    let stuck = crate::pending::cancel(client, &actions, &why, interval)
        .await
        .map_err(failed("cannot cancel the pending actions"))?;
    for (machine, action) in &to_cancel {
        let id = action.id.clone().unwrap_or_default();
        let ended = stuck.iter().find(|(stuck, _)| *stuck == id);
        let status = ended.map_or("Cancelled".to_string(), |(_, status)| status.clone());
        let entry = Entry::Cancelled {
            machine: machine.clone(),
            action: id,
            status,
            at: crate::journal::now(),
        };
        journal.append(&entry).map_err(cannot)?;
        if ended.is_some() {
            selection.machines.retain(|m| m != machine);
            selection
                .unresolved
                .push(crate::pending::conflict(op, machine, action));
        } else {
            let cancelled = crate::pending::cancelled_first(op, machine, action);
            selection.cancelled.push(cancelled);
        }
    }
    Ok(selection)
}

/// Before a containment run: machines whose same action is pending are `already_running`,
/// those whose opposite action is pending a `conflict`, both taken out of the run; with
/// `--cancel-pending`, the opposite actions to cancel first instead (machine, action).
async fn race(
    client: &Client,
    targets: &Targets,
    op: OperationId,
    selection: &mut Selection,
) -> Result<Vec<(String, mde_client::types::MachineAction)>, Error> {
    if targets.skip_pending_check {
        return Ok(Vec::new());
    }
    let Some(pending) = crate::pending::read(client, op).await? else {
        return Ok(Vec::new());
    };
    let mut to_cancel = Vec::new();
    let mut outcomes = Vec::new();
    selection.machines.retain(|machine| {
        if let Some(action) = pending.same.get(machine) {
            outcomes.push(crate::pending::already_running(op, machine, action));
            return false;
        }
        if let (Some(action), false) = (pending.in_effect.get(machine), targets.again) {
            outcomes.push(crate::pending::already_in_effect(op, machine, action));
            return false;
        }
        match pending.opposite.get(machine) {
            Some(action) if targets.cancel_pending => {
                to_cancel.push((machine.clone(), action.clone()));
                true
            }
            Some(action) => {
                outcomes.push(crate::pending::conflict(op, machine, action));
                false
            }
            None => true,
        }
    });
    selection.unresolved.extend(outcomes);
    Ok(to_cancel)
}

/// What a run sends to each machine: the template, and what the command line says of
/// resuming.
pub(crate) fn plan<'a>(targets: &Targets, template: &'a AnyRequest) -> fleet::Plan<'a> {
    fleet::Plan {
        template,
        retry_unknown: targets.journaling.retry_unknown,
        retry_failed: targets.journaling.retry_failed,
    }
}

/// The `Comment` of the body the command line gives.
fn comment_of(cli: &Cli) -> &str {
    let comment = cli.body.get("Comment").and_then(serde_json::Value::as_str);
    comment.unwrap_or_default()
}

/// The signal that stopped the run, as its exit code (0: none yet).
static SIGNALLED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Resolves at Ctrl-C or SIGTERM: a run stops sending, and lets what is in flight end.
pub(crate) async fn stop_signal() {
    let code = {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = tokio::signal::ctrl_c() => INTERRUPTED,
                    _ = term.recv() => TERMINATED,
                },
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    INTERRUPTED
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            INTERRUPTED
        }
    };
    SIGNALLED.store(code, std::sync::atomic::Ordering::SeqCst);
}

/// The exit code of a run a signal stopped: 130 for Ctrl-C, 143 for SIGTERM.
pub(crate) fn stopped_code() -> u8 {
    match SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => INTERRUPTED,
        code => code,
    }
}

/// Opens the journal of a run and records the names each part resolved (the parts: their
/// profile, the machines they resolved and their record).
pub(crate) fn start_journal(
    targets: &Targets,
    parts: &[(Option<&str>, Option<&Selection>, &RunRecord)],
) -> Result<(PathBuf, Journal), u8> {
    let records: Vec<_> = parts.iter().map(|(p, _, r)| (*p, *r)).collect();
    let (path, journal) = open_journal(&targets.journaling, &records)?;
    for (profile, selection, _) in parts {
        if let Some(selection) = selection
            && let Err(e) = selection.record(&journal.of_profile(*profile))
        {
            if targets.journaling.resume.is_none() {
                let _ = std::fs::remove_file(&path);
            }
            return Err(fail(
                LOCAL,
                format!(
                    "cannot write the journal {}: {e}; nothing was sent",
                    path.display()
                ),
            ));
        }
    }
    Ok((path, journal))
}

/// The command line that resumes this run, quoted for the shell it runs in: the same, with
/// `--resume JOURNAL` for `--journal`, and secrets given as flags left out (the line says which
/// variable to set instead), so that it runs as pasted.
pub(crate) fn resume_command(
    args: Vec<String>,
    journal: &std::path::Path,
    resuming: bool,
) -> String {
    // Each secret flag, and the variable that gives the same.
    const SECRETS: [(&str, &str); 2] = [
        ("--token", "MDE_TOKEN"),
        ("--client-secret", "AZURE_CLIENT_SECRET"),
    ];
    let mut out: Vec<String> = Vec::new();
    let mut left_out: Vec<(&str, &str)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let secret = SECRETS
            .iter()
            .find(|(flag, _)| arg == *flag || arg.starts_with(&format!("{flag}=")));
        if let Some(&(flag, variable)) = secret {
            if arg == flag {
                args.next();
            }
            if !left_out.contains(&(flag, variable)) {
                left_out.push((flag, variable));
            }
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
    let mut line = out
        .iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ");
    for (flag, variable) in left_out {
        line.push_str(&format!(
            "\n  (with {variable} set: the secret given with {flag} is not repeated here)"
        ));
    }
    line
}

/// `arg` as the shell takes it back: POSIX quoting (`shlex`), PowerShell's on Windows.
fn shell_quote(arg: &str) -> String {
    #[cfg(windows)]
    {
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./\\:=@,+".contains(c));
        if plain {
            arg.to_string()
        } else {
            format!("'{}'", arg.replace('\'', "''"))
        }
    }
    #[cfg(not(windows))]
    {
        // Only a NUL cannot be quoted, and no argument holds one.
        shlex::try_quote(arg).map_or_else(|_| arg.replace('\0', ""), |q| q.into_owned())
    }
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
        assert_eq!(
            resumed,
            "mde package collect a --comment c --resume j.jsonl\n  (with MDE_TOKEN set: the secret given with --token is not repeated here)\n  (with AZURE_CLIENT_SECRET set: the secret given with --client-secret is not repeated here)"
        );
        assert!(!resumed.contains("T0KEN") && !resumed.contains("S3CRET"));
        let again = resume_command(
            args("mde package collect a --comment c --resume j.jsonl"),
            journal,
            true,
        );
        assert_eq!(again, "mde package collect a --comment c --resume j.jsonl");
        // Pasted back into the shell, each argument is one argument again.
        let spaced: Vec<String> = ["mde", "scan", "--comment", "interrupt me", "it's $HOME"]
            .map(String::from)
            .to_vec();
        let line = resume_command(spaced, journal, false);
        assert_eq!(
            shlex::split(&line).unwrap(),
            [
                "mde",
                "scan",
                "--comment",
                "interrupt me",
                "it's $HOME",
                "--resume",
                "j.jsonl"
            ]
        );
    }
}
