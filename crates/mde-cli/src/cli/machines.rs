//! The machines of a run and how it runs: the selectors, the confirmation, the journal and
//! `--resume`, `--wait`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// The machines and the comment.
#[derive(Clone, Debug, Args)]
pub struct Targets {
    /// Machine ids (40 or 32 hex characters). Give names with --machine-name instead.
    #[arg(value_name = "MACHINE_ID")]
    pub machines: Vec<String>,
    /// More machine ids, one a line (`#` comments and blank lines ignored; `-` reads stdin).
    #[arg(long, value_name = "FILE")]
    pub machines_file: Option<PathBuf>,
    /// A machine by name (repeatable): its fully qualified name, or the first label of it
    /// (ws-0001 for ws-0001.contoso.com), without regard to case.
    #[arg(long = "machine-name", value_name = "NAME")]
    pub names: Vec<String>,
    /// More machine names, one a line (`#` comments and blank lines ignored; `-` reads stdin).
    #[arg(long, value_name = "FILE")]
    pub names_file: Option<PathBuf>,
    /// Where several machines have a name (a re-imaged device): act on the one seen last,
    /// instead of refusing the name and listing them.
    #[arg(long, value_enum, value_name = "WHICH")]
    pub pick: Option<Pick>,
    /// The machines that carry this tag (findMachinesByTag, one call; without regard to
    /// case), besides those given otherwise.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// With --tag: the machines with a tag that starts with it.
    #[arg(long, requires = "tag")]
    pub tag_prefix: bool,
    /// The machines an advanced hunting query finds (QUERY, or @FILE), besides those given
    /// otherwise: run once, on Microsoft Graph over the 30 days the service keeps; the query,
    /// its window, when it ran and its machines are journaled, and --resume acts on the same
    /// machines without running it again.
    #[arg(long, value_name = "QUERY|@FILE", value_parser = hunt_query)]
    pub from_hunt: Option<String>,
    /// With --from-hunt: the column of the answer that holds the machines: ids (DeviceId), or
    /// names (DeviceName, resolved as --machine-name is).
    #[arg(long, value_name = "COLUMN", default_value = "DeviceId")]
    pub id_column: String,
    /// With --from-hunt: exit 1 when the hunt finds no machine (by default nothing is sent,
    /// the run says so, and exits 0).
    #[arg(long, requires = "from_hunt")]
    pub fail_empty: bool,
    #[command(flatten)]
    pub confirm: Confirm,
    #[command(flatten)]
    pub journaling: Journaling,
    /// Cancel a pending opposite action first (set by the containment commands' flag).
    #[arg(skip)]
    pub cancel_pending: bool,
    /// Send without reading the pending actions first (set by the containment commands' flag).
    #[arg(skip)]
    pub skip_pending_check: bool,
    /// Send where the action is in effect already (set by the containment commands' flag).
    #[arg(skip)]
    pub again: bool,
}

/// `--from-hunt`'s query: the text, or the text of the file after `@` (UTF-8, a byte-order
/// mark dropped); never empty.
fn hunt_query(text: &str) -> Result<String, String> {
    let query = match text.strip_prefix('@') {
        Some(file) => crate::targets::read_text(std::path::Path::new(file))?,
        None => text.to_string(),
    };
    match query.trim().is_empty() {
        true => Err("the query is empty".into()),
        false => Ok(query),
    }
}

/// The machines of a containment command (isolate, release, restrict, unrestrict), read
/// for the duplicate-action race before anything is sent.
#[derive(Clone, Debug, Args)]
pub struct ContainmentTargets {
    #[command(flatten)]
    pub targets: Targets,
    /// Where the opposite action is pending (a release while an isolation is), cancel it
    /// first and wait for the cancellation, instead of reporting a conflict.
    #[arg(long, conflicts_with = "skip_pending_check")]
    pub cancel_pending: bool,
    /// Send without first reading the tenant's pending actions (for an app without
    /// Machine.Read.All). The risk: a duplicate or opposite action still pending is not seen,
    /// and one that completes after this run's can undo it (#5903).
    #[arg(long)]
    pub skip_pending_check: bool,
    /// Send also to machines where the action is in effect already (isolated, for an
    /// isolate), which are otherwise reported already_in_effect and not sent: a duplicate is
    /// how a stale isolation starts (#5903).
    #[arg(long)]
    pub again: bool,
    #[command(flatten)]
    pub wait: Wait,
}

