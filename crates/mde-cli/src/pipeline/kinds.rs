//! What the pipeline saves and shows: the two kinds of evidence, each machine's package (or
//! session results) as it stands, and the board of stages.

use super::*;

/// What a run saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Evidence {
    /// A collection's investigation package.
    #[default]
    Package,
    /// The results of a live response session's commands.
    LiveResponse,
}

impl Evidence {
    /// What the run of `op` saves, when it saves anything.
    pub fn of(op: OperationId) -> Option<Evidence> {
        // The spec's `x-evidence`.
        Some(match op.facts().evidence? {
            mde_client::operations::Evidence::Package => Evidence::Package,
            mde_client::operations::Evidence::LiveResponseResults => Evidence::LiveResponse,
        })
    }

    /// The `type` of the actions it follows.
    pub(super) fn action_type(self) -> MachineActionType {
        match self {
            Evidence::Package => MachineActionType::CollectInvestigationPackage,
            Evidence::LiveResponse => MachineActionType::LiveResponse,
        }
    }

    /// The operation that gives its links (its limits set the pace).
    pub fn link_operation(self) -> OperationId {
        match self {
            Evidence::Package => OperationId::GetPackageUri,
            Evidence::LiveResponse => OperationId::GetLiveResponseResultDownloadLink,
        }
    }

    /// The action, for people.
    pub(super) fn action_noun(self) -> &'static str {
        match self {
            Evidence::Package => "collection",
            Evidence::LiveResponse => "session",
        }
    }

    /// A stage's name in the output and on the progress bar: a session is `queued`,
    /// `running`, `completed`, then `saving` its results.
    pub fn label(self, stage: Stage) -> &'static str {
        match (self, stage) {
            (Evidence::LiveResponse, Stage::Requested) => "queued",
            (Evidence::LiveResponse, Stage::Collecting) => "running",
            (Evidence::LiveResponse, Stage::Ready) => "completed",
            (Evidence::LiveResponse, Stage::Downloading) => "saving",
            (_, stage) => stage.as_str(),
        }
    }
}

/// A live response command as the run saw it, for the table and the JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandResult {
    /// Its index in the session.
    pub index: i32,
    /// What it was asked to do, e.g. `RunScript collect.ps1 -Fast`.
    pub command: String,
    /// Its `commandStatus`.
    pub status: String,
    /// Its errors, as the service wrote them.
    pub errors: Option<String>,
    /// A RunScript's exit code, once its transcript is saved.
    pub exit_code: Option<i32>,
    /// The first line of a RunScript's output, once its transcript is saved.
    pub output: Option<String>,
    /// The manifest's record of its result, once saved.
    pub record: Option<Record>,
}

impl CommandResult {
    pub(super) fn of(command: &LiveResponseCommandResult) -> CommandResult {
        let asked = command.command.as_ref().map_or(String::new(), |c| {
            let values: Vec<&str> = c.params.iter().map(|p| p.value.as_str()).collect();
            format!("{} {}", c.type_, values.join(" "))
        });
        let errors = command
            .errors
            .iter()
            .flatten()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect::<Vec<_>>();
        CommandResult {
            index: command.index.unwrap_or_default(),
            command: asked.trim().to_string(),
            status: command
                .command_status
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            errors: (!errors.is_empty()).then(|| errors.join("; ")),
            exit_code: None,
            output: None,
            record: None,
        }
    }
}

/// Whether a command left a result to save: a RunScript's transcript or a GetFile's file,
/// once `Completed` (a PutFile has none).
pub(super) fn has_result(command: &LiveResponseCommandResult) -> bool {
    use mde_client::types::LiveResponseCommandType as Type;
    command.command_status == Some(LiveResponseCommandStatus::Completed)
        && command
            .command
            .as_ref()
            .is_some_and(|c| matches!(c.type_, Type::RunScript | Type::GetFile))
}

/// One machine's evidence, as it ended (or stood when the run stopped).
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// What is saved.
    pub evidence: Evidence,
    /// A live response session's commands.
    pub results: Vec<CommandResult>,
    /// The machine id.
    pub machine: String,
    /// The machine's fully qualified name, when it was given by name.
    pub name: Option<String>,
    /// Its collection's machine action id, once there is one.
    pub action: Option<String>,
    /// Where it got to.
    pub stage: Stage,
    /// The collection's status as last seen.
    pub status: Option<MachineActionStatus>,
    /// The collection's status, or what went wrong, for people.
    pub detail: Option<String>,
    /// What went wrong, once failed.
    pub error: Option<ErrorInfo>,
    /// The manifest's record, once saved.
    pub record: Option<Record>,
    /// Saved by an earlier run (resumed), not downloaded now.
    pub earlier: bool,
    /// The profile whose tenant the machine is in, in a run of several profiles.
    pub tenant: Option<String>,
}

impl Package {
    /// Its line of JSON output: the outcome is the stage.
    pub fn line(&self) -> Line {
        let line = Line {
            machine: Some(self.machine.clone()),
            name: self.name.clone(),
            action_id: self.action.clone(),
            status: self.status.as_ref().map(ToString::to_string),
            error: self.error.clone(),
            ..Line::new(self.evidence.label(self.stage))
        }
        .with("earlier", self.earlier)
        .with("detail", &self.detail)
        .with_some("tenant", self.tenant.as_deref());
        match self.evidence {
            Evidence::Package => line.with("record", &self.record),
            Evidence::LiveResponse => line.with("commands", &self.results),
        }
    }
}

/// How many machines are at each stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Board {
    /// What is saved.
    pub evidence: Evidence,
    /// Machines in the run.
    pub total: usize,
    /// Machines at each stage, in the order of [`Stage::ALL`]; the rest are not requested yet.
    pub at: [usize; 6],
}

impl Board {
    /// Machines at `stage`.
    pub fn count(&self, stage: Stage) -> usize {
        self.at[stage as usize]
    }

    /// Links still to ask for: every machine not saved, failed or downloading.
    pub fn links_left(&self) -> usize {
        self.total
            - self.count(Stage::Saved)
            - self.count(Stage::Failed)
            - self.count(Stage::Downloading)
    }

    /// The shortest time the documented limits allow for what is left (the links' limit:
    /// getPackageUri's 2 a minute dominates a collection).
    pub fn shortest_left(&self) -> Duration {
        mde_client::minimum_duration(self.evidence.link_operation(), self.links_left())
    }
}
