//! Running a parsed query over the tables: `where`, `project` and `take` as the rows come,
//! the others over the rows so far.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::parser::{Expr, Literal, Operator, Query};
use super::tables::{Cell, Kind, Source};
use super::{QueryError, ROW_CAP};

/// A column of an answer.
pub type Column = (String, Kind);

/// What a query answered: its columns, its rows (at most [`ROW_CAP`]), whether rows past
/// the cap were dropped, and the rows of the table it read (the query's CPU cost).
#[derive(Debug)]
pub struct Answer {
    /// Each column's name and type.
    pub columns: Vec<Column>,
    /// The rows, each a value a column.
    pub rows: Vec<Vec<Cell>>,
    /// Rows past the cap were dropped.
    pub truncated: bool,
    /// The rows of the table read.
    pub scanned: u64,
}

/// Runs `query` over `source`, the rows of `[from, to]`, `now` the time `ago()` counts from.
pub fn run(
    query: &Query,
    source: &Source,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<Answer, QueryError> {
    let (table, columns) = super::tables::TABLES
        .iter()
        .find(|(name, _)| *name == query.table)
        .ok_or_else(|| {
            QueryError::semantic(format!(
                "Failed to resolve table or column expression named '{}'",
                query.table
            ))
        })?;
    let mut columns: Vec<Column> = columns.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    // The operators that read rows one at a time run as the table is read.
    let streaming = query
        .operators
        .iter()
        .take_while(|op| {
            matches!(
                op,
                Operator::Where(_) | Operator::Project(_) | Operator::Take(_)
            )
        })
        .count();
    let mut stages = Vec::new();
    for op in &query.operators[..streaming] {
        let (stage, next) = Stage::of(op, &columns, now)?;
        stages.push(stage);
        columns = next;
    }
    let blocking = streaming < query.operators.len();
    let (mut rows, mut scanned) = (Vec::new(), 0);
    'rows: for row in source.rows(table, from, to) {
        scanned += 1;
        let mut row = row;
        for stage in &mut stages {
            match stage.apply(row)? {
                Some(kept) => row = kept,
                None => continue 'rows,
            }
        }
        rows.push(row);
        // Enough to tell that the cap is passed: the rest is not read.
        if !blocking && rows.len() > ROW_CAP {
            break;
        }
    }
    for op in &query.operators[streaming..] {
        (columns, rows) = whole(op, columns, rows, now)?;
    }
    let truncated = rows.len() > ROW_CAP;
    rows.truncate(ROW_CAP);
    Ok(Answer {
        columns,
        rows,
        truncated,
        scanned,
    })
}

/// An operator that takes rows one at a time.
enum Stage {
    Where(Filter),
    Project(Vec<usize>),
    Take(u64),
}

impl Stage {
    /// The stage of `op` over `columns`, and the columns after it.
    fn of(
        op: &Operator,
        columns: &[Column],
        now: DateTime<Utc>,
    ) -> Result<(Stage, Vec<Column>), QueryError> {
        Ok(match op {
            Operator::Where(expr) => (
                Stage::Where(Filter::of(expr, columns, now)?),
                columns.to_vec(),
            ),
            Operator::Project(names) => {
                let at = indexes(names, columns)?;
                let kept = at.iter().map(|&i| columns[i].clone()).collect();
                (Stage::Project(at), kept)
            }
            Operator::Take(n) => (Stage::Take(*n), columns.to_vec()),
            _ => unreachable!("only the streaming operators are stages"),
        })
    }

    fn apply(&mut self, row: Vec<Cell>) -> Result<Option<Vec<Cell>>, QueryError> {
        Ok(match self {
            Stage::Where(filter) => filter.test(&row)?.then_some(row),
            Stage::Project(at) => Some(at.iter().map(|&i| row[i].clone()).collect()),
            Stage::Take(0) => None,
            Stage::Take(left) => {
                *left -= 1;
                Some(row)
            }
        })
    }
}

/// The index of each of `names` in `columns`, or the 400 naming the one missing.
fn indexes(names: &[String], columns: &[Column]) -> Result<Vec<usize>, QueryError> {
    names
        .iter()
        .map(|name| {
            columns.iter().position(|(c, _)| c == name).ok_or_else(|| {
                QueryError::semantic(format!(
                    "Failed to resolve scalar expression named '{name}'"
                ))
            })
        })
        .collect()
}

