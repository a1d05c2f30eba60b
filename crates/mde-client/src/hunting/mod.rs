//! Advanced hunting: a query's whole answer as a typed table, past the row cap.
//!
//! [`Client::hunt`] runs a KQL query on Microsoft Graph (`runHuntingQuery`) or on the
//! retiring Defender API (`runAdvancedQuery`). An answer holds at most [`ROW_CAP`] rows, and a
//! large one may be refused for its size or preempted (a 400 each). On Graph, whose request
//! takes a time window, such a query is run again over each half of its window, recursively
//! down to [`Hunt::smallest`], and the parts are joined: the windows are half-open
//! (`[start, end)`), so no row is in two of them and none is in neither. The Defender API has no
//! window: its capped answer is an error naming the cap.

mod timespan;

use std::cell::RefCell;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::client::Client;
use crate::error::Error;
use crate::generated::{operations, types};
use crate::hooks::{ROWS, WAITED};
use crate::timestamp::Timestamp;

pub use crate::rows::Row;
pub use timespan::window;

/// The most rows one answer holds (run-advanced-query-api.md, security-api-overview.md).
pub const ROW_CAP: usize = 100_000;

/// The data the service keeps: a query's window reaches no further back (security-api-overview.md).
pub const RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// How many times a query answered 500 or 504 (or not at all) is sent again, with backoff.
pub const TRANSIENT_RETRIES: u32 = 3;

/// Which API runs the query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// Microsoft Graph's `runHuntingQuery`: a window, split past the caps.
    #[default]
    Graph,
    /// The Defender API's `runAdvancedQuery` (retiring, MC1220762): no window.
    Defender,
}

/// A query to run.
#[derive(Clone, Debug)]
pub struct Hunt {
    /// The KQL query.
    pub query: String,
    /// Its window, `[start, end)`; the 30 days back from now when `None`.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Which API runs it.
    pub family: Family,
    /// The shortest window a capped answer is split into before giving up.
    pub smallest: Duration,
}

impl Hunt {
    /// `query` on Graph over the last 30 days, split down to windows of a minute.
    pub fn new(query: impl Into<String>) -> Hunt {
        Hunt {
            query: query.into(),
            window: None,
            family: Family::Graph,
            smallest: Duration::from_secs(60),
        }
    }
}

/// A column's type, as an answer's schema names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `DateTime`: read as a [`Timestamp`].
    DateTime,
    /// `String`.
    String,
    /// `Int32`, `Int64`, `Long`: read as an `i64`.
    Integer,
    /// `Double`, `Real`: read as an `f64`.
    Real,
    /// `Boolean`.
    Boolean,
    /// `Object`, `Dynamic`, and any type this client does not know: kept as JSON.
    Json(String),
}

impl ColumnType {
    fn of(name: &str) -> ColumnType {
        match name.to_ascii_lowercase().as_str() {
            "datetime" => ColumnType::DateTime,
            "string" => ColumnType::String,
            "int32" | "int64" | "int" | "long" => ColumnType::Integer,
            "double" | "real" | "decimal" => ColumnType::Real,
            "boolean" | "bool" => ColumnType::Boolean,
            _ => ColumnType::Json(name.to_string()),
        }
    }
}

/// One value of a row, typed by its column.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// A `DateTime`, its text as the service wrote it.
    Time(Timestamp),
    /// A `String`.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A real number.
    Real(f64),
    /// A `Boolean`.
    Boolean(bool),
    /// Anything else (and a value its column's type did not describe), as it came.
    Json(Value),
}

