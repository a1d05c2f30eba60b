//! The run's journal: JSON lines, one written before each request is sent and one after its
//! outcome, straight to the file (no buffer), so a crash, `kill -9` or Ctrl-C loses nothing
//! that was sent. A power cut may lose the last lines the kernel had not written out.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::vocabulary::{Kind, Outcome};
use mde_client::operations::{Answer, OperationId};
use mde_client::types::MachineActionStatus;
use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one entry at a time, written or read and dropped
pub enum Entry {
    /// A run begins: the journal's first line, what a resume must match.
    Run {
        /// What the run does, where, and to which machines.
        run: RunRecord,
        /// When, in UTC.
        at: String,
    },
    /// The run is resumed.
    Resumed {
        /// How many machines are left to send to.
        sending: usize,
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
        error: Option<crate::vocabulary::ErrorInfo>,
        /// When, in UTC.
        at: String,
    },
    /// A pending opposite action is about to be cancelled (`--cancel-pending`).
    Cancelling {
        /// The machine.
        machine: String,
        /// The action to cancel.
        action: String,
        /// When, in UTC.
        at: String,
    },
    /// How a cancellation ended: `Cancelled`, or the status it reached first.
    Cancelled {
        /// The machine.
        machine: String,
        /// The action cancelled.
        action: String,
        /// Its status once final.
        status: String,
        /// When, in UTC.
        at: String,
    },
    /// A machine name resolved to its id (reused on resume, not looked up again).
    Resolved {
        /// The name as given.
        name: String,
        /// The machine it came to.
        machine: crate::vocabulary::Candidate,
        /// When, in UTC.
        at: String,
    },
    /// The machines a tag came to (reused on resume, not looked up again).
    Tagged {
        /// The tag as given (`--tag`), with `*` after it for `--tag-prefix`.
        tag: String,
        /// The machines that carried it.
        machines: Vec<crate::vocabulary::Candidate>,
        /// When, in UTC.
        at: String,
    },
    /// The machines a hunt found (`--from-hunt`; reused on resume, never run again).
    Hunted {
        /// The hunt as it ran.
        hunt: crate::vocabulary::HuntRecord,
        /// The machines it found, each once.
        machines: Vec<crate::vocabulary::Candidate>,
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
        stage: crate::vocabulary::Stage,
        /// The collection's status, when the stage came from it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<MachineActionStatus>,
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

/// What a run is: the request each machine gets, where it goes and as whom, and the
/// machines. A resume that would change any of it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The operation.
    pub operation: OperationId,
    /// The request body each machine gets, as sent (`Comment`, `ScanType`, ...).
    pub request: serde_json::Value,
    /// The tenant signed in to (`None` with a bearer token given as is).
    pub tenant: Option<String>,
    /// The application signed in as (`None` with a bearer token given as is).
    pub client_id: Option<String>,
    /// The API's base URL, or `simulator` for the embedded one of `--simulate`.
    pub api: String,
    /// The machine ids as given, sorted (hex ids in lower case).
    pub machines: Vec<String>,
    /// The machine names as given, in lower case, sorted.
    pub names: Vec<String>,
    /// The tag the machines were selected by (`--tag`), with `*` after it for
    /// `--tag-prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The hunt the machines were found by (`--from-hunt`): its column, then its query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hunt: Option<String>,
    /// The evidence folder of `package collect --download`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
}

impl RunRecord {
    /// What `now` would change of the recorded run, a line each; empty when nothing.
    pub fn differences(&self, now: &RunRecord) -> Vec<String> {
        let mut found = Vec::new();
        let mut differ = |what: &str, recorded: String, given: String| {
            if recorded != given {
                found.push(format!("{what}: recorded {recorded}, now {given}"));
            }
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        differ(
            "the operation",
            self.operation.to_string(),
            now.operation.to_string(),
        );
        differ(
            "the request",
            self.request.to_string(),
            now.request.to_string(),
        );
        differ("the tenant", text(&self.tenant), text(&now.tenant));
        differ("the client id", text(&self.client_id), text(&now.client_id));
        differ("the API", self.api.clone(), now.api.clone());
        differ("the tag", text(&self.tag), text(&now.tag));
        differ("the hunt", text(&self.hunt), text(&now.hunt));
        differ(
            "the evidence folder",
            text(&self.download),
            text(&now.download),
        );
        for (what, recorded, given) in [
            ("machine ids", &self.machines, &now.machines),
            ("machine names", &self.names, &now.names),
        ] {
            let added: Vec<&String> = given.iter().filter(|m| !recorded.contains(m)).collect();
            let dropped: Vec<&String> = recorded.iter().filter(|m| !given.contains(m)).collect();
            let list = |v: &[&String]| {
                let shown: Vec<String> = v
                    .iter()
                    .take(5)
                    .map(|m| crate::vocabulary::escape(m))
                    .collect();
                let more = v.len().saturating_sub(5);
                format!(
                    "{}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            };
            if !added.is_empty() {
                found.push(format!(
                    "{} {what} not in the run: {}",
                    added.len(),
                    list(&added)
                ));
            }
            if !dropped.is_empty() {
                found.push(format!(
                    "{} {what} of the run left out: {}",
                    dropped.len(),
                    list(&dropped)
                ));
            }
        }
        found
    }
}

/// What a journal says of each machine.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct History {
    /// The journal's run.
    pub run: Option<RunRecord>,
    /// Machines with an outcome: the last one recorded.
    pub done: HashMap<String, Outcome>,
    /// Machines sent to with no outcome recorded: the request may or may not have arrived.
    pub unknown: Vec<String>,
    /// Names resolved, by the name as given in lower case.
    pub names: HashMap<String, crate::vocabulary::Candidate>,
    /// The machines the run's tag came to, once looked up.
    pub tagged: Option<Vec<crate::vocabulary::Candidate>>,
    /// The run's hunt and the machines it found, once run.
    pub hunted: Option<(
        crate::vocabulary::HuntRecord,
        Vec<crate::vocabulary::Candidate>,
    )>,
    /// Machines whose collection the service ended `Failed` or `TimeOut` (`--download`).
    pub collections_failed: Vec<String>,
}

/// An open journal, appending. In a run of several profiles every line of a profile's part
/// carries its name (`"profile"`), and each part reads back only its own.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    file: std::sync::Arc<File>,
    profile: Option<String>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Journal {
    /// Creates a new journal at `path`; a file already there is an error
    /// ([`std::io::ErrorKind::AlreadyExists`]), never appended to.
    pub fn create(path: &Path) -> std::io::Result<Journal> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: std::sync::Arc::new(file),
            profile: None,
        })
    }

