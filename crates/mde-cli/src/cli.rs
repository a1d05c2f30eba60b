//! The command line.

use std::path::PathBuf;

use crate::vocabulary::Output;
use clap::builder::TypedValueParser;
use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use mde_client::operations::OperationId;
use mde_client::{Cloud, Region};

const EXAMPLES: &str = "\
Examples:
  # Try it with no tenant: an embedded simulator, an hour of rate limits a minute.
  mde --simulate package collect --machines-file fleet.txt --comment \"Collect forensics due to alert 1234\"

  # One device, credentials from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
  mde package collect fb9ab6be3965095a09c057be7c90f0a2 --comment \"Collect forensics\"

  # Carry on after a crash or Ctrl-C, skipping every machine already sent to.
  mde package collect --machines-file fleet.txt --comment \"...\" --resume mde-journal.jsonl

  # Machines by name; see what would be sent first.
  mde scan --type full --names-file names.txt --comment \"Alert 3212\" --dry-run

  # Several customers' tenants at once, a profile each; names.txt lines are PROFILE,NAME.
  mde --profile contoso --profile fabrikam isolate --names-file names.txt --comment \"Incident 42\"

Machines are given by id (arguments, --machines-file) or by name (--machine-name,
--names-file): a name is resolved with listMachines, once per run, and journaled. An action
on more than 10 machines asks first (--yes skips the question; without a terminal it is
needed).

Exit codes: 0 all succeeded (with --wait, every action Succeeded), 1 some machines did not
succeed (or the service looked unreachable, or --wait could not follow the actions to their
end), 2 usage error, 3 authentication, permission or configuration error (nothing is
journaled as failed), 4 a local fault (the journal or the evidence folder could not be
written: nothing more was sent; resume once fixed), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM).";

/// Collect investigation packages, run antivirus scans, isolate, restrict, quarantine and
/// offboard Microsoft Defender for Endpoint devices, by id or by name: one device or a fleet,
/// at the documented rate, resumable.
#[derive(Clone, Debug, Parser)]
#[command(name = "mde", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub run: RunOptions,
    #[command(subcommand)]
    pub command: Command,
    /// The request body the action command's flags give (`body_flags`), read by [`parse`].
    #[arg(skip)]
    pub body: serde_json::Map<String, serde_json::Value>,
    /// The connection's options given on the command line itself: a profile gives the others.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// Where to connect and as whom.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Connection (every command that calls the service)")]
pub struct Connection {
    /// Cloud.
    #[arg(long, global = true, default_value = "commercial", value_parser = clap::builder::PossibleValuesParser::new(Cloud::ALL.map(Cloud::as_str)).map(|s| s.parse::<Cloud>().unwrap_or_default()))]
    pub cloud: Cloud,
    /// Region of the commercial cloud.
    #[arg(long, global = true, default_value = "global", value_parser = clap::builder::PossibleValuesParser::new(Region::ALL.map(Region::as_str)).map(|s| s.parse::<Region>().unwrap_or_default()))]
    pub region: Region,
    /// Send every request to this base URL instead (overrides cloud and region).
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Sign in at this Azure AD authority instead of the cloud's.
    #[arg(long, global = true, value_name = "URL")]
    pub login_url: Option<String>,
    /// A bearer token (better from the environment than on the command line).
    #[arg(
        long,
        global = true,
        env = "MDE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Azure AD tenant (directory) id.
    #[arg(long, global = true, env = "AZURE_TENANT_ID", value_name = "ID")]
    pub tenant_id: Option<String>,
    /// Application (client) id.
    #[arg(long, global = true, env = "AZURE_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// Client secret (better from the environment than on the command line).
    #[arg(
        long,
        global = true,
        env = "AZURE_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: Option<String>,
    /// Also trust the CA certificate(s) of this PEM file: a simulator's (mde-sim --tls
    /// --tls-ca-out FILE) or a TLS-intercepting proxy's. Verification is never turned off.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// With --auth certificate: the certificate and its key, PEM or PKCS#12 (its password in
    /// AZURE_CLIENT_CERTIFICATE_PASSWORD); readable by its owner only.
    #[arg(
        long,
        global = true,
        env = "AZURE_CLIENT_CERTIFICATE_PATH",
        value_name = "FILE"
    )]
    pub certificate: Option<PathBuf>,
    /// How to sign in: secret (AZURE_CLIENT_SECRET), certificate, managed-identity (App
    /// Service's IDENTITY_ENDPOINT, else the VM's), workload-identity
    /// (AZURE_FEDERATED_TOKEN_FILE), azure-cli (az login). When not given: MDE_TOKEN, then
    /// AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE,
    /// IDENTITY_ENDPOINT, the first set; a VM's identity and the Azure CLI only when asked.
    #[arg(long, global = true, value_enum, value_name = "KIND")]
    pub auth: Option<crate::profiles::Auth>,
    /// Connect as this profile of the configuration file (MDE_CONFIG, else mde/config.toml
    /// in the platform's configuration folder; `mde profile list`): its tenant, app, sign-in,
    /// cloud, region and hosts, under any flag given on the command line. Repeated, an action
    /// runs in every profile's tenant at once, each machine given as PROFILE,MACHINE (or
    /// PROFILE,NAME), a --tag in each.
    #[arg(long, global = true, env = "MDE_PROFILE", value_name = "NAME")]
    pub profile: Vec<String>,
    /// Run against an embedded simulator, with every well-formed id given in its inventory.
    #[arg(long, global = true)]
    pub simulate: bool,
    /// Simulated seconds per real second, with --simulate or against a simulator (--api-url):
    /// the simulator and the client's rate limiter then share one clock.
    #[arg(long, global = true, value_name = "N")]
    pub time_scale: Option<f64>,
    /// The environment variable the client secret was read from, by a profile's `secret_env`.
    #[arg(skip)]
    pub secret_from: Option<String>,
}

