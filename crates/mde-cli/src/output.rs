//! What a run shows: a table or JSON lines on stdout, the summary on stderr.

use std::io::Write;

use mde_client::operations::{Answer, AnswerBody};
use mde_client::types;
use mde_client::workspace::shorten;

use crate::fleet::FleetReport;
use crate::pipeline::{self, Board};
use crate::vocabulary::{Kind, Outcome, Stage, duration, escape};

/// The distinct errors of a run, each in full with how many machines had it (a machine's
/// own id in its error is written `{machine}`), most frequent first: the block that ends a
/// run's output.
pub fn error_block<'a>(errors: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (machine, error) in errors {
        let text = whole_word(error, machine, "{machine}");
        match counts.iter_mut().find(|(known, _)| *known == text) {
            Some((_, n)) => *n += 1,
            None => counts.push((text, 1)),
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts
        .into_iter()
        .map(|(text, n)| format!("  {n} machine(s): {text}"))
        .collect()
}

/// `text` with each whole occurrence of `word` (not a part of a longer id or name, such as
/// `ws-0001` in `ws-0001.contoso.com`) replaced by `with`.
fn whole_word(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return text.to_string();
    }
    let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "-._".contains(c));
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let (before, after) = (&rest[..at], &rest[at + word.len()..]);
        out.push_str(before);
        let whole = !part(out.chars().next_back()) && !part(after.chars().next());
        out.push_str(if whole { with } else { word });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn action(a: &types::MachineAction) -> String {
    let text = |v: Option<String>| v.unwrap_or_default();
    format!(
        "action {} {}",
        text(a.id.clone()),
        text(a.status.as_ref().map(ToString::to_string))
    )
}

/// The columns of `mde action show`.
pub const ACTION_HEADER: &str = "ACTION                                MACHINE                                   TYPE                         STATUS      CREATED                       UPDATED";

/// One action of `mde action show`.
pub fn action_row(id: &str, a: &types::MachineAction) -> String {
    let text = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let updated = a
        .last_update_date_time_utc
        .as_ref()
        .or(a.last_update_time_utc.as_ref());
    format!(
        "{:<36}  {:<40}  {:<27}  {:<10}  {:<28}  {}",
        shorten(id, 36),
        text(a.machine_id.clone()),
        text(a.type_.as_ref().map(ToString::to_string)),
        text(a.status.as_ref().map(ToString::to_string)),
        text(a.creation_date_time_utc.as_ref().map(ToString::to_string)),
        text(updated.map(ToString::to_string)),
    )
}

/// The answer in a few words. The one place that decides how each operation's answer reads.
pub fn answer(answer: &Answer) -> String {
    // By the body's type: a new operation answering a known type reads like the others.
    match answer.body() {
        AnswerBody::MachineAction(a) => action(a),
        AnswerBody::Investigation(i) => format!(
            "investigation {} {}",
            i.id.as_deref().unwrap_or_default(),
            i.state
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        AnswerBody::ODataInt64(id) => format!("investigation {}", id.value),
        AnswerBody::Machine(m) => format!(
            "machine {} tags {}",
            m.computer_dns_name.as_deref().unwrap_or_default(),
            m.machine_tags.as_deref().unwrap_or_default().join(", ")
        ),
        AnswerBody::MachineActionCollection(page) => format!("{} actions", page.value.len()),
        AnswerBody::MachineCollection(page) => format!("{} machines", page.value.len()),
        // A link carries its own token: never shown.
        AnswerBody::ODataString(_) => "link (not shown: it carries a token)".into(),
        AnswerBody::LibraryFileCollection(library) => {
            format!("{} library files", library.value.len())
        }
        AnswerBody::LibraryFile(file) => format!(
            "library file {} sha256 {}",
            file.file_name.as_deref().unwrap_or_default(),
            file.sha256.as_deref().unwrap_or_default()
        ),
        AnswerBody::HuntingQueryResults(table) => format!("{} rows", table.results.len()),
        AnswerBody::AdvancedQueryResponse(table) => format!("{} rows", table.results.len()),
        AnswerBody::Empty => "done".into(),
    }
}

/// One line of detail for a machine: the action or investigation, or what went wrong.
fn detail(outcome: &Outcome) -> String {
    // What went wrong first: an action already pending is an error with its action.
    let text = match (&outcome.error, &outcome.result) {
        (Some(error), _) => error.message.clone(),
        (None, Some(result)) => answer(result),
        (None, None) => String::new(),
    };
    // Never cut: the cause and the correlation id are what a person acts on.
    let mut text = escape(&text);
    if outcome.earlier {
        text.push_str(" (earlier run)");
    }
    text
}

/// A column present only when some row has a value (a NAME when some machine was given by
/// name, a TENANT in a run of several profiles).
struct NameColumn(Option<usize>);

impl NameColumn {
    fn of<'a>(header: &str, names: impl Iterator<Item = Option<&'a str>>) -> Self {
        let widths: Vec<usize> = names.flatten().map(|n| n.chars().count()).collect();
        NameColumn(widths.iter().max().map(|w| (*w).max(header.len())))
    }

    /// The cell for `name` ("-" for a machine given by id), with its gap.
    fn cell(&self, name: Option<&str>) -> String {
        match self.0 {
            Some(width) => format!("{:<width$}  ", escape(name.unwrap_or("-"))),
            None => String::new(),
        }
    }
}