impl Cell {
    fn read(value: Value, kind: &ColumnType) -> Cell {
        match (kind, value) {
            (_, Value::Null) => Cell::Null,
            (ColumnType::DateTime, Value::String(t)) => match Timestamp::parse(&t) {
                Ok(time) => Cell::Time(time),
                Err(_) => Cell::Json(Value::String(t)),
            },
            (ColumnType::String, Value::String(t)) => Cell::Text(t),
            (ColumnType::Integer, Value::Number(n)) if n.is_i64() => {
                Cell::Integer(n.as_i64().unwrap_or_default())
            }
            (ColumnType::Real, Value::Number(n)) => Cell::Real(n.as_f64().unwrap_or_default()),
            (ColumnType::Boolean, Value::Bool(b)) => Cell::Boolean(b),
            (_, other) => Cell::Json(other),
        }
    }
}

/// What a hunt cost: calls made, rows answered, windows split, and waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Queries sent.
    pub calls: u32,
    /// Rows of every answer kept.
    pub rows: u64,
    /// Windows split in halves because an answer reached a cap.
    pub splits: u32,
    /// Times a query waited (for the limits, a 429, or a retry's backoff).
    pub waits: u32,
    /// How long they waited, in the client's clock.
    pub waited: Duration,
}

/// A column's name and type.
pub type Column = (String, ColumnType);

/// A query's answer: its columns (name and type) and its rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Each column's name and type, in the answer's order.
    pub columns: Vec<Column>,
    /// The rows, a cell a column.
    pub rows: Vec<Vec<Cell>>,
    /// What it cost.
    pub cost: Cost,
}

/// One answer: its columns and rows, as the service wrote them.
struct Page {
    columns: Vec<(String, String)>,
    rows: Vec<Row>,
}

/// Rows typed and handed over at a time: an answer's cells never all exist at once.
const CHUNK: usize = 2_000;

/// Whether an error is a cap the query can be split past: the result-size 400 or the
/// preemption 400 (their messages are all that tells them from a bad query).
fn capped(error: &Error) -> bool {
    match error {
        Error::InvalidRequest(e) => {
            e.message.contains("exceeded the allowed result size")
                || e.message.contains("preempted")
        }
        _ => false,
    }
}

/// Whether joining answers of parts of the window answers the whole: not for a query that
/// aggregates, sorts or cuts (its answer over the whole is not the parts' answers joined).
fn splittable(query: &str) -> bool {
    let words = [
        "summarize",
        "count",
        "distinct",
        "top",
        "take",
        "limit",
        "sample",
        "join",
        "union",
        "make-series",
    ];
    query.split('|').skip(1).all(|step| {
        let first = step.split_whitespace().next().unwrap_or_default();
        !words.contains(&first)
    })
}

/// A window's `Timespan`, `START/END` with 7 fractional digits.
fn timespan((from, to): (DateTime<Utc>, DateTime<Utc>)) -> String {
    format!(
        "{}/{}",
        Timestamp::from(from).as_str(),
        Timestamp::from(to).as_str()
    )
}

impl Client {
    /// Runs `hunt` and answers its whole table: on Graph, a window whose answer reaches a
    /// cap is split in halves and each run again (see the [module](crate::hunting) docs).
    /// An empty query is refused before anything is sent.
    pub async fn hunt(&self, hunt: &Hunt) -> Result<Table, Error> {
        let mut rows = Vec::new();
        let (columns, cost) = self
            .hunt_each(hunt, |_, mut page, _| {
                rows.append(&mut page);
                Ok(())
            })
            .await?;
        Ok(Table {
            columns,
            rows,
            cost,
        })
    }

    /// Runs `hunt` as [`Client::hunt`] does, handing each answer's rows to `each` as it
    /// arrives (earliest window first), with the columns of the first answer and the cost so
    /// far; a hunt holds one answer at a time. An error of `each` ends the hunt. Answers the columns and the
    /// cost.
    pub async fn hunt_each(
        &self,
        hunt: &Hunt,
        mut each: impl FnMut(&[Column], Vec<Vec<Cell>>, &Cost) -> Result<(), Error> + Send,
    ) -> Result<(Vec<Column>, Cost), Error> {
        if hunt.query.trim().is_empty() {
            return Err(Error::InvalidInput("the query is empty".into()));
        }
        let waited = std::cell::Cell::new((0, Duration::ZERO));
        let work = async {
            let mut run = Run::default();
            self.hunt_windows(hunt, &mut run, &mut each).await?;
            Ok((run.columns, run.cost))
        };
        let (result, (waits, waited)) = WAITED
            .scope(waited, async {
                let result = work.await;
                (result, WAITED.with(std::cell::Cell::get))
            })
            .await;
        result.map(|(columns, cost)| {
            (
                columns,
                Cost {
                    waits,
                    waited,
                    ..cost
                },
            )
        })
    }

