//! The records as the API shows them: an investigation, a machine action, a live response
//! result, and the fields OData filters read.

use super::*;

impl InvestigationRecord {
    /// The Investigation entity as of `now`.
    pub fn entity(&self, now: Duration) -> types::Investigation {
        let done = now >= self.started + self.lasts;
        types::Investigation {
            id: Some(self.id.to_string()),
            start_time: Some(Timestamp::from(self.started_utc)),
            end_time: done.then(|| Timestamp::from(utc_after(self.started_utc, self.lasts))),
            state: Some(if done {
                types::InvestigationState::Benign
            } else {
                types::InvestigationState::Running
            }),
            cancelled_by: None,
            status_details: None,
            machine_id: Some(self.machine_id.clone()),
            computer_dns_name: Some(self.computer.clone()),
            triggering_alert_id: None,
            extra: Default::default(),
        }
    }
}

impl ActionRecord {
    /// A new action of `kind` on a machine, as `asked`: `Pending` for `pickup` (at most its
    /// whole time), then `InProgress`, then `Succeeded` once `lasts` has passed; the callers
    /// set what else their type holds.
    pub(super) fn new(
        (id, machine_id, computer): (String, &str, String),
        asked: Asked<'_>,
        kind: types::MachineActionType,
        (pickup, lasts): (Duration, Duration),
    ) -> ActionRecord {
        ActionRecord {
            id,
            machine_id: machine_id.to_string(),
            computer,
            requestor: asked.requestor.to_string(),
            comment: asked.comment.to_string(),
            graph: false,
            kind,
            scope: None,
            sha1: None,
            created: asked.now,
            created_utc: asked.now_utc,
            pickup: pickup.min(lasts),
            lasts,
            outcome: types::MachineActionStatus::Succeeded,
            cancelled: None,
            stale: false,
            session: None,
        }
    }

    /// Still running at `now`: not final.
    pub fn in_progress(&self, now: Duration) -> bool {
        now < self.created + self.lasts && self.cancelled.as_ref().is_none_or(|c| now < c.at)
    }

    /// Whether its package can be downloaded at `now`: `delay` after it succeeded.
    pub fn package_ready(&self, now: Duration, delay: Duration) -> bool {
        self.status(now) == types::MachineActionStatus::Succeeded
            && now >= self.created + self.lasts + delay
    }

    /// The status at `now`.
    pub fn status(&self, now: Duration) -> types::MachineActionStatus {
        use types::MachineActionStatus as Status;
        match &self.cancelled {
            Some(c) if now >= c.at => Status::Cancelled,
            _ if now < self.created + self.pickup => Status::Pending,
            _ if now < self.created + self.lasts => Status::InProgress,
            _ => self.outcome.clone(),
        }
    }

    /// The MachineAction entity as of `now`: the current generation, or the older one the
    /// deprecated Graph endpoint answers (`lastUpdateTimeUtc`, `error`).
    pub fn entity(&self, now: Duration, base_url: &str) -> types::MachineAction {
        let status = self.status(now);
        let cancelled = self.cancelled.as_ref().filter(|c| now >= c.at);
        let updated = Timestamp::from(match (&status, cancelled) {
            (_, Some(c)) => c.at_utc,
            (
                types::MachineActionStatus::Succeeded
                | types::MachineActionStatus::Failed
                | types::MachineActionStatus::TimeOut,
                None,
            ) => utc_after(self.created_utc, self.lasts),
            _ => self.created_utc,
        });
        let mut action = types::MachineAction {
            id: Some(self.id.clone()),
            type_: Some(self.kind.clone()),
            // As the list page's examples show it: the scan's type, null for a collection;
            // an isolation's type (machineaction.md: `Full` or `Selective` for isolation).
            scope: self.scope.clone(),
            related_file_info: self.sha1.as_ref().map(|sha1| types::RelatedFileInfo {
                file_identifier: Some(sha1.clone()),
                file_identifier_type: Some(types::FileIdentifierType::Sha1),
                extra: Default::default(),
            }),
            requestor: Some(self.requestor.clone()),
            requestor_comment: Some(self.comment.clone()),
            status: Some(status),
            machine_id: Some(self.machine_id.clone()),
            creation_date_time_utc: Some(Timestamp::from(self.created_utc)),
            cancellation_requestor: cancelled.map(|c| c.requestor.clone()),
            cancellation_comment: cancelled.map(|c| c.comment.clone()),
            cancellation_date_time_utc: cancelled.map(|c| Timestamp::from(c.at_utc)),
            ..Default::default()
        };
        if self.session.is_some() {
            action.commands = Some(self.command_results(now));
        }
        if self.graph {
            action.odata_context = Some(format!(
                "{base_url}/testwdatppreview/$metadata#MachineActions/$entity"
            ));
            action.error = Some("None".into());
            action.last_update_time_utc = Some(updated);
        } else {
            action.odata_context = Some(format!("{base_url}/api/$metadata#MachineActions/$entity"));
            action.computer_dns_name = Some(self.computer.clone());
            action.request_source = Some("PublicApi".into());
            action.error_h_result = Some(0);
            action.last_update_date_time_utc = Some(updated);
        }
        action
    }
}

