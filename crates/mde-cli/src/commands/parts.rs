//! The start and the end of a run of one or several tenants' parts, what the action commands
//! (`fleet_run`) and the evidence pipeline (`package`) share: each part's record and history,
//! its sign-in and machines (every part at once), the dry run, the confirmation, the journal;
//! and how the run ended, said once for every part.

use std::path::PathBuf;

use futures_util::future::join_all;
use mde_client::operations::{AnyRequest, UploadLibraryFile};
use mde_client::{Client, WaitEvent};

use crate::cli::{Cli, Targets};
use crate::journal::{History, Journal, RunRecord};
use crate::output;
use crate::selection::Selection;
use crate::session::{
    Intent, PartMachines, cancel_first, confirm, dry_run, history, machines, plan, recorded,
    resolve, run_record, start_journal, stopped_code, tag, time_scale, try_client, try_sign_in,
};
use crate::tenants::{self, Part};
use crate::vocabulary::{AUTH, LOCAL, OK, PARTIAL, fail};

/// A run's parts, each with its record and what the resumed journal holds of it.
pub(super) struct PlannedParts {
    pub parts: Vec<Part>,
    pub records: Vec<RunRecord>,
    pub histories: Vec<History>,
    /// A run of several profiles: a part that cannot start stops alone, each has a summary
    /// and an evidence folder of its own.
    pub several: bool,
    /// A run of profiles (one or several): each machine's tenant is shown.
    pub named: bool,
    /// The simulated seconds per real second of the first part (the run's, against one
    /// simulator).
    pub scale: f64,
}

/// The parts of a run of `template` (a resume of another run refused); `download`: the
/// evidence folder of a run that saves evidence.
pub(super) fn prepare(
    cli: &Cli,
    targets: &Targets,
    template: &AnyRequest,
    download: Option<&std::path::Path>,
) -> Result<PlannedParts, u8> {
    let given = machines(targets, template.operation(), &cli.connection.profile)?;
    let parts = tenants::split(cli, targets, given)?;
    let profiles: Vec<&str> = parts.iter().filter_map(|p| p.profile.as_deref()).collect();
    let recorded = recorded(&parts[0].conn, targets, download.is_some(), &profiles)?;
    let mut records = Vec::new();
    let mut histories = Vec::new();
    for part in &parts {
        time_scale(&part.conn)?;
        let given = (&part.ids[..], &part.names[..], tag(targets));
        let mut record = run_record(&part.conn, &plan(targets, template), given, download);
        record.hunt = (targets.from_hunt.as_ref()).map(|q| format!("{} of {q}", targets.id_column));
        let of = (part.profile.as_deref(), recorded.as_ref());
        histories.push(history(targets, &record, of)?);
        records.push(record);
    }
    Ok(PlannedParts {
        several: profiles.len() > 1,
        named: !profiles.is_empty(),
        scale: time_scale(&parts[0].conn)?,
        parts,
        records,
        histories,
    })
}

/// One tenant's part of the run, signed in and its machines resolved.
pub(super) struct ReadyPart<'a> {
    pub part: &'a Part,
    pub client: Client,
    pub history: History,
    pub selection: Selection,
}

impl ReadyPart<'_> {
    /// The profile, in a run of several.
    pub fn profile(&self) -> Option<&str> {
        self.part.profile.as_deref()
    }
}

/// A part that stopped before sending: its exit code and why.
pub(super) type Stopped = (u8, String);

