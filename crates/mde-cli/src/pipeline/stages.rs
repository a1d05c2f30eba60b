//! The state machine of each machine's evidence: a request's outcome admitted, the
//! collection's status moving its stage, each stage journaled as it is reached.

use super::*;

impl Note {
    pub(super) fn says(detail: impl Into<String>) -> Note {
        Note {
            detail: Some(detail.into()),
            ..Note::default()
        }
    }

    pub(super) fn failed(e: &Error) -> Note {
        let error = ErrorInfo::of(e);
        Note {
            detail: Some(error.message.clone()),
            error: Some(error),
            ..Note::default()
        }
    }

    pub(super) fn status(status: Option<&MachineActionStatus>) -> Note {
        Note {
            detail: status.map(ToString::to_string),
            status: status.cloned(),
            ..Note::default()
        }
    }

    pub(super) fn saved(record: Record, earlier: bool, took: Option<&Downloaded>) -> Note {
        let mut detail = format!("{} {} bytes", record.file, record.size);
        if let Some(d) = took.filter(|d| d.resumed + d.new_links > 0) {
            detail.push_str(&format!(
                " (resumed {} time(s) after a cut, {} new link(s))",
                d.resumed, d.new_links
            ));
        }
        Note {
            detail: Some(detail),
            record: Some(record),
            earlier,
            ..Note::default()
        }
    }
}

impl<'a> Pipeline<'a> {
    /// Moves a machine to `stage`, journaling the change.
    pub(super) fn set(
        &mut self,
        machine: &str,
        action: Option<&str>,
        stage: Stage,
        note: Note,
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let before = self.packages.get(machine).map(|p| p.stage);
        if let Some(before) = before {
            self.board.at[before as usize] -= 1;
        }
        self.board.at[stage as usize] += 1;
        let evidence = self.evidence;
        let package = self
            .packages
            .entry(machine.to_string())
            .or_insert_with(|| Package {
                evidence,
                results: Vec::new(),
                machine: machine.to_string(),
                name: None,
                action: None,
                stage,
                status: None,
                detail: None,
                error: None,
                record: None,
                earlier: false,
                tenant: None,
            });
        if let Some(action) = action {
            package.action = Some(action.to_string());
        }
        package.stage = stage;
        if note.status.is_some() {
            package.status = note.status.clone();
        }
        package.error = match stage {
            Stage::Failed => note.error.or_else(|| {
                Some(ErrorInfo::new(
                    "failed",
                    note.detail.clone().unwrap_or_default(),
                ))
            }),
            _ => None,
        };
        package.detail = note.detail;
        package.record = note.record;
        package.earlier = note.earlier;
        let changed = before != Some(stage);
        if changed {
            self.journal
                .append(&Entry::Stage {
                    machine: machine.to_string(),
                    action: package.action.clone().unwrap_or_default(),
                    stage,
                    status: note.status,
                    detail: package.detail.clone(),
                    record: package.record.clone(),
                    at: now(),
                })
                .map_err(|e| Error::Io {
                    path: self.journal.path().to_path_buf(),
                    source: e,
                })?;
        }
        progress(
            &self.board,
            (changed && stage.is_final()).then_some(package),
        );
        Ok(())
    }

    /// A machine whose request ended (now or in an earlier run).
    pub(super) fn admit(&mut self, outcome: Outcome, progress: OnBoard<'_>) -> Result<(), Error> {
        let machine = outcome.machine.clone();
        let Some(action) = outcome.action().cloned() else {
            return match outcome.kind {
                Kind::AlreadyRunning => {
                    self.to_find.push(machine);
                    Ok(())
                }
                Kind::NotSent => {
                    self.not_sent.push(machine);
                    self.board.total -= 1;
                    progress(&self.board, None);
                    Ok(())
                }
                _ => {
                    let error = outcome.error.unwrap_or_else(|| {
                        ErrorInfo::new("failed", format!("the request {}", outcome.kind.as_str()))
                    });
                    let why = Note {
                        detail: Some(error.message.clone()),
                        error: Some(error),
                        ..Note::default()
                    };
                    self.set(&machine, None, Stage::Failed, why, progress)
                }
            };
        };
        self.follow(machine, action, progress)
    }

