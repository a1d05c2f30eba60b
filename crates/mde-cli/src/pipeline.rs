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
use crate::vocabulary::{self, ErrorInfo, Kind, Outcome, Stage};

/// What a run saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Evidence {
    /// A collection's investigation package.
    #[default]
    Package,
    /// The results of a live response session's commands.
    LiveResponse,
}

impl Evidence {
    /// What the run of `op` saves, when it saves anything.
    pub fn of(op: OperationId) -> Option<Evidence> {
        match op {
            OperationId::CollectInvestigationPackage => Some(Evidence::Package),
            OperationId::RunLiveResponse => Some(Evidence::LiveResponse),
            _ => None,
        }
    }

    /// The `type` of the actions it follows.
    fn action_type(self) -> MachineActionType {
        match self {
            Evidence::Package => MachineActionType::CollectInvestigationPackage,
            Evidence::LiveResponse => MachineActionType::LiveResponse,
        }
    }

    /// The operation that gives its links (its limits set the pace).
    pub fn link_operation(self) -> OperationId {
        match self {
            Evidence::Package => OperationId::GetPackageUri,
            Evidence::LiveResponse => OperationId::GetLiveResponseResultDownloadLink,
        }
    }

    /// The action, for people.
    fn action_noun(self) -> &'static str {
        match self {
            Evidence::Package => "collection",
            Evidence::LiveResponse => "session",
        }
    }

    /// A stage's name in the output and on the progress bar: a session is `queued`,
    /// `running`, `completed`, then `saving` its results.
    pub fn label(self, stage: Stage) -> &'static str {
        match (self, stage) {
            (Evidence::LiveResponse, Stage::Requested) => "queued",
            (Evidence::LiveResponse, Stage::Collecting) => "running",
            (Evidence::LiveResponse, Stage::Ready) => "completed",
            (Evidence::LiveResponse, Stage::Downloading) => "saving",
            (_, stage) => stage.as_str(),
        }
    }
}

/// A live response command as the run saw it, for the table and the JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandResult {
    /// Its index in the session.
    pub index: i32,
    /// What it was asked to do, e.g. `RunScript collect.ps1 -Fast`.
    pub command: String,
    /// Its `commandStatus`.
    pub status: String,
    /// Its errors, as the service wrote them.
    pub errors: Option<String>,
    /// A RunScript's exit code, once its transcript is saved.
    pub exit_code: Option<i32>,
    /// The first line of a RunScript's output, once its transcript is saved.
    pub output: Option<String>,
    /// The manifest's record of its result, once saved.
    pub record: Option<Record>,
}

impl CommandResult {
    fn of(command: &LiveResponseCommandResult) -> CommandResult {
        let asked = command.command.as_ref().map_or(String::new(), |c| {
            let values: Vec<&str> = c.params.iter().map(|p| p.value.as_str()).collect();
            format!("{} {}", c.type_, values.join(" "))
        });
        let errors = command
            .errors
            .iter()
            .flatten()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect::<Vec<_>>();
        CommandResult {
            index: command.index.unwrap_or_default(),
            command: asked.trim().to_string(),
            status: command
                .command_status
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            errors: (!errors.is_empty()).then(|| errors.join("; ")),
            exit_code: None,
            output: None,
            record: None,
        }
    }
}

/// Whether a command left a result to save: a RunScript's transcript or a GetFile's file,
/// once `Completed` (a PutFile has none).
fn has_result(command: &LiveResponseCommandResult) -> bool {
    use mde_client::types::LiveResponseCommandType as Type;
    command.command_status == Some(LiveResponseCommandStatus::Completed)
        && command
            .command
            .as_ref()
            .is_some_and(|c| matches!(c.type_, Type::RunScript | Type::GetFile))
}

