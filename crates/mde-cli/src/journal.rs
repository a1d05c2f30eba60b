//! The run's journal: JSON lines, one written before each request is sent and one after its
//! outcome, straight to the file (no buffer), so a crash, `kill -9` or Ctrl-C loses nothing
//! that was sent. A power cut may lose the last lines the kernel had not written out.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use mde_client::operations::{Answer, OperationId};
use serde::{Deserialize, Serialize};

use crate::fleet::{Kind, Outcome};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one entry at a time, written or read and dropped
pub enum Entry {
    /// A run (or a resumed run) begins.
    Run {
        /// The operation.
        operation: OperationId,
        /// The comment sent with each request.
        comment: String,
        /// How many machines the run covers.
        machines: usize,
        /// When, in UTC.
        at: String,
    },
    /// A request is about to be sent.
    Sending {
        /// The machine.
        machine: String,
        /// When, in UTC.
        at: String,
    },
    /// A request's outcome.
    Done {
        /// The machine.
        machine: String,
        /// How it fared.
        outcome: Kind,
        /// The answer, tagged with its operation, when it succeeded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Answer>,
        /// What went wrong, when it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// When, in UTC.
        at: String,
    },
    /// A machine name resolved to its id (reused on resume, not looked up again).
    Resolved {
        /// The name as given.
        name: String,
        /// The machine it came to.
        machine: crate::names::Candidate,
        /// When, in UTC.
        at: String,
    },
    /// A machine's package reached a stage of `mde package collect --download`.
    Stage {
        /// The machine.
        machine: String,
        /// Its collection's machine action id.
        action: String,
        /// The stage.
        stage: crate::pipeline::Stage,
        /// The collection's status, or what went wrong.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// The manifest's record, once saved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record: Option<crate::evidence::Record>,
        /// When, in UTC.
        at: String,
    },
}

/// What a journal says of each machine.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct History {
    /// The operation of the journal's first run.
    pub operation: Option<OperationId>,
    /// Machines with an outcome: the last one recorded.
    pub done: HashMap<String, Outcome>,
    /// Machines sent to with no outcome recorded: the request may or may not have arrived.
    pub unknown: Vec<String>,
    /// Names resolved, by the name as given in lower case.
    pub names: HashMap<String, crate::names::Candidate>,
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Journal {
    /// Opens `path` for appending (creating it). A last line cut short by a crash is ended,
    /// so that what follows starts on a line of its own.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let cut = std::fs::read(path).is_ok_and(|bytes| bytes.last().is_some_and(|b| *b != b'\n'));
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        if cut {
            file.write_all(b"\n")?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records an outcome.
    pub fn done(&self, outcome: &Outcome) -> std::io::Result<()> {
        self.append(&Entry::Done {
            machine: outcome.machine.clone(),
            outcome: outcome.outcome,
            result: outcome.result.clone(),
            error: outcome.error.clone(),
            at: now(),
        })
    }

    /// Appends one line; it is in the file when this returns.
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write of the whole line: `O_APPEND` keeps it in one piece.
        (&self.file).write_all(&line)
    }

    /// Reads what a journal recorded. A line cut short by a crash is skipped: its request was
    /// not sent (a "sending" line is complete before its request goes out), or its outcome was
    /// not recorded (the machine then reads as unknown).
    pub fn history(path: &Path) -> std::io::Result<History> {
        let text = std::fs::read_to_string(path)?;
        let mut history = History::default();
        let mut sending: Vec<String> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Ok(entry) = serde_json::from_str::<Entry>(line) else {
                // Not JSON at all is not a journal of ours.
                if i == 0 && !line.starts_with('{') {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not an mde journal", path.display()),
                    ));
                }
                continue;
            };
            match entry {
                Entry::Run { operation, .. } => {
                    history.operation.get_or_insert(operation);
                }
                Entry::Sending { machine, .. } => sending.push(machine),
                Entry::Done {
                    machine,
                    outcome,
                    result,
                    error,
                    ..
                } => {
                    sending.retain(|m| *m != machine);
                    let outcome = Outcome {
                        machine: machine.clone(),
                        name: None,
                        outcome,
                        result,
                        error,
                        earlier: true,
                    };
                    history.done.insert(machine, outcome);
                }
                Entry::Resolved { name, machine, .. } => {
                    history.names.insert(name.to_ascii_lowercase(), machine);
                }
                // Read again from the service and the evidence folder on resume.
                Entry::Stage { .. } => {}
            }
        }
        sending.retain(|m| !history.done.contains_key(m));
        sending.dedup();
        history.unknown = sending;
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_without_outcome_is_unknown_and_a_cut_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::open(&path).unwrap();
        let run = Entry::Run {
            operation: OperationId::CollectInvestigationPackage,
            comment: "c".into(),
            machines: 3,
            at: now(),
        };
        journal.append(&run).unwrap();
        for m in ["a", "b"] {
            journal
                .append(&Entry::Sending {
                    machine: m.into(),
                    at: now(),
                })
                .unwrap();
        }
        let answer = Answer::CollectInvestigationPackage(Default::default());
        let done = Outcome {
            machine: "a".into(),
            name: None,
            outcome: Kind::Succeeded,
            result: Some(answer.clone()),
            error: None,
            earlier: false,
        };
        journal.done(&done).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event\":\"sen")
            .unwrap();
        // Resuming ends the cut line before appending.
        let resumed = Journal::open(&path).unwrap();
        resumed
            .append(&Entry::Sending {
                machine: "c".into(),
                at: now(),
            })
            .unwrap();
        let history = Journal::history(&path).unwrap();
        assert_eq!(
            history.operation,
            Some(OperationId::CollectInvestigationPackage)
        );
        assert_eq!(history.done.keys().collect::<Vec<_>>(), ["a"]);
        // The answer reads back as the operation's type, by its tag.
        assert_eq!(history.done["a"].result, Some(answer));
        assert_eq!(history.unknown, ["b", "c"]);
    }
}
