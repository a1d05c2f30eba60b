//! `mde package collect --download DIR`: each machine from its collection request to a
//! verified package on disk, at the documented limits.
//!
//! The requests go out as in any fleet run ([`fleet::run`], journaled); alongside, one
//! listMachineActions call per polling interval follows every collection of the run, each
//! completed one gets its link (getPackageUri: 2 a minute, the limit that sets the pace) as
//! soon as the limit allows, and a bounded number of downloads run at once. Every stage is
//! journaled. On `--resume` a machine's stage is read again from where it is true: the
//! journal for its action (never a second collection), the service for its status, the
//! evidence folder for its file (never a second download of a verified one).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mde_client::operations::Answer;
use mde_client::types::{MachineAction, MachineActionStatus, MachineActionType};
use mde_client::{Client, Downloaded, Error, OperationId, PackageLink};
use serde::{Deserialize, Serialize};

use crate::evidence::{self, Record, Verdict};
use crate::fleet::{self, Batch, Kind, Outcome, Plan};
use crate::journal::{Entry, History, Journal, now};
use crate::json::{ErrorInfo, Line};

/// Where a machine's package is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The collection was asked for; the device has not picked it up (`Pending`).
    Requested,
    /// The device is collecting (`InProgress`, or a status the spec does not know).
    Collecting,
    /// The package is complete, waiting for its link.
    Ready,
    /// The link was given; the package is on its way.
    Downloading,
    /// Saved, verified and recorded in the manifest.
    Saved,
    /// The collection or the download failed.
    Failed,
}

impl Stage {
    /// Every stage, in the order a package goes through them.
    pub const ALL: [Stage; 6] = [
        Stage::Requested,
        Stage::Collecting,
        Stage::Ready,
        Stage::Downloading,
        Stage::Saved,
        Stage::Failed,
    ];

    /// Its name in the journal, the output and on the progress bar.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Requested => "requested",
            Stage::Collecting => "collecting",
            Stage::Ready => "ready",
            Stage::Downloading => "downloading",
            Stage::Saved => "saved",
            Stage::Failed => "failed",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Stage::Saved | Stage::Failed)
    }
}

/// One machine's package, as it ended (or stood when the run stopped).
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// The machine id.
    pub machine: String,
    /// The machine's fully qualified name, when it was given by name.
    pub name: Option<String>,
    /// Its collection's machine action id, once there is one.
    pub action: Option<String>,
    /// Where it got to.
    pub stage: Stage,
    /// The collection's status as last seen.
    pub status: Option<MachineActionStatus>,
    /// The collection's status, or what went wrong, for people.
    pub detail: Option<String>,
    /// What went wrong, once failed.
    pub error: Option<ErrorInfo>,
    /// The manifest's record, once saved.
    pub record: Option<Record>,
    /// Saved by an earlier run (resumed), not downloaded now.
    pub earlier: bool,
}

impl Package {
    /// Its line of JSON output: the outcome is the stage.
    pub fn line(&self) -> Line {
        Line {
            machine: Some(self.machine.clone()),
            name: self.name.clone(),
            action_id: self.action.clone(),
            status: self.status.as_ref().map(ToString::to_string),
            error: self.error.clone(),
            ..Line::new(self.stage.as_str())
        }
        .with("earlier", self.earlier)
        .with("detail", &self.detail)
        .with("record", &self.record)
    }
}

/// How many machines are at each stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Board {
    /// Machines in the run.
    pub total: usize,
    /// Machines at each stage, in the order of [`Stage::ALL`]; the rest are not requested yet.
    pub at: [usize; 6],
}

impl Board {
    /// Machines at `stage`.
    pub fn count(&self, stage: Stage) -> usize {
        self.at[stage as usize]
    }

    /// Links still to ask for: every machine not saved, failed or downloading.
    pub fn links_left(&self) -> usize {
        self.total
            - self.count(Stage::Saved)
            - self.count(Stage::Failed)
            - self.count(Stage::Downloading)
    }

