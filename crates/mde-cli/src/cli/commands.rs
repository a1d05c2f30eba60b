//! The subcommands' own arguments, and their help texts.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::*;

#[derive(Clone, Debug, Subcommand)]
pub enum TagCommand {
    /// Adds the tag to each machine (once: a machine that has it keeps one).
    #[command(
        after_help = "Examples:\n  mde tag add \"test Tag 2\" 1e5bc9d7e413ddd7902c2932e418702b84d0cc07\n  mde tag add Contained --machine-name ws-0001\n  mde isolate --tag Contained --comment \"Contain the tagged machines\""
    )]
    Add(Tagging),
    /// Removes the tag from each machine.
    #[command(after_help = "Example:\n  mde tag remove Contained --tag Contained")]
    Remove(Tagging),
}

/// A live response run: the machines, the commands and why.
#[derive(Clone, Debug, Args)]
pub struct Live {
    #[command(flatten)]
    pub targets: Targets,
    /// Before the run, uploads FILE to the library (under its file name) when the library
    /// lacks it; a library file of that name with other content (perhaps a colleague's) is
    /// replaced only with --overwrite.
    #[arg(long, value_name = "FILE")]
    pub ensure_script: Option<PathBuf>,
    /// With --ensure-script: replace the library's file of that name when its content
    /// differs, keeping its description and parameters.
    #[arg(long, requires = "ensure_script")]
    pub overwrite: bool,
    /// Follow each session to its end and save every result here (a RunScript's transcript,
    /// a GetFile's file), verified, with its chain-of-custody record in DIR/manifest.jsonl
    /// (`mde package verify DIR` checks both kinds of evidence).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --out: links asked for or downloads running at once.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "out", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    #[command(flatten)]
    pub wait: Wait,
    #[command(flatten)]
    pub session: LiveSession,
    /// The --args of each --run (None where a --run has none), read from the command line's
    /// order by `parse`.
    #[arg(skip)]
    pub args_of_run: Vec<Option<String>>,
}

/// A live response session's commands and comment, sent to each machine.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Session (sent to each machine)")]
pub struct LiveSession {
    /// Puts a library file on each device (PutFile, no result); repeatable.
    #[arg(long = "put", value_name = "NAME")]
    pub put: Vec<String>,
    /// Runs a library script (RunScript, its transcript the result); repeatable, in order.
    #[arg(long = "run", value_name = "SCRIPT")]
    pub run: Vec<String>,
    /// The arguments of the --run just before it.
    #[arg(long = "args", value_name = "TEXT", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Collects a file from each device (GetFile); repeatable.
    #[arg(long = "get", value_name = "PATH")]
    pub get: Vec<String>,
    /// Why: the session's comment, shown in the portal.
    #[arg(long)]
    pub comment: String,
}

/// `mde profile`: the configuration file's profiles.
#[derive(Clone, Debug, Subcommand)]
pub enum ProfileCommand {
    /// Lists the profiles: name, tenant, app, sign-in, cloud, region, hosts.
    #[command(after_help = "Example:\n  mde profile list")]
    List,
    /// Shows one profile whole (the variable a secret is read from, never the secret).
    #[command(after_help = "Example:\n  mde profile show contoso -o json")]
    Show {
        /// The profile's name.
        name: String,
    },
}

/// `mde library`: the live response library.
#[derive(Clone, Debug, Subcommand)]
pub enum LibraryCommand {
    /// Lists the library's files.
    #[command(after_help = "Example:\n  mde library list -o json")]
    List,
    /// Uploads a file (20 MiB at most) under its file name, of letters, digits, hyphens,
    /// underscores and dots
    #[command(
        after_help = "Example:\n  mde library upload ./collect.ps1 --description \"Triage collector\" --parameters-description \"-Fast: skip the memory dump\" --overwrite"
    )]
    Upload {
        /// The file.
        file: PathBuf,
        /// What it is.
        #[arg(long)]
        description: Option<String>,
        /// What its arguments are (the script then takes arguments).
        #[arg(long, value_name = "TEXT")]
        parameters_description: Option<String>,
        /// Replace a library file of the same name.
        #[arg(long)]
        overwrite: bool,
    },
    /// Deletes a file by its name.
    #[command(after_help = "Example:\n  mde library delete collect.ps1")]
    Delete {
        /// The library file's name.
        name: String,
    },
}