/// How one part readied: signed in and its machines resolved, or stopped.
enum PartStart<'a> {
    ReadyPart(Box<(ReadyPart<'a>, PartMachines)>),
    Stopped(&'a Part, Stopped),
}

/// A run begun: its parts sending, those stopped before, and its journal.
pub(super) struct RunStart<'a> {
    pub going: Vec<ReadyPart<'a>>,
    pub stopped: Vec<(&'a Part, Stopped)>,
    pub path: PathBuf,
    pub journal: Journal,
}

/// Every part signs in and resolves its machines at once (`on_wait`: each part's waits,
/// given its profile); then the dry run (the command ends), the confirmation, the pending
/// opposite actions cancelled, what goes `before` the first request (a check, then a library
/// script uploaded in each tenant that lacks it), and the journal. A part that cannot start stops alone in a run of several; a run of one connection
/// ends on its error, as it always has.
pub(super) async fn begin<'a, W>(
    cli: &Cli,
    targets: &Targets,
    prepared: &'a PlannedParts,
    simulator: Option<&mde_sim::Simulator>,
    on_wait: impl Fn(Option<&str>) -> W,
    intent: Intent,
    before: (impl FnOnce() -> Result<(), u8>, Option<UploadLibraryFile>),
) -> Result<RunStart<'a>, u8>
where
    W: Fn(&WaitEvent) + Send + Sync + 'static,
{
    let op = intent.0;
    let readied = join_all(prepared.parts.iter().zip(&prepared.histories).map(
        |(part, history)| {
            let on_wait = on_wait(part.profile.as_deref());
            ready(
                part,
                history,
                simulator,
                prepared.scale,
                on_wait,
                targets,
                op,
            )
        },
    ))
    .await;
    let mut going = Vec::new();
    let mut stopped: Vec<(&Part, Stopped)> = Vec::new();
    let mut chosen = Vec::new();
    for readied in readied {
        match readied {
            PartStart::ReadyPart(part) => {
                let (part, choice) = *part;
                chosen.push((part.part.profile.as_deref(), choice));
                going.push(part);
            }
            PartStart::Stopped(_, (code, why)) if !prepared.several => return Err(fail(code, why)),
            PartStart::Stopped(part, why) => stopped.push((part, why)),
        }
    }
    for (part, (_, why)) in &stopped {
        eprintln!(
            "mde: {}stopped before sending: {why}",
            output::of_tenant(part.profile.as_deref())
        );
    }
    let (check, script) = before;
    let ensures = plan_ensures(&going, script.as_ref(), targets.confirm.dry_run).await?;
    if targets.confirm.dry_run {
        return Err(show_dry_run(cli, &ensures, &chosen, &stopped, intent));
    }
    let asked: Vec<_> = going
        .iter()
        .zip(&chosen)
        .map(|(g, (profile, c))| (*profile, c, &g.history))
        .collect();
    confirm(cli, targets, op, &asked)?;
    check()?;
    for ((ensure, tenant), going) in ensures.into_iter().zip(&going) {
        super::library::ensure(&going.client, ensure, &tenant).await?;
    }
    // Each part's record, with the machines its names resolved to (none for a stopped part).
    let journaled: Vec<_> = (prepared.parts.iter().zip(&prepared.records))
        .map(|(part, record)| {
            let mut of_part = going.iter().zip(&chosen);
            let chosen = of_part.find(|(g, _)| std::ptr::eq(g.part, part));
            (
                part.profile.as_deref(),
                chosen.map(|(_, (_, c))| &c.selection),
                record,
            )
        })
        .collect();
    let (path, journal) = start_journal(targets, &journaled)?;
    for (going, (_, choice)) in going.iter_mut().zip(chosen) {
        let journal = journal.of_profile(going.profile());
        going.selection = cancel_first(cli, &going.client, op, choice, &journal).await?;
    }
    Ok(RunStart {
        going,
        stopped,
        path,
        journal,
    })
}

/// The dry run of every part (and what `--ensure-script` would do); its exit code, the most
/// pressing of the parts'.
fn show_dry_run(
    cli: &Cli,
    ensures: &[(super::library::Ensure, String)],
    chosen: &[(Option<&str>, PartMachines)],
    stopped: &[(&Part, Stopped)],
    intent: Intent,
) -> u8 {
    for (ensure, tenant) in ensures {
        eprintln!("{}", ensure.say(tenant, true));
    }
    let shown: Vec<_> = chosen.iter().map(|(p, c)| (*p, c)).collect();
    let names: Vec<&str> = stopped
        .iter()
        .filter_map(|(part, _)| part.profile.as_deref())
        .collect();
    let code = dry_run(cli, &shown, &names, intent);
    stopped
        .iter()
        .map(|(_, (code, _))| *code)
        .fold(code, u8::max)
}

/// What `--ensure-script` does in each tenant's library, read before anything is sent (or
/// said, in a dry run), with each tenant's prefix.
async fn plan_ensures(
    going: &[ReadyPart<'_>],
    script: Option<&UploadLibraryFile>,
    dry_run: bool,
) -> Result<Vec<(super::library::Ensure, String)>, u8> {
    let mut ensures = Vec::new();
    for going in script
        .into_iter()
        .flat_map(|s| going.iter().map(move |g| (s, g)))
    {
        let (script, going) = going;
        let tenant = output::of_tenant(going.profile());
        let ensure = super::library::plan_ensure(&going.client, script.clone(), &tenant, dry_run);
        ensures.push((ensure.await?, tenant));
    }
    Ok(ensures)
}

/// Signs one part in and resolves its machines; in a run of several, an error stops the part
/// alone (its exit code and why).
async fn ready<'a>(
    part: &'a Part,
    history: &History,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
    targets: &Targets,
    op: mde_client::OperationId,
) -> PartStart<'a> {
    let stopped = |stopped: Stopped| PartStart::Stopped(part, stopped);
    if let Some(problem) = &part.problem {
        return stopped((AUTH, problem.clone()));
    }
    let client = match try_client(&part.conn, simulator, scale, on_wait) {
        Ok(client) => client,
        Err(e) => return stopped(e),
    };
    if let Err(e) = try_sign_in(&client).await {
        return stopped(e);
    }
    let given = (part.ids.clone(), part.names.clone());
    match resolve(targets, &client, history, given, op).await {
        Ok(chosen) => PartStart::ReadyPart(Box::new((
            ReadyPart {
                part,
                client,
                history: history.clone(),
                selection: Selection::default(),
            },
            chosen,
        ))),
        Err(e) => stopped(e),
    }
}

