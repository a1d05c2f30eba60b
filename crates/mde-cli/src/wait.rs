//! `--wait` (`mde scan`, and the containment actions): every action of a run followed to its
//! final status with one
//! listMachineActions call per interval for the whole fleet, as the package pipeline follows
//! its collections.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use mde_client::operations::{Answer, OperationId};
use mde_client::types::MachineAction;
use mde_client::{Client, Error, is_final};

use crate::fleet::{Kind, Outcome, Report};

/// The action an outcome created or found running.
fn action_of(outcome: &Outcome) -> Option<&MachineAction> {
    outcome.result.as_ref().and_then(Answer::machine_action)
}

/// How the wait ended.
#[derive(Debug, Default)]
pub struct Waited {
    /// listMachineActions calls made.
    pub list_calls: usize,
    /// Stopped (Ctrl-C) before every scan was final: the ids still running.
    pub interrupted: Option<Vec<String>>,
}

/// Follows the scans of `report` until each is final, putting each final action in its
/// machine's outcome and telling `ended` as each ends. Machines answered 400 "already in
/// progress" have their running scan found first (one list call per 20 machines). Stops
/// waiting when `stop` resolves.
pub async fn follow(
    client: &Client,
    op: OperationId,
    report: &mut Report,
    interval: Duration,
    ended: &mut dyn FnMut(&Outcome),
    stop: impl Future<Output = ()>,
) -> Result<Waited, Error> {
    let mut waited = Waited::default();
    // Already running, the service did not say which: the newest scan of the machine.
    let running: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.outcome == Kind::AlreadyRunning && action_of(o).is_none())
        .map(|o| o.machine.clone())
        .collect();
    if let (false, Some(kind)) = (running.is_empty(), op.creates_action()) {
        let (found, calls) = crate::pipeline::find_actions(client, kind, &running, None).await?;
        waited.list_calls += calls;
        for outcome in &mut report.outcomes {
            if let Some(action) = found.get(&outcome.machine) {
                outcome.result = Answer::of_action(op, action.clone()).or(outcome.result.take());
            }
        }
    }
    // Each scan to follow: its outcome's index.
    let mut following: HashMap<String, usize> = HashMap::new();
    for (i, outcome) in report.outcomes.iter().enumerate() {
        match action_of(outcome) {
            Some(action) if !action.status.as_ref().is_some_and(is_final) => {
                if let Some(id) = &action.id {
                    following.insert(id.clone(), i);
                }
            }
            // Final already, or nothing to follow: it has ended.
            _ => ended(outcome),
        }
    }
    if following.is_empty() {
        return Ok(waited);
    }
    let ids: Vec<String> = following.keys().cloned().collect();
    let since = report
        .outcomes
        .iter()
        .filter_map(action_of)
        .filter_map(|a| a.creation_date_time_utc.as_ref().map(|t| t.instant()))
        .min()
        // An action without a creation time: a day back covers it.
        .unwrap_or_else(|| chrono::Utc::now() - chrono::Duration::days(1));
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
                ended(&outcome);
                finals.insert(id.clone(), action.clone());
            }
        };
        tokio::select! {
            followed = client.follow_actions(&ids, since, interval, None, seen) => Some(followed?),
            () = stop => None,
        }
    };
    if let Some(followed) = &followed {
        waited.list_calls += followed.list_calls as usize;
        // Given up: the service does not have them, and waiting would never end.
        for id in &followed.unlisted {
            if let Some(i) = following.remove(id) {
                let outcome = &mut report.outcomes[i];
                outcome.error = Some(crate::json::ErrorInfo::new(
                    "unlisted",
                    format!(
                        "the service does not list the scan {id} ({} looks in a row): it is not in this tenant or at this host, or it was deleted",
                        mde_client::UNLISTED_LOOKS
                    ),
                ));
                ended(outcome);
            }
        }
    }
    for (id, action) in finals {
        if let Some(&i) = following.get(&id) {
            let outcome = &mut report.outcomes[i];
            outcome.result = Answer::of_action(op, action).or(outcome.result.take());
            following.remove(&id);
        }
    }
    if followed.is_none() {
        let mut left: Vec<String> = following.into_keys().collect();
        left.sort();
        waited.interrupted = Some(left);
    }
    Ok(waited)
}

/// Whether every machine's scan ended `Succeeded`.
pub fn all_succeeded(report: &Report) -> bool {
    report.not_sent.is_empty()
        && report.outcomes.iter().all(|o| {
            action_of(o).is_some_and(|a| {
                a.status == Some(mde_client::types::MachineActionStatus::Succeeded)
            })
        })
}
