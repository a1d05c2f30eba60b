//! A local stand-in for the Microsoft Defender for Endpoint machine-investigation API and
//! its Azure AD token endpoint, behaving as `spec/openapi.yaml` and the documents describe.
//!
//! Routes, permissions and rate limits come from the generated `mde_client::operations`, so
//! they follow the spec. Start one in-process with [`Simulator::start`], or run the `mde-sim`
//! binary.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let config = mde_sim::Config {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     ..mde_sim::Config::default().with_generated_machines(10)
//! };
//! let sim = mde_sim::Simulator::start(config).await?;
//! println!("serving at {}", sim.base_url());
//! sim.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layers
//!
//! Imports run down this table, never up and never in a circle (the workspace's
//! `tests/layers.rs` holds it):
//!
//! | layer | modules |
//! |---|---|
//! | the command line: `mde-sim`'s flags and serving as they say | `serve` |
//! | the routes: the API, Azure AD's token endpoint, the managed identity endpoint | `api`, `identity` |
//! | what answers them: sign-in, the tenants' state, advanced hunting | `auth`, `state`, `hunting` |
//! | the tenants' records: machines, library, packages, certificates, the federation issuer, hunting's faults | `inventory`, `library`, `package`, `assertion`, `federation`, `hunt_faults`, `config` |
//! | vocabulary: answers and errors, OData, the clock, limits, TLS | `error`, `odata`, `clock`, `rate_limit`, `tls` |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod api;
mod assertion;
mod auth;
mod clock;
mod config;
mod error;
mod federation;
pub mod hunt_faults;
pub mod hunting;
mod identity;
mod inventory;
mod library;
mod odata;
mod package;
mod rate_limit;
pub mod serve;
mod state;
mod tls;

use std::sync::{Arc, Mutex};

use mde_client::{operations, types};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::{Grant, scope_of};
pub use clock::Clock;
pub use config::{
    App, Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, generated_machine_id,
    parse_machine_list, tenant_machine_id,
};
pub use error::ApiError;
pub use federation::DEFAULT_SUBJECT as FEDERATED_SUBJECT;
pub use identity::IdentityFault;
pub use inventory::{DOMAIN, Platforms, machine_name, named_machine_id, qualified};
pub use package::{Fault, Faults, dice};

/// Signs in at a simulator's token endpoint (the client's client-credentials sign-in, the
/// spec's scope) and returns the access token: for demos, tests and benchmarks that call the
/// API by hand.
pub async fn sign_in(
    base_url: &str,
    tenant: &str,
    client_id: &str,
    client_secret: &str,
) -> Result<String, mde_client::Error> {
    let scope = operations::TOKEN_SCOPES[0];
    sign_in_for(base_url, (tenant, client_id, client_secret), scope).await
}

/// [`sign_in`] for a token of `scope`: Microsoft Graph's, for the operations on Graph
/// ([`mde_client::scope_for`] says which an operation needs).
pub async fn sign_in_for(
    base_url: &str,
    (tenant, client_id, client_secret): (&str, &str, &str),
    scope: &str,
) -> Result<String, mde_client::Error> {
    mde_client::install_crypto_provider();
    let answer = mde_client::request_token(
        &mde_client::reqwest::Client::new(),
        base_url,
        tenant,
        client_id,
        &client_secret.into(),
        scope,
        1 << 20,
    )
    .await?;
    Ok(answer.token.expose().to_string())
}

/// A machine known by its id, with its generated name.
fn machine(id: String, config: &Config, clock: &Clock) -> inventory::MachineRecord {
    let name = machine_name(&id);
    inventory::MachineRecord::new(id, name, config.seed, &config.platforms, clock.now_utc())
}

/// The inventory of `tenant`: the machines given first (they are the ones
/// `duplicate_names` names twice), then the documented ones; in a tenant other than the
/// default one, each id is [`tenant_machine_id`] of it.
fn inventory_of(tenant: &str, config: &Config, clock: &Clock) -> inventory::Inventory {
    let mut inventory = inventory::Inventory::default();
    let id_of = |id: &str| tenant_machine_id(tenant, id);
    for id in &config.machines {
        inventory.add(machine(id_of(id), config, clock));
    }
    for name in &config.names {
        // A name given without its domain is in the tenant's own (contoso.com in the default).
        let fqdn = match name.contains('.') || tenant == DEFAULT_TENANT {
            true => qualified(name),
            false => format!("{}.{tenant}.com", name.trim().to_ascii_lowercase()),
        };
        let record = inventory::MachineRecord::new(
            id_of(&named_machine_id(name, 0)),
            fqdn,
            config.seed,
            &config.platforms,
            clock.now_utc(),
        );
        inventory.add(record);
    }
    inventory.duplicate_names(config.duplicate_names);
    for id in operations::DOCUMENTED_MACHINE_IDS {
        inventory.add(machine(id_of(id), config, clock));
    }
    inventory
}