/// A run whose machines all came from a hunt that found none: says so, and the exit code (0,
/// or 1 with `--fail-empty`); `None` for any other run.
pub(super) fn found_nothing(
    targets: &Targets,
    going: &[ReadyPart<'_>],
    stopped: &[(&Part, Stopped)],
) -> Option<u8> {
    let none = going.iter().all(|g| g.selection.machines.is_empty());
    if targets.from_hunt.is_none() || !none || !stopped.is_empty() {
        return None;
    }
    eprintln!("mde: the hunt found no machine; nothing was sent");
    Some(if targets.fail_empty { PARTIAL } else { OK })
}

/// How one part of a run ended, for the exit code and what is said of it.
#[derive(Debug, Default)]
pub(super) struct Ending<'a> {
    pub profile: Option<&'a str>,
    /// What stopped it, holding for every machine (credentials, permission, configuration).
    pub fatal: Option<&'a str>,
    /// The last error of the requests in a row that got no answer.
    pub unreachable: Option<&'a str>,
    /// The local fault that stopped it (the journal or the evidence folder not writable).
    pub local: Option<&'a str>,
    /// Stopped by a signal before every machine was done.
    pub interrupted: bool,
    /// Stopped waiting: the actions still going.
    pub following: Option<&'a [String]>,
    /// Could no longer follow the actions: why, and the actions still going.
    pub lost: Option<(&'a str, &'a [String])>,
    /// Every machine succeeded.
    pub all_ok: bool,
}

