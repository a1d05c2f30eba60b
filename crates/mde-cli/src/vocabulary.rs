//! The vocabulary every layer of `mde` speaks, at the bottom of its layers: how a machine
//! fared ([`Kind`], [`Outcome`], [`ErrorInfo`]), where its evidence is ([`Stage`]), a machine
//! a name may mean ([`Candidate`]), the output formats, the exit codes, and the few text
//! helpers every layer writes with. It imports nothing of `mde`'s own.

use clap::ValueEnum;
use mde_client::operations::Answer;
use mde_client::{Error, Timestamp};
use serde::{Deserialize, Serialize};

/// Every machine succeeded.
pub const OK: u8 = 0;
/// Some machines did not succeed (or were not sent to).
pub const PARTIAL: u8 = 1;
/// The command line or an input file is wrong.
pub const USAGE: u8 = 2;
/// Credentials, permission or configuration: nothing can succeed until they are fixed.
pub const AUTH: u8 = 3;
/// Stopped on a local fault: the journal or the evidence folder could not be written (a full
/// disk, a read-only folder). The requests in flight were answered and shown; resume once
/// fixed.
pub const LOCAL: u8 = 4;
/// Stopped by Ctrl-C (SIGINT).
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM, what SOAR runners, systemd and `kill` send.
pub const TERMINATED: u8 = 143;

pub(crate) fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("mde: {message}");
    code
}

/// Ends a command on `e`: its exit code, and `what` went wrong with the error's chain.
pub(crate) fn failed(what: &str) -> impl Fn(Error) -> u8 + '_ {
    move |e| fail(code_of(&e), format!("{what}: {}", error_text(&e)))
}

/// The exit code of an error that ends a command: 3 for what holds for every call.
pub(crate) fn code_of(e: &Error) -> u8 {
    if holds_for_every_call(e) {
        AUTH
    } else {
        PARTIAL
    }
}

/// Whether an error holds for every machine (credentials, permission, configuration): the run
/// stops, and the command exits 3.
pub fn holds_for_every_call(e: &Error) -> bool {
    matches!(
        e,
        Error::Authentication(_) | Error::Permission { .. } | Error::Configuration(_)
    )
}

/// How a machine fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The service accepted the request: the action was created (it is `Pending`).
    Accepted,
    /// Followed (`--wait`): the action ended `Succeeded`.
    Succeeded,
    /// Followed: the action ended `Cancelled`.
    Cancelled,
    /// Followed: the action ended `TimeOut` (a device that never picked it up).
    TimedOut,
    /// Followed: the action had not ended when the wait did (interrupted, or its status
    /// could no longer be read).
    StillRunning,
    /// The same kind of action was already running there.
    AlreadyRunning,
    /// The containment asked for is in effect already (the machine is isolated): not sent
    /// (`--again` sends it).
    AlreadyInEffect,
    /// The service does not know the machine (or no machine has the name).
    NotFound,
    /// Several machines have the name given (see `--pick`).
    Ambiguous,
    /// The opposite action is pending on the machine (a release while an isolation is):
    /// not sent, see `--cancel-pending`.
    Conflict,
    /// The pending opposite action on the machine, cancelled before this run's request
    /// (`--cancel-pending`): a line of its own beside the machine's outcome.
    CancelledPending,
    /// The service answered with a failure (or, followed, the action ended `Failed`).
    Failed,
    /// Sent, and no answer says what came of it (a timeout, a dropped connection, a 5xx, or
    /// an earlier run that ended before the answer): the action may or may not exist.
    Unknown,
    /// The request never reached the service (no connection, no token, a refusal that
    /// holds for every machine): sent again on resume.
    NotSent,
}

impl Kind {
    /// Whether the machine needs nothing more from this run, though nothing was sent: the
    /// containment asked for is in effect already, or the line tells of a cancellation made
    /// first. Neither counts against the exit code.
    pub fn is_done_before(self) -> bool {
        matches!(self, Kind::AlreadyInEffect | Kind::CancelledPending)
    }

