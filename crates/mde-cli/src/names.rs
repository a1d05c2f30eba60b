//! Machines given by name: resolved to their ids with listMachines, once per run.
//!
//! A name matches a machine's `computerDnsName` (its fully qualified name) exactly, ignoring
//! case; a short name (no dot) matches its first label, since a short name does not `eq`-match
//! the name the service stores (callers' report PSMDATP #6). Several machines can share a
//! name (a re-imaged device, #12717): that is an error listing them, unless the caller picks
//! the one seen last.
//!
//! The fewest calls: up to [`FEW`] names, one filtered call each; more, the whole listing,
//! 10,000 machines a call, which costs fewer calls for any tenant of under `10,000 × names`
//! machines.

use std::collections::HashMap;

use crate::vocabulary::{Candidate, Kind};
use mde_client::types::Machine;
use mde_client::{Client, Error};

/// Up to this many names are looked up one filtered call each; more, with the whole listing.
pub const FEW: usize = 10;

/// The machines that carry `tag` (or, with `prefix`, a tag that starts with it): one call.
pub async fn tagged(client: &Client, tag: &str, prefix: bool) -> Result<Vec<Candidate>, Error> {
    let machines = client.find_machines_by_tag(tag, prefix).await?;
    Ok(machines.iter().filter_map(Candidate::of).collect())
}

impl Candidate {
    fn of(machine: &Machine) -> Option<Candidate> {
        Some(Candidate {
            id: machine.id.clone()?,
            name: machine.computer_dns_name.clone()?,
            last_seen: machine.last_seen.clone(),
            health: machine.health_status.as_ref().map(ToString::to_string),
        })
    }
}

/// What a name came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// One machine (or the one seen last, when asked to pick).
    Machine(Candidate),
    /// No machine has the name.
    NotFound,
    /// Several have it; their ids, names, last report times and health.
    Ambiguous(Vec<Candidate>),
}

impl Resolved {
    /// Why `name` came to no single machine, as an outcome's kind, its error code and
    /// message (each command adds its own remedy); `None` when it came to one.
    pub fn refusal(&self, name: &str) -> Option<(Kind, &'static str, String)> {
        match self {
            Resolved::Machine(_) => None,
            Resolved::NotFound => Some((
                Kind::NotFound,
                "not_found",
                format!(
                    "no machine is named {name} (its fully qualified name, or the first label of it)"
                ),
            )),
            Resolved::Ambiguous(candidates) => {
                let each: Vec<String> = candidates.iter().map(Candidate::describe).collect();
                let n = candidates.len();
                let message = format!("{n} machines are named {name}: {}", each.join("; "));
                Some((Kind::Ambiguous, "ambiguous", message))
            }
        }
    }
}

/// Every name's resolution, in the order given, and the listMachines calls it took.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// Each name given, with what it came to.
    pub names: Vec<(String, Resolved)>,
    /// listMachines calls made.
    pub calls: usize,
}

/// Why a name cannot be a machine's name: empty, too long, an empty label, or a character no
/// DNS or NetBIOS name has. Checked before anything is sent.
pub fn check(name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.len() > 255 {
        "is longer than 255 bytes"
    } else if name.split('.').any(str::is_empty) {
        "has an empty label (a leading, trailing or doubled dot)"
    } else if !name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        "has a character other than letters, digits, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(format!(
        "the machine name {:?} {problem}",
        mde_client::workspace::shorten(name, 100)
    ))
}

/// Whether `given` names the machine called `fqdn`: the whole name, or its first label for a
/// short name, ignoring case.
pub fn is_named(given: &str, fqdn: &str) -> bool {
    if given.contains('.') {
        fqdn.eq_ignore_ascii_case(given)
    } else {
        fqdn.split('.')
            .next()
            .is_some_and(|label| label.eq_ignore_ascii_case(given))
    }
}

/// The `$filter` of one name: `eq` for a full name; for a short one, `startswith`, which the
/// exact match then narrows.
fn filter(given: &str) -> String {
    let quoted = crate::vocabulary::odata_text(given);
    if given.contains('.') {
        format!("computerDnsName eq {quoted}")
    } else {
        format!("startswith(computerDnsName,{quoted})")
    }
}