/// How a command reports.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Output (every command)")]
pub struct RunOptions {
    /// Output: a table, one JSON object per machine, or one CSV row per machine, on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show each request on stderr: operation, path, answer status, correlation id, waits
    /// (never a token, a secret or a package link). RUST_LOG=mde_client=trace says more.
    #[arg(short = 'v', long, visible_alias = "debug", global = true)]
    pub verbose: bool,
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

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Automated investigations (retired by the service on 2026-09-01).
    #[command(subcommand)]
    Investigation(InvestigationCommand),
    /// Investigation packages.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Runs a Microsoft Defender Antivirus scan on each machine (the replacement for the
    /// retired investigations).
    #[command(
        after_help = "Examples:\n  mde scan 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --type full --comment \"Check machine for viruses due to alert 3212\"\n  mde scan --type quick --machine-name ws-0001 --machine-name ws-0002 --comment \"Alert 3212\" --wait\n\nA machine where a scan is already running reports already_running, whether the service\nanswers 400 \"Action is already in progress\" or the pending scan again (told apart by its id\nand creation time); no second scan is counted, and --wait follows the running one."
    )]
    Scan {
        #[command(flatten)]
        targets: Targets,
        #[command(flatten)]
        wait: Wait,
    },
    /// Isolates each machine from the network (containment); `mde release` undoes it.
    #[command(
        after_help = "Examples:\n  mde isolate 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --type full --comment \"Isolate machine due to alert 1234\"\n  mde isolate --machine-name ws-0001 --type selective --comment \"Case 42\" --wait\n\nFull isolation: Windows 10 1703 or later, Windows 11, Linux; selective: Windows 10 1709 or\nlater, Windows 11; unmanaged contains an unmanaged device. A machine where an isolation is\nalready pending reports already_running (the service answers the pending action or 400\n\"Action is already in progress\")."
    )]
    Isolate(Containment),
    /// Releases each machine from isolation.
    #[command(
        after_help = "Example:\n  mde release 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Unisolate machine since it was clean and validated\""
    )]
    Release(Containment),
    /// Restricts each machine to a predefined set of applications (Windows 10 1709 or later,
    /// with Microsoft Defender Antivirus); `mde unrestrict` undoes it.
    #[command(
        after_help = "Example:\n  mde restrict 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Restrict code execution due to alert 1234\""
    )]
    Restrict(Containment),
    /// Removes the application restriction of each machine.
    #[command(
        after_help = "Example:\n  mde unrestrict 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Unrestrict code execution since machine was cleaned and validated\""
    )]
    Unrestrict(Containment),
    /// Stops a file's processes on each machine and quarantines the file, named by its SHA-1.
    #[command(
        after_help = "Example:\n  mde quarantine --sha1 87662bc3d60e4200ceaf7aae249d1c343f4b83c9 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Stop and quarantine file on machine due to alert 441688558380765161_2136280442\""
    )]
    Quarantine {
        #[command(flatten)]
        targets: Targets,
        #[command(flatten)]
        wait: Wait,
    },
    /// Offboards each machine: its sensor stops. It cannot be undone through the API, so it
    /// always asks first, even for one machine (--yes skips the question).
    #[command(
        after_help = "Example:\n  mde offboard 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Offboard machine by automation\" --yes\n\nNot supported on macOS or Linux. The device may go on showing as onboarded (#5909)."
    )]
    Offboard {
        #[command(flatten)]
        targets: Targets,
        #[command(flatten)]
        wait: Wait,
    },
    /// Adds a tag to each machine, or removes one (setMachineTag); `--tag` on any command
    /// then selects the machines that carry it.
    #[command(subcommand)]
    Tag(TagCommand),
    /// Runs live response on each machine: one session each, its commands in the documented
    /// order (every --put, then every --run, then every --get), journaled and resumable.
    #[command(
        after_help = "Examples:\n  mde live ws-0001 --machine-name ws-0002 --put collect.ps1 --run collect.ps1 --args \"-Fast\" --get 'C:\\windows\\TEMP\\triage.zip' --comment \"Triage for incident 42\" --wait\n  mde live --tag Contained --run collect.ps1 --ensure-script ./collect.ps1 --comment \"Triage\" --dry-run\n\nLimits (run-live-response.md): 10 sessions a minute, 50 running at once (a 429 past\nthem waits), one per device: a machine where a session runs reports already_running\n(followed with --wait). A session waits up to 2 hours for an offline device, then ends\nTimeOut. When a command fails, the ones after it are not run. A device group without an\nautomation level refuses with DisallowedOperation: in the portal, give the group at least\nthe minimum remediation level (Settings > Endpoints > Device groups)."
    )]
    Live(Live),
    /// The live response library: the scripts and files sessions put and run.
    #[command(subcommand)]
    Library(LibraryCommand),
    /// Machine actions (a package collection is one): follow them.
    #[command(subcommand)]
    Action(ActionCommand),
    /// Devices, and what contains them now.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// The profiles of the configuration file (never a secret).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Prints a shell completion script.
    #[command(
        after_help = "Example:\n  mde completions bash > ~/.local/share/bash-completion/completions/mde"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

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
    pub session: Session,
    /// The --args of each --run (None where a --run has none), read from the command line's
    /// order by `parse`.
    #[arg(skip)]
    pub args_of_run: Vec<Option<String>>,
}

