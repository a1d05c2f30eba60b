//! The inventory and what was started on it: investigations and machine actions.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mde_client::{Timestamp, types};

use crate::error::ApiError;
use crate::inventory::{Inventory, MachineRecord};

mod entity;
mod live;

pub use entity::ActionAt;

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