    /// Follows a machine's action from where it is.
    pub(super) fn follow(
        &mut self,
        machine: String,
        action: MachineAction,
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let id = action.id.clone().unwrap_or_default();
        if id.is_empty() {
            let why = Note::says(format!(
                "the service answered a {} without an id",
                self.evidence.action_noun()
            ));
            return self.set(&machine, None, Stage::Failed, why, progress);
        }
        self.moved(machine, action, progress)
    }

    /// An action seen at a new status: its machine's stage, and its files once complete.
    pub(super) fn moved(
        &mut self,
        machine: String,
        action: MachineAction,
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let id = action.id.clone().unwrap_or_default();
        let stage = stage_of(self.evidence, &action);
        let note = match (stage, &action.status) {
            (Stage::Failed, Some(status)) => Note {
                status: Some(status.clone()),
                ..Note::says(ended(self.evidence, &action, status))
            },
            _ => Note::status(action.status.as_ref()),
        };
        self.actions
            .insert(id.clone(), (machine.clone(), action.clone()));
        self.set(&machine, Some(&id), stage, note, progress)?;
        if let Some(package) = self.packages.get_mut(&machine) {
            package.results = action
                .commands
                .iter()
                .flatten()
                .map(CommandResult::of)
                .collect();
        }
        if stage == Stage::Ready {
            self.complete(&id, progress)?;
        }
        Ok(())
    }

    /// A complete action: each of its files is recorded already (and still verified), or
    /// queued for its link.
    pub(super) fn complete(&mut self, id: &str, progress: OnBoard<'_>) -> Result<(), Error> {
        let (machine, action) = self.actions[id].clone();
        let items: Vec<Item> = match self.evidence {
            Evidence::Package => vec![Item {
                action: id.to_string(),
                index: None,
            }],
            Evidence::LiveResponse => action
                .commands
                .iter()
                .flatten()
                .filter(|c| has_result(c))
                .map(|c| Item {
                    action: id.to_string(),
                    index: c.index,
                })
                .collect(),
        };
        self.outstanding.insert(id.to_string(), items.len());
        for item in items {
            let key = evidence::key(&item.action, item.index);
            let Some(record) = self.recorded.get(&key).cloned() else {
                self.ready.push_back(item);
                continue;
            };
            let verdict = evidence::verify(self.settings.dir, &record).map_err(|e| Error::Io {
                path: self.settings.dir.join(&record.file),
                source: e,
            })?;
            if verdict == Verdict::Verified {
                self.saved(&item, record, (None, true), progress)?;
            } else {
                let why = format!(
                    "{} is recorded but not as recorded ({verdict:?}); not replaced",
                    record.file
                );
                self.set(&machine, Some(id), Stage::Failed, Note::says(why), progress)?;
            }
        }
        if self.outstanding.get(id) == Some(&0) {
            self.finish(id, None, progress)?;
        }
        Ok(())
    }

    /// An action whose files are all saved: its machine's final stage (a session that
    /// `Failed` stays failed, its results saved).
    pub(super) fn finish(
        &mut self,
        id: &str,
        note: Option<Note>,
        progress: OnBoard<'_>,
    ) -> Result<(), Error> {
        let (machine, action) = self.actions[id].clone();
        if self
            .packages
            .get(&machine)
            .is_some_and(|p| p.stage.is_final())
        {
            return Ok(());
        }
        let saved = self.packages.get(&machine).map_or(0, |p| {
            p.results.iter().filter(|r| r.record.is_some()).count()
        });
        match (note, &action.status) {
            (Some(note), _) => self.set(&machine, Some(id), Stage::Saved, note, progress),
            (None, Some(status @ MachineActionStatus::Failed)) => {
                let why = format!(
                    "{}; saved {saved} result(s)",
                    ended(self.evidence, &action, status)
                );
                let note = Note {
                    status: Some(status.clone()),
                    ..Note::says(why)
                };
                self.set(&machine, Some(id), Stage::Failed, note, progress)
            }
            (None, status) => {
                let note = Note {
                    status: status.clone(),
                    ..Note::says(format!("{saved} result(s)"))
                };
                self.set(&machine, Some(id), Stage::Saved, note, progress)
            }
        }
    }
}

