//! The inventory and what was started on it: investigations and machine actions.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mde_client::{Timestamp, types};

use crate::error::ApiError;
use crate::inventory::{Inventory, MachineRecord};

/// A started investigation.
#[derive(Clone, Debug)]
pub struct InvestigationRecord {
    /// Numeric id; the preview endpoint answers it as a number, the entity as a string.
    pub id: u64,
    /// The machine it runs on.
    pub machine_id: String,
    /// The machine's name.
    computer: String,
    started: Duration,
    started_utc: DateTime<Utc>,
    lasts: Duration,
}

/// A machine action (package collection).
#[derive(Clone, Debug)]
pub struct ActionRecord {
    /// GUID.
    pub id: String,
    /// The machine it runs on.
    pub machine_id: String,
    /// The machine's name.
    computer: String,
    /// The app that asked for it.
    pub requestor: String,
    /// The `Comment` it was asked with.
    pub comment: String,
    /// Asked through the deprecated Graph endpoint.
    pub graph: bool,
    /// Its `type`.
    pub kind: types::MachineActionType,
    /// Its `scope`: a scan's type, an isolation's.
    pub scope: Option<String>,
    /// The SHA-1 of the file a stop-and-quarantine acts on.
    pub sha1: Option<String>,
    created: Duration,
    created_utc: DateTime<Utc>,
    /// `Pending` this long, then `InProgress`.
    pickup: Duration,
    lasts: Duration,
    /// How it ends once its time has passed: `Succeeded`, or a seeded `Failed`/`TimeOut`.
    outcome: types::MachineActionStatus,
    /// Cancelled before it was final: when, by whom, why.
    cancelled: Option<Cancellation>,
    /// A duplicate isolation left `Pending` (`--stale-duplicates`, #5903) until a later
    /// release gives it a time to succeed, after that release.
    stale: bool,
    /// A live response session's commands and how they go.
    session: Option<Session>,
}

/// A live response session: its commands, in order, each running `command_time` after the
/// pickup, one after the other, until one fails (the later ones are never run).
#[derive(Clone, Debug)]
struct Session {
    commands: Vec<types::LiveResponseCommand>,
    command_time: Duration,
    /// The command that fails, and why.
    failure: Option<(usize, String)>,
    /// The device was offline: the session stayed queued until it timed out.
    offline: bool,
}

/// A cancellation of a machine action.
#[derive(Clone, Debug)]
struct Cancellation {
    at: Duration,
    at_utc: DateTime<Utc>,
    requestor: String,
    comment: String,
}

#[derive(Debug, Default)]
struct Busy {
    investigation_until: Option<Duration>,
    collection_until: Option<Duration>,
    /// Collections asked for so far.
    collections: u64,
    /// The scan running, and until when.
    scan: Option<(String, Duration)>,
    /// Scans asked for so far, repeated ones too.
    scans: u64,
    /// Each response action running (by its `type`), and until when.
    running: HashMap<String, (String, Duration)>,
    /// Response actions asked for so far, repeated ones too.
    responses: u64,
}

/// Who asked for an action to start or be cancelled, with what comment, and when (the
/// simulated time since start, and the same instant in UTC).
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// The application that asked (the token's client id).
    pub requestor: &'a str,
    /// The request's `Comment`.
    pub comment: &'a str,
    /// The simulated time since start.
    pub now: Duration,
    /// `now` in UTC.
    pub now_utc: DateTime<Utc>,
}

/// Everything the simulator keeps.
#[derive(Debug, Default)]
pub struct Records {
    inventory: Inventory,
    busy: HashMap<String, Busy>,
    investigations: Vec<InvestigationRecord>,
    actions: Vec<ActionRecord>,
    /// Offboardings not yet in force: the action and when it ends.
    offboards: Vec<(String, Duration)>,
    /// The live response library.
    pub library: crate::library::Library,
}

/// Live response sessions running at once, at most (run-live-response.md, LEARN 2025-12-31).
pub const SESSIONS: usize = 50;