/// A tag and the machines to add it to or remove it from.
#[derive(Clone, Debug, Args)]
pub struct Tagging {
    /// The tag (sent as the body's `Value`).
    #[arg(value_name = "TAG", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub value: String,
    #[command(flatten)]
    pub targets: Targets,
}

#[derive(Clone, Debug, Subcommand)]
pub enum InvestigationCommand {
    /// Starts an automated investigation on each machine.
    #[command(
        after_help = "Example:\n  mde investigation start 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Test investigation\""
    )]
    Start(Targets),
    /// Initiates an automated investigation on each machine (the preview operation).
    #[command(
        after_help = "Example:\n  mde investigation initiate fb9ab6be3965095a09c057be7c90f0a2 --comment \"Initiate an investigation\""
    )]
    Initiate(Targets),
}

/// Parsed once per run: the size of a variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Subcommand)]
pub enum PackageCommand {
    /// Collects the investigation package of each machine.
    #[command(
        after_help = "Examples:\n  mde package collect --machines-file fleet.txt --comment \"Collect forensics due to alert 1234\"\n  mde package collect --machines-file fleet.txt --comment \"Case 42\" --download evidence/\n\nWith --download, each machine goes through the stages requested, collecting, ready,\ndownloading, saved (or failed): one listMachineActions call per --poll-interval follows\nevery collection, and each package's link is asked for as soon as getPackageUri's\ndocumented limit allows (2 a minute, 120 an hour: 1,000 machines need at least 8.3\nhours). --resume continues each machine from its stage: no second collection, no\nsecond download of a verified package."
    )]
    Collect {
        #[command(flatten)]
        targets: Targets,
        /// Use the deprecated Graph endpoint (graph.microsoft.com/testwdatppreview).
        #[arg(long, conflicts_with = "download")]
        graph: bool,
        /// Follow each collection to its package and save it here, verified, with its
        /// chain-of-custody record in DIR/manifest.jsonl.
        #[arg(long, value_name = "DIR")]
        download: Option<PathBuf>,
        /// With --download: links asked for or downloads running at once.
        #[arg(long, value_name = "N", default_value_t = 4, requires = "download", value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: u16,
        /// With --download: seconds between two looks at every collection of the run (one
        /// listMachineActions call each, whatever the fleet size).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, requires = "download", value_parser = clap::value_parser!(u64).range(1..=3600))]
        poll_interval: u64,
    },
    /// Downloads the packages of completed collections, verified, with a chain-of-custody
    /// manifest (`DIR/manifest.jsonl`).
    #[command(
        after_help = "Example:\n  mde package download 69dc3630-1ccc-4342-acf3-35286eec741d --out evidence/\n\nEach package is saved as DIR/MACHINE_ACTION.zip (0600, in a 0700 folder), streamed,\nresumed with Range after a cut, hashed (SHA-256) and recorded in DIR/manifest.jsonl.\nA package the manifest already holds, verified, is not downloaded again; an existing\nfile is never overwritten.\n\nExit codes: 0 every package saved, 1 some not (not complete yet, failed), 2 usage,\n3 authentication, permission or configuration error."
    )]
    Download {
        /// Machine action ids of completed collections.
        #[arg(value_name = "ACTION_ID", required = true)]
        ids: Vec<String>,
        /// The evidence folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Re-hashes every package of an evidence folder against its manifest.
    #[command(
        after_help = "Example:\n  mde package verify evidence/\n\nExit codes: 0 every file as recorded, 1 a file missing or changed (or no manifest)."
    )]
    Verify {
        /// The evidence folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Clone, Debug, Subcommand)]
pub enum MachineCommand {
    /// Shows machines by id or by name: name, health, tags, and whether each is isolated or
    /// restricted now (its latest completed isolate or release, restrict or unrestrict) or
    /// becoming so (isolating, releasing, restricting, unrestricting: the action pending).
    #[command(
        after_help = "Examples:\n  mde machine show 1e5bc9d7e413ddd7902c2932e418702b84d0cc07\n  mde machine show --machine-name ws-0001"
    )]
    Show {
        /// Machine ids.
        #[arg(value_name = "MACHINE_ID", required_unless_present = "names")]
        ids: Vec<String>,
        /// Machine names (a short name or the fully qualified one), as every command takes
        /// them.
        #[arg(long = "machine-name", value_name = "NAME")]
        names: Vec<String>,
    },
    /// Lists the machines with their containment now: the service has no field for it, so it
    /// is read from the completed containment actions (one listMachineActions call a page).
    #[command(
        after_help = "Examples:\n  mde machine list --isolated\n  mde machine list --tag Contained --tag-prefix"
    )]
    List(MachineList),
}