/// One machine's evidence, as it ended (or stood when the run stopped).
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// What is saved.
    pub evidence: Evidence,
    /// A live response session's commands.
    pub results: Vec<CommandResult>,
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
    /// The profile whose tenant the machine is in, in a run of several profiles.
    pub tenant: Option<String>,
}

impl Package {
    /// Its line of JSON output: the outcome is the stage.
    pub fn line(&self) -> Line {
        let line = Line {
            machine: Some(self.machine.clone()),
            name: self.name.clone(),
            action_id: self.action.clone(),
            status: self.status.as_ref().map(ToString::to_string),
            error: self.error.clone(),
            ..Line::new(self.evidence.label(self.stage))
        }
        .with("earlier", self.earlier)
        .with("detail", &self.detail)
        .with_some("tenant", self.tenant.as_deref());
        match self.evidence {
            Evidence::Package => line.with("record", &self.record),
            Evidence::LiveResponse => line.with("commands", &self.results),
        }
    }
}

/// How many machines are at each stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Board {
    /// What is saved.
    pub evidence: Evidence,
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

    /// The shortest time the documented limits allow for what is left (the links' limit:
    /// getPackageUri's 2 a minute dominates a collection).
    pub fn shortest_left(&self) -> Duration {
        mde_client::minimum_duration(self.evidence.link_operation(), self.links_left())
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
    /// A local fault that stopped the run: the journal or the evidence folder could not be
    /// written (a full disk, a read-only folder).
    pub local: Option<String>,
    /// listMachineActions calls made to follow the collections.
    pub list_calls: usize,
}

/// Something to show: the board changed; `ended` is a machine that reached its final stage.
pub type Progress<'a> = &'a mut dyn FnMut(&Board, Option<&Package>);

