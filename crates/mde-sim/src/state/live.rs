//! Live response sessions: started, queued, run command by command, failed as devices fail.

use super::*;

impl Records {
    /// Starts a live response session: its commands run one after the other, each
    /// `command_time`, once the device picks the session up. One session runs on a device at a
    /// time (a second is the 400 `ActiveRequestAlreadyExists`, "Action is already in
    /// progress", #5908), and at most [`SESSIONS`] at once (more is a 429 until one ends).
    pub fn live_response(
        &mut self,
        machine_id: &str,
        asked: Asked<'_>,
        commands: Vec<types::LiveResponseCommand>,
        config: &crate::Config,
    ) -> Result<ActionRecord, ApiError> {
        let now = asked.now;
        let computer = self.known(machine_id)?;
        let unmanaged = self.inventory.all().iter().take(config.no_automation);
        if unmanaged.into_iter().any(|m| m.id == machine_id) {
            // #6054, word for word.
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "DisallowedOperation",
                "This device has no automation level assigned to it. You'll need to at least enable the minimum Remediation Level for a given Device Group.",
            ));
        }
        let kind = types::MachineActionType::LiveResponse;
        let running: Vec<&ActionRecord> = self
            .actions
            .iter()
            .filter(|a| a.kind == kind && a.in_progress(now))
            .collect();
        if running.iter().any(|a| a.machine_id == machine_id) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ActiveRequestAlreadyExists",
                "Action is already in progress",
            ));
        }
        if running.len() >= SESSIONS {
            let first_end = running.iter().map(|a| a.created + a.lasts).min();
            let wait = first_end.map_or(Duration::from_secs(1), |end| end.saturating_sub(now));
            return Err(ApiError::too_many_requests(wait));
        }
        // What each command will do, decided now: the library as it is, the seeded dice.
        let failure = commands.iter().enumerate().find_map(|(i, command)| {
            self.command_failure(machine_id, command, config)
                .map(|why| (i, why))
        });
        let offline = crate::package::dice(config.seed, &["offline", machine_id]) < config.offline;
        let (pickup, lasts, outcome) = if offline {
            // Queued for a device that never comes back within the 2 hours.
            (
                SESSION_QUEUE,
                SESSION_QUEUE,
                types::MachineActionStatus::TimeOut,
            )
        } else {
            let run = failure.as_ref().map_or(commands.len(), |(i, _)| i + 1);
            let outcome = match failure {
                Some(_) => types::MachineActionStatus::Failed,
                None => types::MachineActionStatus::Succeeded,
            };
            let pickup = config.pickup_time;
            (pickup, pickup + config.command_time * run as u32, outcome)
        };
        let id = uuid::Uuid::new_v4().to_string();
        let record = ActionRecord {
            outcome,
            session: Some(Session {
                commands,
                command_time: config.command_time,
                failure: if offline { None } else { failure },
                offline,
            }),
            ..ActionRecord::new((id, machine_id, computer), asked, kind, (pickup, lasts))
        };
        self.actions.push(record.clone());
        Ok(record)
    }

    /// Why `command` fails on the machine, if it does: a library file that is not in the
    /// library, or a GetFile of a path that does not exist there (a seeded share of paths).
    fn command_failure(
        &self,
        machine_id: &str,
        command: &types::LiveResponseCommand,
        config: &crate::Config,
    ) -> Option<String> {
        use types::LiveResponseCommandType as Type;
        match &command.type_ {
            Type::PutFile | Type::RunScript => {
                let key = if command.type_ == Type::PutFile {
                    "FileName"
                } else {
                    "ScriptName"
                };
                let name = command.param(key).unwrap_or_default();
                if !self.library.has(name) {
                    Some(format!(
                        "The file {name} was not found in the live response library"
                    ))
                } else if command.type_ == Type::RunScript && config.command_time > SCRIPT_TIMEOUT {
                    // "RunScript command time-outs after 10 minutes" (run-live-response.md).
                    Some(format!("The script {name} timed out after 10 minutes"))
                } else {
                    None
                }
            }
            Type::GetFile => {
                let path = command.param("Path").unwrap_or_default();
                (crate::package::dice(config.seed, &["missing", machine_id, path])
                    < config.missing_files)
                    .then(|| format!("File {path} does not exist on the device"))
            }
            Type::Other(_) => None,
        }
    }
}
