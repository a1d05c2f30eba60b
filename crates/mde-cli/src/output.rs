//! What a run shows: a table or JSON lines on stdout, the summary on stderr.

use std::io::Write;

use crate::fleet::{Kind, Outcome, Report};

/// One line of detail for a machine: the action or investigation, or what went wrong.
fn detail(outcome: &Outcome) -> String {
    let text = match (&outcome.result, &outcome.error) {
        (Some(result), _) => {
            let field = |name: &str| {
                result.get(name).map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
            };
            match (field("type"), field("state"), field("value")) {
                (Some(_), _, _) => format!(
                    "action {} {}",
                    field("id").unwrap_or_default(),
                    field("status").unwrap_or_default()
                ),
                (_, Some(state), _) => {
                    format!("investigation {} {state}", field("id").unwrap_or_default())
                }
                (_, _, Some(id)) => format!("investigation {id}"),
                _ => result.to_string(),
            }
        }
        (None, Some(error)) => error.clone(),
        (None, None) => String::new(),
    };
    let mut text: String = text.chars().take(100).collect();
    if outcome.earlier {
        text.push_str(" (earlier run)");
    }
    text
}

/// The outcomes as a table.
pub fn table(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let width = report
        .outcomes
        .iter()
        .map(|o| o.machine.chars().count())
        .max()
        .unwrap_or(0)
        .max("MACHINE".len());
    writeln!(out, "{:<width$}  {:<15}  DETAIL", "MACHINE", "OUTCOME")?;
    for outcome in &report.outcomes {
        writeln!(
            out,
            "{:<width$}  {:<15}  {}",
            outcome.machine,
            outcome.outcome.as_str(),
            detail(outcome)
        )?;
    }
    for machine in &report.not_sent {
        writeln!(out, "{machine:<width$}  {:<15}  ", "not_sent")?;
    }
    Ok(())
}

/// One JSON object a machine, a line each.
pub fn json_lines(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    for outcome in &report.outcomes {
        writeln!(
            out,
            "{}",
            serde_json::to_string(outcome).map_err(std::io::Error::other)?
        )?;
    }
    for machine in &report.not_sent {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "machine": machine, "outcome": "not_sent", "earlier": false })
        )?;
    }
    Ok(())
}

/// Counts by outcome, for the summary.
pub fn summary(report: &Report) -> String {
    let count = |kind: Kind| report.outcomes.iter().filter(|o| o.outcome == kind).count();
    let mut text = format!(
        "succeeded {}, already running {}, not found {}, failed {}",
        count(Kind::Succeeded),
        count(Kind::AlreadyRunning),
        count(Kind::NotFound),
        count(Kind::Failed)
    );
    for (n, what) in [
        (count(Kind::Unknown), "unknown"),
        (report.not_sent.len(), "not sent"),
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
        "{} {} {}",
        outcome.machine,
        outcome.outcome.as_str(),
        detail(outcome)
    )
}