/// The action `outcome` created or found, if any.
fn action_of(outcome: &Outcome) -> Option<MachineAction> {
    outcome.result.as_ref()?.machine_action().cloned()
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
    (op, comment): (OperationId, &str),
) -> Result<usize, Error> {
    let Some(evidence) = Evidence::of(op).filter(|_| !history.unknown.is_empty()) else {
        return Ok(0);
    };
    let kind = evidence.action_type();
    let (found, calls) = find_actions(client, kind, &history.unknown, Some(comment)).await?;
    for machine in std::mem::take(&mut history.unknown) {
        if let Some(action) = found.get(&machine) {
            let outcome = Outcome {
                machine: machine.clone(),
                name: None,
                outcome: Kind::Accepted,
                result: Answer::of_action(op, action.clone()),
                error: None,
                earlier: true,
                tenant: None,
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
    unlisted: HashMap<String, u32>,
    /// Manifest records by [`evidence::key`].
    recorded: HashMap<String, Record>,
    list_calls: usize,
}

/// How many 404s a link may get for an action the list shows complete.
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
        let evidence = self.evidence;
        let package = self
            .packages
            .entry(machine.to_string())
            .or_insert_with(|| Package {
                evidence,
                results: Vec::new(),
                machine: machine.to_string(),
                name: None,
                action: None,
                stage,
                status: None,
                detail: None,
                error: None,
                record: None,
                earlier: false,
                tenant: None,
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

    /// A machine whose request ended (now or in an earlier run).
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

    /// Follows a machine's action from where it is.
    fn follow(
        &mut self,
        machine: String,
        action: MachineAction,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let id = action.id.clone().unwrap_or_default();
        if id.is_empty() {
            let why = Note::says(format!(
                "the service answered a {} without an id",
                self.evidence.action_noun()
            ));
            return self.set(&machine, None, Stage::Failed, why, progress);
        }
        self.moved(machine, action, progress)
    }

    /// An action seen at a new status: its machine's stage, and its files once complete.
    fn moved(
        &mut self,
        machine: String,
        action: MachineAction,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let id = action.id.clone().unwrap_or_default();
        let stage = stage_of(self.evidence, &action);
        let note = match (stage, &action.status) {
            (Stage::Failed, Some(status)) => Note {
                status: Some(status.clone()),
                ..Note::says(ended(self.evidence, &action, status))
            },
            _ => Note::status(action.status.as_ref()),
        };
        self.actions
            .insert(id.clone(), (machine.clone(), action.clone()));
        self.set(&machine, Some(&id), stage, note, progress)?;
        if let Some(package) = self.packages.get_mut(&machine) {
            package.results = action
                .commands
                .iter()
                .flatten()
                .map(CommandResult::of)
                .collect();
        }
        if stage == Stage::Ready {
            self.complete(&id, progress)?;
        }
        Ok(())
    }

    /// A complete action: each of its files is recorded already (and still verified), or
    /// queued for its link.
    fn complete(&mut self, id: &str, progress: Progress<'_>) -> Result<(), Error> {
        let (machine, action) = self.actions[id].clone();
        let items: Vec<Item> = match self.evidence {
            Evidence::Package => vec![Item {
                action: id.to_string(),
                index: None,
            }],
            Evidence::LiveResponse => action
                .commands
                .iter()
                .flatten()
                .filter(|c| has_result(c))
                .map(|c| Item {
                    action: id.to_string(),
                    index: c.index,
                })
                .collect(),
        };
        self.outstanding.insert(id.to_string(), items.len());
        for item in items {
            let key = evidence::key(&item.action, item.index);
            let Some(record) = self.recorded.get(&key).cloned() else {
                self.ready.push_back(item);
                continue;
            };
            let verdict = evidence::verify(self.settings.dir, &record).map_err(|e| Error::Io {
                path: self.settings.dir.join(&record.file),
                source: e,
            })?;
            if verdict == Verdict::Verified {
                self.saved(&item, record, (None, true), progress)?;
            } else {
                let why = format!(
                    "{} is recorded but not as recorded ({verdict:?}); not replaced",
                    record.file
                );
                self.set(&machine, Some(id), Stage::Failed, Note::says(why), progress)?;
            }
        }
        if self.outstanding.get(id) == Some(&0) {
            self.finish(id, None, progress)?;
        }
        Ok(())
    }

    /// The file of an item in the evidence folder.
    fn file_of(&self, item: &Item) -> String {
        let machine = &self.actions[&item.action].0;
        match self.command_of(item) {
            Some(command) => evidence::result_file_name(machine, &item.action, command),
            None => evidence::file_name(machine, &item.action),
        }
    }

    /// The command an item is the result of.
    fn command_of(&self, item: &Item) -> Option<&LiveResponseCommandResult> {
        let (_, action) = &self.actions[&item.action];
        let index = item.index?;
        action
            .commands
            .iter()
            .flatten()
            .find(|c| c.index == Some(index))
    }

    /// The record of an item just saved.
    fn record_of(&self, item: &Item, file: &str, saved: (u64, &str)) -> Record {
        let (_, action) = &self.actions[&item.action];
        let downloaded = self.client.clock().now_utc();
        match self.command_of(item) {
            Some(command) => Record::of_result(action, command, file, saved, downloaded),
            None => Record::new(action, file, saved, downloaded),
        }
    }

    /// An item saved and recorded (`took`: the download, when it was one now; `earlier`: by
    /// an earlier run). A package is its machine's end; a session ends with its last result.
    fn saved(
        &mut self,
        item: &Item,
        record: Record,
        (took, earlier): (Option<&Downloaded>, bool),
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let machine = self.actions[&item.action].0.clone();
        self.recorded
            .insert(evidence::key(&item.action, item.index), record.clone());
        if let Some(row) = self
            .packages
            .get_mut(&machine)
            .and_then(|p| p.results.iter_mut().find(|r| Some(r.index) == item.index))
        {
            if record.script.is_some() {
                // The transcript, read into its type: its exit code and first line.
                let path = self.settings.dir.join(&record.file);
                let transcript = std::fs::read(&path).ok().and_then(|bytes| {
                    serde_json::from_slice::<mde_client::types::RunScriptTranscript>(&bytes).ok()
                });
                if let Some(t) = transcript {
                    row.exit_code = t.exit_code;
                    // The first line the script wrote: past the transcript's own header.
                    row.output = t.script_output.as_deref().map(|o| {
                        let line = o
                            .lines()
                            .map(|l| l.trim_matches(|c: char| c == '\u{0}' || c.is_whitespace()))
                            .find(|l| !l.is_empty() && !l.starts_with("Transcript started"))
                            .unwrap_or_default();
                        line.to_string()
                    });
                }
            }
            row.record = Some(record.clone());
        }
        let left = self.outstanding.entry(item.action.clone()).or_insert(1);
        *left = left.saturating_sub(1);
        if *left == 0 {
            let note = match self.evidence {
                Evidence::Package => {
                    let mut note = Note::saved(record, earlier, took);
                    if let (Some(early), Some(detail)) = (self.early.remove(item), &mut note.detail)
                    {
                        detail.push_str(&format!(
                            " (the link was not ready {early} time(s) after the collection completed)"
                        ));
                    }
                    Some(note)
                }
                Evidence::LiveResponse => None,
            };
            self.finish(&item.action, note, progress)?;
        }
        Ok(())
    }

    /// An action whose files are all saved: its machine's final stage (a session that
    /// `Failed` stays failed, its results saved).
    fn finish(
        &mut self,
        id: &str,
        note: Option<Note>,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let (machine, action) = self.actions[id].clone();
        if self
            .packages
            .get(&machine)
            .is_some_and(|p| p.stage.is_final())
        {
            return Ok(());
        }
        let saved = self.packages.get(&machine).map_or(0, |p| {
            p.results.iter().filter(|r| r.record.is_some()).count()
        });
        match (note, &action.status) {
            (Some(note), _) => self.set(&machine, Some(id), Stage::Saved, note, progress),
            (None, Some(status @ MachineActionStatus::Failed)) => {
                let why = format!(
                    "{}; saved {saved} result(s)",
                    ended(self.evidence, &action, status)
                );
                let note = Note {
                    status: Some(status.clone()),
                    ..Note::says(why)
                };
                self.set(&machine, Some(id), Stage::Failed, note, progress)
            }
            (None, status) => {
                let note = Note {
                    status: status.clone(),
                    ..Note::says(format!("{saved} result(s)"))
                };
                self.set(&machine, Some(id), Stage::Saved, note, progress)
            }
        }
    }

    /// Actions still to see complete.
    fn following(&self) -> impl Iterator<Item = &MachineAction> {
        self.actions
            .iter()
            .filter(|(id, _)| {
                !self.ready.iter().any(|i| &i.action == *id)
                    && !self.retry.iter().any(|i| &i.action == *id)
            })
            .map(|(_, (_, a))| a)
            .filter(|a| a.status.as_ref().is_none_or(|s| !mde_client::is_final(s)))
    }

    /// One look at every action of the run: a listMachineActions call (a page per 10,000)
    /// for those created since the oldest followed.
    async fn poll(&mut self, progress: Progress<'_>) -> Result<(), Error> {
        if !self.to_find.is_empty() {
            let machines = std::mem::take(&mut self.to_find);
            let kind = self.evidence.action_type();
            let (found, calls) = find_actions(self.client, kind, &machines, None).await?;
            self.list_calls += calls;
            for machine in machines {
                match found.get(&machine) {
                    Some(action) => self.follow(machine, action.clone(), progress)?,
                    None => {
                        let why = Note::says(format!(
                            "a {} was already running, and none is listed",
                            self.evidence.action_noun()
                        ));
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
        // Listed newest first; the oldest complete action gets the next link.
        listed.reverse();
        for action in listed {
            let Some(id) = action.id.clone() else {
                continue;
            };
            let Some((machine, before)) = self.actions.get(&id) else {
                continue;
            };
            let queued = self.ready.iter().any(|i| i.action == id);
            if before.status == action.status || queued {
                continue;
            }
            let machine = machine.clone();
            self.moved(machine, action, progress)?;
        }
        Ok(())
    }

    /// Fails each action followed that the list has not shown in
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
                    "the service does not list the {} {id} ({} looks in a row): it is not in this tenant or at this host, or it was deleted",
                    self.evidence.action_noun(),
                    mde_client::UNLISTED_LOOKS
                ));
                self.actions.remove(&id);
                self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
            }
        }
        Ok(())
    }

    /// Asks for a ready file's link.
    fn link(&self, item: Item) -> Work<'a> {
        let client = self.client;
        Box::pin(async move {
            let link = match item.index {
                None => client.package_link(&item.action).await,
                Some(index) => client.live_response_result_link(&item.action, index).await,
            };
            (item, Step::Link(link))
        })
    }

    /// Downloads a file whose link was given.
    fn download(&self, item: Item, link: PackageLink) -> Work<'a> {
        let client = self.client;
        let dest = self.settings.dir.join(self.file_of(&item));
        Box::pin(async move {
            let saved = match item.index {
                None => {
                    client
                        .download_package(&item.action, Some(link), &dest)
                        .await
                }
                Some(index) => {
                    client
                        .download_live_response_result(&item.action, index, Some(link), &dest)
                        .await
                }
            };
            (item, Step::Saved(saved))
        })
    }

    /// What a link or a download came to. `Some`: more work for the file.
    fn step(
        &mut self,
        item: Item,
        step: Step,
        progress: Progress<'_>,
    ) -> Result<Option<Work<'a>>, Error> {
        let id = item.action.clone();
        let machine = self.actions[&id].0.clone();
        if self
            .packages
            .get(&machine)
            .is_some_and(|p| p.stage == Stage::Saved)
        {
            // Saved already: whatever else came for it changes nothing.
            return Ok(None);
        }
        let failed = |p: &Self| {
            p.packages
                .get(&machine)
                .is_some_and(|p| p.stage == Stage::Failed)
        };
        match step {
            Step::Link(Ok(link)) => {
                if !failed(self) {
                    self.set(
                        &machine,
                        Some(&id),
                        Stage::Downloading,
                        Note::default(),
                        progress,
                    )?;
                }
                Ok(Some(self.download(item, link)))
            }
            Step::Link(Err(Error::NotFound(_))) => {
                // Listed complete, but not downloadable yet: not a failure, a few times.
                let tries = self.early.entry(item.clone()).or_insert(0);
                *tries += 1;
                if *tries <= NOT_YET {
                    self.retry.push(item);
                } else {
                    let why = Note::says(format!(
                        "{} answered 404 {NOT_YET} times for a complete {}",
                        self.evidence.link_operation(),
                        self.evidence.action_noun()
                    ));
                    self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                }
                Ok(None)
            }
            Step::Link(Err(e)) | Step::Saved(Err(e)) => {
                // A full or read-only disk fails every machine alike: the run stops on it.
                if vocabulary::holds_for_every_call(&e) || local_fault(&e) {
                    return Err(e);
                }
                let why = Note::failed(&e);
                self.set(&machine, Some(&id), Stage::Failed, why, progress)?;
                Ok(None)
            }
            Step::Saved(Ok(saved)) => {
                let file = self.file_of(&item);
                let record = self.record_of(&item, &file, (saved.size, &saved.sha256));
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
                self.saved(&item, record, (Some(&saved), false), progress)?;
                Ok(None)
            }
        }
    }
}

