//! `mde package collect --download DIR` and `mde live --out DIR`: each machine from its
//! request to verified evidence on disk, at the documented limits: a collection's package,
//! or the results of a live response session's commands (a RunScript's transcript, a
//! GetFile's file).
//!
//! The requests go out as in any fleet run ([`fleet::run`], journaled); alongside, one
//! listMachineActions call per polling interval follows every action of the run, each
//! completed one gets its links (getPackageUri: 2 a minute, the limit that sets a
//! collection's pace; a result's link 100 a minute) as soon as the limits allow, and a
//! bounded number of downloads run at once. Every stage is journaled. On `--resume` a
//! machine's stage is read again from where it is true: the journal for its action (never a
//! second collection or session), the service for its status, the evidence folder for its
//! files (never a second download of a verified one).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mde_client::operations::Answer;
use mde_client::types::{
    LiveResponseCommandResult, LiveResponseCommandStatus, MachineAction, MachineActionStatus,
    MachineActionType,
};
use mde_client::{Client, Downloaded, Error, OperationId, PackageLink};
use serde::Serialize;

use crate::evidence::{self, Record, Verdict};
use crate::fleet::{self, Batch, Plan};
use crate::journal::{Entry, History, Journal, now};
use crate::json::Line;
use crate::vocabulary::{self, ErrorInfo, Kind, Outcome, Stage, error_text};

mod drive;
mod files;
mod kinds;
mod lookup;
mod poll;
mod stages;
mod transfer;

use files::adopt_saved;
use kinds::has_result;
pub use kinds::{Board, CommandResult, Evidence, Package};
pub(crate) use lookup::find_actions;
use lookup::settle_unknown;

/// How the pipeline runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    /// The evidence folder.
    pub dir: &'a Path,
    /// Time between two listMachineActions calls (the service's time).
    pub interval: Duration,
    /// Links asked for or downloads running at once.
    pub parallel: usize,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct EvidenceReport {
    /// Every machine's package, in the order the machines were given.
    pub packages: Vec<Package>,
    /// Machines not sent to: the run was stopped before them.
    pub not_sent: Vec<String>,
    /// An error that stopped the run: it holds for every machine.
    pub fatal: Option<String>,
    /// Why the run stopped sending: the service looked unreachable (see [`fleet::FleetReport`]).
    pub unreachable: Option<String>,
    /// Stopped by `stop` (Ctrl-C).
    pub interrupted: bool,
    /// A local fault that stopped the run: the journal or the evidence folder could not be
    /// written (a full disk, a read-only folder).
    pub local: Option<String>,
    /// listMachineActions calls made to follow the collections.
    pub list_calls: usize,
}

/// Something to show: the board changed; `ended` is a machine that reached its final stage.
pub type OnBoard<'a> = &'a mut dyn FnMut(&Board, Option<&Package>);

/// What goes with a stage: the status or what went wrong, and the record once saved.
#[derive(Default)]
struct Note {
    detail: Option<String>,
    /// What went wrong, when the note is a failure of the client's.
    error: Option<ErrorInfo>,
    record: Option<Record>,
    earlier: bool,
    /// The collection's status, when the stage came from it.
    status: Option<MachineActionStatus>,
}

/// A link asked for, or a download: the work in flight for one file.
enum Step {
    Link(Result<PackageLink, Error>),
    Saved(Result<Downloaded, Error>),
}

/// A file to save: an action's package (`index` none), or the result of its command `index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Item {
    action: String,
    index: Option<i32>,
}

type Work<'a> = Pin<Box<dyn Future<Output = (Item, Step)> + 'a>>;

/// The machines of the run, as their evidence moves.
struct Pipeline<'a> {
    client: &'a Client,
    journal: &'a Journal,
    settings: Settings<'a>,
    evidence: Evidence,
    board: Board,
    packages: HashMap<String, Package>,
    /// Each action followed or fetched: its machine, and the action as last seen.
    actions: HashMap<String, (String, MachineAction)>,
    /// Complete, waiting for a link, oldest first.
    ready: VecDeque<Item>,
    /// Answered 404 for its link though listed as complete: asked again after the next poll.
    retry: Vec<Item>,
    /// How many 404s each such link had, up to [`NOT_YET`].
    early: HashMap<Item, u32>,
    /// Files of each action not saved yet.
    outstanding: HashMap<String, usize>,
    /// Machines whose action was already running: found at the next poll.
    to_find: Vec<String>,
    /// Machines whose request never reached the service: sent again on resume.
    not_sent: Vec<String>,
    /// How many looks in a row each followed action was missing from the list.
    unlisted: mde_client::Unlisted,
    /// Manifest records by [`evidence::key`].
    recorded: HashMap<String, Record>,
    list_calls: usize,
}

/// How many 404s a link may get for an action the list shows complete.
const NOT_YET: u32 = 5;

