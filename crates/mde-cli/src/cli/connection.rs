//! The connection: where a command connects and as whom, from the flags, the environment and
//! a profile of the configuration file under them.

use std::path::PathBuf;

use clap::Args;
use clap::builder::TypedValueParser;
use mde_client::{Cloud, Region};

use super::*;

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

/// The options of the connection a profile gives, by their ids.
pub(super) const FROM_PROFILE: [&str; 10] = [
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
