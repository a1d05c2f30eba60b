//! `mde machine show` and `mde machine list`: devices, with what contains them now (derived
//! from their latest completed containment actions: the service has no field for it, #8033).

use std::collections::HashMap;

use mde_client::types::{Machine, MachineAction};
use mde_client::{Error, operations};

use crate::cli::Cli;
use crate::json::{Line, Lines};
use crate::pending::{ContainmentState, containment, doing};
use crate::session::connect;
use crate::vocabulary::{self, AUTH, ErrorInfo, OK, PARTIAL, code_of, error_text, fail};

/// What `mde machine list` keeps.
pub(crate) struct Only<'a> {
    pub isolated: bool,
    pub restricted: bool,
    pub tag: Option<&'a str>,
    pub tag_prefix: bool,
    pub health: Option<&'a str>,
}

/// The columns of the machine tables.
const HEADER: &str = "MACHINE                                   NAME                            HEALTH    ISOLATION                                     RESTRICTION                                   TAGS";

/// `since TIME (ACTION)` of a containment action in force, `-` for none.
fn since(action: Option<&MachineAction>) -> String {
    action.map_or("-".into(), |a| {
        let when = a
            .last_update_date_time_utc
            .as_ref()
            .or(a.creation_date_time_utc.as_ref())
            .map_or("?".to_string(), ToString::to_string);
        match &a.scope {
            Some(scope) => format!("{scope} since {when}"),
            None => format!("since {when}"),
        }
    })
}

/// A column of containment: what is in force, then what is under way (`isolating (ACTION)`).
fn column(in_force: Option<&MachineAction>, pending: Option<&MachineAction>) -> String {
    let held = since(in_force);
    match pending {
        None => held,
        Some(p) => {
            let doing = format!("{} ({})", doing(p), p.id.as_deref().unwrap_or("?"));
            match in_force {
                Some(_) => format!("{held}; {doing}"),
                None => doing,
            }
        }
    }
}

/// A containment action in force, for JSON.
fn held(action: Option<&MachineAction>) -> serde_json::Value {
    action.map_or(serde_json::Value::Null, |a| {
        serde_json::json!({
            "action_id": a.id,
            "scope": a.scope,
            "since": a.last_update_date_time_utc.as_ref().or(a.creation_date_time_utc.as_ref()),
        })
    })
}

/// A containment action pending, for JSON: what it is doing, and the action.
fn under_way(action: Option<&MachineAction>) -> serde_json::Value {
    action.map_or(serde_json::Value::Null, |a| {
        serde_json::json!({
            "state": doing(a),
            "action_id": a.id,
            "status": a.status,
            "since": a.creation_date_time_utc,
        })
    })
}

fn print(lines: Option<&Lines>, machine: &Machine, state: &ContainmentState) {
    let id = machine.id.clone().unwrap_or_default();
    let tags = machine.machine_tags.clone().unwrap_or_default();
    match lines {
        Some(lines) => lines.write(
            &Line {
                machine: Some(id),
                name: machine.computer_dns_name.clone(),
                ..Line::new("listed")
            }
            .with("health", &machine.health_status)
            .with("os_platform", &machine.os_platform)
            .with("tags", &tags)
            .with("isolated", held(state.isolated.as_ref()))
            .with("restricted", held(state.restricted.as_ref()))
            .with(
                "isolation_pending",
                under_way(state.isolation_pending.as_ref()),
            )
            .with(
                "restriction_pending",
                under_way(state.restriction_pending.as_ref()),
            ),
        ),
        None => println!(
            "{:<40}  {:<30}  {:<8}  {:<44}  {:<44}  {}",
            vocabulary::escape(&id),
            vocabulary::escape(machine.computer_dns_name.as_deref().unwrap_or("-")),
            machine
                .health_status
                .as_ref()
                .map_or("-".to_string(), ToString::to_string),
            column(state.isolated.as_ref(), state.isolation_pending.as_ref()),
            column(
                state.restricted.as_ref(),
                state.restriction_pending.as_ref()
            ),
            vocabulary::escape(&tags.join(", "))
        ),
    }
}