/// Whether `e` is the evidence folder's, not the machine's: a full disk, a file too large for
/// the limits, a read-only or over-quota file system.
fn local_fault(e: &Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e, Error::Io { source, .. } if matches!(
        source.kind(),
        K::StorageFull | K::FileTooLarge | K::ReadOnlyFilesystem | K::QuotaExceeded
    ))
}

/// Runs the batch's plan (a collection) on its machines and takes each to a verified package
/// in `settings.dir`. Stops when `stop` resolves: the requests in flight are answered and
/// journaled; links and downloads in flight are dropped (a download's `.part` is continued
/// on resume).
pub async fn run(
    client: &Client,
    batch: Batch<'_>,
    settings: Settings<'_>,
    progress: OnBoard<'_>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<EvidenceReport> {
    let Batch {
        plan,
        machines,
        journal,
        mut history,
    } = batch;
    let mut report = EvidenceReport::default();
    let order: HashMap<String, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), i))
        .collect();
    let op = plan.template.operation();
    let mut pipeline = Pipeline::new(client, journal, settings, op, machines.len())?;
    match settle_unknown(client, journal, &mut history, (op, &plan.comment())).await {
        Ok(calls) => pipeline.list_calls += calls,
        Err(e) => {
            report.fatal = Some(error_text(&e));
            report.not_sent = machines;
            return Ok(report);
        }
    }
    let stop = stop.shared();
    // Stops the requests when following cannot go on (a journal that cannot be written).
    let halt = tokio::sync::Notify::new();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let halted = {
        let (stop, halt) = (stop.clone(), &halt);
        async move {
            tokio::select! {
                () = stop => {}
                () = halt.notified() => {}
            }
        }
    };
    let batch = Batch {
        plan: Plan {
            retry_unknown: true,
            ..plan
        },
        machines,
        journal,
        history,
    };
    let requests = requests(client, batch, tx, halted);
    let follow = async {
        let followed = pipeline.drive(rx, stop.clone(), progress).await;
        if followed.is_err() {
            halt.notify_one();
        }
        followed
    };
    let (fleet, followed) = tokio::join!(requests, follow);
    report.interrupted = stop.now_or_never().is_some();
    Ok(pipeline.report(report, fleet, followed, &order))
}

/// The requests of a run, as any fleet run sends them, each outcome forwarded to `tx`.
async fn requests(
    client: &Client,
    batch: Batch<'_>,
    tx: tokio::sync::mpsc::UnboundedSender<Outcome>,
    stop: impl Future<Output = ()>,
) -> fleet::FleetReport {
    let mut forward = |event: fleet::FleetEvent<'_>| match event {
        fleet::FleetEvent::Done(o) | fleet::FleetEvent::Earlier(o) => {
            let _ = tx.send(o.clone());
        }
        fleet::FleetEvent::Start(_) => {}
    };
    fleet::run(client, batch, &mut forward, stop).await
}

impl<'a> Pipeline<'a> {
    /// A pipeline for `total` machines of `op`, the evidence folder's records read.
    fn new(
        client: &'a Client,
        journal: &'a Journal,
        settings: Settings<'a>,
        op: OperationId,
        total: usize,
    ) -> std::io::Result<Pipeline<'a>> {
        let recorded: HashMap<String, Record> = evidence::read(settings.dir)?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        let evidence = Evidence::of(op).unwrap_or_default();
        Ok(Pipeline {
            client,
            journal,
            settings,
            evidence,
            board: Board {
                evidence,
                total,
                ..Board::default()
            },
            packages: HashMap::new(),
            actions: HashMap::new(),
            ready: VecDeque::new(),
            retry: Vec::new(),
            early: HashMap::new(),
            outstanding: HashMap::new(),
            to_find: Vec::new(),
            not_sent: Vec::new(),
            unlisted: mde_client::Unlisted::default(),
            recorded,
            list_calls: 0,
        })
    }

    /// How the run ended: the requests' report, how following ended, every package in the
    /// order the machines were given.
    fn report(
        self,
        mut report: EvidenceReport,
        fleet: fleet::FleetReport,
        followed: Result<(), Error>,
        order: &HashMap<String, usize>,
    ) -> EvidenceReport {
        report.not_sent = self.not_sent.clone();
        report.not_sent.extend(fleet.not_sent);
        report.fatal = fleet.fatal;
        report.unreachable = fleet.unreachable;
        report.local = fleet.local;
        match followed {
            Ok(()) => {}
            // The journal or the evidence folder cannot be written: nothing more is recorded.
            Err(Error::Io { path, source }) => {
                report
                    .local
                    .get_or_insert_with(|| format!("cannot write {}: {source}", path.display()));
            }
            Err(e) => {
                report.fatal.get_or_insert_with(|| error_text(&e));
            }
        }
        report.list_calls = self.list_calls;
        let mut packages: Vec<Package> = self.packages.into_values().collect();
        packages.sort_by_key(|p| order.get(&p.machine).copied().unwrap_or(usize::MAX));
        report.packages = packages;
        report
    }
}