/// What `given` comes to among `machines` (those that may have the name).
fn pick<'a>(
    given: &str,
    machines: impl IntoIterator<Item = &'a Candidate>,
    latest: bool,
) -> Resolved {
    let mut named: Vec<Candidate> = machines
        .into_iter()
        .filter(|c| is_named(given, &c.name))
        .cloned()
        .collect();
    // Newest report first (by instant, whatever the text's offset or digits).
    named.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
    named.dedup_by(|a, b| a.id == b.id);
    match named.len() {
        0 => Resolved::NotFound,
        1 => Resolved::Machine(named.remove(0)),
        _ if latest => Resolved::Machine(named.remove(0)),
        _ => Resolved::Ambiguous(named),
    }
}

/// Resolves `names` (checked, without repeats) with the fewest listMachines calls; `latest`
/// picks the machine seen last where several share a name.
pub async fn resolve(client: &Client, names: &[String], latest: bool) -> Result<Resolution, Error> {
    let mut resolution = Resolution::default();
    if names.is_empty() {
        return Ok(resolution);
    }
    if names.len() <= FEW {
        for given in names {
            let machines = client.list_machines(Some(filter(given))).await?;
            resolution.calls += mde_client::workspace::list_calls(machines.len());
            let candidates: Vec<Candidate> = machines.iter().filter_map(Candidate::of).collect();
            resolution
                .names
                .push((given.clone(), pick(given, &candidates, latest)));
        }
        return Ok(resolution);
    }
    let machines = client.list_machines(None).await?;
    resolution.calls += mde_client::workspace::list_calls(machines.len());
    // Every machine under its full name and its first label.
    let mut by_name: HashMap<String, Vec<Candidate>> = HashMap::new();
    for candidate in machines.iter().filter_map(Candidate::of) {
        let full = candidate.name.to_ascii_lowercase();
        let first = full.split('.').next().unwrap_or_default().to_string();
        if first != full {
            by_name.entry(first).or_default().push(candidate.clone());
        }
        by_name.entry(full).or_default().push(candidate);
    }
    for given in names {
        let found = by_name
            .get(&given.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default();
        resolution
            .names
            .push((given.clone(), pick(given, found, latest)));
    }
    Ok(resolution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mde_client::Timestamp;

    fn candidate(id: &str, name: &str, seen: &str) -> Candidate {
        Candidate {
            id: id.into(),
            name: name.into(),
            last_seen: Some(Timestamp::parse(seen).unwrap()),
            health: Some("Active".into()),
        }
    }

    #[test]
    fn a_short_name_matches_the_first_label_and_a_full_name_the_whole() {
        assert!(is_named("WS-0001", "ws-0001.contoso.com"));
        assert!(is_named("ws-0001.CONTOSO.com", "ws-0001.contoso.com"));
        assert!(is_named("desktop-test", "desktop-test"));
        assert!(!is_named("ws-000", "ws-0001.contoso.com"));
        assert!(!is_named("ws-0001.contoso", "ws-0001.contoso.com"));
        assert!(!is_named("contoso", "ws-0001.contoso.com"));
    }

    #[test]
    fn several_machines_with_a_name_are_ambiguous_unless_the_latest_is_picked() {
        let old = candidate("a", "ws-1.contoso.com", "2026-10-01T00:00:00.0000000Z");
        let new = candidate("b", "ws-1.contoso.com", "2026-11-20T00:00:00.0000000Z");
        let other = candidate("c", "ws-10.contoso.com", "2026-11-21T00:00:00.0000000Z");
        let all = [old.clone(), new.clone(), other];
        assert_eq!(
            pick("ws-1", &all, false),
            Resolved::Ambiguous(vec![new.clone(), old])
        );
        assert_eq!(pick("ws-1", &all, true), Resolved::Machine(new));
        assert_eq!(pick("ws-2", &all, true), Resolved::NotFound);
        // The later instant wins, though its text sorts before the other's ('.' < 'Z').
        let whole = candidate("d", "ws-3.contoso.com", "2026-11-20T00:00:00Z");
        let later = candidate("e", "ws-3.contoso.com", "2026-11-20T00:00:00.5Z");
        assert_eq!(
            pick("ws-3", &[whole, later.clone()], true),
            Resolved::Machine(later)
        );
    }

    #[test]
    fn names_are_checked_and_quoted() {
        assert!(check("ws-0001.contoso.com").is_ok());
        assert!(check("").is_err());
        assert!(check("ws..contoso").is_err());
        assert!(check("ws 1").is_err());
        assert!(check("x'; drop").is_err());
        assert_eq!(filter("ws-1"), "startswith(computerDnsName,'ws-1')");
        assert_eq!(filter("ws-1.c.com"), "computerDnsName eq 'ws-1.c.com'");
    }
}
