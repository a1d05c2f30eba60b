//! `--wait` (`mde scan`, and the containment actions): every action of a run followed to its
//! final status with one listMachineActions call per interval for the whole fleet, as the
//! package pipeline follows its collections. A followed machine's outcome is its action's
//! end: `succeeded`, `failed` (with the action's error), `cancelled`, `timed_out`, or
//! `still_running` when the wait ended first.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use mde_client::operations::{Answer, OperationId};
use mde_client::types::{MachineAction, MachineActionStatus};
use mde_client::{Client, is_final};

use crate::fleet::FleetReport;
use crate::vocabulary::{ErrorInfo, Kind, Outcome};

/// How the wait ended.
#[derive(Debug, Default)]
pub struct Waited {
    /// listMachineActions calls made.
    pub list_calls: usize,
    /// The action ids still running when the wait ended before they did.
    pub left: Vec<String>,
    /// Why the wait ended first: stopped (Ctrl-C), or the error that kept it from reading the
    /// actions (an expired token, a permission, the service).
    pub ended_early: Option<EndedEarly>,
}

/// Why a wait ended before every action did.
#[derive(Debug)]
pub enum EndedEarly {
    /// Ctrl-C or SIGTERM.
    Stopped,
    /// The actions could no longer be read: the error.
    Lost(String),
}

/// A followed machine's outcome as its action stands: its end, or `still_running`. Outcomes
/// with no action to follow are left as they are.
pub fn settled(outcome: &Outcome) -> Outcome {
    let mut outcome = outcome.clone();
    if !matches!(outcome.kind, Kind::Accepted | Kind::AlreadyRunning) {
        return outcome;
    }
    let Some(action) = outcome.action() else {
        return outcome;
    };
    let id = action.id.clone().unwrap_or_default();
    let (kind, error) = match &action.status {
        Some(MachineActionStatus::Succeeded) => (Kind::Succeeded, None),
        Some(MachineActionStatus::Failed) => {
            let why = match (&action.error, action.error_h_result) {
                (Some(error), _) => format!("the action {id} ended Failed: {error}"),
                (None, Some(code)) if code != 0 => {
                    format!(
                        "the action {id} ended Failed (errorHResult {:#010x})",
                        code as u32
                    )
                }
                _ => format!("the action {id} ended Failed (the service gave no reason)"),
            };
            (Kind::Failed, Some(ErrorInfo::new("action_failed", why)))
        }
        Some(MachineActionStatus::Cancelled) => {
            let by = match (&action.cancellation_requestor, &action.cancellation_comment) {
                (Some(who), Some(why)) => format!(" by {who}: {why}"),
                (Some(who), None) => format!(" by {who}"),
                _ => String::new(),
            };
            let why = format!("the action {id} was cancelled{by}");
            (Kind::Cancelled, Some(ErrorInfo::new("cancelled", why)))
        }
        Some(MachineActionStatus::TimeOut) => {
            let why = format!("the action {id} timed out: the device did not complete it in time");
            (Kind::TimedOut, Some(ErrorInfo::new("timed_out", why)))
        }
        // A final status the spec does not document: said as the service wrote it.
        Some(other) if is_final(other) => (
            Kind::Failed,
            Some(ErrorInfo::new(
                "action_ended",
                format!("the action {id} ended {}", other.as_str()),
            )),
        ),
        _ => (Kind::StillRunning, None),
    };
    // An already-running answer's error said why no new action was made; the end, known now,
    // says what a reader acts on (the action in `result` says whose it was).
    if kind != Kind::StillRunning {
        outcome.error = error;
    }
    outcome.kind = kind;
    outcome
}