/// The containment of every machine, or the command's end.
async fn states(client: &mde_client::Client) -> Result<HashMap<String, ContainmentState>, u8> {
    containment(client).await.map_err(|e| {
        fail(
            code_of(&e),
            format!("cannot read the containment actions: {}", error_text(&e)),
        )
    })
}

/// `mde machine show`: each machine by id or by name, with its containment now.
pub(crate) async fn show(cli: &Cli, ids: &[String], names: &[String]) -> Result<u8, u8> {
    for name in names {
        crate::names::check(name).map_err(|e| fail(crate::vocabulary::USAGE, e))?;
    }
    let (simulator, client) = connect(cli, &[]).await?;
    let state = states(&client).await?;
    let lines = Lines::of(cli.run.output);
    if lines.is_none() {
        println!("{HEADER}");
    }
    let mut code = OK;
    let mut ids = ids.to_vec();
    if !names.is_empty() {
        let resolution = crate::names::resolve(&client, names, false)
            .await
            .map_err(|e| fail(code_of(&e), error_text(&e)))?;
        for (name, resolved) in resolution.names {
            let Some((_, outcome, why)) = resolved.refusal(&name) else {
                if let crate::names::Resolved::Machine(machine) = resolved {
                    ids.push(machine.id);
                }
                continue;
            };
            code = PARTIAL;
            match &lines {
                Some(lines) => lines.write(&Line {
                    name: Some(name.clone()),
                    error: Some(ErrorInfo::new(outcome, &why)),
                    ..Line::new(outcome)
                }),
                None => println!(
                    "{}  {}",
                    vocabulary::escape(&name),
                    vocabulary::escape(&why)
                ),
            }
        }
    }
    for id in &ids {
        match client.send(operations::GetMachine { id: id.clone() }).await {
            Ok(machine) => {
                let held = state.get(id).cloned().unwrap_or_default();
                print(lines.as_ref(), &machine, &held);
            }
            Err(e) if code_of(&e) == AUTH => return Err(fail(AUTH, error_text(&e))),
            Err(e) => {
                code = PARTIAL;
                let outcome = if matches!(e, Error::NotFound(_)) {
                    "not_found"
                } else {
                    "failed"
                };
                match &lines {
                    Some(lines) => lines.write(&Line {
                        machine: Some(id.clone()),
                        error: Some(ErrorInfo::of(&e)),
                        ..Line::new(outcome)
                    }),
                    None => println!("{}  {}", vocabulary::escape(id), error_text(&e)),
                }
            }
        }
    }
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(code)
}

/// `mde machine list`: the machines (those with a tag, or of a health status), with their
/// containment now, only the isolated or restricted ones when asked.
pub(crate) async fn list(cli: &Cli, only: Only<'_>) -> Result<u8, u8> {
    let (simulator, client) = connect(cli, &[]).await?;
    let machines = match only.tag {
        Some(tag) => client.find_machines_by_tag(tag, only.tag_prefix).await,
        None => {
            let filter = only
                .health
                .map(|h| format!("healthStatus eq {}", crate::vocabulary::odata_text(h)));
            client.list_machines(filter).await
        }
    };
    let machines = machines.map_err(|e| fail(code_of(&e), error_text(&e)))?;
    let state = states(&client).await?;
    let lines = Lines::of(cli.run.output);
    if lines.is_none() {
        println!("{HEADER}");
    }
    let mut shown = 0;
    for machine in &machines {
        let held = machine
            .id
            .as_ref()
            .and_then(|id| state.get(id))
            .cloned()
            .unwrap_or_default();
        let isolated = held.isolated.is_some() || held.isolation_pending.is_some();
        let restricted = held.restricted.is_some() || held.restriction_pending.is_some();
        if (only.isolated && !isolated) || (only.restricted && !restricted) {
            continue;
        }
        shown += 1;
        print(lines.as_ref(), machine, &held);
    }
    eprintln!("mde: {shown} machine(s)");
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(OK)
}