    /// Opens the journal at `path` for appending, to resume its run. A last line cut short
    /// by a crash is ended, so that what follows starts on a line of its own.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let cut = std::fs::read(path).is_ok_and(|bytes| bytes.last().is_some_and(|b| *b != b'\n'));
        let mut file = OpenOptions::new().append(true).open(path)?;
        if cut {
            file.write_all(b"\n")?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file: std::sync::Arc::new(file),
            profile: None,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same journal, each line it appends marked as `profile`'s part of the run.
    pub fn of_profile(&self, profile: Option<&str>) -> Journal {
        Journal {
            profile: profile.map(str::to_string),
            ..self.clone()
        }
    }

    /// Records an outcome.
    pub fn done(&self, outcome: &Outcome) -> std::io::Result<()> {
        self.append(&Entry::Done {
            machine: outcome.machine.clone(),
            outcome: outcome.kind,
            result: outcome.result.clone(),
            error: outcome.error.clone(),
            at: now(),
        })
    }

    /// Records that a request is about to be sent, on disk (synced) before it is: a request
    /// the journal cannot record is not sent.
    pub fn sending(&self, machine: &str) -> std::io::Result<()> {
        self.append(&Entry::Sending {
            machine: machine.to_string(),
            at: now(),
        })?;
        self.sync()
    }

    /// Writes what was appended out to the disk.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Appends one line; it is in the file when this returns.
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut value = serde_json::to_value(entry).map_err(std::io::Error::other)?;
        if let (Some(profile), Some(fields)) = (&self.profile, value.as_object_mut()) {
            fields.insert("profile".into(), profile.clone().into());
        }
        let mut line = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write of the whole line: `O_APPEND` keeps it in one piece.
        (&*self.file).write_all(&line)
    }

    /// What a journal recorded, of every part (see [`Recorded::history`]).
    pub fn history(path: &Path, profile: Option<&str>) -> std::io::Result<History> {
        Ok(Recorded::read(path)?.history(profile))
    }
}

/// A journal's lines, read once: each with the profile of its part, if any.
#[derive(Debug)]
pub struct Recorded {
    entries: Vec<(Option<String>, Entry)>,
}