impl ActionRecord {
    /// The result of a live response session's command `index` once it completed: a
    /// RunScript's transcript, a GetFile's file; a PutFile has none (run-live-response.md).
    /// The 404 otherwise. Both are made from the command and the machine alone (and the
    /// seed): the same session on another run gives the same bytes.
    pub fn result(
        &self,
        index: usize,
        now: Duration,
        config: &crate::Config,
    ) -> Result<(Vec<u8>, &'static str), ApiError> {
        use types::LiveResponseCommandType as Type;
        let missing =
            |why: &str| ApiError::not_found(format!("No result of command {index}: {why}"));
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| missing("the action is not a live response session"))?;
        let command = session
            .commands
            .get(index)
            .ok_or_else(|| missing("the action has no such command"))?;
        let completed = self.command_results(now)[index].command_status
            == Some(types::LiveResponseCommandStatus::Completed);
        if !completed {
            return Err(missing("it has not completed"));
        }
        let param = |key: &str| command.param(key).unwrap_or_default().to_string();
        let machine = self.machine_id.as_str();
        match &command.type_ {
            Type::RunScript => {
                let (script, args) = (param("ScriptName"), param("Args"));
                let dice = |what: &str| {
                    crate::package::dice(config.seed, &[what, machine, &script, &args])
                };
                let failed = dice("exit") < config.nonzero_exits;
                let transcript_id =
                    crate::package::fnv1a(config.seed, format!("{machine}{script}{args}").bytes());
                // Real transcripts end in NULs, as the page's example does; how many is
                // the dice's.
                let nuls = "\u{0}".repeat(1 + (dice("nul") * 4.0) as usize);
                let transcript = types::RunScriptTranscript {
                    script_name: Some(script.clone()),
                    exit_code: Some(if failed { 1 } else { 0 }),
                    script_output: Some(format!(
                        "Transcript started, output file is C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Temp\\PSScriptOutputs\\PSScript_Transcript_{transcript_id:016X}.txt\n{} ran {script} {args}\n{nuls}",
                        self.computer,
                    )),
                    script_errors: Some(if failed {
                        format!("{script} : the script failed on {}\n", self.computer)
                    } else {
                        String::new()
                    }),
                    extra: Default::default(),
                };
                let json = serde_json::to_vec(&transcript)
                    .map_err(|e| ApiError::invalid_body(e.to_string()))?;
                Ok((json, "application/json"))
            }
            Type::GetFile => Ok((
                device_file(&param("Path"), &self.computer, config.live_file_size),
                "application/octet-stream",
            )),
            Type::PutFile | Type::Other(_) => Err(missing("a PutFile command has no result")),
        }
    }

    /// A live response session's commands as of `now`: `Created` until each has run its time
    /// after the pickup, then `Completed` (or `Failed`, with its error) with its start and
    /// end; the commands after a failed one, and every command of a session that timed out
    /// in the queue, stay `Created`; a cancelled session's commands stop where they were.
    fn command_results(&self, now: Duration) -> Vec<types::LiveResponseCommandResult> {
        let Some(session) = &self.session else {
            return Vec::new();
        };
        let stop = self.cancelled.as_ref().map_or(now, |c| now.min(c.at));
        let at = |d: Duration| Timestamp::from(utc_after(self.created_utc, d - self.created));
        let failed_at = session.failure.as_ref().map(|(i, _)| *i);
        (0..session.commands.len())
            .map(|i| {
                let start = self.created + self.pickup + session.command_time * i as u32;
                let end = start + session.command_time;
                let runs = !session.offline && failed_at.is_none_or(|f| i <= f);
                let (started, done) = (runs && stop >= start, runs && stop >= end);
                let failure = session.failure.as_ref().filter(|(f, _)| done && *f == i);
                types::LiveResponseCommandResult {
                    index: Some(i as i32),
                    start_time: started.then(|| at(start)),
                    end_time: done.then(|| at(end)),
                    command_status: Some(match (done, failure) {
                        (true, Some(_)) => types::LiveResponseCommandStatus::Failed,
                        (true, None) => types::LiveResponseCommandStatus::Completed,
                        (false, _) => types::LiveResponseCommandStatus::Created,
                    }),
                    errors: Some(
                        failure
                            .map(|(_, why)| why.clone().into())
                            .into_iter()
                            .collect(),
                    ),
                    command: Some(session.commands[i].clone()),
                    extra: Default::default(),
                }
            })
            .collect()
    }
}

/// The content of a file on a device: `size` bytes made of its path and the machine, the
/// same every time.
fn device_file(path: &str, computer: &str, size: u64) -> Vec<u8> {
    let mut content = Vec::with_capacity(size as usize);
    let mut line = 0u64;
    while (content.len() as u64) < size {
        content.extend_from_slice(format!("{path} on {computer}, line {line}\n").as_bytes());
        line += 1;
    }
    content.truncate(size as usize);
    content
}

/// A machine action as `$filter` reads it, at one moment of the simulator's clock.
pub struct ActionAt<'a> {
    /// The action.
    pub action: &'a ActionRecord,
    /// The moment.
    pub now: Duration,
}

impl crate::odata::Filterable for ActionAt<'_> {
    // The properties get-machineactions-collection.md names.
    fn kind(name: &str) -> Option<crate::odata::Kind> {
        use crate::odata::Kind;
        match name.to_ascii_lowercase().as_str() {
            "id" | "status" | "machineid" | "type" | "requestor" => Some(Kind::Text),
            "creationdatetimeutc" => Some(Kind::Time),
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<crate::odata::Field> {
        use crate::odata::Field;
        let a = self.action;
        let text = |t: &str| Some(Field::Text(t.to_string()));
        match name.to_ascii_lowercase().as_str() {
            "id" => text(&a.id),
            "status" => text(a.status(self.now).as_str()),
            "machineid" => text(&a.machine_id),
            "type" => text(a.kind.as_str()),
            "requestor" => text(&a.requestor),
            "creationdatetimeutc" => Some(Field::Time(a.created_utc)),
            _ => None,
        }
    }
}
