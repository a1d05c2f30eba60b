//! From the machines given (ids and names) to the ids a run acts on: names resolved once per
//! run (or taken from the resumed journal), a dry run shown, a large run confirmed.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use mde_client::operations::OperationId;
use mde_client::{Client, Error};

use crate::journal::{Entry, History, Journal, now};
use crate::names::{self, Resolved};
use crate::vocabulary::ErrorInfo;
use crate::vocabulary::escape;
use crate::vocabulary::{Candidate, HuntRecord, Kind, Outcome, Output};

/// Above this many machines an action asks first.
pub const ASK_ABOVE: usize = 10;

/// The machines of a run.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The ids to act on: those given, then those the names came to, each once.
    pub machines: Vec<String>,
    /// The fully qualified name of each machine given by name, by id.
    pub names: HashMap<String, String>,
    /// Names that came to no single machine, as their outcomes.
    pub unresolved: Vec<Outcome>,
    /// The pending opposite actions cancelled first (`--cancel-pending`), as outcomes of
    /// their machines.
    pub cancelled: Vec<Outcome>,
    /// Names resolved by this run (the others came from the resumed journal).
    pub resolved_now: Vec<(String, Candidate)>,
    /// The machines the tag came to, when this run looked it up: (the tag, the machines).
    pub tagged_now: Option<(String, Vec<Candidate>)>,
    /// The run's hunt (`--from-hunt`), run now or read from the resumed journal, and how many
    /// machines it found.
    pub hunt: Option<(HuntRecord, usize)>,
    /// The hunt and its machines, when this run ran it (to journal).
    pub hunted_now: Option<(HuntRecord, Vec<Candidate>)>,
    /// listMachines calls made.
    pub calls: usize,
}

impl Selection {
    /// `outcome` with the name of its machine, when it was given by name.
    pub fn named(&self, outcome: &Outcome) -> Outcome {
        let mut outcome = outcome.clone();
        if outcome.name.is_none() {
            outcome.name = self.names.get(&outcome.machine).cloned();
        }
        outcome
    }

    /// Journals the names resolved now, so that a resumed run reuses them.
    pub fn record(&self, journal: &Journal) -> std::io::Result<()> {
        for (name, machine) in &self.resolved_now {
            journal.append(&Entry::Resolved {
                name: name.clone(),
                machine: machine.clone(),
                at: now(),
            })?;
        }
        if let Some((tag, machines)) = &self.tagged_now {
            journal.append(&Entry::Tagged {
                tag: tag.clone(),
                machines: machines.clone(),
                at: now(),
            })?;
        }
        if let Some((hunt, machines)) = &self.hunted_now {
            journal.append(&Entry::Hunted {
                hunt: hunt.clone(),
                machines: machines.clone(),
                at: now(),
            })?;
        }
        Ok(())
    }
}

/// The machines given by tag: the tag (`*` after it for a prefix) and whether it is one.
pub type Tag<'a> = Option<(&'a str, bool)>;

/// The machines given by a hunt: its query and the column of its answer that holds them.
pub type HuntBy<'a> = Option<(&'a str, &'a str)>;

/// The key a run records of its tag: the tag, with `*` after it for a prefix.
pub fn tag_key(tag: Tag<'_>) -> Option<String> {
    tag.map(|(tag, prefix)| format!("{tag}{}", if prefix { "*" } else { "" }))
}

