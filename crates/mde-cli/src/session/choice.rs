//! The machines of a run, chosen before anything is sent: read and checked, resolved (names,
//! a tag, the pending actions of a containment), shown by a dry run, confirmed, and the
//! pending opposite actions cancelled first when asked.

use std::io::Write;

use mde_client::operations::{AnyRequest, OperationId};
use mde_client::{Client, Error};

use crate::cli::{Cli, Targets};
use crate::fleet;
use crate::journal::{Entry, History, Journal};
use crate::selection::{self, Selection};
use crate::targets;
use crate::vocabulary::{LOCAL, OK, PARTIAL, USAGE, code_of, fail, failed};

/// The ids and names of a run, each de-duplicated with a warning; a usage error when there
/// are none, or a name no machine could have.
pub(crate) fn machines(
    targets: &Targets,
    op: OperationId,
    scope: &[String],
) -> Result<(Vec<String>, Vec<String>), u8> {
    let (machines, repeated) =
        targets::machine_ids(&targets.machines, targets.machines_file.as_deref(), scope)
            .map_err(|e| fail(USAGE, e))?;
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} machine id(s) given more than once, sent once: {}",
            repeated.len(),
            escaped(&repeated)
        );
    }
    // Sent as given (the service's ids are opaque), but a name given as an id is a likely slip.
    let odd: Vec<&str> = machines
        .iter()
        .filter(|id| {
            targets::on_machines(op) && !targets::well_formed(crate::vocabulary::qualified(id).1)
        })
        .map(String::as_str)
        .collect();
    if !odd.is_empty() {
        eprintln!(
            "warning: {} machine id(s) are not 40 or 32 hex characters, as the service's ids are; sent as given: {}. A computer name goes with --machine-name.",
            odd.len(),
            escaped(&odd)
        );
    }
    let (names, repeated) =
        targets::machine_names(&targets.names, targets.names_file.as_deref(), scope)
            .map_err(|e| fail(USAGE, e))?;
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} machine name(s) given more than once, looked up once: {}",
            repeated.len(),
            escaped(&repeated)
        );
    }
    for name in &names {
        crate::names::check(crate::vocabulary::qualified(name).1).map_err(|e| fail(USAGE, e))?;
    }
    let selectors = targets.tag.is_some() || targets.from_hunt.is_some();
    if machines.is_empty() && names.is_empty() && !selectors {
        return Err(fail(
            USAGE,
            "no machines: give ids as arguments or with --machines-file, names with --machine-name or --names-file, a tag with --tag, or a query with --from-hunt",
        ));
    }
    Ok((machines, names))
}

/// The tag the machines are given by, if any.
pub(crate) fn tag(targets: &Targets) -> selection::Tag<'_> {
    targets.tag.as_deref().map(|t| (t, targets.tag_prefix))
}

