//! Looking actions up: the newest action of a kind on each machine, and on resume the machines
//! a killed run sent to without an answer.

use super::*;
use crate::vocabulary::odata_text;

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
            .map(|m| format!("machineId eq {}", odata_text(m)))
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
pub(super) async fn settle_unknown(
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
                kind: Kind::Accepted,
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