    /// The name used in the journal and the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Accepted => "accepted",
            Kind::CancelledPending => "cancelled_pending",
            Kind::Succeeded => "succeeded",
            Kind::Cancelled => "cancelled",
            Kind::TimedOut => "timed_out",
            Kind::StillRunning => "still_running",
            Kind::AlreadyRunning => "already_running",
            Kind::AlreadyInEffect => "already_in_effect",
            Kind::NotFound => "not_found",
            Kind::Ambiguous => "ambiguous",
            Kind::Conflict => "conflict",
            Kind::Failed => "failed",
            Kind::Unknown => "unknown",
            Kind::NotSent => "not_sent",
        }
    }
}

/// One machine's outcome, as the journal records it and the JSON output writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The machine id (the name as given, for a name that came to no single machine).
    pub machine: String,
    /// The machine's fully qualified name, when it was given by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How it fared (`outcome` in the journal and the JSON lines).
    #[serde(rename = "outcome")]
    pub kind: Kind,
    /// The service's answer, tagged with its operation, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Answer>,
    /// What went wrong, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Recorded by an earlier run (resumed), not sent now.
    #[serde(default)]
    pub earlier: bool,
    /// The profile whose tenant the machine is in, in a run of several profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl Outcome {
    /// The action the request created or found running, if any.
    pub fn action(&self) -> Option<&mde_client::types::MachineAction> {
        self.result.as_ref()?.machine_action()
    }
}

/// Where a listing of actions starts so that it holds every one of `created` (their creation
/// times): the oldest, or a day back when one has none (or there are none).
pub(crate) fn listed_since<'a>(
    created: impl IntoIterator<Item = Option<&'a Timestamp>>,
) -> chrono::DateTime<chrono::Utc> {
    let day_back = || chrono::Utc::now() - chrono::Duration::days(1);
    created
        .into_iter()
        .map(|t| t.map(Timestamp::instant))
        .min()
        .flatten()
        .unwrap_or_else(day_back)
}

/// A text value in an OData `$filter`: in single quotes, a quote in it doubled.
pub(crate) fn odata_text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// What went wrong, as a program matches on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The service's error code (`ResourceNotFound`, `ActiveRequestAlreadyExists`), or what
    /// kind of failure it was when the service said nothing (`transport`, `timeout`,
    /// `authentication`, `not_found`, `ambiguous`, `failed`, ...).
    pub code: String,
    /// The whole message, its cause first.
    pub message: String,
    /// The correlation id to quote to Microsoft support (the error's `target`).
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl ErrorInfo {
    /// An error of mde's own.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            code: code.to_string(),
            message: message.into(),
            correlation_id: None,
        }
    }

    /// A client error: the service's code when it gave one.
    pub fn of(e: &Error) -> ErrorInfo {
        let code = match e.service_error() {
            Some(service) => service.code.clone(),
            None => match e {
                Error::InvalidInput(_) => "invalid_input",
                Error::Configuration(_) => "configuration",
                Error::Transport { timeout: true, .. } => "timeout",
                Error::Transport { .. } => "transport",
                Error::Authentication(_) => "authentication",
                Error::AlreadyPending(_) => "already_pending",
                Error::RateLimited { .. } => "rate_limited",
                Error::Io { .. } => "io",
                Error::Download(_) => "download",
                Error::UnexpectedResponse { .. } => "unexpected_response",
                _ => "error",
            }
            .to_string(),
        };
        ErrorInfo {
            code,
            message: error_text(e),
            correlation_id: e.correlation_id().map(str::to_string),
        }
    }
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Where a machine's evidence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The collection was asked for; the device has not picked it up (`Pending`).
    Requested,
    /// The device is collecting (`InProgress`, or a status the spec does not know).
    Collecting,
    /// The package is complete, waiting for its link.
    Ready,
    /// The link was given; the package is on its way.
    Downloading,
    /// Saved, verified and recorded in the manifest.
    Saved,
    /// The collection or the download failed.
    Failed,
}

