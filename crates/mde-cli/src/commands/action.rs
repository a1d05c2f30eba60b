//! `mde action list` and `mde action show`: machine actions as the service has them.

use mde_client::{operations, types};

use crate::cli::Cli;
use crate::json::{Line, Lines};
use crate::output;
use crate::session::connect;
use crate::vocabulary::{self, AUTH, ErrorInfo, OK, PARTIAL, USAGE, code_of, error_text, fail};

/// The machine of `mde action list`.
pub(crate) enum MachineBy {
    Id(String),
    /// A name, and whether to pick the machine seen last among several.
    Name(String, bool),
}

/// The `$filter` of `mde action list`: each option given, joined with `and`.
pub(crate) fn action_filter(
    machine: &Option<String>,
    status: &Option<String>,
    kind: &Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<String> {
    let quoted = crate::vocabulary::odata_text;
    let parts: Vec<String> = [
        machine
            .as_deref()
            .map(|m| format!("machineId eq {}", quoted(m))),
        status
            .as_deref()
            .map(|s| format!("status eq {}", quoted(documented_status(s)))),
        kind.as_deref().map(|t| format!("type eq {}", quoted(t))),
        since.map(mde_client::since_filter),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// A status as the service writes it (`pending` is `Pending`): the documented value of that
/// spelling in any case, else as given.
fn documented_status(status: &str) -> &str {
    let documented = mde_client::types::MachineActionStatus::DOCUMENTED;
    documented
        .iter()
        .find(|d| d.eq_ignore_ascii_case(status))
        .copied()
        .unwrap_or(status)
}

/// `mde action list`: one filtered call, newest first (and one to resolve a machine name).
pub(crate) async fn list(
    cli: &Cli,
    by: Option<MachineBy>,
    status: &Option<String>,
    kind: &Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<u8, u8> {
    // Sent as given (the service may add values), but a typo would list nothing, silently.
    let documented = [
        ("status", status, types::MachineActionStatus::DOCUMENTED),
        ("type", kind, types::MachineActionType::DOCUMENTED),
    ];
    for (what, value, known) in documented {
        if let Some(value) = value.as_deref().filter(|v| !known.contains(v)) {
            eprintln!(
                "warning: {value} is not a {what} the spec documents ({}); sent as given",
                known.join(", ")
            );
        }
    }
    let names: Vec<String> = match &by {
        Some(MachineBy::Name(name, _)) => {
            crate::names::check(name).map_err(|e| fail(USAGE, e))?;
            vec![name.clone()]
        }
        _ => Vec::new(),
    };
    let (simulator, client) = connect(cli, &names).await?;
    let machine = match by {
        None => None,
        Some(MachineBy::Id(id)) => Some(id),
        Some(MachineBy::Name(name, latest)) => {
            let resolved = crate::names::resolve(&client, &names, latest)
                .await
                .map_err(|e| fail(code_of(&e), error_text(&e)))?;
            match resolved.names.into_iter().next().map(|(_, r)| r) {
                Some(crate::names::Resolved::Machine(m)) => {
                    eprintln!("mde: {name} is {} ({})", m.id, m.name);
                    Some(m.id)
                }
                Some(crate::names::Resolved::Ambiguous(candidates)) => {
                    let list: Vec<String> = candidates.iter().map(|c| c.describe()).collect();
                    return Err(fail(
                        PARTIAL,
                        format!(
                            "{} machines are named {name}: {}; give the id, or --pick latest",
                            list.len(),
                            list.join("; ")
                        ),
                    ));
                }
                _ => return Err(fail(PARTIAL, format!("no machine is named {name}"))),
            }
        }
    };
    let filter = action_filter(&machine, status, kind, since);
    let page = client
        .send(operations::ListMachineActions {
            filter,
            top: Some(mde_client::workspace::PAGE as i32),
            skip: None,
        })
        .await;
    let page = page.map_err(|e| fail(code_of(&e), error_text(&e)))?;
    // CSV rows carry what the table shows: the type and the times.
    let lines = Lines::of(cli.run.output).map(|l| l.with_columns(&["type", "created", "updated"]));
    if lines.is_none() {
        println!("{}", output::ACTION_HEADER);
    }
    for action in &page.value {
        let id = action.id.as_deref().unwrap_or_default();
        let updated =
            (action.last_update_date_time_utc.as_ref()).or(action.last_update_time_utc.as_ref());
        match &lines {
            None => println!("{}", output::action_row(id, action)),
            Some(lines) => lines.write(
                &Line::of_action("listed", action)
                    .with("type", &action.type_)
                    .with("created", &action.creation_date_time_utc)
                    .with("updated", updated)
                    .with("action", action),
            ),
        }
    }
    eprintln!("mde: {} action(s)", page.value.len());
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(OK)
}

/// `mde action show`: each action as the service has it now, in the order given.
pub(crate) async fn show(cli: &Cli, ids: &[String]) -> Result<u8, u8> {
    let (simulator, client) = connect(cli, &[]).await?;
    let lines = Lines::of(cli.run.output);
    if lines.is_none() {
        println!("{}", output::ACTION_HEADER);
    }
    let mut code = OK;
    for id in ids {
        let shown = client
            .send(operations::GetMachineAction { id: id.clone() })
            .await;
        match (&shown, &lines) {
            (Ok(action), None) => println!("{}", output::action_row(id, action)),
            (Ok(action), Some(lines)) => {
                lines.write(&Line::of_action("found", action).with("action", action))
            }
            (Err(e), None) => println!("{}  {}", vocabulary::escape(id), error_text(e)),
            (Err(e), Some(lines)) => lines.write(&Line {
                action_id: Some(id.clone()),
                error: Some(ErrorInfo::of(e)),
                ..Line::new(match e {
                    mde_client::Error::NotFound(_) => "not_found",
                    _ => "failed",
                })
            }),
        }
        match shown {
            Ok(_) => {}
            // What holds for every call ends the command.
            Err(e) if code_of(&e) == AUTH => return Err(fail(AUTH, error_text(&e))),
            Err(_) => code = PARTIAL,
        }
    }
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_quotes_values_and_writes_since_in_utc() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T08:30:00+02:00").unwrap();
        let filter = action_filter(
            &Some("f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f".into()),
            &Some("Succeeded".into()),
            &Some("it's".into()),
            Some(since.to_utc()),
        );
        assert_eq!(
            filter.as_deref(),
            Some(
                "machineId eq 'f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f' and status eq 'Succeeded' \
                 and type eq 'it''s' and creationDateTimeUtc ge 2026-11-01T06:30:00Z"
            )
        );
        assert_eq!(action_filter(&None, &None, &None, None), None);
        // A status in another case is sent as the service writes it.
        let pending = action_filter(&None, &Some("pending".into()), &None, None);
        assert_eq!(pending.as_deref(), Some("status eq 'Pending'"));
        let other = action_filter(&None, &Some("Queued".into()), &None, None);
        assert_eq!(other.as_deref(), Some("status eq 'Queued'"));
    }
}