#[derive(Clone, Debug, Subcommand)]
pub enum ActionCommand {
    /// Shows machine actions by id: type, machine, status, times.
    #[command(
        after_help = "Example:\n  mde action show 5382f7ea-7557-4ab7-9782-d50480024a4e --output json\n\nExit codes: 0 every action found, 1 some not found or failed, 3 authentication,\npermission or configuration error."
    )]
    Show {
        /// Machine action ids (GUIDs), as `package collect` prints them.
        #[arg(value_name = "ACTION_ID", required = true)]
        ids: Vec<String>,
    },
    /// Lists machine actions, newest first, with one filtered call.
    #[command(
        after_help = "Example:\n  mde action list --type CollectInvestigationPackage --status Succeeded --since 2026-11-01"
    )]
    List(ActionList),
    /// Cancels machine actions that are not final yet (prerelease operation).
    #[command(
        after_help = "Example:\n  mde action cancel 988cc94e-7a8f-4b28-ab65-54970c5d5018 --comment \"Machine action was canceled by automation\""
    )]
    Cancel {
        /// Machine action ids.
        #[arg(value_name = "ACTION_ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        confirm: Confirm,
        #[command(flatten)]
        journaling: Journaling,
    },
}

/// A time: a date (midnight UTC) or an RFC 3339 date-time, in UTC. Never sent as typed: the
/// filter (or the Timespan) writes it in one form.
pub(crate) fn time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| {
            format!("{text:?} is not a date (2026-11-01) or an RFC 3339 date-time (2026-11-01T08:00:00Z)")
        })
}

/// `mde machine list`: which machines to show.
#[derive(Clone, Debug, Args)]
pub struct MachineList {
    /// Only the machines isolated now, or with an isolation or release pending.
    #[arg(long)]
    pub isolated: bool,
    /// Only the machines whose applications are restricted now, or with a restriction or
    /// its undoing pending.
    #[arg(long)]
    pub restricted: bool,
    /// Only the machines with this tag (findMachinesByTag).
    #[arg(long, value_name = "TAG", conflicts_with = "health")]
    pub tag: Option<String>,
    /// With --tag: the machines with a tag that starts with it.
    #[arg(long, requires = "tag")]
    pub tag_prefix: bool,
    /// Only the machines of this health status, e.g. Active.
    #[arg(long, value_name = "STATUS")]
    pub health: Option<String>,
}

/// `mde action list`: which actions to show.
#[derive(Clone, Debug, Args)]
pub struct ActionList {
    /// Only the actions of this machine id.
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
    /// Only the actions of the machine with this name (see `mde scan --help`).
    #[arg(long = "machine-name", value_name = "NAME", conflicts_with = "machine")]
    pub name: Option<String>,
    /// With --machine-name: where several machines have the name, the one seen last.
    #[arg(long, value_enum, value_name = "WHICH", requires = "name")]
    pub pick: Option<Pick>,
    /// Only actions with this status: Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled.
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
    /// Only actions of this type, e.g. CollectInvestigationPackage.
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
    /// Only actions created at or after this time (2026-11-01, midnight UTC, or an RFC 3339
    /// date-time).
    #[arg(long, value_name = "TIME", value_parser = time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}
