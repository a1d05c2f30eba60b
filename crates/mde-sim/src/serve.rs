//! The `mde-sim` command line: its flags, and serving as they say until Ctrl-C or SIGTERM.
//! The binary is this; the book's demos run it from their own test binary too.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::{App, Config, Simulator};

const AFTER_HELP: &str = "\
Out of the box one app is registered, holding every permission of the spec:
  tenant sim-tenant, client id sim-client, client secret sim-secret

The inventory holds the machine ids of the documents, plus --machines, --machines-file and
--machine-name. A machine known by its id is named desktop-<its first 10 hex>.contoso.com.
The first line on stdout is the base URL; the token URL is BASE/sim-tenant/oauth2/v2.0/token,
and BASE/sim-tenant/v2.0/.well-known/openid-configuration is its OpenID Connect discovery
document (MSAL, azure-identity). --tls serves HTTPS with a CA written to --tls-ca-out.

Example:
  mde-sim --listen 127.0.0.1:0 --machines 100 --app reader:secret:Alert.ReadWrite.All";

/// A local stand-in for the Defender for Endpoint machine-investigation API and its Azure AD
/// token endpoint.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on; port 0 takes any free port.
    #[arg(long, default_value_t = Config::default().listen)]
    listen: SocketAddr,
    /// Add N generated machine ids to the inventory.
    #[arg(long, value_name = "N", default_value_t = 0)]
    machines: usize,
    /// Add the machine ids of FILE (one a line, blank lines and # comments skipped).
    #[arg(long, value_name = "FILE")]
    machines_file: Option<PathBuf>,
    /// Add a machine by name (a short name is put in contoso.com; repeatable).
    #[arg(long = "machine-name", value_name = "NAME")]
    names: Vec<String>,
    /// Give the names of the first N machines to a second, older, inactive machine each (a
    /// re-imaged device), so that a lookup by name is ambiguous.
    #[arg(long, value_name = "N", default_value_t = 0)]
    duplicate_names: usize,
    /// Register another app: [TENANT/]ID:SECRET:PERM,PERM, in tenant sim-tenant when no
    /// TENANT is given (repeatable).
    #[arg(long = "app", value_name = "[TENANT/]ID:SECRET:PERMS", value_parser = App::parse)]
    apps: Vec<App>,
    /// Another tenant (repeatable): its own inventory, made from the same flags (other ids:
    /// mde_sim::tenant_machine_id), its own actions, library and rate budgets, and the
    /// default app registered in it besides the apps given for it.
    #[arg(long = "tenant", value_name = "NAME")]
    tenants: Vec<String>,
    /// Register a certificate with an app: [TENANT/]ID:FILE (a PEM file; repeatable). A
    /// client assertion signed with its key (RS256, its x5t) signs the app in.
    #[arg(long = "app-cert", value_name = "[TENANT/]ID:FILE", value_parser = app_cert)]
    app_certs: Vec<(String, String, String)>,
    /// Write a token of the simulator's own issuer to FILE, as a workload holds one
    /// (AZURE_FEDERATED_TOKEN_FILE), for the subject the default app trusts
    /// (system:serviceaccount:mde:mde); valid an hour.
    #[arg(long, value_name = "FILE")]
    federated_token_out: Option<std::path::PathBuf>,
    /// The app whose tokens the managed identity endpoint (BASE/msi/token, App Service's
    /// protocol) issues: TENANT/CLIENT_ID of a registered app; the default app when not given.
    #[arg(long, value_name = "TENANT/CLIENT_ID", value_parser = identity_of)]
    managed_identity: Option<(String, String)>,
    /// The managed identity endpoint fails on purpose: 500 (every request) or hang (no answer).
    #[arg(long, value_name = "500|hang")]
    identity_fault: Option<crate::IdentityFault>,
    /// Lifetime of an access token, in simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().token_lifetime.as_secs())]
    token_lifetime: u64,
    /// How long a package collection runs (Pending, then InProgress), in simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().collection_time.as_secs())]
    collection_time: u64,
    /// How long a new machine action stays Pending before the device picks it up, in
    /// simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().pickup_time.as_secs())]
    pickup_time: u64,
    /// How long an investigation stays Running, in simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().investigation_time.as_secs())]
    investigation_time: u64,
    /// Simulated seconds per real second (60: an hour of rate limits in a minute).
    #[arg(long, value_name = "N", default_value_t = Config::default().time_scale)]
    time_scale: f64,
    /// Size of each investigation package, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().package_size)]
    package_size: u64,
    /// How long a package link works, in simulated seconds; 403 afterwards.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().package_link_lifetime.as_secs())]
    package_link_lifetime: u64,
    /// How long after a collection Succeeded getPackageUri still answers 404, in simulated
    /// seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    package_delay: u64,
    /// The share of collections that end Failed or TimeOut (0 to 1).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    collection_failures: f64,
    /// How long an antivirus scan runs before it ends, in simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().scan_time.as_secs())]
    scan_time: u64,
    /// The share of antivirus scans that end Failed (0 to 1).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    scan_failures: f64,
    /// How long a response action (isolate, release, restrict, quarantine, offboard) runs
    /// before it succeeds, in simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().response_time.as_secs())]
    response_time: u64,
    /// How long each command of a live response session runs once the device picked the
    /// session up, in simulated seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Config::default().command_time.as_secs())]
    command_time: u64,
    /// The share of machines offline (0 to 1, by the seeded dice): their live response
    /// sessions stay queued for the 2 hours the service waits, then end TimeOut.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    offline: f64,
    /// The first N machines of the inventory are in a device group without an automation
    /// level: live response on them is the 403 DisallowedOperation.
    #[arg(long, value_name = "N", default_value_t = 0)]
    no_automation: usize,
    /// Size of each file a live response GetFile collects, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().live_file_size)]
    live_file_size: u64,
    /// Rows each machine has a day in each advanced hunting event table (30 days of them:
    /// 100 machines at 100 make 300,000 rows a table).
    #[arg(long, value_name = "N", default_value_t = Config::default().hunting_rows)]
    hunting_rows: u32,
    /// CPU microseconds a hunting query spends per row it scans, against the tenant's
    /// allocation (10 minutes an hour, 3 hours a day; 429 until the 15-minute cycle that frees
    /// it).
    #[arg(long, value_name = "MICROS", default_value_t = Config::default().hunting_cpu_per_row.as_micros() as u64)]
    hunting_cpu_per_row: u64,
    /// Faults of the hunting endpoints on a share of queries, e.g. preempt:1,timeout:0.2
    /// (size and preempt: the result-size and preemption 400s, only on a query that scanned
    /// over 50,000 rows; timeout: 504; error: 500, both UnknownError).
    #[arg(
        long,
        alias = "hunt-fault",
        value_name = "FAULT:SHARE,...",
        default_value = ""
    )]
    hunt_faults: crate::hunt_faults::Faults,
    /// The share of GetFile paths that do not exist on their device (0 to 1): the command
    /// fails and the ones after it are not run.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    missing_files: f64,
    /// The share of RunScript commands whose script exits non-zero (0 to 1).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    nonzero_exits: f64,
    /// A repeated isolation of a machine isolated or being isolated is a new action that
    /// stays Pending until a later release, then succeeds after it, leaving the device
    /// isolated (#5903), instead of the pending action or the 400.
    #[arg(long)]
    stale_duplicates: bool,
    /// Shares of the inventory on other platforms than Windows, e.g. macOS:0.1,Linux:0.1
    /// (by the seeded dice): isolating macOS, or anything but Windows selectively, and
    /// restricting, quarantining or offboarding anything but Windows is the 400
    /// OsPlatformNotSupported.
    #[arg(long, value_name = "PLATFORM:SHARE,...", default_value = "")]
    platforms: crate::Platforms,
    /// Faults of the download host on a share of downloads, e.g. drop:0.2,slow:0.1 (drop: the
    /// connection is cut halfway through the body; slow: 50 ms between 64 KiB chunks;
    /// corrupt: the body's first bytes are not the archive's).
    #[arg(long, value_name = "FAULT:SHARE,...", default_value = "")]
    download_faults: crate::Faults,
    /// Seed of every roll of the dice (failures, faults).
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Serve HTTPS, with a certificate made at start for localhost and 127.0.0.1 (signed by a
    /// CA made with it: see --tls-ca-out).
    #[arg(long)]
    tls: bool,
    /// With --tls: write the CA certificate (PEM) here, for clients to trust (e.g.
    /// REQUESTS_CA_BUNDLE, SSL_CERT_FILE, mde --ca-cert).
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca_out: Option<PathBuf>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().body_limit)]
    body_limit: usize,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Serves as the `mde-sim` command line `args` (its first item the program's name) says, until
/// Ctrl-C or SIGTERM.
pub async fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let config = match config_of(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mde-sim: {e}");
            return ExitCode::from(2);
        }
    };
    // Those given by id and by name (each tenant has as many).
    let machines = config.machines.len() + config.names.len();
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("mde-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Some(pem)) = (&args.tls_ca_out, sim.ca_pem())
        && let Err(e) = std::fs::write(path, pem)
    {
        eprintln!("mde-sim: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("{}", sim.base_url());
    let _ = std::io::stdout().flush();
    eprintln!(
        "mde-sim: serving at {} ({} documented + {machines} machines, time x{}); Ctrl-C stops",
        sim.base_url(),
        mde_client::operations::DOCUMENTED_MACHINE_IDS.len(),
        args.time_scale
    );
    if let Some(path) = &args.federated_token_out {
        let token = sim.federated_token(crate::FEDERATED_SUBJECT, 3600);
        if let Err(e) = std::fs::write(path, token) {
            eprintln!("mde-sim: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        eprintln!(
            "mde-sim: workload identity: AZURE_FEDERATED_TOKEN_FILE={} (an hour)",
            path.display()
        );
    }
    eprintln!(
        "mde-sim: managed identity (App Service): IDENTITY_ENDPOINT={} IDENTITY_HEADER={}",
        sim.identity_endpoint(),
        sim.identity_header()
    );
    shutdown_signal().await;
    eprintln!("mde-sim: stopping");
    sim.stop().await;
    ExitCode::SUCCESS
}

/// The simulator's configuration, as the flags say.
fn config_of(args: &Args) -> Result<Config, String> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        return Err("--time-scale must be a positive number".into());
    }
    let mut config = Config {
        listen: args.listen,
        token_lifetime: Duration::from_secs(args.token_lifetime),
        collection_time: Duration::from_secs(args.collection_time),
        pickup_time: Duration::from_secs(args.pickup_time),
        package_size: args.package_size,
        package_link_lifetime: Duration::from_secs(args.package_link_lifetime),
        package_delay: Duration::from_secs(args.package_delay),
        collection_failures: args.collection_failures.clamp(0.0, 1.0),
        scan_time: Duration::from_secs(args.scan_time),
        scan_failures: args.scan_failures.clamp(0.0, 1.0),
        response_time: Duration::from_secs(args.response_time),
        download_faults: args.download_faults.clone(),
        stale_duplicates: args.stale_duplicates,
        command_time: Duration::from_secs(args.command_time),
        offline: args.offline.clamp(0.0, 1.0),
        no_automation: args.no_automation,
        live_file_size: args.live_file_size,
        hunting_rows: args.hunting_rows,
        hunting_cpu_per_row: Duration::from_micros(args.hunting_cpu_per_row),
        hunt_faults: args.hunt_faults.clone(),
        missing_files: args.missing_files.clamp(0.0, 1.0),
        nonzero_exits: args.nonzero_exits.clamp(0.0, 1.0),
        platforms: args.platforms.clone(),
        seed: args.seed,
        investigation_time: Duration::from_secs(args.investigation_time),
        time_scale: args.time_scale,
        body_limit: args.body_limit,
        tls: args.tls,
        names: args.names.clone(),
        duplicate_names: args.duplicate_names,
        ..Config::default().with_generated_machines(args.machines)
    };
    config.apps.extend(args.apps.clone());
    config.tenants = args.tenants.clone();
    config.managed_identity = args.managed_identity.clone();
    config.app_certs = args.app_certs.clone();
    config.identity_fault = args.identity_fault;
    if let Some(path) = &args.machines_file {
        match std::fs::read_to_string(path) {
            Ok(text) => config.machines.extend(crate::parse_machine_list(&text)),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    Ok(config)
}

/// `TENANT/CLIENT_ID`.
fn identity_of(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((tenant, client)) if !tenant.is_empty() && !client.is_empty() => {
            Ok((tenant.to_string(), client.to_string()))
        }
        _ => Err("write TENANT/CLIENT_ID".into()),
    }
}

/// `[TENANT/]ID:FILE`, the file read.
fn app_cert(text: &str) -> Result<(String, String, String), String> {
    let (app, file) = text.split_once(':').ok_or("write [TENANT/]ID:FILE")?;
    let (tenant, client) = match app.split_once('/') {
        Some((tenant, client)) => (tenant, client),
        None => (crate::DEFAULT_TENANT, app),
    };
    let pem = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    Ok((tenant.to_string(), client.to_string(), pem))
}
