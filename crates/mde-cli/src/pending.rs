//! The duplicate-action race of containment (#5903): a repeated isolate or release is
//! answered with the pending action or a 400, and a duplicate isolate that stays pending can
//! complete after a later release, leaving the device isolated. So before a containment run
//! sends anything, it reads the pending containment actions of the tenant, with one
//! filtered listMachineActions call whatever the fleet size: a machine whose same action is
//! pending is `already_running` with it, one whose opposite action is pending is a
//! `conflict` (or, asked, that action is cancelled first). The same call reads what is in
//! effect: a machine whose latest completed action of the pair is the one asked for (already
//! isolated) is `already_in_effect`, not sent again unless asked (`--again`): a duplicate is
//! how the stale isolation starts.

use std::collections::HashMap;

use mde_client::operations::{Answer, OperationId};
use mde_client::types::{MachineAction, MachineActionStatus, MachineActionType};
use mde_client::{Client, Error};

use crate::vocabulary::{ErrorInfo, Kind, Outcome};

/// The action that undoes `kind`, for the containment actions (the pages' pairs: isolate and
/// release, restrict and remove the restriction); `None` for the others.
pub fn opposite(kind: &MachineActionType) -> Option<MachineActionType> {
    // The spec's `x-undone-by`: the operation that creates `kind`, then the one that undoes it.
    let creates = |op: &OperationId| op.creates_action().as_ref() == Some(kind);
    let op = OperationId::ALL.into_iter().find(creates)?;
    op.facts().undone_by?.creates_action()
}

/// The pending containment actions of a run's machines.
#[derive(Debug, Default)]
pub struct Pending {
    /// Machines where the same action is pending, with it.
    pub same: HashMap<String, MachineAction>,
    /// Machines where the opposite action is pending, with it.
    pub opposite: HashMap<String, MachineAction>,
    /// Machines whose latest completed action of the pair is the one asked for, with it.
    pub in_effect: HashMap<String, MachineAction>,
}

/// When an action completed (or last changed): what orders the completed actions of a pair.
fn when(a: &MachineAction) -> Option<chrono::DateTime<chrono::Utc>> {
    a.last_update_date_time_utc
        .as_ref()
        .or(a.last_update_time_utc.as_ref())
        .or(a.creation_date_time_utc.as_ref())
        .map(|t| t.instant())
}

/// Reads the pending (`Pending` or `InProgress`) actions of `kind` and its opposite, and the
/// machines where `kind` is in effect (its latest completed of the pair); `None`
/// when `op` is no containment action.
pub async fn read(client: &Client, op: OperationId) -> Result<Option<Pending>, Error> {
    let Some(kind) = op.creates_action() else {
        return Ok(None);
    };
    let Some(undo) = opposite(&kind) else {
        return Ok(None);
    };
    let filter = format!(
        "(status eq 'Pending' or status eq 'InProgress' or status eq 'Succeeded') and (type eq '{}' or type eq '{}')",
        kind.as_str(),
        undo.as_str()
    );
    let mut pending = Pending::default();
    // The latest completed of the pair, by machine.
    let mut completed: HashMap<String, MachineAction> = HashMap::new();
    // Newest first: the first of each machine is its newest.
    for action in client.list_actions(Some(filter)).await? {
        let (Some(machine), Some(type_)) = (action.machine_id.clone(), action.type_.clone()) else {
            continue;
        };
        if action.status == Some(MachineActionStatus::Succeeded) {
            if completed
                .get(&machine)
                .is_none_or(|known| when(&action) > when(known))
            {
                completed.insert(machine, action);
            }
            continue;
        }
        let bucket = if type_ == kind {
            &mut pending.same
        } else {
            &mut pending.opposite
        };
        bucket.entry(machine).or_insert(action);
    }
    pending.in_effect = completed
        .into_iter()
        .filter(|(_, action)| action.type_.as_ref() == Some(&kind))
        .collect();
    Ok(Some(pending))
}