/// How long a RunScript may run (run-live-response.md: "RunScript command time-outs after 10
/// minutes").
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a session waits for a device that is not available, then `TimeOut`
/// (run-live-response.md, LEARN 2025-12-31; three days in DD 0356dd4).
pub const SESSION_QUEUE: Duration = Duration::from_secs(2 * 3600);

/// How long a stale duplicate waits when nothing releases its machine: for ever, in effect.
const STALE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn utc_after(start: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| start.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Records {
    /// Records for this inventory.
    pub fn new(inventory: Inventory) -> Records {
        Records {
            inventory,
            ..Records::default()
        }
    }

    /// The machines.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Adds machines to the inventory.
    pub fn add_machines(&mut self, machines: impl IntoIterator<Item = MachineRecord>) {
        for machine in machines {
            self.inventory.add(machine);
        }
    }

    /// The machine's name, or the 404 for a machine that is not in the inventory.
    pub fn known(&self, machine_id: &str) -> Result<String, ApiError> {
        if let Some(machine) = self.inventory.get(machine_id) {
            Ok(machine.name.clone())
        } else {
            Err(ApiError::not_found(format!(
                "Machine {} was not found",
                mde_client::workspace::shorten(machine_id, 100)
            )))
        }
    }

    /// Starts an investigation, or answers 400 while one runs on the machine (the documents
    /// are silent; the simulator treats it like a running collection).
    pub fn start_investigation(
        &mut self,
        machine_id: &str,
        now: Duration,
        now_utc: DateTime<Utc>,
        lasts: Duration,
    ) -> Result<InvestigationRecord, ApiError> {
        let computer = self.known(machine_id)?;
        let busy = self.busy.entry(machine_id.to_string()).or_default();
        if busy.investigation_until.is_some_and(|until| now < until) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ActiveRequestAlreadyExists",
                "An investigation is already running on this machine",
            ));
        }
        busy.investigation_until = Some(now + lasts);
        let record = InvestigationRecord {
            // Counted on from the documented example's id, 63004.
            id: 63005 + self.investigations.len() as u64,
            machine_id: machine_id.to_string(),
            computer,
            started: now,
            started_utc: now_utc,
            lasts,
        };
        self.investigations.push(record.clone());
        Ok(record)
    }

    /// Starts a package collection, or answers the documented 400 while one runs.
    pub fn collect(
        &mut self,
        machine_id: &str,
        asked: Asked<'_>,
        graph: bool,
        config: &crate::Config,
    ) -> Result<ActionRecord, ApiError> {
        let now = asked.now;
        let (pickup, lasts) = (config.pickup_time, config.collection_time);
        let computer = self.known(machine_id)?;
        let busy = self.busy.entry(machine_id.to_string()).or_default();
        if busy.collection_until.is_some_and(|until| now < until) {
            // Code and message as callers have seen them (reference: mde-facts.md).
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ActiveRequestAlreadyExists",
                "Action is already in progress",
            ));
        }
        busy.collection_until = Some(now + lasts);
        // The seeded share of collections that fail, half of them by timing out: rolled by
        // machine and its how-many-th collection, so that the same seed fails the same
        // machines whatever order the requests arrive in.
        let nth = busy.collections;
        busy.collections += 1;
        let id = uuid::Uuid::new_v4().to_string();
        let roll = crate::package::dice(config.seed, &[machine_id, &nth.to_string()]);
        let outcome = if roll < config.collection_failures / 2.0 {
            types::MachineActionStatus::Failed
        } else if roll < config.collection_failures {
            types::MachineActionStatus::TimeOut
        } else {
            types::MachineActionStatus::Succeeded
        };
        let record = ActionRecord {
            graph,
            outcome,
            ..ActionRecord::new(
                (id, machine_id, computer),
                asked,
                types::MachineActionType::CollectInvestigationPackage,
                (pickup, lasts),
            )
        };
        self.actions.push(record.clone());
        Ok(record)
    }

    /// Starts an antivirus scan. While one runs, a repeated scan is answered, as callers have
    /// seen (reference: run-av-scan.md), either with the pending action again (`Ok` with
    /// `true`) or with the 400, one or the other by the seeded dice.
    pub fn scan(
        &mut self,
        machine_id: &str,
        asked: Asked<'_>,
        scan_type: types::ScanType,
        config: &crate::Config,
    ) -> Result<(ActionRecord, bool), ApiError> {
        let now = asked.now;
        let computer = self.known(machine_id)?;
        let busy = self.busy.entry(machine_id.to_string()).or_default();
        let nth = busy.scans;
        busy.scans += 1;
        let roll = crate::package::dice(config.seed, &[machine_id, "scan", &nth.to_string()]);
        if let Some((running, _)) = busy.scan.clone().filter(|(_, until)| now < *until) {
            if roll < 0.5 {
                let i = self.action_index(&running)?;
                return Ok((self.actions[i].clone(), true));
            }
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ActiveRequestAlreadyExists",
                "Action is already in progress",
            ));
        }
        let lasts = config.scan_time;
        let id = uuid::Uuid::new_v4().to_string();
        busy.scan = Some((id.clone(), now + lasts));
        let outcome = if roll < config.scan_failures {
            types::MachineActionStatus::Failed
        } else {
            types::MachineActionStatus::Succeeded
        };
        let record = ActionRecord {
            scope: Some(scan_type.to_string()),
            outcome,
            ..ActionRecord::new(
                (id, machine_id, computer),
                asked,
                types::MachineActionType::RunAntiVirusScan,
                (config.pickup_time, lasts),
            )
        };
        self.actions.push(record.clone());
        Ok((record, false))
    }

    /// Starts a response action (isolate, release, restrict, unrestrict, stop and
    /// quarantine, offboard). While one of the same type runs on the machine, a repeated one
    /// is answered, as the pages and callers say (#5903), either with the pending action
    /// again (`Ok` with `true`) or with the 400 "Action is already in progress", one or the
    /// other by the seeded dice; with `stale_duplicates`, a repeated isolation of a machine
    /// isolated or being isolated is a new action that stays `Pending` until a later release,
    /// then succeeds after it. A platform the action's page does not list is the 400
    /// `OsPlatformNotSupported`.
    pub fn respond(
        &mut self,
        machine_id: &str,
        asked: Asked<'_>,
        (kind, scope, sha1): (types::MachineActionType, Option<String>, Option<String>),
        config: &crate::Config,
    ) -> Result<(ActionRecord, bool), ApiError> {
        let now = asked.now;
        let computer = self.known(machine_id)?;
        let os = self.inventory.get(machine_id).map_or("", |m| m.os());
        if !supports(os, &kind, scope.as_deref()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "OsPlatformNotSupported",
                format!("{} is not supported on {os}", kind.as_str()),
            ));
        }
        let isolate = kind == types::MachineActionType::Isolate;
        let isolated = isolate && config.stale_duplicates && self.isolated(machine_id, now);
        let busy = self.busy.entry(machine_id.to_string()).or_default();
        let nth = busy.responses;
        busy.responses += 1;
        let roll =
            crate::package::dice(config.seed, &[machine_id, kind.as_str(), &nth.to_string()]);
        let running = busy
            .running
            .get(kind.as_str())
            .filter(|(_, until)| now < *until)
            .map(|(id, _)| id.clone());
        let stale = isolate && config.stale_duplicates && (isolated || running.is_some());
        if let Some(running) = running.filter(|_| !stale) {
            if roll < 0.5 {
                let i = self.action_index(&running)?;
                return Ok((self.actions[i].clone(), true));
            }
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ActiveRequestAlreadyExists",
                "Action is already in progress",
            ));
        }
        let lasts = if stale { STALE } else { config.response_time };
        let id = uuid::Uuid::new_v4().to_string();
        if !stale {
            busy.running
                .insert(kind.as_str().to_string(), (id.clone(), now + lasts));
        }
        // A stale duplicate stays `Pending` for all its time.
        let pickup = if stale { lasts } else { config.pickup_time };
        let record = ActionRecord {
            scope,
            sha1,
            stale,
            ..ActionRecord::new((id, machine_id, computer), asked, kind, (pickup, lasts))
        };
        if record.kind == types::MachineActionType::Unisolate {
            // #5903: a duplicate isolation stuck Pending completes after a later release.
            let after = now + lasts + Duration::from_secs(1);
            for dup in self
                .actions
                .iter_mut()
                .filter(|a| a.stale && a.machine_id == machine_id && a.cancelled.is_none())
            {
                dup.stale = false;
                dup.lasts = after - dup.created;
                dup.pickup = dup.lasts;
            }
        }
        if record.kind == types::MachineActionType::Offboard {
            self.offboards.push((record.id.clone(), now + lasts));
        }
        self.actions.push(record.clone());
        Ok((record, false))
    }

    /// Starts a live response session: its commands run one after the other, each
    /// `command_time`, once the device picks the session up. One session runs on a device at a
    /// time (a second is the 400 `ActiveRequestAlreadyExists`, "Action is already in
    /// progress", #5908), and at most [`SESSIONS`] at once (more is a 429 until one ends).
    pub fn live_response(
        &mut self,
        machine_id: &str,
        asked: Asked<'_>,
        commands: Vec<types::LiveResponseCommand>,
        config: &crate::Config,
    ) -> Result<ActionRecord, ApiError> {
        let now = asked.now;
        let computer = self.known(machine_id)?;
        let unmanaged = self.inventory.all().iter().take(config.no_automation);
        if unmanaged.into_iter().any(|m| m.id == machine_id) {
            // #6054, word for word.
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "DisallowedOperation",
                "This device has no automation level assigned to it. You'll need to at least enable the minimum Remediation Level for a given Device Group.",
            ));
        }
        let kind = types::MachineActionType::LiveResponse;
        let running: Vec<&ActionRecord> = self
            .actions
            .iter()
            .filter(|a| a.kind == kind && a.in_progress(now))
            .collect();
        if running.iter().any(|a| a.machine_id == machine_id) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ActiveRequestAlreadyExists",
                "Action is already in progress",
            ));
        }
        if running.len() >= SESSIONS {
            let first_end = running.iter().map(|a| a.created + a.lasts).min();
            let wait = first_end.map_or(Duration::from_secs(1), |end| end.saturating_sub(now));
            return Err(ApiError::too_many_requests(wait));
        }
        // What each command will do, decided now: the library as it is, the seeded dice.
        let failure = commands.iter().enumerate().find_map(|(i, command)| {
            self.command_failure(machine_id, command, config)
                .map(|why| (i, why))
        });
        let offline = crate::package::dice(config.seed, &["offline", machine_id]) < config.offline;
        let (pickup, lasts, outcome) = if offline {
            // Queued for a device that never comes back within the 2 hours.
            (
                SESSION_QUEUE,
                SESSION_QUEUE,
                types::MachineActionStatus::TimeOut,
            )
        } else {
            let run = failure.as_ref().map_or(commands.len(), |(i, _)| i + 1);
            let outcome = match failure {
                Some(_) => types::MachineActionStatus::Failed,
                None => types::MachineActionStatus::Succeeded,
            };
            let pickup = config.pickup_time;
            (pickup, pickup + config.command_time * run as u32, outcome)
        };
        let id = uuid::Uuid::new_v4().to_string();
        let record = ActionRecord {
            outcome,
            session: Some(Session {
                commands,
                command_time: config.command_time,
                failure: if offline { None } else { failure },
                offline,
            }),
            ..ActionRecord::new((id, machine_id, computer), asked, kind, (pickup, lasts))
        };
        self.actions.push(record.clone());
        Ok(record)
    }

    /// Why `command` fails on the machine, if it does: a library file that is not in the
    /// library, or a GetFile of a path that does not exist there (a seeded share of paths).
    fn command_failure(
        &self,
        machine_id: &str,
        command: &types::LiveResponseCommand,
        config: &crate::Config,
    ) -> Option<String> {
        use types::LiveResponseCommandType as Type;
        match &command.type_ {
            Type::PutFile | Type::RunScript => {
                let key = if command.type_ == Type::PutFile {
                    "FileName"
                } else {
                    "ScriptName"
                };
                let name = command.param(key).unwrap_or_default();
                if !self.library.has(name) {
                    Some(format!(
                        "The file {name} was not found in the live response library"
                    ))
                } else if command.type_ == Type::RunScript && config.command_time > SCRIPT_TIMEOUT {
                    // "RunScript command time-outs after 10 minutes" (run-live-response.md).
                    Some(format!("The script {name} timed out after 10 minutes"))
                } else {
                    None
                }
            }
            Type::GetFile => {
                let path = command.param("Path").unwrap_or_default();
                (crate::package::dice(config.seed, &["missing", machine_id, path])
                    < config.missing_files)
                    .then(|| format!("File {path} does not exist on the device"))
            }
            Type::Other(_) => None,
        }
    }

    /// Whether the machine is isolated at `now`: of its isolations and releases, the one that
    /// succeeded last is an isolation.
    fn isolated(&self, machine_id: &str, now: Duration) -> bool {
        use types::MachineActionType as Type;
        self.actions
            .iter()
            .filter(|a| {
                a.machine_id == machine_id && matches!(a.kind, Type::Isolate | Type::Unisolate)
            })
            .filter(|a| a.status(now) == types::MachineActionStatus::Succeeded)
            .max_by_key(|a| a.created + a.lasts)
            .is_some_and(|a| a.kind == Type::Isolate)
    }

    /// Puts in force what became true by `now`: an offboarded machine is `Inactive` once its
    /// offboarding succeeded (its onboarding status stays as it was, #5909).
    pub fn settle(&mut self, now: Duration) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.offboards)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.offboards = later;
        for (id, _) in due {
            let Ok(i) = self.action_index(&id) else {
                continue;
            };
            if self.actions[i].status(now) == types::MachineActionStatus::Succeeded {
                let machine = self.actions[i].machine_id.clone();
                if let Some(m) = self.inventory.get_mut(&machine) {
                    m.offboard();
                }
            }
        }
    }

    /// The machine with this id, or the 404.
    pub fn machine(&self, machine_id: &str) -> Result<types::Machine, ApiError> {
        self.known(machine_id)?;
        let machine = self.inventory.get(machine_id).map(|m| m.entity());
        machine.ok_or_else(|| ApiError::not_found("Machine was not found"))
    }

    /// Adds a tag to a machine (once), or removes it; the machine as it is then.
    pub fn tag(
        &mut self,
        machine_id: &str,
        tag: &str,
        add: bool,
    ) -> Result<types::Machine, ApiError> {
        self.known(machine_id)?;
        let Some(machine) = self.inventory.get_mut(machine_id) else {
            return Err(ApiError::not_found("Machine was not found"));
        };
        if add {
            if !machine.tags.iter().any(|t| t == tag) {
                machine.tags.push(tag.to_string());
            }
        } else {
            machine.tags.retain(|t| t != tag);
        }
        Ok(machine.entity())
    }

    /// The machine action with this id, or the 404.
    pub fn action(&self, id: &str) -> Result<&ActionRecord, ApiError> {
        let i = self.action_index(id)?;
        Ok(&self.actions[i])
    }

    fn action_index(&self, id: &str) -> Result<usize, ApiError> {
        self.actions.iter().position(|a| a.id == id).ok_or_else(|| {
            ApiError::not_found(format!(
                "Machine action {} was not found",
                mde_client::workspace::shorten(id, 100)
            ))
        })
    }

    /// Cancels an action that is not final yet; a final one is the 400.
    pub fn cancel(&mut self, id: &str, asked: Asked<'_>) -> Result<&ActionRecord, ApiError> {
        let (now, now_utc) = (asked.now, asked.now_utc);
        let i = self.action_index(id)?;
        let action = &self.actions[i];
        if !action.in_progress(now) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The machine action is in a final state and cannot be cancelled",
            ));
        }
        if let Some(busy) = self.busy.get_mut(&action.machine_id) {
            match action.kind {
                types::MachineActionType::RunAntiVirusScan => busy.scan = None,
                types::MachineActionType::CollectInvestigationPackage => {
                    busy.collection_until = None
                }
                // Not a stale duplicate's: the isolation it duplicates runs on.
                _ if busy
                    .running
                    .get(action.kind.as_str())
                    .is_some_and(|(id, _)| *id == action.id) =>
                {
                    busy.running.remove(action.kind.as_str());
                }
                _ => {}
            }
        }
        let action = &mut self.actions[i];
        action.cancelled = Some(Cancellation {
            at: now,
            at_utc: now_utc,
            requestor: asked.requestor.to_string(),
            comment: asked.comment.to_string(),
        });
        Ok(action)
    }

    /// Every investigation started, oldest first.
    pub fn investigations(&self) -> &[InvestigationRecord] {
        &self.investigations
    }

    /// Every machine action started, oldest first.
    pub fn actions(&self) -> &[ActionRecord] {
        &self.actions
    }
}

