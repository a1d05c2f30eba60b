//! Signing in the ways production automation does, through the Azure SDK's identity library
//! (`azure_identity`): a managed identity, workload identity federation, the Azure CLI. Which
//! one: `--auth`, a profile's `auth`, else the environment, in this order: `MDE_TOKEN` (a
//! bearer token), `AZURE_CLIENT_SECRET` (a secret), `AZURE_CLIENT_CERTIFICATE_PATH` (a
//! certificate), `AZURE_FEDERATED_TOKEN_FILE` (workload identity), `IDENTITY_ENDPOINT` (App
//! Service's managed identity). A VM's managed identity and the Azure CLI are never guessed:
//! `--auth managed-identity` or `--auth azure-cli` asks for them.

use std::sync::Arc;
use std::time::Duration;

use mde_client::azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use mde_client::azure_core::credentials::TokenCredential;
use mde_client::azure_core::http::{
    ClientOptions, ExponentialRetryOptions, RetryOptions, Transport,
};
use mde_client::azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::cli::Connection;
use crate::profiles::Auth;

/// How long one request of a sign-in may take: an identity endpoint that never answers is
/// an error after this, not a hang.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(10);

/// The bearer token given, if any: an empty one (an unset variable exported empty) is none.
pub(crate) fn token(conn: &Connection) -> Option<&str> {
    conn.token.as_deref().filter(|t| !t.trim().is_empty())
}

/// The sign-in the connection asks for: `--auth` or the profile's, else what the environment
/// holds (the order of the module's documentation); `None` for none.
pub(crate) fn chosen(conn: &Connection) -> Option<Auth> {
    if let Some(auth) = conn.auth {
        return Some(auth);
    }
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if token(conn).is_some() {
        None
    } else if conn.client_secret.as_deref().is_some_and(|s| !s.is_empty()) {
        Some(Auth::Secret)
    } else if conn.certificate.is_some() {
        Some(Auth::Certificate)
    } else if set("AZURE_FEDERATED_TOKEN_FILE") {
        Some(Auth::WorkloadIdentity)
    } else if set("IDENTITY_ENDPOINT") {
        Some(Auth::ManagedIdentity)
    } else {
        None
    }
}

/// The identity library's HTTP pipeline: this client's TLS (and `--ca-cert`), a timeout, and
/// two retries at most (no storm against an endpoint that fails).
fn options(conn: &Connection) -> Result<ClientOptions, String> {
    mde_client::install_crypto_provider();
    let mut http = mde_client::reqwest::Client::builder()
        .timeout(SIGN_IN_TIMEOUT)
        .connect_timeout(Duration::from_secs(10));
    if let Some(path) = &conn.ca_cert {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs = mde_client::reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
        http = http.tls_certs_merge(certs);
    }
    let http = http
        .build()
        .map_err(|e| format!("cannot build the sign-in client: {e}"))?;
    let retry = ExponentialRetryOptions {
        max_retries: 2,
        ..ExponentialRetryOptions::default()
    };
    let mut options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        retry: RetryOptions::exponential(retry),
        ..ClientOptions::default()
    };
    if let Some(login) = &conn.login_url {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = login.trim_end_matches('/').to_string();
        options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
    }
    Ok(options)
}

/// The library's error, said as `what` failed.
fn failed(what: &'static str) -> impl Fn(mde_client::azure_core::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// The identity library's credential for `auth`; `Ok(None)` for a secret (the client's own
/// client-credentials grant signs in with it).
pub(crate) fn credential(
    auth: Auth,
    conn: &Connection,
) -> Result<Option<Arc<dyn TokenCredential>>, String> {
    Ok(Some(match auth {
        Auth::Secret => return Ok(None),
        Auth::Certificate => {
            let path = conn.certificate.clone().ok_or(
                "--auth certificate needs the certificate: --certificate FILE, AZURE_CLIENT_CERTIFICATE_PATH or a profile's certificate",
            )?;
            crate::profiles::private_file(&path)?;
            let (Some(tenant), Some(client)) = (&conn.tenant_id, &conn.client_id) else {
                return Err("--auth certificate needs the tenant and the app: --tenant-id and --client-id (AZURE_TENANT_ID, AZURE_CLIENT_ID) or a profile".into());
            };
            let password = std::env::var("AZURE_CLIENT_CERTIFICATE_PASSWORD").ok();
            let certificate = mde_client::ClientCertificate::from_file(&path, password.as_deref())
                .map_err(|e| e.to_string())?;
            let authority = match &conn.login_url {
                Some(login) => login.clone(),
                None => mde_client::Endpoints::of(conn.cloud, conn.region)?.authority,
            };
            let options = ClientAssertionCredentialOptions {
                client_options: options(conn)?,
            };
            certificate
                .credential(&authority, tenant, client, options)
                .map_err(|e| e.to_string())?
        }
        Auth::ManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                // A client id names a user-assigned identity; none, the system-assigned one.
                user_assigned_id: conn.client_id.clone().map(UserAssignedId::ClientId),
                client_options: options(conn)?,
            };
            ManagedIdentityCredential::new(Some(options)).map_err(failed("managed identity"))?
        }
        Auth::WorkloadIdentity => {
            let options = WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: options(conn)?,
                },
                client_id: conn.client_id.clone(),
                tenant_id: conn.tenant_id.clone(),
                token_file_path: None,
            };
            WorkloadIdentityCredential::new(Some(options)).map_err(failed("workload identity"))?
        }
        Auth::AzureCli => {
            let options = AzureCliCredentialOptions {
                tenant_id: conn.tenant_id.clone(),
                ..AzureCliCredentialOptions::default()
            };
            AzureCliCredential::new(Some(options)).map_err(failed("the Azure CLI"))?
        }
    }))
}