impl Targets {
    /// The "machines" of `action cancel`: action ids, with the run's confirmation and journal.
    pub fn of_actions(ids: &[String], confirm: &Confirm, journaling: &Journaling) -> Targets {
        Targets {
            machines: ids.to_vec(),
            machines_file: None,
            names: Vec::new(),
            names_file: None,
            pick: None,
            tag: None,
            tag_prefix: false,
            from_hunt: None,
            id_column: String::new(),
            fail_empty: false,
            confirm: confirm.clone(),
            journaling: journaling.clone(),
            cancel_pending: false,
            skip_pending_check: false,
            again: false,
        }
    }
}

impl ContainmentTargets {
    /// The machines, with whether to cancel a pending opposite action first.
    pub fn targets(&self) -> Targets {
        Targets {
            cancel_pending: self.cancel_pending,
            skip_pending_check: self.skip_pending_check,
            again: self.again,
            ..self.targets.clone()
        }
    }
}

/// Following each action of a run to its final status.
#[derive(Clone, Copy, Debug, Args)]
pub struct Wait {
    /// Follow every action to its final status (one listMachineActions call per
    /// --poll-interval for the whole fleet); exit 0 only when every one Succeeded.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: seconds between two looks at every action of the run.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, requires = "wait", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub poll_interval: u64,
}

impl Wait {
    /// The interval between two looks, when waiting.
    pub fn every(&self) -> Option<std::time::Duration> {
        self.wait
            .then(|| std::time::Duration::from_secs(self.poll_interval))
    }
}

/// Which machine of several with one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pick {
    /// The one whose last full report (`lastSeen`) is the newest.
    Latest,
}

/// Seeing an action before it is done.
#[derive(Clone, Debug, Args)]
pub struct Confirm {
    /// Resolve the names and print what would be sent (each machine, the operation, the
    /// comment, the number of requests and the shortest time the documented limits allow),
    /// sending no action.
    #[arg(long)]
    pub dry_run: bool,
    /// Act on more than 10 machines without asking (needed when stdin is not a terminal;
    /// `--simulate` never asks).
    #[arg(long)]
    pub yes: bool,
}

/// The help heading of the journal's options.
const JOURNAL: &str = "Journal and resume";

/// The journal of a run, and resuming one.
#[derive(Clone, Debug, Args)]
pub struct Journaling {
    /// The journal to write, a new file (default: `mde-journal-TIME-PID.jsonl` here).
    #[arg(long, value_name = "FILE", conflicts_with = "resume", help_heading = JOURNAL)]
    pub journal: Option<PathBuf>,
    /// Carry on the run this journal records, with the same command: machines it shows as
    /// done are not sent again; a command that differs (request, tenant, host, machines) is
    /// refused.
    #[arg(long, value_name = "JOURNAL", help_heading = JOURNAL)]
    pub resume: Option<PathBuf>,
    /// With --resume, send again to machines whose outcome is unknown (sent, no answer): a
    /// second action may start on them.
    #[arg(long, requires = "resume", help_heading = JOURNAL)]
    pub retry_unknown: bool,
    /// With --resume, send again to machines whose earlier answer was a failure (not to those
    /// where the action was already running); with --download, also ask for a new
    /// collection where one ended Failed or TimeOut.
    #[arg(long, requires = "resume", help_heading = JOURNAL)]
    pub retry_failed: bool,
}
