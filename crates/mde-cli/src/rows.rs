//! A hunt's rows as they arrive: a table for people (long values cut, in the table only), one
//! JSON object a line, or CSV in the answer's column order, on stdout or into a file that
//! appears whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use mde_client::hunting::{Cell, Column};
use serde_json::Value;

use crate::vocabulary::Output;

/// The widest a table's cell is shown.
const CELL: usize = 48;

/// Where the rows go, and how they are written.
pub struct Rows {
    output: Output,
    /// A `tenant` column first: a hunt of several profiles.
    tenant: bool,
    writer: Box<dyn Write + Send>,
    /// `--out`: the file, written as `FILE.part` until [`Rows::finish`].
    file: Option<PathBuf>,
    /// The columns of the first answer (the header), and their widths in a table.
    header: Option<(Vec<String>, Vec<usize>)>,
    /// Rows written.
    pub written: u64,
}

/// `path` with `.part` added to its name.
fn part(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

impl Rows {
    /// Rows to stdout, or to `out` (through `out.part`).
    pub fn open(output: Output, out: Option<&Path>, tenant: bool) -> std::io::Result<Rows> {
        let writer: Box<dyn Write + Send> = match out {
            Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(part(path))?)),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        Ok(Rows {
            output,
            tenant,
            writer,
            file: out.map(Path::to_path_buf),
            header: None,
            written: 0,
        })
    }

    /// Writes an answer's rows (of `tenant`, in a hunt of several), under the header of the
    /// first answer: a column another tenant's answer lacks is empty there.
    pub fn write(
        &mut self,
        tenant: Option<&str>,
        columns: &[Column],
        rows: &[Vec<Cell>],
    ) -> std::io::Result<()> {
        if self.header.is_none() {
            self.start(columns, rows)?;
        }
        let Some((names, widths)) = &self.header else {
            return Ok(());
        };
        let at: Vec<Option<usize>> = names
            .iter()
            .map(|n| columns.iter().position(|(c, _)| c == n))
            .collect();
        for row in rows {
            let cells = at.iter().map(|i| i.and_then(|i| row.get(i)));
            let line = match self.output {
                Output::Json => json_line(self.tenant.then_some(tenant), names, cells),
                Output::Csv => {
                    let tenant = self.tenant.then(|| tenant.unwrap_or_default().to_string());
                    let texts = cells.map(|c| c.map(text).unwrap_or_default());
                    let all: Vec<String> = tenant.into_iter().chain(texts).collect();
                    all.iter()
                        .map(|t| crate::json::csv_field(t))
                        .collect::<Vec<_>>()
                        .join(",")
                }
                Output::Table => {
                    let tenant = self.tenant.then(|| tenant.unwrap_or_default().to_string());
                    let texts = cells.map(|c| c.map(text).unwrap_or_default());
                    table_line(tenant.into_iter().chain(texts), widths)
                }
            };
            writeln!(self.writer, "{line}")?;
            self.written += 1;
        }
        self.writer.flush()
    }

    /// The header, from the first answer's columns (and, in a table, the widths of its
    /// values).
    fn start(&mut self, columns: &[Column], rows: &[Vec<Cell>]) -> std::io::Result<()> {
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let mut shown: Vec<String> = names.clone();
        if self.tenant {
            shown.insert(0, "tenant".into());
        }
        let mut widths: Vec<usize> = shown.iter().map(|n| n.chars().count()).collect();
        let skip = usize::from(self.tenant);
        for row in rows.iter().take(1000) {
            for (i, cell) in row.iter().enumerate() {
                let width = text(cell).chars().count().min(CELL);
                widths[i + skip] = widths[i + skip].max(width);
            }
        }
        if self.tenant {
            widths[0] = widths[0].max(12);
        }
        match self.output {
            Output::Json => {}
            Output::Csv => {
                let header: Vec<String> = shown.iter().map(|n| crate::json::csv_field(n)).collect();
                writeln!(self.writer, "{}", header.join(","))?;
            }
            Output::Table => writeln!(self.writer, "{}", table_line(shown.into_iter(), &widths))?,
        }
        self.header = Some((names, widths));
        Ok(())
    }

    /// Drops the rows of a hunt that did not end: no file is left that looks whole.
    pub fn abandon(self) {
        drop(self.writer);
        if let Some(path) = &self.file {
            let _ = std::fs::remove_file(part(path));
        }
    }

    /// Ends the rows: the file, whole, takes its name.
    pub fn finish(mut self) -> std::io::Result<Option<PathBuf>> {
        self.writer.flush()?;
        drop(self.writer);
        if let Some(path) = &self.file {
            std::fs::rename(part(path), path)?;
        }
        Ok(self.file)
    }
}