/// Follows the actions of `report` until each is final, settling every machine's outcome
/// ([`settled`]) and telling `ended` as each ends. Machines answered 400 "already in progress"
/// have their running action found first (one list call per 20 machines). Stops waiting when
/// `stop` resolves or the actions cannot be read; either way every outcome is settled, those
/// not ended `still_running`, and the reason is in [`Waited::ended_early`].
pub async fn follow(
    client: &Client,
    op: OperationId,
    report: &mut FleetReport,
    interval: Duration,
    ended: &mut dyn FnMut(&Outcome),
    stop: impl Future<Output = ()>,
) -> Waited {
    let mut waited = Waited::default();
    tokio::pin!(stop);
    let found = tokio::select! {
        found = find_running(client, op, report) => found,
        () = &mut stop => Err(EndedEarly::Stopped),
    };
    match found {
        Ok(calls) => waited.list_calls += calls,
        Err(early) => {
            waited.ended_early = Some(early);
            return settle_all(report, waited);
        }
    }
    let mut following = to_follow(report, ended);
    if following.is_empty() {
        return settle_all(report, waited);
    }
    let ids: Vec<String> = following.keys().cloned().collect();
    let since = crate::vocabulary::listed_since(
        (report.outcomes.iter())
            .filter_map(Outcome::action)
            .map(|a| a.creation_date_time_utc.as_ref()),
    );
    let outcomes = &report.outcomes;
    let mut finals: HashMap<String, MachineAction> = HashMap::new();
    let followed = {
        let seen = |action: &MachineAction| {
            let (Some(id), Some(status)) = (&action.id, &action.status) else {
                return;
            };
            if is_final(status)
                && !finals.contains_key(id)
                && let Some(&i) = following.get(id)
            {
                let mut outcome = outcomes[i].clone();
                outcome.result = Answer::of_action(op, action.clone()).or(outcome.result.take());
                ended(&settled(&outcome));
                finals.insert(id.clone(), action.clone());
            }
        };
        tokio::select! {
            followed = client.follow_actions(&ids, since, interval, None, seen) => Some(followed),
            () = &mut stop => None,
        }
    };
    match followed {
        Some(Ok(followed)) => {
            waited.list_calls += followed.list_calls as usize;
            // Given up: the service does not have them, and waiting would never end.
            for id in &followed.unlisted {
                if let Some(i) = following.remove(id) {
                    ended(unlisted(&mut report.outcomes[i], id));
                }
            }
        }
        Some(Err(e)) => {
            waited.ended_early = Some(EndedEarly::Lost(crate::vocabulary::error_text(&e)))
        }
        None => waited.ended_early = Some(EndedEarly::Stopped),
    }
    for (id, action) in finals {
        if let Some(i) = following.remove(&id) {
            let outcome = &mut report.outcomes[i];
            outcome.result = Answer::of_action(op, action).or(outcome.result.take());
        }
    }
    settle_all(report, waited)
}

/// Each action to follow, with its outcome's index; an outcome whose action is final already,
/// or that has none, has ended and is told so.
fn to_follow(report: &FleetReport, ended: &mut dyn FnMut(&Outcome)) -> HashMap<String, usize> {
    let mut following = HashMap::new();
    for (i, outcome) in report.outcomes.iter().enumerate() {
        match outcome.action() {
            Some(action) if !action.status.as_ref().is_some_and(is_final) => {
                if let Some(id) = &action.id {
                    following.insert(id.clone(), i);
                }
            }
            _ => ended(&settled(outcome)),
        }
    }
    following
}

/// `outcome`, whose action `id` the service does not list: given up as unknown.
fn unlisted<'a>(outcome: &'a mut Outcome, id: &str) -> &'a Outcome {
    outcome.kind = Kind::Unknown;
    outcome.error = Some(ErrorInfo::new(
        "unlisted",
        format!(
            "the service does not list the action {id} ({} looks in a row): it is not in this tenant or at this host, or it was deleted",
            mde_client::UNLISTED_LOOKS
        ),
    ));
    outcome
}

/// Machines answered "already running" without the action: each one's newest action of the
/// kind found (one list call per 20 machines) and put in its outcome; the list calls made.
async fn find_running(
    client: &Client,
    op: OperationId,
    report: &mut FleetReport,
) -> Result<usize, EndedEarly> {
    let running: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.kind == Kind::AlreadyRunning && o.action().is_none())
        .map(|o| o.machine.clone())
        .collect();
    let (false, Some(kind)) = (running.is_empty(), op.creates_action()) else {
        return Ok(0);
    };
    let (found, calls) = crate::pipeline::find_actions(client, kind, &running, None)
        .await
        .map_err(|e| EndedEarly::Lost(crate::vocabulary::error_text(&e)))?;
    for outcome in &mut report.outcomes {
        if let Some(action) = found.get(&outcome.machine) {
            outcome.result = Answer::of_action(op, action.clone()).or(outcome.result.take());
        }
    }
    Ok(calls)
}

/// Every outcome settled, and the ids of the actions still running.
fn settle_all(report: &mut FleetReport, mut waited: Waited) -> Waited {
    for outcome in &mut report.outcomes {
        *outcome = settled(outcome);
        if outcome.kind == Kind::StillRunning
            && let Some(id) = outcome.action().and_then(|a| a.id.clone())
        {
            waited.left.push(id);
        }
    }
    waited.left.sort();
    waited
}