/// The end of a run of parts, after its table, the same for every command: the distinct
/// errors, each tenant's summary in a run of several, the run's summary line; then how each
/// part ended and the exit code ([`exit_code`]).
pub(super) fn finish(
    (block, summaries, total): (Vec<String>, Vec<String>, String),
    endings: &[Ending<'_>],
    interrupted: &str,
    resume: Result<String, &str>,
) -> u8 {
    if !block.is_empty() {
        eprintln!("mde: errors:\n{}", block.join("\n"));
    }
    if summaries.len() > 1 {
        for summary in summaries {
            eprintln!("mde: {summary}");
        }
    }
    eprintln!("mde: {total}");
    exit_code(endings, interrupted, resume)
}

/// What is said of a part that did not end well: its exit code, the sentence, what comes
/// before the resume line (when it can be resumed), and the actions still going; `None` for
/// a part that ended (well or with failures of single machines).
fn sentence<'a>(
    ending: &Ending<'a>,
    interrupted: &str,
) -> Option<(u8, String, Option<&'static str>, &'a [String])> {
    Some(if let Some(fatal) = ending.fatal {
        // #6054: the device's group has no automation level; only the portal changes that.
        let portal = if fatal.contains("DisallowedOperation") {
            "\nIn the Microsoft Defender portal, give the device's group an automation level (Settings > Endpoints > Device groups: at least the minimum remediation level)."
        } else {
            ""
        };
        (
            AUTH,
            format!("stopped: {fatal}{portal}"),
            Some("\nNo machine is journaled as failed; once fixed, resume with"),
            &[],
        )
    } else if let Some(local) = ending.local {
        (
            LOCAL,
            format!(
                "stopped: {local}. Nothing more was sent; the requests in flight were answered and are shown above."
            ),
            Some("\nFree the space (or fix the folder), then resume with"),
            &[],
        )
    } else if let Some(last) = ending.unreachable {
        (
            PARTIAL,
            format!(
                "stopped sending: the service looks unreachable ({} requests in a row got no answer; the last: {last}).",
                crate::fleet::UNREACHABLE
            ),
            Some(" Once it answers, resume with"),
            &[],
        )
    } else if ending.interrupted {
        (
            stopped_code(),
            interrupted.to_string(),
            Some(" Resume with"),
            &[],
        )
    } else if let Some(left) = ending.following {
        (
            stopped_code(),
            "stopped waiting; the actions go on.".to_string(),
            None,
            left,
        )
    } else if let Some((why, left)) = ending.lost {
        // The requests were accepted: not "nothing was sent" (3), whatever the cause.
        (
            PARTIAL,
            format!(
                "could not follow the actions to their end ({} still running when it stopped): {why}; the actions go on.",
                left.len()
            ),
            None,
            left,
        )
    } else {
        return None;
    })
}

/// Says how each part ended that did not end well, then once how to go on (`resume`: the
/// command line that resumes, or why the run cannot be); `interrupted` says what an
/// interruption kept. The most pressing part sets the code: 3 when one needs its credentials
/// or permission fixed, then a signal's, then 1.
fn exit_code(endings: &[Ending<'_>], interrupted: &str, resume: Result<String, &str>) -> u8 {
    // 3 first, then 4, then a signal's 130 or 143, then 1.
    let rank = |c: u8| match c {
        AUTH => 4,
        LOCAL => 3,
        PARTIAL => 1,
        OK => 0,
        _ => 2,
    };
    let mut code = OK;
    let mut tail: Option<(u8, &str)> = None;
    let mut follow: Vec<String> = Vec::new();
    let mut said = Vec::new();
    for ending in endings {
        let Some((part_code, sentence, then, left)) = sentence(ending, interrupted) else {
            code = code.max(if ending.all_ok { OK } else { PARTIAL });
            continue;
        };
        follow.extend(left.iter().cloned());
        if rank(part_code) > rank(code) {
            code = part_code;
        }
        if let Some(then) = then
            && tail.is_none_or(|(c, _)| rank(part_code) > rank(c))
        {
            tail = Some((part_code, then));
        }
        said.push(format!(
            "mde: {}{sentence}",
            output::of_tenant(ending.profile)
        ));
    }
    let follow_line = (!follow.is_empty())
        .then(|| format!(" Follow them with:\n  mde action show {}", follow.join(" ")));
    let go_on = |then: &str| match &resume {
        Ok(command) => format!("{then}:\n  {command}"),
        Err(why) => format!(" (not resumable) {why}"),
    };
    match (&said[..], tail) {
        // One part: one message, as a run of one connection has always said it.
        ([one], Some((_, then))) => eprintln!("{one}{}", go_on(then)),
        ([one], None) => eprintln!("{one}{}", follow_line.unwrap_or_default()),
        (many, tail) => {
            for line in many {
                eprintln!("{line}");
            }
            if let Some(line) = follow_line {
                eprintln!("mde:{line}");
            }
            if let Some((_, then)) = tail {
                eprintln!("mde: {}", go_on(then).trim_start());
            }
        }
    }
    code
}