/// Resolves `names` (those the journal does not hold), the machines of `tag` and those `hunt`
/// finds (unless the journal holds them), and adds their machines to `ids`, each once.
pub async fn select(
    client: &Client,
    ids: Vec<String>,
    (names, tag, hunt): (&[String], Tag<'_>, HuntBy<'_>),
    latest: bool,
    history: &History,
) -> Result<Selection, Error> {
    let mut selection = Selection::default();
    let to_look_up: Vec<String> = names
        .iter()
        .filter(|n| !history.names.contains_key(&n.to_ascii_lowercase()))
        .cloned()
        .collect();
    let looked_up = names::resolve(client, &to_look_up, latest).await?;
    selection.calls = looked_up.calls;
    let mut found: HashMap<String, Resolved> = looked_up
        .names
        .into_iter()
        .map(|(name, resolved)| (name.to_ascii_lowercase(), resolved))
        .collect();
    let mut seen: HashSet<String> = ids.iter().cloned().collect();
    selection.machines = ids;
    for name in names {
        let key = name.to_ascii_lowercase();
        match history.names.get(&key) {
            Some(machine) => selection.add_named(name, machine.clone(), false, &mut seen),
            None => match found.remove(&key).unwrap_or(Resolved::NotFound) {
                Resolved::Machine(machine) => selection.add_named(name, machine, true, &mut seen),
                other => selection.unresolved.extend(unresolved(name, &other)),
            },
        }
    }
    if let Some((text, prefix)) = tag {
        let machines = match &history.tagged {
            Some(machines) => machines.clone(),
            None => {
                let found = names::tagged(client, text, prefix).await?;
                selection.calls += 1;
                selection.tagged_now = tag_key(tag).map(|key| (key, found.clone()));
                found
            }
        };
        if machines.is_empty() {
            selection.unresolved.push(untagged(text, prefix));
        }
        selection.add_all(machines, &mut seen);
    }
    if let Some((query, column)) = hunt {
        let machines = match &history.hunted {
            Some((record, machines)) => {
                selection.hunt = Some((record.clone(), machines.len()));
                machines.clone()
            }
            None => selection.hunted(client, (query, column), latest).await?,
        };
        selection.add_all(machines, &mut seen);
    }
    Ok(selection)
}

impl Selection {
    /// Adds machines found by a tag or a hunt, each once; their names when known.
    fn add_all(&mut self, machines: Vec<Candidate>, seen: &mut HashSet<String>) {
        for machine in machines {
            if !machine.name.is_empty() {
                self.names.insert(machine.id.clone(), machine.name);
            }
            if seen.insert(machine.id.clone()) {
                self.machines.push(machine.id);
            }
        }
    }

    /// Runs the hunt now: its machines, its names that came to none kept as outcomes.
    async fn hunted(
        &mut self,
        client: &Client,
        (query, column): (&str, &str),
        latest: bool,
    ) -> Result<Vec<Candidate>, Error> {
        let found = crate::hunted::hunt(client, query, column, latest).await?;
        self.calls += found.calls;
        for (name, resolved) in &found.unresolved {
            self.unresolved.extend(unresolved(name, resolved));
        }
        self.hunt = Some((found.record.clone(), found.machines.len()));
        self.hunted_now = Some((found.record, found.machines.clone()));
        Ok(found.machines)
    }
}

impl Selection {
    /// Adds the machine a name came to, once (`now`: resolved by this run, to be journaled).
    fn add_named(&mut self, name: &str, machine: Candidate, now: bool, seen: &mut HashSet<String>) {
        if now {
            self.resolved_now.push((name.to_string(), machine.clone()));
        }
        self.names.insert(machine.id.clone(), machine.name.clone());
        if seen.insert(machine.id.clone()) {
            self.machines.push(machine.id);
        } else {
            eprintln!(
                "warning: {name} is machine {}, given already; acted on once",
                machine.id
            );
        }
    }
}

/// The outcome of a name that came to no single machine (none has it, or several do); `None`
/// for a name that came to one.
fn unresolved(name: &str, resolved: &Resolved) -> Option<Outcome> {
    let (kind, code, mut message) = resolved.refusal(name)?;
    if kind == Kind::Ambiguous {
        message.push_str("; give the id, or --pick latest");
    }
    Some(Outcome {
        machine: name.to_string(),
        name: None,
        kind,
        result: None,
        error: Some(ErrorInfo::new(code, message)),
        earlier: false,
        tenant: None,
    })
}

/// The outcome of a tag no machine carries.
fn untagged(text: &str, prefix: bool) -> Outcome {
    let which = if prefix {
        "a tag that starts with"
    } else {
        "the tag"
    };
    Outcome {
        machine: format!("tag:{text}"),
        name: None,
        kind: Kind::NotFound,
        result: None,
        error: Some(ErrorInfo::new(
            "not_found",
            format!("no machine carries {which} {text}"),
        )),
        earlier: false,
        tenant: None,
    }
}

