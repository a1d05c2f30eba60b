//! What a simulator is started with: apps, machines, times and limits.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use mde_client::operations;

/// The tenant of the app registered out of the box.
pub const DEFAULT_TENANT: &str = "sim-tenant";
/// The client id of the app registered out of the box.
pub const DEFAULT_CLIENT_ID: &str = "sim-client";
/// The client secret of the app registered out of the box.
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret";

/// An app registered with the simulated Azure AD.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    /// Tenant id (the `{tenant}` of the token URL).
    pub tenant: String,
    /// Client (application) id.
    pub client_id: String,
    /// Client secret.
    pub secret: String,
    /// Application permissions and directory roles the app holds.
    pub permissions: Vec<String>,
}

impl fmt::Debug for App {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("secret", &"[redacted]")
            .field("permissions", &self.permissions)
            .finish()
    }
}

impl App {
    /// The app registered out of the box: `sim-tenant` / `sim-client` / `sim-secret`, holding
    /// every permission and directory role the spec names.
    pub fn default_app() -> App {
        App {
            tenant: DEFAULT_TENANT.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            secret: DEFAULT_CLIENT_SECRET.into(),
            permissions: every_permission(),
        }
    }

    /// Parses `[TENANT/]ID:SECRET:PERM,PERM` (tenant `sim-tenant` when not given); an empty
    /// list holds no permission.
    pub fn parse(spec: &str) -> Result<App, String> {
        let (tenant, spec) = match spec.split_once('/') {
            Some((tenant, rest)) if !tenant.is_empty() && !tenant.contains(':') => (tenant, rest),
            _ => (DEFAULT_TENANT, spec),
        };
        let mut parts = spec.splitn(3, ':');
        let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
            return Err("expected ID:SECRET:PERM,PERM".into());
        };
        if id.is_empty() || secret.is_empty() {
            return Err("the client id and the secret must not be empty".into());
        }
        let permissions = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Ok(App {
            tenant: tenant.into(),
            client_id: id.into(),
            secret: secret.into(),
            permissions,
        })
    }
}

/// Every application permission and directory role of the spec's operations.
pub fn every_permission() -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for op in operations::ALL {
        for p in op.application_permissions.iter().chain(op.directory_roles) {
            if !all.iter().any(|known| known == p) {
                all.push(p.to_string());
            }
        }
    }
    all
}