impl Recorded {
    /// Reads a journal. A line cut short by a crash is skipped: its request was not sent (a
    /// "sending" line is complete before its request goes out), or its outcome was not
    /// recorded (the machine then reads as unknown).
    pub fn read(path: &Path) -> std::io::Result<Recorded> {
        let text = std::fs::read_to_string(path)?;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match read_line(line) {
                Ok(entry) => entries.push(entry),
                // Not JSON at all is not a journal of ours.
                Err(_) if i == 0 && !line.starts_with('{') => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not an mde journal", path.display()),
                    ));
                }
                Err(_) => {}
            }
        }
        Ok(Recorded { entries })
    }

    /// The profiles whose parts the journal records, in the order of their run lines (none
    /// for a run of one connection).
    pub fn profiles(&self) -> Vec<String> {
        let mut profiles: Vec<String> = Vec::new();
        for (profile, entry) in &self.entries {
            if let (Some(profile), Entry::Run { .. }) = (profile, entry)
                && !profiles.contains(profile)
            {
                profiles.push(profile.clone());
            }
        }
        profiles
    }

    /// What the journal says of `profile`'s part of the run (`None`: the lines of no profile,
    /// those of a run of one connection).
    pub fn history(&self, profile: Option<&str>) -> History {
        let mut history = History::default();
        let mut sending: Vec<String> = Vec::new();
        let entries = self
            .entries
            .iter()
            .filter(|(of, _)| of.as_deref() == profile);
        for (_, entry) in entries {
            match entry.clone() {
                Entry::Run { run, .. } => {
                    history.run.get_or_insert(run);
                }
                // Not repeated on resume: a cancelled action is no longer pending.
                Entry::Resumed { .. } | Entry::Cancelling { .. } | Entry::Cancelled { .. } => {}
                Entry::Sending { machine, .. } => sending.push(machine),
                Entry::Done {
                    machine,
                    outcome,
                    result,
                    error,
                    ..
                } => {
                    sending.retain(|m| *m != machine);
                    history.done.remove(&machine);
                    match outcome {
                        // Never reached the service: sent again, as if never tried.
                        Kind::NotSent => {}
                        // Reached it, maybe: an unknown, like a request with no outcome.
                        Kind::Unknown => sending.push(machine),
                        _ => {
                            let outcome = Outcome {
                                machine: machine.clone(),
                                name: None,
                                kind: outcome,
                                result,
                                error,
                                earlier: true,
                                tenant: None,
                            };
                            history.done.insert(machine, outcome);
                        }
                    }
                }
                Entry::Resolved { name, machine, .. } => {
                    history.names.insert(name.to_ascii_lowercase(), machine);
                }
                Entry::Tagged { machines, .. } => history.tagged = Some(machines),
                Entry::Hunted { hunt, machines, .. } => history.hunted = Some((hunt, machines)),
                // Read again from the service and the evidence folder on resume, but for
                // whether the service ended the collection (for `--retry-failed`).
                Entry::Stage {
                    machine, status, ..
                } => {
                    history.collections_failed.retain(|m| *m != machine);
                    if status.as_ref().is_some_and(|s| {
                        matches!(
                            s,
                            MachineActionStatus::Failed | MachineActionStatus::TimeOut
                        )
                    }) {
                        history.collections_failed.push(machine);
                    }
                }
            }
        }
        sending.retain(|m| !history.done.contains_key(m));
        let mut seen = std::collections::HashSet::new();
        sending.retain(|m| seen.insert(m.clone()));
        history.unknown = sending;
        history
    }
}

/// A line's profile, if it has one, and its entry.
fn read_line(line: &str) -> serde_json::Result<(Option<String>, Entry)> {
    let mut value: serde_json::Value = serde_json::from_str(line)?;
    let profile = value
        .as_object_mut()
        .and_then(|fields| fields.remove("profile"))
        .and_then(|p| p.as_str().map(str::to_string));
    Ok((profile, serde_json::from_value(value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_without_outcome_is_unknown_and_a_cut_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::create(&path).unwrap();
        assert_eq!(
            Journal::create(&path).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        let run = Entry::Run {
            run: RunRecord {
                operation: OperationId::CollectInvestigationPackage,
                request: serde_json::json!({ "Comment": "c" }),
                tenant: None,
                client_id: None,
                api: "simulator".into(),
                machines: vec!["a".into(), "b".into(), "c".into()],
                names: Vec::new(),
                tag: None,
                hunt: None,
                download: None,
            },
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
            kind: Kind::Accepted,
            result: Some(answer.clone()),
            error: None,
            earlier: false,
            tenant: None,
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
        let history = Journal::history(&path, None).unwrap();
        assert_eq!(history.run.as_ref().map(|r| r.machines.len()), Some(3));
        assert_eq!(history.done.keys().collect::<Vec<_>>(), ["a"]);
        // The answer reads back as the operation's type, by its tag.
        assert_eq!(history.done["a"].result, Some(answer));
        assert_eq!(history.unknown, ["b", "c"]);
    }

    #[test]
    fn each_profile_reads_back_its_own_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::create(&path).unwrap();
        let record = |machine: &str| RunRecord {
            operation: OperationId::RunAntiVirusScan,
            request: serde_json::json!({ "Comment": "c" }),
            tenant: Some(machine.to_uppercase()),
            client_id: None,
            api: "simulator".into(),
            machines: vec![machine.into()],
            names: Vec::new(),
            tag: None,
            hunt: None,
            download: None,
        };
        for (profile, machine) in [("contoso", "a"), ("fabrikam", "b")] {
            let part = journal.of_profile(Some(profile));
            let run = record(machine);
            part.append(&Entry::Run { run, at: now() }).unwrap();
            part.append(&Entry::Sending {
                machine: machine.into(),
                at: now(),
            })
            .unwrap();
        }
        assert_eq!(
            Recorded::read(&path).unwrap().profiles(),
            ["contoso", "fabrikam"]
        );
        let contoso = Journal::history(&path, Some("contoso")).unwrap();
        assert_eq!(contoso.run, Some(record("a")));
        assert_eq!(contoso.unknown, ["a"]);
        let fabrikam = Journal::history(&path, Some("fabrikam")).unwrap();
        assert_eq!(fabrikam.unknown, ["b"]);
        // A run of one connection reads no profile's lines.
        assert_eq!(Journal::history(&path, None).unwrap(), History::default());
    }
}