/// The documented limits of `op`, for people: `100 a minute, 1500 an hour`.
pub fn limits(op: OperationId) -> String {
    let windows = op.facts().rate_limits;
    if windows.is_empty() {
        return "none documented".into();
    }
    windows
        .iter()
        .map(|w| match w.seconds {
            60 => format!("{} a minute", w.calls),
            3600 => format!("{} an hour", w.calls),
            s => format!("{} per {s} s", w.calls),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a run would do, for `--dry-run`.
#[derive(Debug)]
pub struct DryRun<'a> {
    /// The operation sent to each machine.
    pub op: OperationId,
    /// What else the request carries (the scan type), if anything.
    pub detail: Option<String>,
    /// The comment.
    pub comment: &'a str,
    /// The machines.
    pub selection: &'a Selection,
    /// Calls that follow each request (package links), if any.
    pub then: Option<OperationId>,
    /// The profile whose tenant the machines are in, in a run of several.
    pub tenant: Option<&'a str>,
}

impl DryRun<'_> {
    /// The shortest time the documented limits allow for the requests (and those that follow).
    pub fn shortest(&self) -> Duration {
        let (_, shortest, then) = self.figures();
        shortest.max(then.map(|(_, d)| d).unwrap_or_default())
    }

    /// The plan's figures: its requests, the shortest time the limits allow for them, and
    /// the calls that follow each with their own shortest time.
    fn figures(&self) -> (usize, Duration, Option<(OperationId, Duration)>) {
        let n = self.selection.machines.len();
        let then = self
            .then
            .map(|op| (op, mde_client::minimum_duration(op, n)));
        (n, mde_client::minimum_duration(self.op, n), then)
    }

    /// The plan as one JSON object.
    fn json(&self) -> serde_json::Value {
        let (n, shortest, then) = self.figures();
        let facts = self.op.facts();
        let machines: Vec<_> = self
            .selection
            .machines
            .iter()
            .map(|id| serde_json::json!({ "machine": id, "name": self.selection.names.get(id) }))
            .collect();
        let mut line = serde_json::json!({
            "dry_run": true,
            "operation": self.op.as_str(),
            "method": facts.method,
            "path": facts.path,
            "detail": self.detail,
            "comment": self.comment,
            "machines": machines,
            "unresolved": self.selection.unresolved,
            "requests": n,
            "shortest_seconds": shortest.as_secs(),
            "then": then.map(|(op, d)| serde_json::json!({
                "operation": op.as_str(), "requests": n, "shortest_seconds": d.as_secs()
            })),
            "name_lookups": self.selection.calls,
        });
        if let Some(tenant) = self.tenant {
            line["tenant"] = tenant.into();
        }
        line
    }

    /// Prints the plan; nothing is sent.
    pub fn print(&self, output: Output, out: &mut impl Write) -> std::io::Result<()> {
        if output == Output::Json {
            return writeln!(out, "{}", self.json());
        }
        let (n, shortest, then) = self.figures();
        let facts = self.op.facts();
        writeln!(out, "Dry run: no action is sent.")?;
        if let Some(tenant) = self.tenant {
            writeln!(out, "Tenant:    {tenant} (profile)")?;
        }
        writeln!(
            out,
            "Operation: {} ({} {}){}",
            self.op,
            facts.method,
            facts.path,
            self.detail
                .as_deref()
                .map(|d| format!(", {d}"))
                .unwrap_or_default()
        )?;
        writeln!(out, "Comment:   {}", self.comment)?;
        writeln!(out, "Machines:  {n}")?;
        if n > 0 {
            writeln!(out, "  {:<40}  NAME", "MACHINE")?;
            for id in &self.selection.machines {
                let name = self.selection.names.get(id).map_or("-", String::as_str);
                writeln!(out, "  {id:<40}  {name}")?;
            }
        }
        if !self.selection.unresolved.is_empty() {
            writeln!(out, "Not acted on: {}", self.selection.unresolved.len())?;
            for o in &self.selection.unresolved {
                writeln!(
                    out,
                    "  {}  {}  {}",
                    o.machine,
                    o.kind.as_str(),
                    o.error
                        .as_ref()
                        .map(|e| e.message.as_str())
                        .unwrap_or_default()
                )?;
            }
        }
        writeln!(
            out,
            "Requests:  {n} {}, at least {} at the documented limits ({})",
            self.op,
            crate::vocabulary::duration(shortest),
            limits(self.op)
        )?;
        if let Some((op, d)) = then {
            writeln!(
                out,
                "Then:      {n} {op}, at least {} at the documented limits ({})",
                crate::vocabulary::duration(d),
                limits(op)
            )?;
        }
        let tagged = usize::from(self.selection.tagged_now.is_some());
        writeln!(
            out,
            "Lookups:   {} listMachines call(s) made to resolve the names{}",
            self.selection.calls - tagged,
            if tagged > 0 {
                ", 1 findMachinesByTag call for the tag"
            } else {
                ""
            }
        )
    }
}

/// The shortest time of a run of `tenants` parts: its longest part's, for they run at once,
/// each within its own limits.
/// `stopped`: the profiles that cannot sign in (said on stderr).
pub fn print_longest(
    output: Output,
    tenants: usize,
    stopped: &[&str],
    longest: std::time::Duration,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if output == Output::Json {
        let line = serde_json::json!({
            "dry_run": true,
            "tenants": tenants,
            "stopped": stopped,
            "shortest_seconds": longest.as_secs(),
        });
        return writeln!(out, "{line}");
    }
    writeln!(
        out,
        "Run:       {tenants} tenant(s) at once, each within its own limits: at least {} (the longest tenant's, not the sum){}",
        crate::vocabulary::duration(longest),
        match stopped {
            [] => String::new(),
            _ => format!("; stopped before sending: {}", stopped.join(", ")),
        }
    )
}

/// One tenant's machines to send to, for the confirmation: its profile (none for a run of one
/// connection) and each machine's id and name.
pub type ToConfirm<'a> = (Option<&'a str>, Vec<(&'a str, Option<&'a str>)>);