/// The outcomes as a table; a TENANT column in a run of several profiles, a NAME column when
/// some machines were given by name.
pub fn table(report: &FleetReport, out: &mut impl Write) -> std::io::Result<()> {
    let width = report
        .outcomes
        .iter()
        .map(|o| o.machine.chars().count())
        .max()
        .unwrap_or(0)
        .max("MACHINE".len());
    let name = NameColumn::of("NAME", report.outcomes.iter().map(|o| o.name.as_deref()));
    let tenant = NameColumn::of(
        "TENANT",
        report.outcomes.iter().map(|o| o.tenant.as_deref()),
    );
    writeln!(
        out,
        "{}{:<width$}  {}{:<15}  DETAIL",
        tenant.cell(Some("TENANT")),
        "MACHINE",
        name.cell(Some("NAME")),
        "OUTCOME"
    )?;
    for outcome in &report.outcomes {
        writeln!(
            out,
            "{}{:<width$}  {}{:<15}  {}",
            tenant.cell(outcome.tenant.as_deref()),
            escape(&outcome.machine),
            name.cell(outcome.name.as_deref()),
            outcome.kind.as_str(),
            detail(outcome)
        )?;
    }
    for machine in &report.not_sent {
        writeln!(
            out,
            "{}{:<width$}  {}{:<15}  ",
            tenant.cell(None),
            escape(machine),
            name.cell(None),
            "not_sent"
        )?;
    }
    Ok(())
}

/// Counts by outcome, for the summary.
pub fn summary(report: &FleetReport) -> String {
    let count = |kind: Kind| report.outcomes.iter().filter(|o| o.kind == kind).count();
    // Followed actions' ends first, when any was followed to one.
    let mut text = String::new();
    for (kind, what) in [
        (Kind::Succeeded, "succeeded"),
        (Kind::StillRunning, "still running"),
    ] {
        if count(kind) > 0 {
            text.push_str(&format!("{what} {}, ", count(kind)));
        }
    }
    text.push_str(&format!(
        "accepted {}, already running {}, not found {}, failed {}",
        count(Kind::Accepted),
        count(Kind::AlreadyRunning),
        count(Kind::NotFound),
        count(Kind::Failed)
    ));
    for (n, what) in [
        (count(Kind::Cancelled), "cancelled"),
        (count(Kind::CancelledPending), "cancelled pending"),
        (count(Kind::AlreadyInEffect), "already in effect"),
        (count(Kind::TimedOut), "timed out"),
        (count(Kind::Ambiguous), "ambiguous"),
        (count(Kind::Conflict), "conflict"),
        (count(Kind::Unknown), "unknown"),
        (report.not_sent.len() + count(Kind::NotSent), "not sent"),
    ] {
        if n > 0 {
            text.push_str(&format!(", {what} {n}"));
        }
    }
    text
}

