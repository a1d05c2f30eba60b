//! The command line.

use crate::vocabulary::Output;
use clap::{Args, Parser, Subcommand};

mod commands;
mod connection;
mod hunt;
mod machines;
mod parse;

pub use commands::*;
pub use connection::*;
pub use hunt::*;
pub use machines::*;
pub use parse::*;

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
    Isolate(ContainmentTargets),
    /// Releases each machine from isolation.
    #[command(
        after_help = "Example:\n  mde release 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Unisolate machine since it was clean and validated\""
    )]
    Release(ContainmentTargets),
    /// Restricts each machine to a predefined set of applications (Windows 10 1709 or later,
    /// with Microsoft Defender Antivirus); `mde unrestrict` undoes it.
    #[command(
        after_help = "Example:\n  mde restrict 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Restrict code execution due to alert 1234\""
    )]
    Restrict(ContainmentTargets),
    /// Removes the application restriction of each machine.
    #[command(
        after_help = "Example:\n  mde unrestrict 1e5bc9d7e413ddd7902c2932e418702b84d0cc07 --comment \"Unrestrict code execution since machine was cleaned and validated\""
    )]
    Unrestrict(ContainmentTargets),
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
    /// Runs an advanced hunting query (KQL) and prints its rows: the whole answer, past the
    /// service's 100,000-row cap, within the tenant's quotas.
    #[command(
        after_help = "Examples:\n  mde --simulate hunt \"DeviceFileEvents | where SHA1 == '87662bc3d60e4200ceaf7aae249d1c343f4b83c9' | distinct DeviceId, DeviceName\"\n  mde hunt --query-file beacons.kql --timespan P7D -o csv --out beacons.csv\n  mde --profile contoso --profile fabrikam hunt \"DeviceInfo | summarize count() by OSPlatform\"\n\nQuotas (per tenant, shared by every query mde runs in it): 45 calls a minute (and 1,500 an\nhour on the Defender API), and a CPU allocation that, once spent, blocks queries until the\nnext 15-minute cycle; a 429 is waited out as its body says. An answer of 100,000 rows, or\nthe result-size or preemption 400, is run again over each half of its window and joined.\nProgress and the cost go to stderr."
    )]
    Hunt(Hunt),
    /// The profiles of the configuration file (never a secret).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// An action command made from the spec alone: its words the operation's
    /// `x-cli-command`, its flags the machines', `--wait` (for an operation that creates a
    /// machine action) and its body's. An action that needs no words of its own costs the
    /// command line nothing.
    #[command(skip)]
    FromSpec {
        op: mde_client::OperationId,
        targets: Targets,
        wait: Option<std::time::Duration>,
    },
    /// Prints a shell completion script.
    #[command(
        after_help = "Example:\n  mde completions bash > ~/.local/share/bash-completion/completions/mde"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}
