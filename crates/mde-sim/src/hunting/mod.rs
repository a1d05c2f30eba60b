//! Advanced hunting: a subset of KQL over tables made up from the inventory, as
//! runHuntingQuery (Graph) and runAdvancedQuery (the Defender API) answer it.
//!
//! The subset is what response queries use: a table, then `where` (`==`, `!=`, `=~`, `!~`,
//! `<`, `<=`, `>`, `>=`, `has`, `contains`, `startswith` and their `!` forms, `in`,
//! `between`, `and`, `or`, `not()`, with `ago()`, `now()` and `datetime()`), `project`,
//! `distinct`, `summarize count() [by …]`, `take`/`limit`, `order by`/`sort by` and `top`.
//! Anything else is the 400 of a query the service cannot run. The parser is written here
//! rather than taken from `kqlparser` (0.0.4, pre-release, undocumented, on nom 7, and by its
//! own account unable to parse some queries): the subset is a dozen rules, and its refusals
//! must be exactly the subset's.

mod eval;
mod lexer;
mod parser;
mod tables;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

pub use eval::Answer;
pub use tables::{Cell, DAYS, Kind, PAYLOAD, Source};

/// The most rows an answer holds: the client's figure, from the same pages.
pub use mde_client::hunting::ROW_CAP;

/// Why a query cannot run: the message of the service's 400.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryError(pub String);

impl QueryError {
    /// A query that does not parse, at byte `offset` (the simulator's words: the documents
    /// quote no syntax error).
    fn syntax(offset: usize, what: impl std::fmt::Display) -> QueryError {
        QueryError(format!(
            "Query could not be parsed at position {offset}: {what}"
        ))
    }

    /// A query that parses but names what is not there, or compares what cannot be compared
    /// (Kusto's own words).
    fn semantic(what: impl Into<String>) -> QueryError {
        QueryError(what.into())
    }
}

/// Runs `query` over `source` in `window` (`[from, to)`, clipped to the 30 days the tables
/// hold and to `now`).
pub fn hunt(
    query: &str,
    source: &Source,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<Answer, QueryError> {
    if query.trim().is_empty() {
        return Err(QueryError("Query must not be empty".into()));
    }
    let parsed = parser::parse(query)?;
    let from = window.0.max(now - Duration::days(DAYS));
    let to = window.1.min(now);
    eval::run(&parsed, source, (from, to), now)
}

/// The window a `Timespan` names (runHuntingQuery's five ISO 8601 forms), `[from, to)`;
/// without one, the 30 days back from `now`.
pub fn window(
    timespan: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let Some(text) = timespan else {
        return Ok((now - Duration::days(DAYS), now));
    };
    let bad = || format!("Timespan {text:?} is not an ISO 8601 time, duration or interval");
    let time = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()).ok();
    let span = |t: &str| duration(t);
    match text.split_once('/') {
        Some((a, b)) => match (time(a), time(b), span(a), span(b)) {
            (Some(from), Some(to), _, _) => Ok((from, to)),
            (_, Some(to), Some(d), _) => Ok((to - d, to)),
            (Some(from), _, _, Some(d)) => Ok((from, from + d)),
            _ => Err(bad()),
        },
        None => match (time(text), span(text)) {
            (Some(from), _) => Ok((from, now)),
            (_, Some(d)) => Ok((now - d, now)),
            _ => Err(bad()),
        },
    }
    .and_then(|(from, to)| match from <= to {
        true => Ok((from, to)),
        false => Err(format!("Timespan {text:?} ends before it starts")),
    })
}

/// An ISO 8601 duration: `P[nY][nM][nW][nD][T[nH][nM][nS]]`, a year 365 days and a month 30
/// (a fixed length: the simulator's choice).
fn duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0f64;
    let mut any = false;
    for (part, units) in [
        (
            date,
            &[
                ('Y', 31_536_000.0),
                ('M', 2_592_000.0),
                ('W', 604_800.0),
                ('D', 86_400.0),
            ][..],
        ),
        (time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut number = String::new();
        let mut last = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let at = units
                .iter()
                .position(|(u, _)| *u == c)
                .filter(|&i| i >= last)?;
            total += number.parse::<f64>().ok()? * units[at].1;
            (number, last, any) = (String::new(), at + 1, true);
        }
        if !number.is_empty() {
            return None;
        }
    }
    (any && rest.contains('T') != time.is_empty())
        .then(|| Duration::milliseconds((total * 1000.0) as i64))
}

impl Answer {
    /// The answer as Graph writes it (`schema` of `name`/`type`, `results`) or as the
    /// Defender API does (`Schema` of `Name`/`Type`, `Results`).
    pub fn json(&self, graph: bool, context: &str) -> Value {
        let (name, kind) = if graph {
            ("name", "type")
        } else {
            ("Name", "Type")
        };
        let schema: Vec<Value> = (self.columns.iter())
            .map(|(n, k)| json!({ name: n, kind: k.as_str() }))
            .collect();
        let results: Vec<Value> = (self.rows.iter())
            .map(|row| {
                let cells = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|((n, _), c)| (n.clone(), cell(c)));
                Value::Object(cells.collect::<Map<_, _>>())
            })
            .collect();
        match graph {
            true => json!({ "@odata.context": context, "schema": schema, "results": results }),
            false => json!({ "Schema": schema, "Results": results }),
        }
    }
}

/// A value as JSON: a time with seven fractional digits, as the documents' examples write it.
fn cell(cell: &Cell) -> Value {
    match cell {
        Cell::Text(t) => Value::String(t.to_string()),
        Cell::Int(n) => json!(n),
        Cell::Real(r) => json!(r),
        Cell::Bool(b) => json!(b),
        Cell::Time(t) => Value::String(mde_client::Timestamp::from(*t).as_str().to_string()),
        Cell::Json(v) => (**v).clone(),
    }
}

#[cfg(test)]
mod tests;