/// How a simulator runs. [`Config::default`] is what `mde-sim` runs with no flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 takes any free port.
    pub listen: SocketAddr,
    /// Registered apps.
    pub apps: Vec<App>,
    /// Tenants besides [`DEFAULT_TENANT`]: each has an inventory of its own, made from the same
    /// settings (its machine ids are [`tenant_machine_id`] of the others), its own actions,
    /// library and rate budgets, and the default app registered in it (a multi-tenant app
    /// consented in each), besides the apps given for it.
    pub tenants: Vec<String>,
    /// Certificates registered with apps (tenant, client id, the certificate's PEM): a client
    /// assertion signed with the key of one signs the app in.
    pub app_certs: Vec<(String, String, String)>,
    /// Federated credentials: the app (tenant, client id) trusts the simulator's own issuer
    /// for this subject. The default app trusts [`crate::FEDERATED_SUBJECT`] in every tenant.
    pub federated: Vec<(String, String, String)>,
    /// The app (tenant, client id) the managed identity endpoint issues tokens of; the
    /// default app when `None`.
    pub managed_identity: Option<(String, String)>,
    /// The managed identity endpoint fails on purpose: a 500, or no answer.
    pub identity_fault: Option<crate::IdentityFault>,
    /// Machine ids in the inventory besides the documented ones; each is named
    /// [`machine_name`](crate::machine_name) of its id.
    pub machines: Vec<String>,
    /// Machines given by name (a short name is put in `contoso.com`), each with the id
    /// [`named_machine_id`](crate::named_machine_id) of its name.
    pub names: Vec<String>,
    /// Gives the names of the first N machines (of `machines`, then `names`) to a second,
    /// older and inactive machine each (a device re-imaged or onboarded again), so that a
    /// lookup by name is ambiguous.
    pub duplicate_names: usize,
    /// Lifetime of an access token (simulated time).
    pub token_lifetime: Duration,
    /// How long a package collection runs (`Pending`, then `InProgress`) before it
    /// `Succeeded`.
    pub collection_time: Duration,
    /// How long a new machine action stays `Pending` before the device picks it up and it is
    /// `InProgress` (at most the action's whole time).
    pub pickup_time: Duration,
    /// How long an investigation stays `Running`.
    pub investigation_time: Duration,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Size of each investigation package, in bytes (15 MB, the reported average).
    pub package_size: u64,
    /// How long a package link works, in simulated time; 403 afterwards.
    pub package_link_lifetime: Duration,
    /// How long after a collection `Succeeded` getPackageUri still answers 404 (the package
    /// is still on its way to the download host).
    pub package_delay: Duration,
    /// The share of collections that end `Failed` or `TimeOut` instead of `Succeeded`.
    pub collection_failures: f64,
    /// How long an antivirus scan runs (`Pending`, then `InProgress`) before it ends.
    pub scan_time: Duration,
    /// The share of scans that end `Failed` instead of `Succeeded`.
    pub scan_failures: f64,
    /// How long a response action (isolate, release, restrict, unrestrict, stop and
    /// quarantine, offboard) runs (`Pending`, then `InProgress`) before it `Succeeded`; the
    /// pages give no figure.
    pub response_time: Duration,
    /// How long each command of a live response session runs once the device picked the
    /// session up (the pages give no figure; RunScript times out after 10 minutes).
    pub command_time: Duration,
    /// The share of machines offline: their live response sessions stay queued for the
    /// 2 hours the service waits, then end `TimeOut`.
    pub offline: f64,
    /// The first N machines of the inventory are in a device group without an automation
    /// level: live response on them is the 403 `DisallowedOperation` (#6054).
    pub no_automation: usize,
    /// Size of a file GetFile collects, in bytes.
    pub live_file_size: u64,
    /// The share of GetFile paths that do not exist on their device: the command fails and
    /// the ones after it are not run.
    pub missing_files: f64,
    /// The share of RunScript commands whose script exits non-zero.
    pub nonzero_exits: f64,
    /// A repeated isolation of a machine isolated or being isolated is a new action that
    /// stays `Pending` until a later release, then succeeds after it, re-isolating the
    /// device (#5903), instead of the pending action or the 400.
    pub stale_duplicates: bool,
    /// The shares of the inventory on macOS and Linux; the rest runs Windows.
    pub platforms: crate::Platforms,
    /// Rows each machine has a day in each advanced hunting event table (30 days of them).
    pub hunting_rows: u32,
    /// CPU a hunting query spends per row it scans: the simulator's cost function (the pages
    /// give none), spent against the tenant's allocation.
    pub hunting_cpu_per_row: Duration,
    /// Faults of the hunting endpoints, each on a share of queries.
    pub hunt_faults: crate::hunt_faults::Faults,
    /// Faults of the download host, each on a share of downloads.
    pub download_faults: crate::package::Faults,
    /// Seeds every roll of the dice (failures, faults): the same seed, the same run.
    pub seed: u64,
    /// Largest request body accepted; a larger one gets 413.
    pub body_limit: usize,
    /// Serve HTTPS with a certificate made at start for `localhost` and `127.0.0.1`
    /// ([`Simulator::ca_pem`](crate::Simulator::ca_pem) is its CA).
    pub tls: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            apps: vec![App::default_app()],
            tenants: Vec::new(),
            app_certs: Vec::new(),
            federated: Vec::new(),
            managed_identity: None,
            identity_fault: None,
            machines: Vec::new(),
            names: Vec::new(),
            duplicate_names: 0,
            token_lifetime: Duration::from_secs(3599),
            collection_time: Duration::from_secs(300),
            pickup_time: Duration::from_secs(30),
            investigation_time: Duration::from_secs(600),
            time_scale: 1.0,
            package_size: 15_000_000,
            package_link_lifetime: Duration::from_secs(600),
            package_delay: Duration::ZERO,
            collection_failures: 0.0,
            scan_time: Duration::from_secs(600),
            scan_failures: 0.0,
            response_time: Duration::from_secs(60),
            command_time: Duration::from_secs(30),
            offline: 0.0,
            no_automation: 0,
            live_file_size: 5_000_000,
            missing_files: 0.0,
            nonzero_exits: 0.0,
            stale_duplicates: false,
            platforms: Default::default(),
            hunting_rows: 20,
            hunting_cpu_per_row: Duration::from_micros(1),
            hunt_faults: Default::default(),
            download_faults: Default::default(),
            seed: 0,
            body_limit: 64 * 1024,
            tls: false,
        }
    }
}

