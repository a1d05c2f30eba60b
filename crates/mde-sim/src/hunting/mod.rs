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
/// The window a `Timespan` names, read as the client reads it.
pub use mde_client::hunting::window;

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