/// State shared by every request.
struct Shared {
    config: Config,
    base_url: String,
    clock: Clock,
    tokens: auth::Tokens,
    limiter: rate_limit::RateLimiter,
    /// Each tenant's inventory, actions and library.
    tenants: std::collections::HashMap<String, Mutex<state::Records>>,
    /// The managed identity of the machine the simulator stands for.
    identity: identity::ManagedIdentity,
    packages: package::Packages,
    /// Requests of each operation that got past authentication and the rate limits.
    calls: Mutex<std::collections::HashMap<operations::OperationId, usize>>,
    /// Hunting queries run so far (their number rolls the fault dice).
    hunts: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// The records of `tenant`, locked; `None` for a tenant the simulator does not have.
    fn records_of(&self, tenant: &str) -> Option<std::sync::MutexGuard<'_, state::Records>> {
        let records = self.tenants.get(tenant)?;
        Some(records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A running simulator. Dropping it leaves the server running until the runtime ends;
/// [`Simulator::stop`] shuts it down.
pub struct Simulator {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    ca_pem: Option<String>,
}

impl Simulator {
    /// Binds `config.listen` and serves in the background of the current tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(config.listen).await?;
        Simulator::serve(config, listener)
    }

    /// Serves on a listener already bound.
    pub fn serve(config: Config, listener: TcpListener) -> std::io::Result<Simulator> {
        let identity = if config.tls {
            Some(tls::identity()?)
        } else {
            None
        };
        let scheme = if identity.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{}", listener.local_addr()?);
        let clock = Clock::scaled(config.time_scale);
        let tenants = config
            .all_tenants()
            .into_iter()
            .map(|tenant| {
                let records = state::Records::new(inventory_of(&tenant, &config, &clock));
                (tenant, Mutex::new(records))
            })
            .collect();
        // The default app is registered in every tenant (a multi-tenant app consented in each)
        // that has no app of the same id given for it.
        let mut apps = config.apps.clone();
        for tenant in config.all_tenants() {
            for app in config.apps.iter().filter(|a| a.tenant == DEFAULT_TENANT) {
                if !apps
                    .iter()
                    .any(|a| a.tenant == tenant && a.client_id == app.client_id)
                {
                    apps.push(App {
                        tenant: tenant.clone(),
                        ..app.clone()
                    });
                }
            }
        }
        let certs = config
            .app_certs
            .iter()
            .map(|(tenant, client, pem)| assertion::RegisteredCert::from_pem(tenant, client, pem))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| std::io::Error::other(format!("--app-cert: {e}")))?;
        let issuer = federation::Issuer::new(&base_url).map_err(std::io::Error::other)?;
        // The default app trusts the default subject in every tenant, besides those given.
        let mut federated = config.federated.clone();
        for tenant in config.all_tenants() {
            federated.push((
                tenant,
                DEFAULT_CLIENT_ID.to_string(),
                federation::DEFAULT_SUBJECT.to_string(),
            ));
        }
        let shared = Arc::new(Shared {
            base_url,
            clock,
            identity: {
                let (tenant, client) = config
                    .managed_identity
                    .clone()
                    .unwrap_or_else(|| (DEFAULT_TENANT.into(), DEFAULT_CLIENT_ID.into()));
                identity::ManagedIdentity::new(&tenant, &client, config.identity_fault)
            },
            tokens: auth::Tokens::new(apps, (certs, issuer, federated), config.token_lifetime),
            limiter: rate_limit::RateLimiter::default(),
            tenants,
            packages: package::Packages::new(
                config.package_size,
                config.package_link_lifetime,
                config.seed,
                config.download_faults.clone(),
            )?,
            config,
            calls: Mutex::default(),
            hunts: Default::default(),
        });
        let app = api::router(shared.clone()).map_err(std::io::Error::other)?;
        let (tx, rx) = oneshot::channel::<()>();
        let ca_pem = identity.as_ref().map(|i| i.ca_pem.clone());
        let task = match identity {
            Some(identity) => tokio::spawn(async move {
                let stop = async {
                    let _ = rx.await;
                };
                tls::serve(listener, app, identity.config, stop).await
            }),
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
            }),
        };
        Ok(Simulator {
            shared,
            shutdown: Some(tx),
            task: Some(task),
            ca_pem,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` with `tls`), without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// With `tls`: the PEM of the CA that signed the server's certificate, for clients to
    /// trust.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The URL of the token endpoint for `tenant`.
    pub fn token_url(&self, tenant: &str) -> String {
        mde_client::token_url(&self.shared.base_url, tenant)
    }

    /// The simulator's clock: tests advance it, and it runs `time_scale` times real time.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// A token of the simulator's own issuer for `subject`, as a workload holds one in the
    /// file `AZURE_FEDERATED_TOKEN_FILE` names, valid `lifetime_s` seconds (wall-clock; a
    /// negative one is expired). The default app trusts [`FEDERATED_SUBJECT`].
    pub fn federated_token(&self, subject: &str, lifetime_s: i64) -> String {
        self.shared.tokens.issuer().token(subject, lifetime_s)
    }

    /// The managed identity endpoint, as App Service gives it in `IDENTITY_ENDPOINT`.
    pub fn identity_endpoint(&self) -> String {
        format!("{}{}", self.shared.base_url, identity::PATH)
    }

    /// The secret App Service gives in `IDENTITY_HEADER`, new at each start.
    pub fn identity_header(&self) -> &str {
        &self.shared.identity.header
    }

    /// How many requests the managed identity endpoint has had.
    pub fn identity_requests(&self) -> usize {
        self.shared
            .identity
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many requests of `tenant`'s apps were refused for the documented limits (429): none
    /// when every app kept within its budget there.
    pub fn refused_in(&self, tenant: &str) -> usize {
        self.shared.limiter.refused_in(tenant)
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.tokens.issued()
    }

    /// A client of this simulator: every operation and the sign-in go to it, as its default
    /// app, on its clock (so the client's rate limits run at the simulator's speed).
    pub fn client_builder(&self) -> mde_client::ClientBuilder {
        let builder = mde_client::Client::builder()
            .base_url(self.base_url())
            .login_url(self.base_url())
            .client_credentials(DEFAULT_TENANT, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            .clock(Arc::new(self.shared.clock.clone()));
        match &self.ca_pem {
            Some(pem) => builder.add_root_certificate(pem.as_bytes()),
            None => builder,
        }
    }

    /// Adds machine ids to the inventory of the default tenant while running.
    pub fn add_machines(&self, machines: impl IntoIterator<Item = String>) {
        let shared = &self.shared;
        let machines: Vec<_> = machines
            .into_iter()
            .map(|id| machine(id, &shared.config, &shared.clock))
            .collect();
        self.records(DEFAULT_TENANT).add_machines(machines);
    }

    /// How many requests of `op` were served (past authentication and the rate limits),
    /// whatever they answered, in every tenant: what a test reads to prove a run sent nothing
    /// else.
    pub fn calls(&self, op: operations::OperationId) -> usize {
        let calls = self.shared.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.get(&op).copied().unwrap_or(0)
    }

    /// Every machine of the default tenant's inventory, as listMachines answers them.
    pub fn machines(&self) -> Vec<types::Machine> {
        self.machines_in(DEFAULT_TENANT)
    }

    /// Every machine of `tenant`'s inventory (none for a tenant the simulator does not have).
    pub fn machines_in(&self, tenant: &str) -> Vec<types::Machine> {
        let Some(mut records) = self.tenant(tenant) else {
            return Vec::new();
        };
        records.settle(self.shared.clock.elapsed());
        records
            .inventory()
            .all()
            .iter()
            .map(|m| m.entity())
            .collect()
    }

    /// Every machine action started so far in the default tenant, as the service would show
    /// it now.
    pub fn actions(&self) -> Vec<types::MachineAction> {
        self.actions_in(DEFAULT_TENANT)
    }

    /// Every machine action started so far in `tenant`.
    pub fn actions_in(&self, tenant: &str) -> Vec<types::MachineAction> {
        let now = self.shared.clock.elapsed();
        let Some(records) = self.tenant(tenant) else {
            return Vec::new();
        };
        records
            .actions()
            .iter()
            .map(|a| a.entity(now, &self.shared.base_url))
            .collect()
    }

    /// Every investigation started so far in the default tenant.
    pub fn investigations(&self) -> Vec<types::Investigation> {
        let now = self.shared.clock.elapsed();
        self.records(DEFAULT_TENANT)
            .investigations()
            .iter()
            .map(|i| i.entity(now))
            .collect()
    }

    fn tenant(&self, tenant: &str) -> Option<std::sync::MutexGuard<'_, state::Records>> {
        self.shared.records_of(tenant)
    }

    fn records(&self, tenant: &str) -> std::sync::MutexGuard<'_, state::Records> {
        self.tenant(tenant)
            .expect("the default tenant always exists")
    }

    /// Stops accepting connections, lets requests in flight finish, and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