/// Why an action ended without evidence: its status, and for a session the command that
/// failed (the ones after it never ran) or the queue it timed out in.
fn ended(evidence: Evidence, action: &MachineAction, status: &MachineActionStatus) -> String {
    let noun = evidence.action_noun();
    let failed = action
        .commands
        .iter()
        .flatten()
        .find(|c| c.command_status == Some(LiveResponseCommandStatus::Failed));
    match (status, failed) {
        (MachineActionStatus::Failed, Some(command)) => {
            let row = CommandResult::of(command);
            format!(
                "the {noun} ended Failed: command {} ({}) failed: {}; the commands after it were not run",
                row.index,
                row.command,
                row.errors.unwrap_or_default()
            )
        }
        (MachineActionStatus::TimeOut, _) if evidence == Evidence::LiveResponse => format!(
            "the {noun} ended TimeOut: the device did not take it up within the 2 hours the service waits (offline?)"
        ),
        (status, _) => format!("the {noun} ended {status}"),
    }
}

/// The stage an action's status puts it at: a session that failed after some commands left
/// results is complete (they are saved; the machine then ends failed).
fn stage_of(evidence: Evidence, action: &MachineAction) -> Stage {
    use MachineActionStatus as S;
    let results = || action.commands.iter().flatten().any(has_result);
    match action.status.as_ref() {
        Some(S::Pending) | None => Stage::Requested,
        Some(S::InProgress | S::Other(_)) => Stage::Collecting,
        Some(S::Succeeded) => Stage::Ready,
        Some(S::Failed) if evidence == Evidence::LiveResponse && results() => Stage::Ready,
        Some(S::Failed | S::TimeOut | S::Cancelled) => Stage::Failed,
    }
}