/// An operator over all the rows so far: its columns and rows after it.
fn whole(
    op: &Operator,
    columns: Vec<Column>,
    mut rows: Vec<Vec<Cell>>,
    now: DateTime<Utc>,
) -> Result<(Vec<Column>, Vec<Vec<Cell>>), QueryError> {
    Ok(match op {
        Operator::Where(_) | Operator::Project(_) | Operator::Take(_) => {
            let (mut stage, next) = Stage::of(op, &columns, now)?;
            let mut kept = Vec::new();
            for row in rows {
                kept.extend(stage.apply(row)?);
            }
            (next, kept)
        }
        Operator::Distinct(names) => {
            let at = indexes(names, &columns)?;
            let mut seen = std::collections::HashSet::new();
            let rows = rows
                .into_iter()
                .map(|row| at.iter().map(|&i| row[i].clone()).collect::<Vec<_>>())
                .filter(|row| seen.insert(key(row)))
                .collect();
            (at.iter().map(|&i| columns[i].clone()).collect(), rows)
        }
        Operator::Count(names) => {
            let at = indexes(names, &columns)?;
            let mut groups: Vec<(Vec<Cell>, i64)> = Vec::new();
            let mut index: HashMap<String, usize> = HashMap::new();
            for row in rows {
                let group: Vec<Cell> = at.iter().map(|&i| row[i].clone()).collect();
                let slot = *index.entry(key(&group)).or_insert_with(|| {
                    groups.push((group, 0));
                    groups.len() - 1
                });
                groups[slot].1 += 1;
            }
            if at.is_empty() && groups.is_empty() {
                groups.push((Vec::new(), 0));
            }
            let mut kept: Vec<Column> = at.iter().map(|&i| columns[i].clone()).collect();
            kept.push(("count_".to_string(), Kind::Int64));
            let rows = groups
                .into_iter()
                .map(|(mut group, n)| {
                    group.push(Cell::Int(n));
                    group
                })
                .collect();
            (kept, rows)
        }
        Operator::Order(keys) => {
            let names: Vec<String> = keys.iter().map(|(n, _)| n.clone()).collect();
            let at: Vec<(usize, bool)> = indexes(&names, &columns)?
                .into_iter()
                .zip(keys.iter().map(|(_, desc)| *desc))
                .collect();
            rows.sort_by(|a, b| {
                at.iter()
                    .map(|&(i, desc)| {
                        let order = order(&a[i], &b[i]);
                        if desc { order.reverse() } else { order }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            });
            (columns, rows)
        }
        Operator::Top(n, name, desc) => {
            let (columns, mut rows) = whole(
                &Operator::Order(vec![(name.clone(), *desc)]),
                columns,
                rows,
                now,
            )?;
            rows.truncate(*n as usize);
            (columns, rows)
        }
    })
}

/// A row's values as one comparable text (the groups of `distinct` and `summarize`).
fn key(row: &[Cell]) -> String {
    format!("{row:?}")
}

/// The order of two values of one column.
fn order(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
        (Cell::Time(a), Cell::Time(b)) => a.cmp(b),
        (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
        _ => match (number(a), number(b)) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            _ => format!("{a:?}").cmp(&format!("{b:?}")),
        },
    }
}

fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(n) => Some(*n as f64),
        Cell::Real(r) => Some(*r),
        _ => None,
    }
}

/// A `where` condition, its columns resolved and its literals made values.
enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare(usize, String, Cell),
    In(usize, Vec<Cell>),
    Between(usize, Cell, Cell),
}

impl Filter {
    fn of(expr: &Expr, columns: &[Column], now: DateTime<Utc>) -> Result<Filter, QueryError> {
        let column = |name: &String| indexes(std::slice::from_ref(name), columns).map(|at| at[0]);
        let value = |literal: &Literal| value(literal, now);
        Ok(match expr {
            Expr::Or(a, b) => Filter::Or(
                Box::new(Filter::of(a, columns, now)?),
                Box::new(Filter::of(b, columns, now)?),
            ),
            Expr::And(a, b) => Filter::And(
                Box::new(Filter::of(a, columns, now)?),
                Box::new(Filter::of(b, columns, now)?),
            ),
            Expr::Not(inner) => Filter::Not(Box::new(Filter::of(inner, columns, now)?)),
            Expr::Compare(name, op, literal) => {
                Filter::Compare(column(name)?, op.clone(), value(literal)?)
            }
            Expr::In(name, literals) => Filter::In(
                column(name)?,
                literals.iter().map(value).collect::<Result<_, _>>()?,
            ),
            Expr::Between(name, low, high) => {
                Filter::Between(column(name)?, value(low)?, value(high)?)
            }
        })
    }