/// Whether a device of platform `os` takes the action, as its page's platform notes say:
/// isolation (full) not on macOS, selective isolation on Windows only, restriction,
/// quarantine and offboarding on Windows only.
fn supports(os: &str, kind: &types::MachineActionType, scope: Option<&str>) -> bool {
    use types::MachineActionType as Type;
    let windows = os.starts_with("Windows");
    match kind {
        Type::Isolate if scope == Some("Selective") => windows,
        Type::Isolate | Type::Unisolate => os != "macOS",
        Type::RestrictCodeExecution
        | Type::UnrestrictCodeExecution
        | Type::StopAndQuarantineFile
        | Type::Offboard => windows,
        _ => true,
    }
}

impl InvestigationRecord {
    /// The Investigation entity as of `now`.
    pub fn entity(&self, now: Duration) -> types::Investigation {
        let done = now >= self.started + self.lasts;
        types::Investigation {
            id: Some(self.id.to_string()),
            start_time: Some(Timestamp::from(self.started_utc)),
            end_time: done.then(|| Timestamp::from(utc_after(self.started_utc, self.lasts))),
            state: Some(if done {
                types::InvestigationState::Benign
            } else {
                types::InvestigationState::Running
            }),
            cancelled_by: None,
            status_details: None,
            machine_id: Some(self.machine_id.clone()),
            computer_dns_name: Some(self.computer.clone()),
            triggering_alert_id: None,
            extra: Default::default(),
        }
    }
}