/// A live response session's commands and comment, sent to each machine.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Session (sent to each machine)")]
pub struct Session {
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
    List {
        /// Only the machines isolated now, or with an isolation or release pending.
        #[arg(long)]
        isolated: bool,
        /// Only the machines whose applications are restricted now, or with a restriction or
        /// its undoing pending.
        #[arg(long)]
        restricted: bool,
        /// Only the machines with this tag (findMachinesByTag).
        #[arg(long, value_name = "TAG", conflicts_with = "health")]
        tag: Option<String>,
        /// With --tag: the machines with a tag that starts with it.
        #[arg(long, requires = "tag")]
        tag_prefix: bool,
        /// Only the machines of this health status, e.g. Active.
        #[arg(long, value_name = "STATUS")]
        health: Option<String>,
    },
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
    List {
        /// Only the actions of this machine id.
        #[arg(long, value_name = "ID")]
        machine: Option<String>,
        /// Only the actions of the machine with this name (see `mde scan --help`).
        #[arg(long = "machine-name", value_name = "NAME", conflicts_with = "machine")]
        name: Option<String>,
        /// With --machine-name: where several machines have the name, the one seen last.
        #[arg(long, value_enum, value_name = "WHICH", requires = "name")]
        pick: Option<Pick>,
        /// Only actions with this status: Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled.
        #[arg(long, value_name = "S")]
        status: Option<String>,
        /// Only actions of this type, e.g. CollectInvestigationPackage.
        #[arg(long = "type", value_name = "T")]
        kind: Option<String>,
        /// Only actions created at or after this time (2026-11-01, midnight UTC, or an RFC 3339
        /// date-time).
        #[arg(long, value_name = "TIME", value_parser = since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
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

/// The machines of a containment command (isolate, release, restrict, unrestrict), read
/// for the duplicate-action race before anything is sent.
#[derive(Clone, Debug, Args)]
pub struct Containment {
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

impl Containment {
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

/// The command that sends each operation, its request made from its body's flags: the one
/// line each operation costs the command line (the rest is generated from the spec).
pub fn command_of(op: OperationId) -> Option<&'static [&'static str]> {
    match op {
        OperationId::StartInvestigation => Some(&["investigation", "start"]),
        OperationId::InitiateInvestigation => Some(&["investigation", "initiate"]),
        OperationId::CollectInvestigationPackage => Some(&["package", "collect"]),
        OperationId::RunAntiVirusScan => Some(&["scan"]),
        OperationId::CancelMachineAction => Some(&["action", "cancel"]),
        OperationId::IsolateMachine => Some(&["isolate"]),
        OperationId::UnisolateMachine => Some(&["release"]),
        OperationId::RestrictCodeExecution => Some(&["restrict"]),
        OperationId::UnrestrictCodeExecution => Some(&["unrestrict"]),
        OperationId::StopAndQuarantineFile => Some(&["quarantine"]),
        OperationId::OffboardMachine => Some(&["offboard"]),
        // `package collect --graph`: the body of `package collect`.
        OperationId::CollectInvestigationPackageGraph
        // `tag add|remove TAG`: the body is the command's own words.
        | OperationId::SetMachineTag
        // Live response (issue 20) gets a command of its own, its body from its words.
        | OperationId::RunLiveResponse
        // Read by the commands that show and follow, with no body.
        | OperationId::ListMachines
        | OperationId::ListMachineActions
        | OperationId::GetMachineAction
        | OperationId::GetPackageUri
        | OperationId::GetLiveResponseResultDownloadLink
        | OperationId::GetMachine
        | OperationId::FindMachinesByTag
        // `library list|upload|delete`: a form and a name, not a fleet's body.
        | OperationId::ListLibraryFiles
        | OperationId::UploadLibraryFile
        | OperationId::DeleteLibraryFile => None,
    }
}

/// The options of the connection a profile gives, by their ids.
const FROM_PROFILE: [&str; 10] = [
    "tenant_id",
    "client_id",
    "api_url",
    "login_url",
    "cloud",
    "region",
    "ca_cert",
    "auth",
    "certificate",
    "client_secret",
];

impl Cli {
    /// The connection of profile `name`: every value not given on the command line itself
    /// taken from it (the environment's give way to the profile's). `Err`: the configuration
    /// file or the profile cannot be read (a usage error). The second value says why the
    /// profile cannot sign in (its secret's variable unset, a key file others can read).
    pub fn connection_of(&self, name: &str) -> Result<(Connection, Option<String>), String> {
        use crate::profiles::{Auth, Profiles};
        let profiles = Profiles::read()?;
        let profile = profiles.get(name)?.clone();
        let given = |id: &str| self.given.iter().any(|g| g == id);
        let mut conn = self.connection.clone();
        let set = |id: &str, field: &mut Option<String>, value: Option<String>| {
            if !given(id) && value.is_some() {
                *field = value;
            }
        };
        set(
            "tenant_id",
            &mut conn.tenant_id,
            Some(profile.tenant.clone()),
        );
        set(
            "client_id",
            &mut conn.client_id,
            Some(profile.client_id.clone()),
        );
        set("api_url", &mut conn.api_url, profile.api_url.clone());
        set("login_url", &mut conn.login_url, profile.login_url.clone());
        if !given("cloud")
            && let Some(cloud) = profile.cloud.as_deref().and_then(|c| c.parse().ok())
        {
            conn.cloud = cloud;
        }
        if !given("region")
            && let Some(region) = profile.region.as_deref().and_then(|r| r.parse().ok())
        {
            conn.region = region;
        }
        if !given("ca_cert") && profile.ca_cert.is_some() {
            conn.ca_cert = profile.ca_cert.clone();
        }
        if !given("auth") {
            conn.auth = Some(profile.auth);
        }
        let mut problem = None;
        if let Some(file) = &profile.certificate {
            problem = crate::profiles::private_file(file).err();
            if !given("certificate") {
                conn.certificate = Some(file.clone());
            }
        }
        if profile.auth == Auth::Secret && !given("client_secret") {
            let variable = profile.secret_env.clone().unwrap_or_default();
            conn.client_secret = std::env::var(&variable).ok().filter(|s| !s.is_empty());
            conn.secret_from = Some(variable.clone());
            if conn.client_secret.is_none() {
                problem = Some(format!(
                    "profile {name} reads its client secret from {variable}, which is not set"
                ));
            }
        }
        conn.profile = vec![name.to_string()];
        Ok((conn, problem))
    }
}

/// The subcommand at `path` of `command`, changed by `change`.
fn at_path(
    command: clap::Command,
    path: &[&str],
    change: impl FnOnce(clap::Command) -> clap::Command,
) -> clap::Command {
    match path {
        [] => change(command),
        [first, rest @ ..] => command.mut_subcommand(*first, |sub| at_path(sub, rest, change)),
    }
}

/// Parses the process's arguments, the action's body among them.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    for op in OperationId::ALL {
        let Some(path) = command_of(op) else { continue };
        let found = path
            .iter()
            .try_fold(&matches, |m, name| m.subcommand_matches(name));
        if let Some(matches) = found {
            cli.body = crate::body_flags::read(op, matches);
        }
    }
    cli.given = FROM_PROFILE
        .iter()
        .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect();
    // One profile is the connection of every command; several, each their part of a run.
    let mut seen = std::collections::HashSet::new();
    cli.connection.profile.retain(|p| seen.insert(p.clone()));
    if let [name] = &cli.connection.profile[..]
        && !cli.connection.simulate
    {
        let (conn, problem) = cli.connection_of(name).unwrap_or_else(|e| {
            eprintln!("mde: {e}");
            std::process::exit(2);
        });
        if let Some(problem) = problem {
            eprintln!("mde: {problem}");
            std::process::exit(3);
        }
        cli.connection = conn;
    }
    // Each --args belongs to the --run written before it.
    if let (Command::Live(live), Some(matches)) =
        (&mut cli.command, matches.subcommand_matches("live"))
    {
        let at = |name| {
            matches
                .indices_of(name)
                .map(Iterator::collect::<Vec<_>>)
                .unwrap_or_default()
        };
        let (runs, args) = (at("run"), at("args"));
        live.args_of_run = vec![None; runs.len()];
        for (arg, value) in args.iter().zip(&live.session.args) {
            match runs.iter().rposition(|run| run < arg) {
                Some(i) if live.args_of_run[i].is_none() => {
                    live.args_of_run[i] = Some(value.clone())
                }
                _ => {
                    eprintln!("mde: every --args follows the --run it is for, once");
                    std::process::exit(2);
                }
            }
        }
    }
    cli
}

/// The command line as parsed and as completed: each action command with the flags of its
/// body, and the options of the service's connection not shown for the commands that never
/// call it.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut command = Cli::command();
    for op in OperationId::ALL {
        if let Some(path) = command_of(op) {
            command = at_path(command, path, |sub| {
                let help = match sub.get_after_help() {
                    Some(help) => format!("{help}\n\n{}", permissions(op)),
                    None => permissions(op),
                };
                sub.args(crate::body_flags::args(op)).after_help(help)
            });
        }
    }
    // Global options reach every subcommand when the command is built; hide them after.
    command.build();
    let local: Vec<String> = Cli::command()
        .get_arguments()
        .filter(|a| {
            a.get_help_heading()
                .is_some_and(|h| h.starts_with("Connection"))
        })
        .map(|a| a.get_id().to_string())
        .collect();
    // In place: the built command keeps its arguments by position.
    let hide = |names: Vec<String>| {
        move |sub: clap::Command| {
            sub.mut_args(|a| {
                let hidden = a.is_hide_set() || names.iter().any(|n| n == a.get_id().as_str());
                a.hide(hidden)
            })
        }
    };
    let mut quiet = local.clone();
    quiet.extend(["output".to_string(), "verbose".to_string()]);
    command = command.mut_subcommand("completions", hide(quiet));
    command.mut_subcommand("package", |p| p.mut_subcommand("verify", hide(local)))
}

/// The permissions a command needs, from the spec's `x-permissions`: its operation's, the
/// pending-action check's before a containment, and the name and tag look-ups'.
fn permissions(op: OperationId) -> String {
    let any = |op: OperationId| {
        let facts = op.facts();
        let or = |p: &[&str]| p.join(" or ");
        format!(
            "{} (application), {} (delegated)",
            or(facts.application_permissions),
            or(facts.delegated_permissions)
        )
    };
    let mut text = format!("Permissions: {}.", any(op));
    let contains = op
        .creates_action()
        .is_some_and(|kind| crate::pending::opposite(&kind).is_some());
    if contains {
        text.push_str(&format!(
            "\nBefore sending, the pending-action check reads the tenant's actions: {} (--skip-pending-check sends without it).",
            any(OperationId::ListMachineActions)
        ));
    }
    if crate::targets::on_machines(op) {
        text.push_str(&format!(
            "\nMachines by name (--machine-name, --names-file) or --tag are looked up with {}.",
            any(OperationId::ListMachines)
        ));
    }
    text
}

/// A `--since` time: a date (midnight UTC) or an RFC 3339 date-time, in UTC. Never sent as
/// typed: the filter writes it in one form.
fn since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
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