    fn test(&self, row: &[Cell]) -> Result<bool, QueryError> {
        Ok(match self {
            Filter::Or(a, b) => a.test(row)? || b.test(row)?,
            Filter::And(a, b) => a.test(row)? && b.test(row)?,
            Filter::Not(inner) => !inner.test(row)?,
            Filter::Compare(at, op, value) => compare(&row[*at], op, value)?,
            Filter::In(at, values) => values.iter().any(|v| equal(&row[*at], v)),
            Filter::Between(at, low, high) => {
                comparable(&row[*at], low)?;
                order(&row[*at], low).is_ge() && order(&row[*at], high).is_le()
            }
        })
    }
}

/// A literal as a value, `ago()` and `now()` counted from `now`.
fn value(literal: &Literal, now: DateTime<Utc>) -> Result<Cell, QueryError> {
    Ok(match literal {
        Literal::Text(t) => Cell::Text(t.as_str().into()),
        Literal::Integer(n) => Cell::Int(*n),
        Literal::Real(r) => Cell::Real(*r),
        Literal::Bool(b) => Cell::Bool(*b),
        Literal::Ago(ticks) => Cell::Time(now - Duration::microseconds(ticks / 10)),
        Literal::Now => Cell::Time(now),
        Literal::Time(text) => Cell::Time(
            time(text)
                .ok_or_else(|| QueryError::semantic(format!("datetime({text:?}) is not a date")))?,
        ),
    })
}

/// A `datetime()` text: an RFC 3339 time, or a date (midnight UTC).
fn time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The 400 for values that cannot be compared.
fn comparable(a: &Cell, b: &Cell) -> Result<(), QueryError> {
    let same = matches!(
        (a, b),
        (Cell::Text(_), Cell::Text(_))
            | (Cell::Time(_), Cell::Time(_))
            | (Cell::Bool(_), Cell::Bool(_))
    ) || (number(a).is_some() && number(b).is_some());
    match same {
        true => Ok(()),
        false => Err(QueryError::semantic(format!(
            "Cannot compare values of types {} and {}",
            type_of(a),
            type_of(b)
        ))),
    }
}

fn type_of(cell: &Cell) -> &'static str {
    match cell {
        Cell::Text(_) => "string",
        Cell::Int(_) => "long",
        Cell::Real(_) => "real",
        Cell::Bool(_) => "bool",
        Cell::Time(_) => "datetime",
        Cell::Json(_) => "dynamic",
    }
}

fn equal(a: &Cell, b: &Cell) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `a OP b` for one row.
fn compare(a: &Cell, op: &str, b: &Cell) -> Result<bool, QueryError> {
    comparable(a, b)?;
    let text = |c: &Cell| match c {
        Cell::Text(t) => t.to_lowercase(),
        _ => String::new(),
    };
    Ok(match op {
        "==" => equal(a, b),
        "!=" => !equal(a, b),
        "=~" => text(a) == text(b),
        "!~" => text(a) != text(b),
        "<" => order(a, b).is_lt(),
        "<=" => order(a, b).is_le(),
        ">" => order(a, b).is_gt(),
        ">=" => order(a, b).is_ge(),
        "has" => has(&text(a), &text(b)),
        "!has" => !has(&text(a), &text(b)),
        "contains" => text(a).contains(&text(b)),
        "!contains" => !text(a).contains(&text(b)),
        "startswith" => text(a).starts_with(&text(b)),
        _ => !text(a).starts_with(&text(b)),
    })
}

/// Whether `term` is a whole term of `text` (both lower case): bounded by the ends or by
/// characters that are not letters or digits.
fn has(text: &str, term: &str) -> bool {
    if term.is_empty() {
        return true;
    }
    text.match_indices(term).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + term.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