impl ActionRecord {
    /// A new action of `kind` on a machine, as `asked`: `Pending` for `pickup` (at most its
    /// whole time), then `InProgress`, then `Succeeded` once `lasts` has passed; the callers
    /// set what else their type holds.
    fn new(
        (id, machine_id, computer): (String, &str, String),
        asked: Asked<'_>,
        kind: types::MachineActionType,
        (pickup, lasts): (Duration, Duration),
    ) -> ActionRecord {
        ActionRecord {
            id,
            machine_id: machine_id.to_string(),
            computer,
            requestor: asked.requestor.to_string(),
            comment: asked.comment.to_string(),
            graph: false,
            kind,
            scope: None,
            sha1: None,
            created: asked.now,
            created_utc: asked.now_utc,
            pickup: pickup.min(lasts),
            lasts,
            outcome: types::MachineActionStatus::Succeeded,
            cancelled: None,
            stale: false,
            session: None,
        }
    }

    /// Still running at `now`: not final.
    pub fn in_progress(&self, now: Duration) -> bool {
        now < self.created + self.lasts && self.cancelled.as_ref().is_none_or(|c| now < c.at)
    }

    /// Whether its package can be downloaded at `now`: `delay` after it succeeded.
    pub fn package_ready(&self, now: Duration, delay: Duration) -> bool {
        self.status(now) == types::MachineActionStatus::Succeeded
            && now >= self.created + self.lasts + delay
    }