/// A short line for a machine as it ends (progress without a terminal).
pub fn line(outcome: &Outcome) -> String {
    format!(
        "{}{}{} {} {}",
        of_tenant(outcome.tenant.as_deref()),
        escape(&outcome.machine),
        in_brackets(outcome.name.as_deref()),
        outcome.kind.as_str(),
        detail(outcome)
    )
}

/// `tenant: ` before what is said of a tenant's part or machine, in a run of several profiles.
pub(crate) fn of_tenant(tenant: Option<&str>) -> String {
    tenant
        .map(|t| format!("{}: ", escape(t)))
        .unwrap_or_default()
}

/// ` (name)`, or nothing for a machine given by id.
fn in_brackets(name: Option<&str>) -> String {
    name.map(|n| format!(" ({})", escape(n)))
        .unwrap_or_default()
}

/// The tail of a fleet run's progress bar: the rate so far (one decimal), the time left at
/// the documented limits, and the wait under way, counted down.
pub fn pace(
    done: u64,
    elapsed: std::time::Duration,
    left: std::time::Duration,
    waiting: Option<(std::time::Duration, &str)>,
) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let mut text = format!("{rate:.1}/s · ~{} left", duration(left));
    if let Some((wait, why)) = waiting {
        text.push_str(&format!(" · waiting {} for {why}", duration(wait)));
    }
    text
}