    async fn hunt_windows(
        &self,
        hunt: &Hunt,
        run: &mut Run,
        each: &mut (impl FnMut(&[Column], Vec<Vec<Cell>>, &Cost) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        if hunt.family == Family::Defender {
            let page = self.run_advanced(&hunt.query).await?;
            run.cost.calls = 1;
            if page.rows.len() >= ROW_CAP {
                return Err(capped_error(&hunt.query, None));
            }
            return run.add(page, each);
        }
        let now = self.clock().now_utc();
        let mut windows = vec![hunt.window.unwrap_or((now - RETENTION, now))];
        // Earliest window first: a split pushes the later half, then the earlier one.
        while let Some(window) = windows.pop() {
            run.cost.calls += 1;
            let answer = self.run_graph(&hunt.query, window).await;
            let over = match &answer {
                Ok(page) => page.rows.len() >= ROW_CAP,
                Err(e) => capped(e),
            };
            if !over {
                run.add(answer?, each)?;
                continue;
            }
            let half = (window.1 - window.0) / 2;
            let smallest =
                chrono::TimeDelta::from_std(hunt.smallest).unwrap_or(chrono::TimeDelta::MAX);
            if !splittable(&hunt.query) || half < smallest {
                return Err(capped_error(&hunt.query, Some(window)));
            }
            run.cost.splits += 1;
            let middle = window.0 + half;
            windows.push((middle, window.1));
            windows.push((window.0, middle));
        }
        Ok(())
    }

    /// A query's answer, and its rows read as they arrived (see `hooks::ROWS`; the answer's
    /// own rows are empty). A query reads and changes nothing: a 500 or 504 is sent again.
    async fn query<R: crate::operations::Request>(
        &self,
        request: R,
    ) -> Result<(R::Response, Vec<Row>), Error> {
        let call = self.send(request).retry_transient(TRANSIENT_RETRIES);
        ROWS.scope(RefCell::new(Vec::new()), async {
            let answer = call.await?;
            Ok((
                answer,
                ROWS.with(|rows| std::mem::take(&mut *rows.borrow_mut())),
            ))
        })
        .await
    }

    async fn run_graph(
        &self,
        query: &str,
        window: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Page, Error> {
        let body = types::HuntingQueryRequest {
            query: query
                .try_into()
                .map_err(|e| Error::InvalidInput(format!("{e}")))?,
            timespan: Some(
                timespan(window)
                    .try_into()
                    .map_err(|e| Error::InvalidInput(format!("{e}")))?,
            ),
        };
        let (answer, rows) = self.query(operations::RunHuntingQuery { body }).await?;
        let columns = answer
            .schema
            .into_iter()
            .map(|c| match c {
                types::SinglePropertySchema::LowerCase(c) => (c.name, c.type_),
                types::SinglePropertySchema::Capitalised(c) => (c.name, c.type_),
            })
            .collect();
        Ok(Page { columns, rows })
    }

    #[allow(deprecated)] // the retiring API, on request
    async fn run_advanced(&self, query: &str) -> Result<Page, Error> {
        let body = types::AdvancedQueryRequest {
            query: query
                .try_into()
                .map_err(|e| Error::InvalidInput(format!("{e}")))?,
        };
        let (answer, rows) = self.query(operations::RunAdvancedQuery { body }).await?;
        let columns = answer
            .schema
            .into_iter()
            .map(|c| (c.name, c.type_))
            .collect();
        Ok(Page { columns, rows })
    }
}

/// The error of an answer at a cap that cannot be split further.
fn capped_error(query: &str, window: Option<(DateTime<Utc>, DateTime<Utc>)>) -> Error {
    let why = match (window, splittable(query)) {
        (None, _) => "the Defender API takes no time window to split it by; use Graph".to_string(),
        (Some(_), false) => {
            "the query aggregates, sorts or cuts its rows, so its parts cannot be joined; narrow it"
                .to_string()
        }
        (Some(w), true) => format!("even over the smallest window, {}", timespan(w)),
    };
    Error::InvalidInput(format!(
        "the answer reached the service's cap ({ROW_CAP} rows, or its result size): {why}"
    ))
}

/// A hunt under way: the columns of its first answer, and its cost so far.
#[derive(Default)]
struct Run {
    columns: Vec<Column>,
    cost: Cost,
}

impl Run {
    /// Hands an answer's rows, typed by their columns, to `each`; the first answer gives the
    /// columns.
    fn add(
        &mut self,
        page: Page,
        each: &mut impl FnMut(&[Column], Vec<Vec<Cell>>, &Cost) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.columns.is_empty() {
            self.columns = page
                .columns
                .iter()
                .map(|(n, t)| (n.clone(), ColumnType::of(t)))
                .collect();
        }
        self.cost.rows += page.rows.len() as u64;
        let mut rows = page.rows.into_iter();
        loop {
            let chunk = rows.by_ref().take(CHUNK).map(|r| self.cells(r)).collect();
            let last = rows.len() == 0;
            // An empty answer is handed over too: it says the columns.
            each(&self.columns, chunk, &self.cost)?;
            if last {
                return Ok(());
            }
        }
    }

    /// A row's cells, a column each, typed by the column.
    fn cells(&self, row: Row) -> Vec<Cell> {
        let mut members = row.members();
        drop(row);
        (self.columns.iter())
            .map(|(name, kind)| Cell::read(members.remove(name).unwrap_or(Value::Null), kind))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_documented_type_reads_as_its_rust_type() {
        let time = "2024-03-26T09:39:50.7688641Z";
        let cases = [
            (
                "DateTime",
                Value::from(time),
                Cell::Time(Timestamp::parse(time).unwrap()),
            ),
            (
                "String",
                Value::from("cmd.exe"),
                Cell::Text("cmd.exe".into()),
            ),
            ("Int32", Value::from(443), Cell::Integer(443)),
            ("Int64", Value::from(1_i64 << 40), Cell::Integer(1 << 40)),
            ("Double", Value::from(2.5), Cell::Real(2.5)),
            ("Boolean", Value::from(true), Cell::Boolean(true)),
            (
                "Dynamic",
                serde_json::json!([1]),
                Cell::Json(serde_json::json!([1])),
            ),
            ("String", Value::Null, Cell::Null),
            ("Int32", Value::from("x"), Cell::Json(Value::from("x"))),
        ];
        for (kind, value, cell) in cases {
            assert_eq!(Cell::read(value, &ColumnType::of(kind)), cell, "{kind}");
        }
        assert_eq!(ColumnType::of("Guid"), ColumnType::Json("Guid".into()));
    }

    #[test]
    fn only_a_query_of_rows_is_split() {
        assert!(splittable(
            "DeviceProcessEvents | where FileName == 'x' | project DeviceId"
        ));
        assert!(!splittable(
            "DeviceProcessEvents | summarize count() by DeviceId"
        ));
        assert!(!splittable("DeviceProcessEvents |take 5"));
        assert!(!splittable("DeviceInfo | distinct DeviceId"));
        assert_eq!(
            timespan((
                DateTime::UNIX_EPOCH,
                DateTime::UNIX_EPOCH + chrono::TimeDelta::milliseconds(1500)
            )),
            "1970-01-01T00:00:00.0000000Z/1970-01-01T00:00:01.5000000Z"
        );
    }
}