/// How many machines a confirmation names before "and N more".
const SHOWN: usize = 5;

/// The question a confirmation asks: the operation, the count per tenant, the first machines
/// (name and id), and for an offboarding that it cannot be undone through the API.
pub fn question(op: OperationId, parts: &[ToConfirm<'_>]) -> String {
    let count: usize = parts.iter().map(|(_, m)| m.len()).sum();
    let mut text = format!("mde: {op} on {count} machine(s)");
    if !undoable(op) {
        text.push_str(
            " (it cannot be undone through the API: the device stops reporting, and onboarding it again is a local script)",
        );
    }
    text.push(':');
    for (profile, machines) in parts.iter().filter(|(_, m)| !m.is_empty()) {
        let shown: Vec<String> = machines
            .iter()
            .take(SHOWN)
            .map(|(id, name)| match name {
                Some(name) => format!("{} ({})", escape(name), escape(id)),
                None => escape(id),
            })
            .collect();
        let more = machines.len().saturating_sub(SHOWN);
        text.push_str(&format!(
            "\n  {}{} machine(s): {}{}",
            crate::output::of_tenant(*profile),
            machines.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    text.push_str("\nSend? [y/N] ");
    text
}

/// Whether the operation's effect can be undone through the API (the spec's `x-undone-by`):
/// an offboarding stops the sensor, and no operation onboards a device again.
fn undoable(op: OperationId) -> bool {
    !op.facts().irreversible
}

/// Asks before acting on more than [`ASK_ABOVE`] machines (before any offboarding), unless
/// `yes`; without a terminal to ask on, refuses. `Err` holds why nothing is sent.
pub fn confirm(op: OperationId, parts: &[ToConfirm<'_>], yes: bool) -> Result<(), String> {
    let count: usize = parts.iter().map(|(_, m)| m.len()).sum();
    // An offboarding cannot be undone through the API (it stops the sensor): always asked.
    if (count <= ASK_ABOVE && undoable(op)) || yes || count == 0 {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!(
            "{op} on {count} machines needs a confirmation, and stdin is not a terminal to ask on: add --yes to go ahead (--dry-run shows what would be sent); nothing was sent"
        ));
    }
    eprint!("{}", question(op, parts));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err("not confirmed; nothing was sent".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_counts_each_tenant_names_the_first_machines_and_warns_of_offboarding() {
        let ids: Vec<String> = (0..7).map(|i| format!("{i:040x}")).collect();
        let contoso: Vec<(&str, Option<&str>)> = ids
            .iter()
            .map(|id| (id.as_str(), Some("ws-0001.contoso.com")))
            .collect();
        let fabrikam = vec![(ids[0].as_str(), None)];
        let parts = [(Some("contoso"), contoso), (Some("fabrikam"), fabrikam)];
        let text = question(OperationId::OffboardMachine, &parts);
        assert!(
            text.starts_with(
                "mde: offboardMachine on 8 machine(s) (it cannot be undone through the API"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\n  contoso: 7 machine(s): ws-0001.contoso.com ({}), ",
                ids[0]
            )),
            "{text}"
        );
        assert!(
            text.contains(
                " and 2 more\n  fabrikam: 1 machine(s): 0000000000000000000000000000000000000000\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("Send? [y/N] "));
        let isolate = question(OperationId::IsolateMachine, &parts[1..]);
        assert!(!isolate.contains("undone"), "{isolate}");
    }
}