impl Config {
    /// Adds `n` generated machine ids ([`generated_machine_id`] 0 to n-1).
    pub fn with_generated_machines(mut self, n: usize) -> Config {
        self.machines.extend((0..n).map(generated_machine_id));
        self
    }
}

/// The `i`-th generated machine id: 40 lowercase hex characters, like the documented ids, the
/// same on every run.
pub fn generated_machine_id(i: usize) -> String {
    // splitmix64: well spread, deterministic.
    let mut x = (i as u64).wrapping_add(0x5157_0000_0000_0000);
    let mut next = || {
        let z = crate::package::splitmix(x);
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z
    };
    let (a, b, c) = (next(), next(), next());
    format!("{a:016x}{b:016x}{:08x}", c >> 32)
}

/// The id in `tenant` of the machine that has `id` in [`DEFAULT_TENANT`]: the same id there,
/// another 40 hex characters in any other tenant (devices do not share ids across tenants).
pub fn tenant_machine_id(tenant: &str, id: &str) -> String {
    if tenant == DEFAULT_TENANT {
        return id.to_string();
    }
    let seed = crate::package::fnv1a(0, tenant.bytes().chain([0xff]).chain(id.bytes()));
    generated_machine_id(seed as usize)
}

impl Config {
    /// Every tenant: [`DEFAULT_TENANT`], those of `tenants`, and those the apps name.
    pub fn all_tenants(&self) -> Vec<String> {
        let mut all = vec![DEFAULT_TENANT.to_string()];
        for tenant in self
            .tenants
            .iter()
            .chain(self.apps.iter().map(|a| &a.tenant))
        {
            if !all.contains(tenant) {
                all.push(tenant.clone());
            }
        }
        all
    }
}

/// Reads machine ids, one a line; blank lines and `#` comments are skipped.
pub fn parse_machine_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_look_documented_and_differ() {
        let ids: Vec<String> = (0..1000).map(generated_machine_id).collect();
        assert!(ids.iter().all(|id| {
            id.len() == 40
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(generated_machine_id(7), generated_machine_id(7));
    }

    #[test]
    fn app_flag() {
        let app = App::parse("reader:s3cret:Alert.ReadWrite.All, Machine.Read").unwrap();
        assert_eq!(app.permissions, ["Alert.ReadWrite.All", "Machine.Read"]);
        assert!(App::parse("nosecret").is_err());
        assert!(App::parse("id:secret:").unwrap().permissions.is_empty());
        assert!(!format!("{app:?}").contains("s3cret"));
    }

    #[test]
    fn the_default_app_holds_every_permission_of_the_spec() {
        let all = App::default_app().permissions;
        assert!(all.contains(&"Machine.CollectForensics".to_string()));
        assert!(all.contains(&"Alert.ReadWrite.All".to_string()));
    }

    #[test]
    fn tenants_have_their_own_ids_and_apps() {
        let id = generated_machine_id(3);
        assert_eq!(tenant_machine_id(DEFAULT_TENANT, &id), id);
        let other = tenant_machine_id("contoso", &id);
        assert_ne!(other, id);
        assert_eq!(other.len(), 40);
        assert_ne!(tenant_machine_id("fabrikam", &id), other);
        let app = App::parse("contoso/reader:s3cret:Machine.Read.All").unwrap();
        assert_eq!(
            (app.tenant.as_str(), app.client_id.as_str()),
            ("contoso", "reader")
        );
        let config = Config {
            tenants: vec!["fabrikam".into()],
            apps: vec![App::default_app(), app],
            ..Config::default()
        };
        assert_eq!(
            config.all_tenants(),
            [DEFAULT_TENANT, "fabrikam", "contoso"]
        );
    }

    #[test]
    fn machine_list() {
        assert_eq!(parse_machine_list("a\n\n# c\n b # x\n"), ["a", "b"]);
    }
}