/// Ids or names as a list a terminal shows as it is.
fn escaped(items: &[impl AsRef<str>]) -> String {
    items
        .iter()
        .map(|i| crate::vocabulary::escape(i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a dry run says of a run besides its machines: the operation, what else the request
/// carries, and the calls that follow each request.
pub(crate) type Intent = (OperationId, Option<String>, Option<OperationId>);

/// The machines of one tenant's part of a run, before anything is sent.
#[derive(Debug)]
pub(crate) struct PartMachines {
    /// The machines: those given by id, by name, by tag.
    pub selection: Selection,
    /// With `--cancel-pending`: the opposite actions to cancel first (machine, action).
    pub to_cancel: Vec<(String, mde_client::types::MachineAction)>,
}

/// The machines of a part: the names and the tag resolved (or taken from the resumed
/// journal); for a containment, the machines where the same or the opposite action is pending
/// taken out (with `--cancel-pending`, the opposite actions to cancel first).
pub(crate) async fn resolve(
    targets: &Targets,
    client: &Client,
    history: &History,
    (ids, names): (Vec<String>, Vec<String>),
    op: OperationId,
) -> Result<PartMachines, (u8, String)> {
    let hunt = (targets.from_hunt.as_deref()).map(|query| (query, targets.id_column.as_str()));
    let given = (&names[..], tag(targets), hunt);
    let mut selection = selection::select(client, ids, given, targets.pick.is_some(), history)
        .await
        .map_err(|e| {
            let text = crate::vocabulary::error_text(&e);
            (code_of(&e), format!("cannot resolve the machines: {text}"))
        })?;
    let to_cancel = race(client, targets, op, &mut selection)
        .await
        .map_err(|e| {
            let list = OperationId::ListMachineActions.facts();
            (
                code_of(&e),
                format!(
                    "cannot read the pending actions, the check against the duplicate-action race (#5903): {}. Give the app {} (application), or send without the check with --skip-pending-check: a duplicate or opposite action still pending is then not seen, and one that completes after this run's can undo it",
                    crate::vocabulary::error_text(&e),
                    list.application_permissions.join(" or ")
                ),
            )
        })?;
    Ok(PartMachines {
        selection,
        to_cancel,
    })
}

/// Prints what the run would send, each part under its profile, and in a run of several
/// the run's shortest time (its longest part's: they run at once); returns the exit code.
pub(crate) fn dry_run(
    cli: &Cli,
    parts: &[(Option<&str>, &PartMachines)],
    stopped: &[&str],
    (op, detail, then): Intent,
) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let mut longest = std::time::Duration::ZERO;
    for (profile, chosen) in parts {
        if let Some((hunt, found)) = &chosen.selection.hunt {
            eprintln!(
                "mde: {}hunt ({} of) {:?} over {} to {}, run {}: {} row(s) in {} call(s), {found} machine(s)",
                profile.map(|p| format!("{p}: ")).unwrap_or_default(),
                hunt.column,
                hunt.query,
                hunt.from,
                hunt.to,
                hunt.ran,
                hunt.rows,
                hunt.calls
            );
        }
        if !chosen.to_cancel.is_empty() {
            eprintln!(
                "mde: {}would cancel {} pending opposite action(s) first (--cancel-pending)",
                profile.map(|p| format!("{p}: ")).unwrap_or_default(),
                chosen.to_cancel.len()
            );
        }
        let plan = selection::DryRun {
            op,
            detail: detail.clone(),
            comment: comment_of(cli),
            selection: &chosen.selection,
            then,
            tenant: *profile,
        };
        let _ = plan.print(cli.run.output, &mut stdout);
        longest = longest.max(plan.shortest());
    }
    if parts.len() + stopped.len() > 1 {
        let _ =
            selection::print_longest(cli.run.output, parts.len(), stopped, longest, &mut stdout);
    }
    let _ = stdout.flush();
    if parts.iter().all(|(_, c)| c.selection.unresolved.is_empty()) {
        OK
    } else {
        PARTIAL
    }
}

/// Asks before sending to the parts' machines (those their history does not show as done),
/// when [`selection::confirm`] says to.
pub(crate) fn confirm(
    cli: &Cli,
    targets: &Targets,
    op: OperationId,
    parts: &[(Option<&str>, &PartMachines, &History)],
) -> Result<(), u8> {
    // A simulated run acts on nothing real: it never asks.
    let yes = targets.confirm.yes || cli.connection.simulate;
    let asked: Vec<selection::ToConfirm<'_>> = parts
        .iter()
        .map(|(profile, chosen, history)| {
            let selection = &chosen.selection;
            let machines = selection
                .machines
                .iter()
                .filter(|m| !history.done.contains_key(*m))
                .map(|m| (m.as_str(), selection.names.get(m).map(String::as_str)))
                .collect();
            (*profile, machines)
        })
        .collect();
    selection::confirm(op, &asked, yes).map_err(|e| fail(USAGE, e))
}

/// Cancels the pending opposite actions of `--cancel-pending` first, each journaled before
/// it is sent and after it ends; a machine whose action stays pending is a `conflict`, not
/// sent to. The machines to send to.
pub(crate) async fn cancel_first(
    cli: &Cli,
    client: &Client,
    op: OperationId,
    chosen: PartMachines,
    journal: &Journal,
) -> Result<Selection, u8> {
    let PartMachines {
        mut selection,
        to_cancel,
    } = chosen;
    if to_cancel.is_empty() {
        return Ok(selection);
    }
    let cannot = |e: std::io::Error| {
        let path = journal.path().display();
        fail(
            LOCAL,
            format!("cannot write the journal {path}: {e}; nothing was sent"),
        )
    };
    for (machine, action) in &to_cancel {
        let action = action.id.clone().unwrap_or_default();
        let entry = Entry::Cancelling {
            machine: machine.clone(),
            action,
            at: crate::journal::now(),
        };
        journal.append(&entry).map_err(cannot)?;
    }
    journal.sync().map_err(cannot)?;
    let actions: Vec<_> = to_cancel.iter().map(|(_, a)| a.clone()).collect();
    let why = format!("Cancelled by mde before {op}: {}", comment_of(cli));
    eprintln!(
        "mde: cancelling {} pending opposite action(s) first",
        actions.len()
    );
    let interval = std::time::Duration::from_secs(30);
    let stuck = crate::pending::cancel(client, &actions, &why, interval)
        .await
        .map_err(failed("cannot cancel the pending actions"))?;
    for (machine, action) in &to_cancel {
        let id = action.id.clone().unwrap_or_default();
        let ended = stuck.iter().find(|(stuck, _)| *stuck == id);
        let status = ended.map_or("Cancelled".to_string(), |(_, status)| status.clone());
        let entry = Entry::Cancelled {
            machine: machine.clone(),
            action: id,
            status,
            at: crate::journal::now(),
        };
        journal.append(&entry).map_err(cannot)?;
        if ended.is_some() {
            selection.machines.retain(|m| m != machine);
            selection
                .unresolved
                .push(crate::pending::conflict(op, machine, action));
        } else {
            let cancelled = crate::pending::cancelled_first(op, machine, action);
            selection.cancelled.push(cancelled);
        }
    }
    Ok(selection)
}

/// Before a containment run: machines whose same action is pending are `already_running`,
/// those whose opposite action is pending a `conflict`, both taken out of the run; with
/// `--cancel-pending`, the opposite actions to cancel first instead (machine, action).
async fn race(
    client: &Client,
    targets: &Targets,
    op: OperationId,
    selection: &mut Selection,
) -> Result<Vec<(String, mde_client::types::MachineAction)>, Error> {
    if targets.skip_pending_check {
        return Ok(Vec::new());
    }
    let Some(pending) = crate::pending::read(client, op).await? else {
        return Ok(Vec::new());
    };
    let mut to_cancel = Vec::new();
    let mut outcomes = Vec::new();
    selection.machines.retain(|machine| {
        if let Some(action) = pending.same.get(machine) {
            outcomes.push(crate::pending::already_running(op, machine, action));
            return false;
        }
        if let (Some(action), false) = (pending.in_effect.get(machine), targets.again) {
            outcomes.push(crate::pending::already_in_effect(op, machine, action));
            return false;
        }
        match pending.opposite.get(machine) {
            Some(action) if targets.cancel_pending => {
                to_cancel.push((machine.clone(), action.clone()));
                true
            }
            Some(action) => {
                outcomes.push(crate::pending::conflict(op, machine, action));
                false
            }
            None => true,
        }
    });
    selection.unresolved.extend(outcomes);
    Ok(to_cancel)
}

/// What a run sends to each machine: the template, and what the command line says of
/// resuming.
pub(crate) fn plan<'a>(targets: &Targets, template: &'a AnyRequest) -> fleet::Plan<'a> {
    fleet::Plan {
        template,
        retry_unknown: targets.journaling.retry_unknown,
        retry_failed: targets.journaling.retry_failed,
    }
}

/// The `Comment` of the body the command line gives.
fn comment_of(cli: &Cli) -> &str {
    let comment = cli.body.get("Comment").and_then(serde_json::Value::as_str);
    comment.unwrap_or_default()
}