/// How many machines are at each stage, for the progress bar.
pub fn stages(board: &Board) -> String {
    Stage::ALL
        .iter()
        .map(|stage| format!("{} {}", board.evidence.label(*stage), board.count(*stage)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A machine's package as it ended (progress without a terminal).
pub fn package_line(p: &pipeline::Package) -> String {
    format!(
        "{}{}{} {} {}{}",
        of_tenant(p.tenant.as_deref()),
        escape(&p.machine),
        in_brackets(p.name.as_deref()),
        p.evidence.label(p.stage),
        escape(p.detail.as_deref().unwrap_or_default()),
        if p.earlier { " (earlier run)" } else { "" }
    )
}

/// The packages as a table; a TENANT column in a run of several profiles (its machines not
/// sent to given as `PROFILE,MACHINE`).
pub fn packages_table(
    report: &pipeline::EvidenceReport,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let not_sent: Vec<(Option<&str>, &str)> = report
        .not_sent
        .iter()
        .map(|m| crate::vocabulary::qualified(m))
        .collect();
    let width = report
        .packages
        .iter()
        .map(|p| p.machine.chars().count())
        .chain(not_sent.iter().map(|(_, m)| m.chars().count()))
        .max()
        .unwrap_or(0)
        .max("MACHINE".len());
    let name = NameColumn::of("NAME", report.packages.iter().map(|p| p.name.as_deref()));
    let tenants = report.packages.iter().map(|p| p.tenant.as_deref());
    let tenant = NameColumn::of("TENANT", tenants.chain(not_sent.iter().map(|(t, _)| *t)));
    writeln!(
        out,
        "{}{:<width$}  {}{:<36}  {:<11}  DETAIL",
        tenant.cell(Some("TENANT")),
        "MACHINE",
        name.cell(Some("NAME")),
        "ACTION",
        "STAGE"
    )?;
    for p in &report.packages {
        writeln!(
            out,
            "{}{:<width$}  {}{:<36}  {:<11}  {}{}",
            tenant.cell(p.tenant.as_deref()),
            escape(&p.machine),
            name.cell(p.name.as_deref()),
            p.action.as_deref().unwrap_or("-"),
            p.evidence.label(p.stage),
            escape(p.detail.as_deref().unwrap_or_default()),
            if p.earlier { " (earlier run)" } else { "" }
        )?;
    }
    for (profile, machine) in not_sent {
        writeln!(
            out,
            "{}{:<width$}  {}{:<36}  not_sent",
            tenant.cell(profile),
            escape(machine),
            name.cell(None),
            "-"
        )?;
    }
    Ok(())
}

/// Each live response session's commands, after the machines' table: status, a script's
/// exit code and the first line of its output, the file saved. Nothing for packages.
pub fn commands_table(
    report: &pipeline::EvidenceReport,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let rows: Vec<(&str, &pipeline::CommandResult)> = report
        .packages
        .iter()
        .flat_map(|p| p.results.iter().map(move |r| (p.machine.as_str(), r)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(m, _)| m.chars().count())
        .max()
        .unwrap_or(0)
        .max("MACHINE".len());
    writeln!(
        out,
        "\n{:<width$}  {:>3}  {:<40}  {:<9}  {:>4}  RESULT",
        "MACHINE", "#", "COMMAND", "STATUS", "EXIT"
    )?;
    for (machine, r) in rows {
        let result = match (&r.record, &r.errors) {
            (Some(record), _) => match &r.output {
                Some(line) => format!("{} \"{}\"", record.file, shorten(line, 60)),
                None => format!("{} {} bytes", record.file, record.size),
            },
            (None, Some(errors)) => errors.clone(),
            (None, None) => "-".into(),
        };
        writeln!(
            out,
            "{:<width$}  {:>3}  {:<40}  {:<9}  {:>4}  {}",
            escape(machine),
            r.index,
            escape(&shorten(&r.command, 40)),
            r.status,
            r.exit_code.map_or("-".to_string(), |c| c.to_string()),
            escape(&result)
        )?;
    }
    Ok(())
}

/// Counts by final stage, for the summary.
pub fn packages_summary(report: &pipeline::EvidenceReport) -> String {
    let count = |stage: Stage| report.packages.iter().filter(|p| p.stage == stage).count();
    let mut text = format!(
        "saved {}, failed {}",
        count(Stage::Saved),
        count(Stage::Failed)
    );
    let unfinished = report
        .packages
        .iter()
        .filter(|p| !matches!(p.stage, Stage::Saved | Stage::Failed))
        .count();
    for (n, what) in [
        (unfinished, "unfinished"),
        (report.not_sent.len(), "not sent"),
    ] {
        if n > 0 {
            text.push_str(&format!(", {what} {n}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::error_text;
    use std::time::Duration;

    #[test]
    fn the_pace_has_one_decimal_the_time_left_and_the_wait_counted_down() {
        let secs = Duration::from_secs;
        // 36 machines in 0.29977 s read 120.0885/s on the old bar.
        let shown = pace(
            36,
            Duration::from_secs_f64(0.29977),
            secs(65),
            Some((secs(42), "the documented rate limit")),
        );
        assert_eq!(
            shown,
            "120.1/s · ~1m 5s left · waiting 42s for the documented rate limit"
        );
        assert_eq!(pace(0, Duration::ZERO, secs(0), None), "0.0/s · ~0s left");
    }

    #[test]
    fn a_machine_is_named_in_its_error_only_where_it_stands_alone() {
        let block = error_block(
            [
                (
                    "ws-0001",
                    "no machine ws-0001 (ws-0001.contoso.com is another)",
                ),
                ("ab12", "machine ab12 not found"),
            ]
            .into_iter(),
        );
        assert_eq!(
            block,
            [
                "  1 machine(s): no machine {machine} (ws-0001.contoso.com is another)",
                "  1 machine(s): machine {machine} not found"
            ]
        );
    }

    #[test]
    fn errors_read_cause_first_whole_and_escaped() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let e = mde_client::Error::Io {
            path: "/evidence/p.zip.part".into(),
            source: io,
        };
        assert_eq!(
            error_text(&e),
            "No space left on device — /evidence/p.zip.part"
        );
        assert_eq!(escape("a\u{1b}]0;t\u{7}b"), r"a\u{1b}]0;t\u{7}b");
        let block = error_block(
            [
                ("m1", "404 on m1 (correlation id c1)"),
                ("m2", "404 on m2 (correlation id c1)"),
                ("m3", "timeout"),
            ]
            .into_iter(),
        );
        assert_eq!(
            block,
            [
                "  2 machine(s): 404 on {machine} (correlation id c1)",
                "  1 machine(s): timeout"
            ]
        );
    }
}
