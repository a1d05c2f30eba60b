//! The machines an advanced hunting query finds (`--from-hunt`): the query run once, on
//! Microsoft Graph over the 30 days the service keeps (split past its caps as `mde hunt`
//! is), and the machines read from one column of its answer: ids (`DeviceId`), or names
//! (`DeviceName`) resolved as `--machine-name` is. Each machine once.

use std::collections::HashSet;

use mde_client::hunting::{Cell, Column, Hunt, RETENTION};
use mde_client::{Client, Error, Timestamp};

use crate::names::{self, Resolved};
use crate::vocabulary::{Candidate, HuntRecord};

/// What a hunt found.
#[derive(Debug)]
pub struct Found {
    /// The hunt as it ran.
    pub record: HuntRecord,
    /// Its machines, each once, in the order the answer gave them.
    pub machines: Vec<Candidate>,
    /// The names of the column that came to no single machine, and what they came to.
    pub unresolved: Vec<(String, Resolved)>,
    /// listMachines calls made resolving names.
    pub calls: usize,
}

/// The column named `wanted` (exactly, else without regard to case), or the error naming
/// the columns the answer has.
fn column_of(columns: &[Column], wanted: &str) -> Result<usize, Error> {
    let exact = columns.iter().position(|(name, _)| name == wanted);
    let loose = || (columns.iter()).position(|(name, _)| name.eq_ignore_ascii_case(wanted));
    exact.or_else(loose).ok_or_else(|| {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        Error::InvalidInput(format!(
            "the hunt's answer has no column {wanted} (--id-column); its columns: {}",
            names.join(", ")
        ))
    })
}

/// Runs `query` and reads its machines from `column`; `latest`: of several machines with one
/// name, the one seen last (`--pick latest`).
pub async fn hunt(
    client: &Client,
    query: &str,
    column: &str,
    latest: bool,
) -> Result<Found, Error> {
    let now = client.clock().now_utc();
    let window = (now - RETENTION, now);
    let hunt = Hunt {
        window: Some(window),
        ..Hunt::new(query)
    };
    let by_name = column.eq_ignore_ascii_case("DeviceName");
    // (the column's value, the machine's name when the answer has one), each value once.
    let mut values: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let read = |columns: &[Column], rows: Vec<Vec<Cell>>, _: &_| {
        let at = column_of(columns, column)?;
        let name_at = column_of(columns, "DeviceName").ok();
        for row in rows {
            let text = |i: Option<usize>| match i.and_then(|i| row.get(i)) {
                Some(Cell::Text(t)) if !t.trim().is_empty() => Some(t.trim().to_string()),
                _ => None,
            };
            if let Some(value) = text(Some(at))
                && seen.insert(value.to_ascii_lowercase())
            {
                values.push((value, text(name_at).unwrap_or_default()));
            }
        }
        Ok(())
    };
    let (_, cost) = client.hunt_each(&hunt, read).await?;
    let record = HuntRecord {
        query: query.to_string(),
        column: column.to_string(),
        from: Timestamp::from(window.0),
        to: Timestamp::from(window.1),
        ran: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rows: cost.rows,
        calls: cost.calls,
    };
    let mut found = Found {
        record,
        machines: Vec::new(),
        unresolved: Vec::new(),
        calls: 0,
    };
    if !by_name {
        found.machines = (values.into_iter())
            .map(|(id, name)| Candidate {
                id,
                name,
                last_seen: None,
                health: None,
            })
            .collect();
        return Ok(found);
    }
    let names: Vec<String> = values.into_iter().map(|(name, _)| name).collect();
    let resolution = names::resolve(client, &names, latest).await?;
    found.calls = resolution.calls;
    let mut ids = HashSet::new();
    for (name, resolved) in resolution.names {
        match resolved {
            Resolved::Machine(machine) if ids.insert(machine.id.clone()) => {
                found.machines.push(machine);
            }
            Resolved::Machine(_) => {}
            other => found.unresolved.push((name, other)),
        }
    }
    Ok(found)
}