/// An action as a person names it.
fn named(action: &MachineAction) -> String {
    format!(
        "{} {} ({}, created {})",
        action
            .type_
            .as_ref()
            .map(|t| t.as_str())
            .unwrap_or("action"),
        action.id.as_deref().unwrap_or("?"),
        action
            .status
            .as_ref()
            .map(|s| s.as_str())
            .unwrap_or("pending"),
        action
            .creation_date_time_utc
            .as_ref()
            .map(|t| t.as_str())
            .unwrap_or("?")
    )
}

/// The outcome of a machine whose same action is pending: not sent.
pub fn already_running(op: OperationId, machine: &str, action: &MachineAction) -> Outcome {
    Outcome {
        machine: machine.to_string(),
        name: None,
        kind: Kind::AlreadyRunning,
        result: Answer::of_action(op, action.clone()),
        error: Some(ErrorInfo::new(
            "already_pending",
            format!(
                "{} is already pending on the machine; not sent again",
                named(action)
            ),
        )),
        earlier: false,
        tenant: None,
    }
}

/// The outcome of a machine where the action asked for is in effect already (its latest
/// completed of the pair): not sent, unless asked (`--again`).
pub fn already_in_effect(op: OperationId, machine: &str, action: &MachineAction) -> Outcome {
    use MachineActionType as T;
    let state = match action.type_ {
        Some(T::Isolate) => "isolated",
        Some(T::Unisolate) => "released",
        Some(T::RestrictCodeExecution) => "restricted",
        Some(T::UnrestrictCodeExecution) => "unrestricted",
        _ => "so",
    };
    let since = when(action).map_or("?".to_string(), |t| t.to_rfc3339());
    Outcome {
        machine: machine.to_string(),
        name: None,
        kind: Kind::AlreadyInEffect,
        result: Answer::of_action(op, action.clone()),
        error: Some(ErrorInfo::new(
            "already_in_effect",
            format!(
                "already {state} since {since} (action {}); not sent (--again sends it anyway)",
                action.id.as_deref().unwrap_or("?")
            ),
        )),
        earlier: false,
        tenant: None,
    }
}

/// The outcome of a machine whose opposite action is pending: not sent.
pub fn conflict(op: OperationId, machine: &str, action: &MachineAction) -> Outcome {
    Outcome {
        machine: machine.to_string(),
        name: None,
        kind: Kind::Conflict,
        result: None,
        error: Some(ErrorInfo::new(
            "conflict",
            format!(
                "{} is pending on the machine: sending {op} now could be undone when it completes (#5903); not sent (--cancel-pending cancels it first)",
                named(action)
            ),
        )),
        earlier: false,
        tenant: None,
    }
}

/// The outcome of a machine whose pending opposite action this run cancelled first
/// (`--cancel-pending`): what was cancelled, said beside the machine's own outcome.
pub fn cancelled_first(op: OperationId, machine: &str, action: &MachineAction) -> Outcome {
    let mut cancelled = action.clone();
    cancelled.status = Some(MachineActionStatus::Cancelled);
    Outcome {
        machine: machine.to_string(),
        name: None,
        kind: Kind::CancelledPending,
        result: Answer::of_action(OperationId::CancelMachineAction, cancelled),
        error: Some(ErrorInfo::new(
            "cancelled_pending",
            format!("cancelled {} before {op} (--cancel-pending)", named(action)),
        )),
        earlier: false,
        tenant: None,
    }
}