    /// The status at `now`.
    pub fn status(&self, now: Duration) -> types::MachineActionStatus {
        use types::MachineActionStatus as Status;
        match &self.cancelled {
            Some(c) if now >= c.at => Status::Cancelled,
            _ if now < self.created + self.pickup => Status::Pending,
            _ if now < self.created + self.lasts => Status::InProgress,
            _ => self.outcome.clone(),
        }
    }

    /// The MachineAction entity as of `now`: the current generation, or the older one the
    /// deprecated Graph endpoint answers (`lastUpdateTimeUtc`, `error`).
    pub fn entity(&self, now: Duration, base_url: &str) -> types::MachineAction {
        let status = self.status(now);
        let cancelled = self.cancelled.as_ref().filter(|c| now >= c.at);
        let updated = Timestamp::from(match (&status, cancelled) {
            (_, Some(c)) => c.at_utc,
            (
                types::MachineActionStatus::Succeeded
                | types::MachineActionStatus::Failed
                | types::MachineActionStatus::TimeOut,
                None,
            ) => utc_after(self.created_utc, self.lasts),
            _ => self.created_utc,
        });
        let mut action = types::MachineAction {
            id: Some(self.id.clone()),
            type_: Some(self.kind.clone()),
            // As the list page's examples show it: the scan's type, null for a collection;
            // an isolation's type (machineaction.md: `Full` or `Selective` for isolation).
            scope: self.scope.clone(),
            related_file_info: self.sha1.as_ref().map(|sha1| types::RelatedFileInfo {
                file_identifier: Some(sha1.clone()),
                file_identifier_type: Some(types::FileIdentifierType::Sha1),
                extra: Default::default(),
            }),
            requestor: Some(self.requestor.clone()),
            requestor_comment: Some(self.comment.clone()),
            status: Some(status),
            machine_id: Some(self.machine_id.clone()),
            creation_date_time_utc: Some(Timestamp::from(self.created_utc)),
            cancellation_requestor: cancelled.map(|c| c.requestor.clone()),
            cancellation_comment: cancelled.map(|c| c.comment.clone()),
            cancellation_date_time_utc: cancelled.map(|c| Timestamp::from(c.at_utc)),
            ..Default::default()
        };
        if self.session.is_some() {
            action.commands = Some(self.command_results(now));
        }
        if self.graph {
            action.odata_context = Some(format!(
                "{base_url}/testwdatppreview/$metadata#MachineActions/$entity"
            ));
            action.error = Some("None".into());
            action.last_update_time_utc = Some(updated);
        } else {
            action.odata_context = Some(format!("{base_url}/api/$metadata#MachineActions/$entity"));
            action.computer_dns_name = Some(self.computer.clone());
            action.request_source = Some("PublicApi".into());
            action.error_h_result = Some(0);
            action.last_update_date_time_utc = Some(updated);
        }
        action
    }
}