/// Why an action ended without evidence: its status, and for a session the command that
/// failed (the ones after it never ran) or the queue it timed out in.
pub(super) fn ended(
    evidence: Evidence,
    action: &MachineAction,
    status: &MachineActionStatus,
) -> String {
    let noun = evidence.action_noun();
    let failed = action
        .commands
        .iter()
        .flatten()
        .find(|c| c.command_status == Some(LiveResponseCommandStatus::Failed));
    match (status, failed) {
        (MachineActionStatus::Failed, Some(command)) => {
            let row = CommandResult::of(command);
            format!(
                "the {noun} ended Failed: command {} ({}) failed: {}; the commands after it were not run",
                row.index,
                row.command,
                row.errors.unwrap_or_default()
            )
        }
        (MachineActionStatus::TimeOut, _) if evidence == Evidence::LiveResponse => format!(
            "the {noun} ended TimeOut: the device did not take it up within the 2 hours the service waits (offline?)"
        ),
        (status, _) => format!("the {noun} ended {status}"),
    }
}

/// The stage an action's status puts it at: a session that failed after some commands left
/// results is complete (they are saved; the machine then ends failed).
pub(super) fn stage_of(evidence: Evidence, action: &MachineAction) -> Stage {
    use MachineActionStatus as S;
    let results = || action.commands.iter().flatten().any(has_result);
    match action.status.as_ref() {
        Some(S::Pending) | None => Stage::Requested,
        Some(S::InProgress | S::Other(_)) => Stage::Collecting,
        Some(S::Succeeded) => Stage::Ready,
        Some(S::Failed) if evidence == Evidence::LiveResponse && results() => Stage::Ready,
        Some(S::Failed | S::TimeOut | S::Cancelled) => Stage::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mde_client::types::{LiveResponseCommand, LiveResponseCommandType};

    use MachineActionStatus as S;

    /// An event a machine's evidence goes through.
    #[derive(Clone, Debug)]
    enum Event {
        /// The request's answer: a new action at this status.
        Accepted(MachineActionStatus),
        /// The request failed: the service refused it.
        Refused,
        /// The action seen at a new status (a look at the actions).
        Seen(MachineActionStatus),
        /// A session that failed after a GetFile completed: its file is still saved.
        SeenFailedWithResult,
    }

    fn action(status: &MachineActionStatus, with_result: bool) -> MachineAction {
        let commands = with_result.then(|| {
            vec![LiveResponseCommandResult {
                command_status: Some(LiveResponseCommandStatus::Completed),
                command: Some(LiveResponseCommand {
                    type_: LiveResponseCommandType::GetFile,
                    params: Vec::new(),
                }),
                index: Some(0),
                ..Default::default()
            }]
        });
        MachineAction {
            id: Some("a1".into()),
            machine_id: Some("m1".into()),
            status: Some(status.clone()),
            commands,
            ..Default::default()
        }
    }

    /// The stage a machine reaches through `events`, and the journal's stage lines.
    fn through(evidence: Evidence, events: &[Event]) -> (Option<Stage>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(&dir.path().join("j.jsonl")).unwrap();
        // Never called: no event here sends a request.
        let client = Client::builder()
            .bearer_token("t")
            .base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        let settings = Settings {
            dir: dir.path(),
            interval: std::time::Duration::from_secs(60),
            parallel: 1,
        };
        let op = match evidence {
            Evidence::Package => OperationId::CollectInvestigationPackage,
            Evidence::LiveResponse => OperationId::RunLiveResponse,
        };
        let mut pipeline = Pipeline::new(&client, &journal, settings, op, 1).unwrap();
        let progress: &mut dyn FnMut(&Board, Option<&Package>) = &mut |_, _| {};
        for event in events {
            let result = match event {
                Event::Accepted(status) => {
                    let answer = Answer::of_action(op, action(status, false));
                    let outcome = Outcome {
                        machine: "m1".into(),
                        name: None,
                        kind: Kind::Accepted,
                        result: answer,
                        error: None,
                        earlier: false,
                        tenant: None,
                    };
                    pipeline.admit(outcome, progress)
                }
                Event::Refused => {
                    let outcome = Outcome {
                        machine: "m1".into(),
                        name: None,
                        kind: Kind::Failed,
                        result: None,
                        error: Some(ErrorInfo::new("InvalidRequest", "refused")),
                        earlier: false,
                        tenant: None,
                    };
                    pipeline.admit(outcome, progress)
                }
                Event::Seen(status) => pipeline.moved("m1".into(), action(status, false), progress),
                Event::SeenFailedWithResult => {
                    pipeline.moved("m1".into(), action(&S::Failed, true), progress)
                }
            };
            result.unwrap();
        }
        let stage = pipeline.packages.get("m1").map(|p| p.stage);
        let text = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
        let lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|l| l["stage"].as_str().map(str::to_string))
            .collect();
        (stage, lines)
    }

    /// A row: the kind of evidence, the events, the stage reached, the stages journaled.
    type Row<'a> = (Evidence, &'a [Event], Option<Stage>, &'a [&'a str]);

    #[test]
    fn each_stage_follows_from_the_last_and_each_change_is_journaled_once() {
        use Event::*;
        use Evidence::{LiveResponse, Package};
        #[rustfmt::skip]
        let table: [Row<'_>; 11] = [
            (Package, &[Accepted(S::Pending)], Some(Stage::Requested), &["requested"]),
            (Package, &[Accepted(S::Pending), Seen(S::InProgress)], Some(Stage::Collecting), &["requested", "collecting"]),
            // Seen twice at one status: one journal line.
            (Package, &[Accepted(S::InProgress), Seen(S::InProgress)], Some(Stage::Collecting), &["collecting"]),
            (Package, &[Accepted(S::Pending), Seen(S::Succeeded)], Some(Stage::Ready), &["requested", "ready"]),
            (Package, &[Accepted(S::Pending), Seen(S::Failed)], Some(Stage::Failed), &["requested", "failed"]),
            (Package, &[Accepted(S::Pending), Seen(S::TimeOut)], Some(Stage::Failed), &["requested", "failed"]),
            (Package, &[Accepted(S::InProgress), Seen(S::Cancelled)], Some(Stage::Failed), &["collecting", "failed"]),
            // A status the spec does not know yet: still collecting, never lost.
            (Package, &[Accepted(S::Pending), Seen(S::Other("Queued".into()))], Some(Stage::Collecting), &["requested", "collecting"]),
            (Package, &[Refused], Some(Stage::Failed), &["failed"]),
            // A session that failed after a file was fetched: the file is still saved.
            (LiveResponse, &[Accepted(S::Pending), SeenFailedWithResult], Some(Stage::Ready), &["requested", "ready"]),
            (LiveResponse, &[Accepted(S::Pending), Seen(S::Failed)], Some(Stage::Failed), &["requested", "failed"]),
        ];
        for (evidence, events, stage, journaled) in table {
            let (reached, lines) = through(evidence, events);
            assert_eq!(reached, stage, "{evidence:?} {events:?}");
            assert_eq!(lines, journaled, "{evidence:?} {events:?}");
        }
    }
}
