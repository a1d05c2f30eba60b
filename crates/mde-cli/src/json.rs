//! The one JSON shape of a machine's line, whatever the command (`scan`, `package collect`
//! with or without `--download`, `package download`, `package verify`, `action show`, `action
//! list`): `machine`, `name`, `action_id`, `status`, `outcome` and `error` (`code`,
//! `message`, `correlation_id`) always, `null` where they do not apply, then what the
//! command adds (`earlier`, `result`, `record`, `file`, `action`).

use mde_client::operations::Answer;
use mde_client::types::MachineAction;
use serde::Serialize;

use crate::vocabulary::ErrorInfo;

/// One machine's line.
#[derive(Debug, Serialize)]
pub struct Line {
    /// The machine id (the name as given, for a name that came to no single machine).
    pub machine: Option<String>,
    /// The machine's name: as given by name, or as the service named it.
    pub name: Option<String>,
    /// The machine action the line is about.
    pub action_id: Option<String>,
    /// That action's status (`Pending`, `InProgress`, `Succeeded`, ...).
    pub status: Option<String>,
    /// How the machine fared in this command (`accepted`, `saved`, `verified`, ...).
    pub outcome: String,
    /// What went wrong, when something did.
    pub error: Option<ErrorInfo>,
    /// What the command adds.
    #[serde(flatten)]
    pub more: serde_json::Map<String, serde_json::Value>,
}

impl Line {
    /// A line with its outcome, the rest empty.
    pub fn new(outcome: &str) -> Line {
        Line {
            machine: None,
            name: None,
            action_id: None,
            status: None,
            outcome: outcome.to_string(),
            error: None,
            more: serde_json::Map::new(),
        }
    }

    /// The line of a machine action.
    pub fn of_action(outcome: &str, action: &MachineAction) -> Line {
        Line {
            machine: action.machine_id.clone(),
            name: action.computer_dns_name.clone(),
            action_id: action.id.clone(),
            status: action.status.as_ref().map(ToString::to_string),
            ..Line::new(outcome)
        }
    }

    /// Adds a field of the command's own.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Line {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.more.insert(key.to_string(), value);
        self
    }

    /// Adds a field of the command's own, when it has a value.
    pub fn with_some(self, key: &str, value: Option<impl Serialize>) -> Line {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    /// The line, as text.
    pub fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({ "machine": self.machine, "outcome": "error", "error": e.to_string() })
                .to_string()
        })
    }
}

/// The line of a fleet run's machine.
pub fn outcome_line(o: &crate::vocabulary::Outcome) -> Line {
    let action = o.result.as_ref().and_then(Answer::machine_action);
    Line {
        machine: Some(o.machine.clone()),
        name: o.name.clone(),
        action_id: action.and_then(|a| a.id.clone()),
        status: action.and_then(|a| a.status.as_ref().map(ToString::to_string)),
        error: o.error.clone(),
        ..Line::new(o.kind.as_str())
    }
    .with("earlier", o.earlier)
    .with("result", &o.result)
    .with_some("tenant", o.tenant.as_deref())
}

/// The line of a machine a run did not send to.
pub fn not_sent_line(machine: &str) -> Line {
    Line {
        machine: Some(machine.to_string()),
        ..Line::new("not_sent")
    }
    .with("earlier", false)
}

/// The columns of `--output csv`: the fields every line has, the error's flattened.
pub const CSV_HEADER: &str =
    "machine,name,action_id,status,outcome,error_code,error_message,correlation_id";

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line end; a value a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`.
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

impl Line {
    /// The line as a CSV row of [`CSV_HEADER`]'s columns, then those of `more` (keys the
    /// command adds: `tenant` in a run of profiles, an action's `type` and times).
    pub fn csv(&self, more: &[&str]) -> String {
        let error = self.error.as_ref();
        let added = more.iter().map(|key| match self.more.get(*key) {
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        });
        [
            self.machine.clone(),
            self.name.clone(),
            self.action_id.clone(),
            self.status.clone(),
            Some(self.outcome.clone()),
            error.map(|e| e.code.clone()),
            error.map(|e| e.message.clone()),
            error.and_then(|e| e.correlation_id.clone()),
        ]
        .into_iter()
        .chain(added)
        .map(|v| csv_field(&v.unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// Writes machine lines to stdout as they come, in the format asked: JSON lines, or CSV rows
/// after their header. Flushed each, so that a pipe sees them live.
pub struct Lines {
    csv: bool,
    header: std::cell::Cell<bool>,
    /// The CSV columns after [`CSV_HEADER`]'s: keys of the lines' added fields.
    more: Vec<&'static str>,
}

impl Lines {
    /// The writer of `output`; `None` for a table.
    pub fn of(output: crate::vocabulary::Output) -> Option<Lines> {
        use crate::vocabulary::Output;
        match output {
            Output::Table => None,
            Output::Json => Some(Lines {
                csv: false,
                header: std::cell::Cell::new(true),
                more: Vec::new(),
            }),
            Output::Csv => Some(Lines {
                csv: true,
                header: std::cell::Cell::new(false),
                more: Vec::new(),
            }),
        }
    }

    /// With a `tenant` column after the others, in CSV (a run of profiles).
    pub fn with_tenant(self, tenant: bool) -> Lines {
        match tenant {
            true => self.with_columns(&["tenant"]),
            false => self,
        }
    }

    /// With these columns after the others, in CSV: keys of the lines' added fields.
    pub fn with_columns(mut self, keys: &[&'static str]) -> Lines {
        self.more.extend(keys);
        self
    }

    /// Writes one line.
    pub fn write(&self, line: &Line) {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        if !self.header.replace(true) {
            let more: String = self.more.iter().map(|key| format!(",{key}")).collect();
            let _ = writeln!(stdout, "{CSV_HEADER}{more}");
        }
        let text = if self.csv {
            line.csv(&self.more)
        } else {
            line.text()
        };
        let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    }
}