impl ActionRecord {
    /// The result of a live response session's command `index` once it completed: a
    /// RunScript's transcript, a GetFile's file; a PutFile has none (run-live-response.md).
    /// The 404 otherwise. Both are made from the command and the machine alone (and the
    /// seed): the same session on another run gives the same bytes.
    pub fn result(
        &self,
        index: usize,
        now: Duration,
        config: &crate::Config,
    ) -> Result<(Vec<u8>, &'static str), ApiError> {
        use types::LiveResponseCommandType as Type;
        let missing =
            |why: &str| ApiError::not_found(format!("No result of command {index}: {why}"));
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| missing("the action is not a live response session"))?;
        let command = session
            .commands
            .get(index)
            .ok_or_else(|| missing("the action has no such command"))?;
        let completed = self.command_results(now)[index].command_status
            == Some(types::LiveResponseCommandStatus::Completed);
        if !completed {
            return Err(missing("it has not completed"));
        }
        let param = |key: &str| command.param(key).unwrap_or_default().to_string();
        let machine = self.machine_id.as_str();
        match &command.type_ {
            Type::RunScript => {
                let (script, args) = (param("ScriptName"), param("Args"));
                let dice = |what: &str| {
                    crate::package::dice(config.seed, &[what, machine, &script, &args])
                };
                let failed = dice("exit") < config.nonzero_exits;
                let transcript_id =
                    crate::package::fnv1a(config.seed, format!("{machine}{script}{args}").bytes());
                // Real transcripts end in NULs, as the page's example does; how many is
                // the dice's.
                let nuls = "\u{0}".repeat(1 + (dice("nul") * 4.0) as usize);
                let transcript = types::RunScriptTranscript {
                    script_name: Some(script.clone()),
                    exit_code: Some(if failed { 1 } else { 0 }),
                    script_output: Some(format!(
                        "Transcript started, output file is C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Temp\\PSScriptOutputs\\PSScript_Transcript_{transcript_id:016X}.txt\n{} ran {script} {args}\n{nuls}",
                        self.computer,
                    )),
                    script_errors: Some(if failed {
                        format!("{script} : the script failed on {}\n", self.computer)
                    } else {
                        String::new()
                    }),
                    extra: Default::default(),
                };
                let json = serde_json::to_vec(&transcript)
                    .map_err(|e| ApiError::invalid_body(e.to_string()))?;
                Ok((json, "application/json"))
            }
            Type::GetFile => Ok((
                device_file(&param("Path"), &self.computer, config.live_file_size),
                "application/octet-stream",
            )),
            Type::PutFile | Type::Other(_) => Err(missing("a PutFile command has no result")),
        }
    }

    /// A live response session's commands as of `now`: `Created` until each has run its time
    /// after the pickup, then `Completed` (or `Failed`, with its error) with its start and
    /// end; the commands after a failed one, and every command of a session that timed out
    /// in the queue, stay `Created`; a cancelled session's commands stop where they were.
    fn command_results(&self, now: Duration) -> Vec<types::LiveResponseCommandResult> {
        let Some(session) = &self.session else {
            return Vec::new();
        };
        let stop = self.cancelled.as_ref().map_or(now, |c| now.min(c.at));
        let at = |d: Duration| Timestamp::from(utc_after(self.created_utc, d - self.created));
        let failed_at = session.failure.as_ref().map(|(i, _)| *i);
        (0..session.commands.len())
            .map(|i| {
                let start = self.created + self.pickup + session.command_time * i as u32;
                let end = start + session.command_time;
                let runs = !session.offline && failed_at.is_none_or(|f| i <= f);
                let (started, done) = (runs && stop >= start, runs && stop >= end);
                let failure = session.failure.as_ref().filter(|(f, _)| done && *f == i);
                types::LiveResponseCommandResult {
                    index: Some(i as i32),
                    start_time: started.then(|| at(start)),
                    end_time: done.then(|| at(end)),
                    command_status: Some(match (done, failure) {
                        (true, Some(_)) => types::LiveResponseCommandStatus::Failed,
                        (true, None) => types::LiveResponseCommandStatus::Completed,
                        (false, _) => types::LiveResponseCommandStatus::Created,
                    }),
                    errors: Some(
                        failure
                            .map(|(_, why)| why.clone().into())
                            .into_iter()
                            .collect(),
                    ),
                    command: Some(session.commands[i].clone()),
                    extra: Default::default(),
                }
            })
            .collect()
    }
}