/// Cancels each action and follows them until final; the ids that did not end `Cancelled`
/// (they completed first), with how they ended.
pub async fn cancel(
    client: &Client,
    actions: &[MachineAction],
    comment: &str,
    interval: std::time::Duration,
) -> Result<Vec<(String, String)>, Error> {
    let mut ids = Vec::new();
    for action in actions {
        let Some(id) = action.id.clone() else {
            continue;
        };
        match client.cancel_machine_action(&id, comment).await {
            // Final meanwhile: the follow below says how it ended.
            Ok(_) | Err(Error::InvalidRequest(_)) => ids.push(id),
            Err(e) => return Err(e),
        }
    }
    let since = actions
        .iter()
        .filter_map(|a| a.creation_date_time_utc.as_ref().map(|t| t.instant()))
        .min()
        .unwrap_or_else(|| client.clock().now_utc());
    let followed = client
        .follow_actions(&ids, since, interval, Some(interval * 20), |_| {})
        .await?;
    let not_cancelled = ids
        .into_iter()
        .filter_map(|id| {
            let status = followed.actions.get(&id).and_then(|a| a.status.clone());
            match status {
                Some(MachineActionStatus::Cancelled) => None,
                other => Some((id, other.map_or("not final".to_string(), |s| s.to_string()))),
            }
        })
        .collect();
    Ok(not_cancelled)
}

/// A machine's containment now, from its latest completed containment actions, and the
/// containment actions still pending on it.
#[derive(Debug, Default, Clone)]
pub struct ContainmentState {
    /// The isolation in force, when the latest completed of isolate and release is an isolate.
    pub isolated: Option<MachineAction>,
    /// The restriction in force, likewise.
    pub restricted: Option<MachineAction>,
    /// The newest isolate or release still pending (`Pending`, `InProgress`).
    pub isolation_pending: Option<MachineAction>,
    /// The newest restrict or unrestrict still pending.
    pub restriction_pending: Option<MachineAction>,
}

/// What a pending containment action is doing, for people: `isolating`, `releasing`,
/// `restricting`, `unrestricting`.
pub fn doing(action: &MachineAction) -> &'static str {
    use MachineActionType as T;
    match action.type_ {
        Some(T::Isolate) => "isolating",
        Some(T::Unisolate) => "releasing",
        Some(T::RestrictCodeExecution) => "restricting",
        Some(T::UnrestrictCodeExecution) => "unrestricting",
        _ => "pending",
    }
}

/// Each machine's containment, from the `Succeeded`, `Pending` and `InProgress` containment
/// actions of the tenant: one listMachineActions call a page of 10,000, whatever the fleet
/// size. Of a pair (isolate and release, restrict and unrestrict) the one that completed last
/// is in force: a duplicate isolate that completed after a later release (#5903) leaves the
/// machine isolated. The newest pending one of each pair is what is under way.
pub async fn containment(client: &Client) -> Result<HashMap<String, ContainmentState>, Error> {
    use MachineActionType as T;
    let filter = "(status eq 'Succeeded' or status eq 'Pending' or status eq 'InProgress') and (type eq 'Isolate' or type eq 'Unisolate' or type eq 'RestrictCodeExecution' or type eq 'UnrestrictCodeExecution')";
    // The latest action of each pair, completed and pending apart, by machine.
    let mut latest: HashMap<(String, bool, bool), MachineAction> = HashMap::new();
    for action in client.list_actions(Some(filter.to_string())).await? {
        let (Some(machine), Some(kind)) = (action.machine_id.clone(), action.type_.clone()) else {
            continue;
        };
        let isolation = matches!(kind, T::Isolate | T::Unisolate);
        let pending = action.status != Some(MachineActionStatus::Succeeded);
        let key = (machine, isolation, pending);
        if latest
            .get(&key)
            .is_none_or(|known| when(&action) > when(known))
        {
            latest.insert(key, action);
        }
    }
    let mut state: HashMap<String, ContainmentState> = HashMap::new();
    for ((machine, isolation, pending), action) in latest {
        let entry = state.entry(machine).or_default();
        match (pending, isolation, &action.type_) {
            (true, true, _) => entry.isolation_pending = Some(action),
            (true, false, _) => entry.restriction_pending = Some(action),
            (false, _, Some(T::Isolate)) => entry.isolated = Some(action),
            (false, _, Some(T::RestrictCodeExecution)) => entry.restricted = Some(action),
            _ => {}
        }
    }
    Ok(state)
}