    /// The shortest time the documented limits allow for what is left (getPackageUri's
    /// limit dominates: 2 a minute).
    pub fn shortest_left(&self) -> Duration {
        mde_client::minimum_duration(OperationId::GetPackageUri, self.links_left())
    }
}

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
pub struct Report {
    /// Every machine's package, in the order the machines were given.
    pub packages: Vec<Package>,
    /// Machines not sent to: the run was stopped before them.
    pub not_sent: Vec<String>,
    /// An error that stopped the run: it holds for every machine.
    pub fatal: Option<String>,
    /// Why the run stopped sending: the service looked unreachable (see [`fleet::Report`]).
    pub unreachable: Option<String>,
    /// Stopped by `stop` (Ctrl-C).
    pub interrupted: bool,
    /// listMachineActions calls made to follow the collections.
    pub list_calls: usize,
}

/// Something to show: the board changed; `ended` is a machine that reached its final stage.
pub type Progress<'a> = &'a mut dyn FnMut(&Board, Option<&Package>);

/// The collection `outcome` created or found, if any.
fn action_of(outcome: &Outcome) -> Option<MachineAction> {
    match &outcome.result {
        Some(Answer::CollectInvestigationPackage(a)) => Some(a.clone()),
        _ => None,
    }
}

/// Of `machines`, the newest action of type `kind` each has (with `comment`, when given),
/// found with one listMachineActions call per 20 machines; and the list calls it took.
pub(crate) async fn find_actions(
    client: &Client,
    kind: MachineActionType,
    machines: &[String],
    comment: Option<&str>,
) -> Result<(HashMap<String, MachineAction>, usize), Error> {
    let mut found: HashMap<String, MachineAction> = HashMap::new();
    let mut calls = 0;
    for chunk in machines.chunks(20) {
        let either = chunk
            .iter()
            .map(|m| format!("machineId eq '{}'", m.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(" or ");
        let filter = format!("type eq '{}' and ({either})", kind.as_str());
        let listed = client.list_actions(Some(filter)).await?;
        calls += mde_client::workspace::list_calls(listed.len());
        // Newest first: the first of each machine is its newest.
        for action in listed {
            let ours = comment.is_none_or(|c| action.requestor_comment.as_deref() == Some(c));
            if let Some(machine) = action.machine_id.clone().filter(|_| ours) {
                found.entry(machine).or_insert(action);
            }
        }
    }
    Ok((found, calls))
}

/// Machines an earlier run sent to without recording the answer: those whose collection
/// exists (found by machine and comment) are recorded with it now, so none gets a second
/// one; the others never reached the service and are sent again. Returns the list calls it
/// took.
async fn settle_unknown(
    client: &Client,
    journal: &Journal,
    history: &mut History,
    comment: &str,
) -> Result<usize, Error> {
    if history.unknown.is_empty() {
        return Ok(0);
    }
    let (found, calls) = find_actions(client, COLLECTION, &history.unknown, Some(comment)).await?;
    for machine in std::mem::take(&mut history.unknown) {
        if let Some(action) = found.get(&machine) {
            let outcome = Outcome {
                machine: machine.clone(),
                name: None,
                outcome: Kind::Accepted,
                result: Some(Answer::CollectInvestigationPackage(action.clone())),
                error: None,
                earlier: true,
            };
            journal.done(&outcome).map_err(|e| Error::Io {
                path: journal.path().to_path_buf(),
                source: e,
            })?;
            history.done.insert(machine, outcome);
        }
    }
    Ok(calls)
}

/// The `type` of a package collection.
const COLLECTION: MachineActionType = MachineActionType::CollectInvestigationPackage;

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

impl Note {
    fn says(detail: impl Into<String>) -> Note {
        Note {
            detail: Some(detail.into()),
            ..Note::default()
        }
    }

    fn failed(e: &Error) -> Note {
        let error = ErrorInfo::of(e);
        Note {
            detail: Some(error.message.clone()),
            error: Some(error),
            ..Note::default()
        }
    }

    fn status(status: Option<&MachineActionStatus>) -> Note {
        Note {
            detail: status.map(ToString::to_string),
            status: status.cloned(),
            ..Note::default()
        }
    }

    fn saved(record: Record, earlier: bool, took: Option<&Downloaded>) -> Note {
        let mut detail = format!("{} {} bytes", record.file, record.size);
        if let Some(d) = took.filter(|d| d.resumed + d.new_links > 0) {
            detail.push_str(&format!(
                " (resumed {} time(s) after a cut, {} new link(s))",
                d.resumed, d.new_links
            ));
        }
        Note {
            detail: Some(detail),
            record: Some(record),
            earlier,
            ..Note::default()
        }
    }
}

/// A link asked for, or a download: the work in flight for one action.
enum Step {
    Link(Result<PackageLink, Error>),
    Saved(Result<Downloaded, Error>),
}

type Work<'a> = Pin<Box<dyn Future<Output = (String, Step)> + 'a>>;

/// The packages of the run, as they move.
struct Pipeline<'a> {
    client: &'a Client,
    journal: &'a Journal,
    settings: Settings<'a>,
    board: Board,
    packages: HashMap<String, Package>,
    /// Each action followed or fetched: its machine, and the action as last seen.
    actions: HashMap<String, (String, MachineAction)>,
    /// Complete, waiting for a link, oldest first.
    ready: VecDeque<String>,
    /// Answered 404 by getPackageUri though listed as complete: asked again after the next
    /// poll.
    retry: Vec<String>,
    /// How many 404s each such link had, up to [`NOT_YET`].
    early: HashMap<String, u32>,
    /// Machines whose collection was already running: found at the next poll.
    to_find: Vec<String>,
    /// Machines whose request never reached the service: sent again on resume.
    not_sent: Vec<String>,
    /// How many looks in a row each followed action was missing from the list.
    unlisted: HashMap<String, u32>,
    /// Manifest records by action id.
    recorded: HashMap<String, Record>,
    list_calls: usize,
}

/// How many 404s getPackageUri may give a collection the list shows complete.
const NOT_YET: u32 = 5;

impl<'a> Pipeline<'a> {
    /// Moves a machine to `stage`, journaling the change.
    fn set(
        &mut self,
        machine: &str,
        action: Option<&str>,
        stage: Stage,
        note: Note,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let before = self.packages.get(machine).map(|p| p.stage);
        if let Some(before) = before {
            self.board.at[before as usize] -= 1;
        }
        self.board.at[stage as usize] += 1;
        let package = self
            .packages
            .entry(machine.to_string())
            .or_insert_with(|| Package {
                machine: machine.to_string(),
                name: None,
                action: None,
                stage,
                status: None,
                detail: None,
                error: None,
                record: None,
                earlier: false,
            });
        if let Some(action) = action {
            package.action = Some(action.to_string());
        }
        package.stage = stage;
        if note.status.is_some() {
            package.status = note.status.clone();
        }
        package.error = match stage {
            Stage::Failed => note.error.or_else(|| {
                Some(ErrorInfo::new(
                    "failed",
                    note.detail.clone().unwrap_or_default(),
                ))
            }),
            _ => None,
        };
        package.detail = note.detail;
        package.record = note.record;
        package.earlier = note.earlier;
        let changed = before != Some(stage);
        if changed {
            self.journal
                .append(&Entry::Stage {
                    machine: machine.to_string(),
                    action: package.action.clone().unwrap_or_default(),
                    stage,
                    status: note.status,
                    detail: package.detail.clone(),
                    record: package.record.clone(),
                    at: now(),
                })
                .map_err(|e| Error::Io {
                    path: self.journal.path().to_path_buf(),
                    source: e,
                })?;
        }
        progress(
            &self.board,
            (changed && stage.is_final()).then_some(package),
        );
        Ok(())
    }

    /// A machine whose collection request ended (now or in an earlier run).
    fn admit(&mut self, outcome: Outcome, progress: Progress<'_>) -> Result<(), Error> {
        let machine = outcome.machine.clone();
        let Some(action) = action_of(&outcome) else {
            return match outcome.outcome {
                Kind::AlreadyRunning => {
                    self.to_find.push(machine);
                    Ok(())
                }
                Kind::NotSent => {
                    self.not_sent.push(machine);
                    self.board.total -= 1;
                    progress(&self.board, None);
                    Ok(())
                }
                _ => {
                    let error = outcome.error.unwrap_or_else(|| {
                        ErrorInfo::new(
                            "failed",
                            format!("the request {}", outcome.outcome.as_str()),
                        )
                    });
                    let why = Note {
                        detail: Some(error.message.clone()),
                        error: Some(error),
                        ..Note::default()
                    };
                    self.set(&machine, None, Stage::Failed, why, progress)
                }
            };
        };
        self.follow(machine, action, progress)
    }

    /// Follows a machine's collection, or records it saved when the folder already holds it.
    fn follow(
        &mut self,
        machine: String,
        action: MachineAction,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let id = action.id.clone().unwrap_or_default();
        if id.is_empty() {
            let why = Note::says("the service answered a collection without an id");
            return self.set(&machine, None, Stage::Failed, why, progress);
        }
        if let Some(record) = self.recorded.get(&id).cloned() {
            let verdict = evidence::verify(self.settings.dir, &record).map_err(|e| Error::Io {
                path: self.settings.dir.join(&record.file),
                source: e,
            })?;
            if verdict == Verdict::Verified {
                let note = Note::saved(record, true, None);
                return self.set(&machine, Some(&id), Stage::Saved, note, progress);
            }
            let why = format!(
                "{} is recorded but not as recorded ({verdict:?}); not replaced",
                record.file
            );
            return self.set(
                &machine,
                Some(&id),
                Stage::Failed,
                Note::says(why),
                progress,
            );
        }
        let stage = stage_of(action.status.as_ref());
        let note = Note::status(action.status.as_ref());
        self.actions.insert(id.clone(), (machine.clone(), action));
        self.set(&machine, Some(&id), stage, note, progress)?;
        if stage == Stage::Ready {
            self.ready.push_back(id);
        }
        Ok(())
    }

    /// Actions still to see complete.
    fn following(&self) -> impl Iterator<Item = &MachineAction> {
        self.actions
            .iter()
            .filter(|(id, _)| !self.ready.contains(id) && !self.retry.contains(id))
            .map(|(_, (_, a))| a)
            .filter(|a| a.status.as_ref().is_none_or(|s| !mde_client::is_final(s)))
    }

    /// One look at every collection of the run: a listMachineActions call (a page per
    /// 10,000) for those created since the oldest followed.
    async fn poll(&mut self, progress: Progress<'_>) -> Result<(), Error> {
        if !self.to_find.is_empty() {
            let machines = std::mem::take(&mut self.to_find);
            let (found, calls) = find_actions(self.client, COLLECTION, &machines, None).await?;
            self.list_calls += calls;
            for machine in machines {
                match found.get(&machine) {
                    Some(action) => self.follow(machine, action.clone(), progress)?,
                    None => {
                        let why =
                            Note::says("a collection was already running, and none is listed");
                        self.set(&machine, None, Stage::Failed, why, progress)?;
                    }
                }
            }
        }
        // Asked too early: asked again now.
        self.ready.extend(self.retry.drain(..));
        let oldest = self
            .following()
            .map(|a| a.creation_date_time_utc.as_ref().map(|t| t.instant()))
            .min();
        let Some(oldest) = oldest else {
            return Ok(());
        };
        // An action without a creation time: a day back covers it.
        let since = oldest.unwrap_or_else(|| chrono::Utc::now() - chrono::Duration::days(1));
        let mut listed = self
            .client
            .list_actions(Some(mde_client::since_filter(since)))
            .await?;
        self.list_calls += mde_client::workspace::list_calls(listed.len());
        self.give_up_unlisted(&listed, progress)?;
        // Listed newest first; the oldest complete collection gets the next link.
        listed.reverse();
        for action in listed {
            let Some(id) = action.id.clone() else {
                continue;
            };
            let Some((machine, before)) = self.actions.get(&id) else {
                continue;
            };
            if before.status == action.status || self.ready.contains(&id) {
                continue;
            }
            let machine = machine.clone();
            let stage = stage_of(action.status.as_ref());
            let note = match (stage, &action.status) {
                (Stage::Failed, Some(status)) => Note {
                    status: Some(status.clone()),
                    ..Note::says(format!("the collection ended {status}"))
                },
                _ => Note::status(action.status.as_ref()),
            };
            self.actions.insert(id.clone(), (machine.clone(), action));
            self.set(&machine, Some(&id), stage, note, progress)?;
            if stage == Stage::Ready {
                self.ready.push_back(id);
            }
        }
        Ok(())
    }

    /// Fails each collection followed that the list has not shown in
    /// [`mde_client::UNLISTED_LOOKS`] looks in a row: the service does not have it (another
    /// tenant or host, a restarted service, an action deleted), and following it would
    /// never end.
    fn give_up_unlisted(
        &mut self,
        listed: &[MachineAction],
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let shown: std::collections::HashSet<&str> =
            listed.iter().filter_map(|a| a.id.as_deref()).collect();
        let followed: Vec<(String, String)> = self
            .following()
            .filter_map(|a| a.id.clone())
            .map(|id| (self.actions[&id].0.clone(), id))
            .collect();
        for (machine, id) in followed {
            let looks = self.unlisted.entry(id.clone()).or_insert(0);
            *looks = if shown.contains(id.as_str()) {
                0
            } else {
                *looks + 1
            };
            if *looks >= mde_client::UNLISTED_LOOKS {
                let why = Note::says(format!(
                    "the service does not list the collection {id} ({} looks in a row): it is not in this tenant or at this host, or it was deleted",
                    mde_client::UNLISTED_LOOKS
                ));
                self.actions.remove(&id);
                self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
            }
        }
        Ok(())
    }

    /// Asks for a ready package's link.
    fn link(&self, id: String) -> Work<'a> {
        let client = self.client;
        Box::pin(async move {
            let link = client.package_link(&id).await;
            (id, Step::Link(link))
        })
    }

    /// Downloads a package whose link was given.
    fn download(&self, id: String, link: PackageLink) -> Work<'a> {
        let client = self.client;
        let machine = &self.actions[&id].0;
        let dest = self.settings.dir.join(evidence::file_name(machine, &id));
        Box::pin(async move {
            let saved = client.download_package(&id, Some(link), &dest).await;
            (id, Step::Saved(saved))
        })
    }

    /// What a link or a download came to. `Some`: more work for the action.
    fn step(
        &mut self,
        id: String,
        step: Step,
        progress: Progress<'_>,
    ) -> Result<Option<Work<'a>>, Error> {
        let (machine, action) = self.actions[&id].clone();
        if self
            .packages
            .get(&machine)
            .is_some_and(|p| p.stage == Stage::Saved)
        {
            // Saved already: whatever else came for it changes nothing.
            return Ok(None);
        }
        match step {
            Step::Link(Ok(link)) => {
                self.set(
                    &machine,
                    Some(&id),
                    Stage::Downloading,
                    Note::default(),
                    progress,
                )?;
                Ok(Some(self.download(id, link)))
            }
            Step::Link(Err(Error::NotFound(_))) => {
                // Listed complete, but not downloadable yet: not a failure, a few times.
                let tries = self.early.entry(id.clone()).or_insert(0);
                *tries += 1;
                if *tries <= NOT_YET {
                    self.retry.push(id);
                } else {
                    let why = Note::says(format!(
                        "getPackageUri answered 404 {NOT_YET} times for a complete collection"
                    ));
                    self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                }
                Ok(None)
            }
            Step::Link(Err(e)) | Step::Saved(Err(e)) => {
                if fleet::holds_for_every_call(&e) {
                    return Err(e);
                }
                let why = Note::failed(&e);
                self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                Ok(None)
            }
            Step::Saved(Ok(saved)) => {
                let file = evidence::file_name(&machine, &id);
                let downloaded = self.client.clock().now_utc();
                let record = Record::new(&action, &file, (saved.size, &saved.sha256), downloaded);
                if let Err(e) = evidence::append(self.settings.dir, &record) {
                    let why = format!("saved {file}, but the manifest could not be written: {e}");
                    self.set(
                        &machine,
                        Some(&id),
                        Stage::Failed,
                        Note::says(why),
                        progress,
                    )?;
                    return Ok(None);
                }
                self.recorded.insert(id.clone(), record.clone());
                let mut note = Note::saved(record, false, Some(&saved));
                if let (Some(early), Some(detail)) = (self.early.remove(&id), &mut note.detail) {
                    detail.push_str(&format!(
                        " (the link was not ready {early} time(s) after the collection completed)"
                    ));
                }
                self.set(&machine, Some(&id), Stage::Saved, note, progress)?;
                Ok(None)
            }
        }
    }
}