/// The content of a file on a device: `size` bytes made of its path and the machine, the
/// same every time.
fn device_file(path: &str, computer: &str, size: u64) -> Vec<u8> {
    let mut content = Vec::with_capacity(size as usize);
    let mut line = 0u64;
    while (content.len() as u64) < size {
        content.extend_from_slice(format!("{path} on {computer}, line {line}\n").as_bytes());
        line += 1;
    }
    content.truncate(size as usize);
    content
}

/// A machine action as `$filter` reads it, at one moment of the simulator's clock.
pub struct ActionAt<'a> {
    /// The action.
    pub action: &'a ActionRecord,
    /// The moment.
    pub now: Duration,
}

impl crate::odata::Filterable for ActionAt<'_> {
    // The properties get-machineactions-collection.md names.
    fn kind(name: &str) -> Option<crate::odata::Kind> {
        use crate::odata::Kind;
        match name.to_ascii_lowercase().as_str() {
            "id" | "status" | "machineid" | "type" | "requestor" => Some(Kind::Text),
            "creationdatetimeutc" => Some(Kind::Time),
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<crate::odata::Field> {
        use crate::odata::Field;
        let a = self.action;
        let text = |t: &str| Some(Field::Text(t.to_string()));
        match name.to_ascii_lowercase().as_str() {
            "id" => text(&a.id),
            "status" => text(a.status(self.now).as_str()),
            "machineid" => text(&a.machine_id),
            "type" => text(a.kind.as_str()),
            "requestor" => text(&a.requestor),
            "creationdatetimeutc" => Some(Field::Time(a.created_utc)),
            _ => None,
        }
    }
}