/// A value as text: a time as the service wrote it, JSON as JSON, nothing for no value.
pub fn text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Time(t) => t.as_str().to_string(),
        Cell::Text(t) => t.clone(),
        Cell::Integer(n) => n.to_string(),
        Cell::Real(x) => x.to_string(),
        Cell::Boolean(b) => b.to_string(),
        Cell::Json(v) => v.to_string(),
    }
}

/// A value as JSON: typed as its column.
pub fn json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Time(t) => Value::from(t.as_str()),
        Cell::Text(t) => Value::from(t.as_str()),
        Cell::Integer(n) => Value::from(*n),
        Cell::Real(x) => Value::from(*x),
        Cell::Boolean(b) => Value::from(*b),
        Cell::Json(v) => v.clone(),
    }
}

/// One JSON object, its members in the answer's column order (the tenant's first).
fn json_line<'a>(
    tenant: Option<Option<&str>>,
    names: &[String],
    cells: impl Iterator<Item = Option<&'a Cell>>,
) -> String {
    let mut object = serde_json::Map::new();
    if let Some(tenant) = tenant {
        object.insert("tenant".into(), Value::from(tenant));
    }
    for (name, cell) in names.iter().zip(cells) {
        object.insert(name.clone(), cell.map_or(Value::Null, json));
    }
    Value::Object(object).to_string()
}

/// A table's line: each value escaped, cut to its column's width, and padded to it.
fn table_line(values: impl Iterator<Item = String>, widths: &[usize]) -> String {
    let cells: Vec<String> = values
        .zip(widths)
        .map(|(value, width)| {
            let shown = mde_client::workspace::shorten(&crate::vocabulary::escape(&value), *width);
            format!("{shown:<width$}")
        })
        .collect();
    cells.join("  ").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mde_client::hunting::ColumnType;

    fn rendered(output: Output, tenant: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.out");
        let mut rows = Rows::open(output, Some(&path), tenant).unwrap();
        let columns = vec![
            ("Timestamp".to_string(), ColumnType::DateTime),
            ("FileName".to_string(), ColumnType::String),
            ("Count".to_string(), ColumnType::Integer),
        ];
        let time = mde_client::Timestamp::parse("2024-03-26T09:39:50.7688641Z").unwrap();
        let long = format!("=cmd,\"{}\"", "x".repeat(60));
        let row = vec![Cell::Time(time), Cell::Text(long), Cell::Integer(3)];
        rows.write(Some("contoso"), &columns, &[row]).unwrap();
        // Another tenant's answer, its columns in another order and one missing.
        let other = vec![columns[2].clone(), columns[0].clone()];
        let row = vec![Cell::Integer(4), Cell::Null];
        rows.write(Some("fabrikam"), &other, &[row]).unwrap();
        assert!(!path.exists(), "the file appears only whole");
        assert_eq!(rows.finish().unwrap().as_deref(), Some(path.as_path()));
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn each_format_keeps_the_answers_column_order() {
        let csv = rendered(Output::Csv, true);
        let quoted = format!("\"'=cmd,\"\"{}\"\"\"", "x".repeat(60));
        assert_eq!(
            csv,
            format!(
                "tenant,Timestamp,FileName,Count\ncontoso,2024-03-26T09:39:50.7688641Z,{quoted},3\nfabrikam,,,4\n"
            )
        );
        let json = rendered(Output::Json, false);
        let first: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Timestamp", "FileName", "Count"]);
        assert_eq!(first["Count"], 3);
        assert!(
            first["FileName"].as_str().unwrap().ends_with("xx\""),
            "never cut"
        );
        let table = rendered(Output::Table, true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("tenant        Timestamp"), "{table}");
        assert!(
            lines[1].contains('…') && !lines[1].contains(&"x".repeat(60)),
            "{table}"
        );
    }
}