/// The stage a collection's status puts it at.
fn stage_of(status: Option<&MachineActionStatus>) -> Stage {
    use MachineActionStatus as S;
    match status {
        Some(S::Pending) | None => Stage::Requested,
        Some(S::InProgress | S::Other(_)) => Stage::Collecting,
        Some(S::Succeeded) => Stage::Ready,
        Some(S::Failed | S::TimeOut | S::Cancelled) => Stage::Failed,
    }
}

/// A package found in the folder with no record: saved by a run killed between the rename
/// and the manifest. It was renamed only once complete and verified, so it is recorded now.
fn adopt_saved(
    dir: &Path,
    action: &MachineAction,
    file: &str,
    downloaded: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<Option<Record>> {
    use sha2::{Digest, Sha256};
    let path = dir.join(file);
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut f, &mut hasher)?;
    let sha256: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let record = Record::new(action, file, (size, &sha256), downloaded);
    evidence::append(dir, &record)?;
    Ok(Some(record))
}

/// Runs the batch's plan (a collection) on its machines and takes each to a verified package
/// in `settings.dir`. Stops when `stop` resolves: the requests in flight are answered and
/// journaled; links and downloads in flight are dropped (a download's `.part` is continued
/// on resume).
pub async fn run(
    client: &Client,
    batch: Batch<'_>,
    settings: Settings<'_>,
    progress: Progress<'_>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<Report> {
    let Batch {
        plan,
        machines,
        journal,
        mut history,
    } = batch;
    let mut report = Report::default();
    let order: HashMap<String, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), i))
        .collect();
    let recorded: HashMap<String, Record> = evidence::read(settings.dir)?
        .into_iter()
        .map(|r| (r.action_id.clone(), r))
        .collect();
    let mut pipeline = Pipeline {
        client,
        journal,
        settings,
        board: Board {
            total: machines.len(),
            ..Board::default()
        },
        packages: HashMap::new(),
        actions: HashMap::new(),
        ready: VecDeque::new(),
        retry: Vec::new(),
        early: HashMap::new(),
        to_find: Vec::new(),
        not_sent: Vec::new(),
        unlisted: HashMap::new(),
        recorded,
        list_calls: 0,
    };
    let fatal = |e: &Error| crate::output::error_text(e);
    match settle_unknown(client, journal, &mut history, &plan.comment()).await {
        Ok(calls) => pipeline.list_calls += calls,
        Err(e) => {
            report.fatal = Some(fatal(&e));
            report.not_sent = machines;
            return Ok(report);
        }
    }

    let stop = stop.shared();
    // Stops the requests when following cannot go on (a journal that cannot be written).
    let halt = tokio::sync::Notify::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let requests = {
        let stop = stop.clone();
        let halt = &halt;
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = halt.notified() => {}
            }
        };
        async move {
            let mut forward = |event: fleet::Progress<'_>| match event {
                fleet::Progress::Done(o) | fleet::Progress::Earlier(o) => {
                    let _ = tx.send(o.clone());
                }
                fleet::Progress::Start(_) => {}
            };
            let plan = Plan {
                retry_unknown: true,
                ..plan
            };
            let batch = Batch {
                plan,
                machines,
                journal,
                history,
            };
            fleet::run(client, batch, &mut forward, stop).await
        }
    };

    let follow = async {
        let mut open = true;
        let mut stopping = false;
        let mut work: FuturesUnordered<Work<'_>> = FuturesUnordered::new();
        let mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        let stop = stop.clone();
        tokio::pin!(stop);
        progress(&pipeline.board, None);
        loop {
            while !stopping && work.len() < pipeline.settings.parallel {
                let Some(id) = pipeline.ready.pop_front() else {
                    break;
                };
                // Saved by a run killed before its record: recorded, not fetched again.
                let (machine, action) = pipeline.actions[&id].clone();
                let file = evidence::file_name(&machine, &id);
                let now = client.clock().now_utc();
                match adopt_saved(pipeline.settings.dir, &action, &file, now) {
                    Ok(Some(record)) => {
                        pipeline.recorded.insert(id.clone(), record.clone());
                        let note = Note::saved(record, false, None);
                        pipeline.set(&machine, Some(&id), Stage::Saved, note, progress)?;
                    }
                    Ok(None) => work.push(pipeline.link(id)),
                    Err(e) => {
                        let why = Note::says(format!("{file} exists but cannot be read: {e}"));
                        pipeline.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                    }
                }
            }
            let waiting = pipeline.following().next().is_some()
                || !pipeline.to_find.is_empty()
                || !pipeline.retry.is_empty();
            if waiting && timer.is_none() && !stopping {
                timer = Some(client.clock().sleep(pipeline.settings.interval));
            }
            if !open && (stopping || (!waiting && work.is_empty() && pipeline.ready.is_empty())) {
                return Ok::<_, Error>(());
            }
            tokio::select! {
                outcome = rx.recv(), if open => match outcome {
                    Some(outcome) => pipeline.admit(outcome, progress)?,
                    None => open = false,
                },
                () = async { timer.as_mut().expect("a timer is set").await }, if timer.is_some() && !stopping => {
                    timer = None;
                    pipeline.poll(progress).await?;
                }
                Some((id, step)) = work.next(), if !work.is_empty() && !stopping => {
                    if let Some(next) = pipeline.step(id, step, progress)? {
                        work.push(next);
                    }
                }
                () = &mut stop, if !stopping => stopping = true,
            }
        }
    };

    let follow = async {
        let followed = follow.await;
        if followed.is_err() {
            halt.notify_one();
        }
        followed
    };
    let (requests, followed) = tokio::join!(requests, follow);
    let fleet = requests?;
    report.not_sent = pipeline.not_sent.clone();
    report.not_sent.extend(fleet.not_sent);
    report.fatal = fleet.fatal;
    report.unreachable = fleet.unreachable;
    report.interrupted = stop.now_or_never().is_some();
    match followed {
        Ok(()) => {}
        // The journal or the evidence folder cannot be written: nothing more can be recorded.
        Err(Error::Io { path, source }) => {
            return Err(std::io::Error::new(
                source.kind(),
                format!("{}: {source}", path.display()),
            ));
        }
        Err(e) => {
            report.fatal.get_or_insert_with(|| fatal(&e));
        }
    }
    report.list_calls = pipeline.list_calls;
    let mut packages: Vec<Package> = pipeline.packages.into_values().collect();
    packages.sort_by_key(|p| order.get(&p.machine).copied().unwrap_or(usize::MAX));
    report.packages = packages;
    Ok(report)
}