impl Stage {
    /// Every stage, in the order a package goes through them.
    pub const ALL: [Stage; 6] = [
        Stage::Requested,
        Stage::Collecting,
        Stage::Ready,
        Stage::Downloading,
        Stage::Saved,
        Stage::Failed,
    ];

    /// Its name in the journal, the output and on the progress bar.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Requested => "requested",
            Stage::Collecting => "collecting",
            Stage::Ready => "ready",
            Stage::Downloading => "downloading",
            Stage::Saved => "saved",
            Stage::Failed => "failed",
        }
    }

    pub(crate) fn is_final(self) -> bool {
        matches!(self, Stage::Saved | Stage::Failed)
    }
}

/// A run's hunt (`--from-hunt`) as it ran: journaled with the machines it found, so that a
/// resume acts on them and never runs it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuntRecord {
    /// The query, as sent.
    pub query: String,
    /// The column its machines were read from (`DeviceId`, or names in `DeviceName`).
    pub column: String,
    /// Its window, `[from, to)`, as sent.
    pub from: Timestamp,
    /// The window's end.
    pub to: Timestamp,
    /// When it ran, in UTC.
    pub ran: String,
    /// Rows answered.
    pub rows: u64,
    /// Queries sent (more than one when a capped answer was split).
    pub calls: u32,
}

/// A machine a name may mean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Its id.
    pub id: String,
    /// Its fully qualified name.
    pub name: String,
    /// When it last sent a full report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

impl Candidate {
    /// `id (name, last seen …, Active)`, for the ambiguity error.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, last seen {}, {})",
            self.id,
            self.name,
            self.last_seen.as_ref().map_or("never", Timestamp::as_str),
            self.health.as_deref().unwrap_or("health unknown")
        )
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table for people.
    Table,
    /// One JSON object per machine, a line each.
    Json,
    /// One CSV row per machine after a header (machine, name, action_id, status, outcome,
    /// error_code, error_message, correlation_id), for a ticket or a spreadsheet.
    Csv,
}

/// Why a call waits, for people.
pub fn wait_reason(reason: mde_client::WaitReason) -> &'static str {
    use mde_client::WaitReason;
    match reason {
        WaitReason::RateLimit => "the documented rate limit",
        WaitReason::RetryAfter => "the service's Retry-After",
        WaitReason::Backoff => "a retry",
        WaitReason::SessionLimit => "a live response session to end (50 run at once)",
        WaitReason::TenantQuota => "the tenant's hunting quota (the service's 429)",
    }
}

/// `text` with its control characters escaped (`\u{1b}`), so that an id or a name cannot
/// move the cursor, set the terminal's title or hide what follows.
pub fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An error as a person acts on it: the deepest cause first ("Connection refused", "No space
/// left on device"), then what failed with the causes between; nothing cut, the correlation
/// id whole; control characters escaped.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    let root = chain.pop().unwrap_or_default();
    // What failed, each step once, without the cause it repeats.
    let mut context: Vec<String> = Vec::new();
    for text in chain {
        let step = text.replace(&format!(": {root}"), "").replace(&root, "");
        let step = step.trim().trim_end_matches(':').trim().to_string();
        if !step.is_empty() && !context.iter().any(|known| known.contains(&step)) {
            context.push(step);
        }
    }
    let text = if context.is_empty() {
        root
    } else {
        format!("{root} — {}", context.join(": "))
    };
    escape(&text)
}

/// A duration for people: `8h 19m`, `4m 30s`, `12s`.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// The profile a machine is given with (`PROFILE,MACHINE`), and the machine.
pub(crate) fn qualified(item: &str) -> (Option<&str>, &str) {
    match item.split_once(',') {
        Some((profile, machine)) => (Some(profile), machine),
        None => (None, item),
    }
}