/// A file found in the folder with no record: saved by a run killed between the rename and
/// the manifest. It was renamed only once complete and verified, so it is recorded now.
fn adopt_saved(
    dir: &Path,
    file: &str,
    record: impl FnOnce(u64, &str) -> Record,
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
    let record = record(size, &sha256);
    evidence::append(dir, &record)?;
    Ok(Some(record))
}

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
        .map(|r| (r.key(), r))
        .collect();
    let op = plan.template.operation();
    let evidence = Evidence::of(op).unwrap_or_default();
    let mut pipeline = Pipeline {
        client,
        journal,
        settings,
        evidence,
        board: Board {
            evidence,
            total: machines.len(),
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
        unlisted: HashMap::new(),
        recorded,
        list_calls: 0,
    };
    let fatal = |e: &Error| crate::vocabulary::error_text(e);
    match settle_unknown(client, journal, &mut history, (op, &plan.comment())).await {
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
                let Some(item) = pipeline.ready.pop_front() else {
                    break;
                };
                // Saved by a run killed before its record: recorded, not fetched again.
                let machine = pipeline.actions[&item.action].0.clone();
                let file = pipeline.file_of(&item);
                let record = |size, sha256: &str| pipeline.record_of(&item, &file, (size, sha256));
                match adopt_saved(pipeline.settings.dir, &file, record) {
                    Ok(Some(record)) => {
                        pipeline.saved(&item, record, (None, false), progress)?;
                    }
                    Ok(None) => work.push(pipeline.link(item)),
                    Err(e) => {
                        let why = Note::says(format!("{file} exists but cannot be read: {e}"));
                        let id = item.action.clone();
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
                Some((item, step)) = work.next(), if !work.is_empty() && !stopping => {
                    if let Some(next) = pipeline.step(item, step, progress)? {
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
    let (fleet, followed) = tokio::join!(requests, follow);
    report.not_sent = pipeline.not_sent.clone();
    report.not_sent.extend(fleet.not_sent);
    report.fatal = fleet.fatal;
    report.unreachable = fleet.unreachable;
    report.local = fleet.local;
    report.interrupted = stop.now_or_never().is_some();
    match followed {
        Ok(()) => {}
        // The journal or the evidence folder cannot be written: nothing more can be recorded.
        Err(Error::Io { path, source }) => {
            report
                .local
                .get_or_insert_with(|| format!("cannot write {}: {source}", path.display()));
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
