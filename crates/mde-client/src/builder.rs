//! Building a [`Client`]: hosts, credentials, TLS, timeouts, limits and hooks, each checked
//! before the first call.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::client::Client;
use crate::cloud::{Cloud, Endpoints, Region, host_for, scope_for};
use crate::error::Error;
use crate::generated;
use crate::hooks::{Runtime, WaitEvent, WaitHook};
use crate::operations::OperationId;
use crate::rate_limit::{Clock, RateLimiter, SystemClock, TenantBudget};
use crate::secret::Secret;
use crate::token::{Credentials, TokenSource, Tokens};

/// Builds a [`Client`]. Defaults: commercial cloud, global host, 30 s timeout, the
/// documented rate limits enforced.
#[must_use]
pub struct ClientBuilder {
    cloud: Cloud,
    region: Region,
    base_url: Option<String>,
    login_url: Option<String>,
    credentials: Option<Credentials>,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    clock: Option<Arc<dyn Clock>>,
    enforce_rate_limits: bool,
    rate_limit_margin: Duration,
    max_retry_after: Duration,
    retries_on_429: u32,
    body_limit: usize,
    on_wait: Option<WaitHook>,
    tenant_budget: Option<TenantBudget>,
    /// Extra trust anchors (PEM), besides the platform's.
    roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("cloud", &self.cloud)
            .field("region", &self.region)
            .field("base_url", &self.base_url)
            .field("login_url", &self.login_url)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// `builder`, also trusting the certificates of each PEM of `roots`.
fn trusting(
    builder: reqwest::ClientBuilder,
    roots: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    if roots.is_empty() {
        return Ok(builder);
    }
    #[cfg(feature = "rustls")]
    {
        let mut builder = builder;
        for pem in roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Configuration(format!("the CA certificate is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Configuration(
                    "the CA certificate file holds no certificate".into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        Ok(builder)
    }
    #[cfg(not(feature = "rustls"))]
    {
        let _ = builder;
        Err(Error::Configuration(
            "a CA certificate needs TLS: build mde-client with its `rustls` feature".into(),
        ))
    }
}

/// Makes `ring` the process's rustls crypto provider, unless the program chose one. The
/// client does this when it is built; call it first when the program builds a `reqwest`
/// client of its own before any [`Client`] (reqwest, compiled without a provider of its
/// own, panics without one). Without the `rustls` feature it does nothing.
pub fn install_crypto_provider() {
    #[cfg(feature = "rustls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A base URL without its trailing `/`; plain `http://` only on loopback.
fn checked_url(what: &str, url: &str) -> Result<String, Error> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::Configuration(format!("{what} {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err(Error::Configuration(format!(
                "{what} {url} is plain http: tokens and answers would cross the network unencrypted; use https (http is allowed on loopback only)"
            )));
        }
        other => {
            return Err(Error::Configuration(format!(
                "{what} {url}: unsupported scheme {other}"
            )));
        }
    }
    Ok(url.trim_end_matches('/').to_string())
}

impl ClientBuilder {
    /// The cloud (commercial by default).
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// The region, for the commercial cloud (global by default).
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Sends every operation to this base URL instead of its documented host (the simulator,
    /// a proxy). Plain `http://` is refused unless the host is loopback.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Signs in at this Azure AD authority instead of the cloud's
    /// (`{login_url}/{tenant}/oauth2/v2.0/token`).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }

    /// A bearer token obtained elsewhere.
    pub fn bearer_token(mut self, token: impl Into<Secret>) -> Self {
        self.credentials = Some(Credentials::BearerToken(token.into()));
        self
    }

    /// Azure AD's client-credentials grant: tokens are asked for, cached and renewed.
    pub fn client_credentials(
        mut self,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        self.credentials = Some(Credentials::ClientSecret {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }

    /// Signs in through a credential of the Azure SDK's identity library (feature
    /// `azure-identity`): its tokens are cached and renewed before they expire.
    #[cfg(feature = "azure-identity")]
    pub fn token_credential(
        mut self,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Self {
        self.credentials = Some(Credentials::Identity(crate::IdentityCredential(credential)));
        self
    }

    /// Any [`Credentials`].
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How long a whole request may take (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (10 s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The clock of the rate limits and the token cache (the system's by default).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Whether calls wait for the documented rate limits (yes by default).
    pub fn enforce_rate_limits(mut self, enforce: bool) -> Self {
        self.enforce_rate_limits = enforce;
        self
    }

    /// Added to every rate-limit window (100 ms by default). A call already counts until its
    /// answer arrives, so this only covers clocks that drift.
    pub fn rate_limit_margin(mut self, margin: Duration) -> Self {
        self.rate_limit_margin = margin;
        self
    }

    /// The longest `Retry-After` the client waits for on its own (15 minutes by default);
    /// a longer one is returned as [`Error::RateLimited`].
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// The budget of the tenant's quotas (advanced hunting's calls and CPU) this client
    /// spends, shared with every client given the same one. By default, a client signing in
    /// with a secret shares [`TenantBudget::of`] its host and tenant; any other has its own.
    pub fn tenant_budget(mut self, budget: TenantBudget) -> Self {
        self.tenant_budget = Some(budget);
        self
    }

    /// How many 429s in a row a call waits out (3 by default).
    pub fn retries_on_429(mut self, times: u32) -> Self {
        self.retries_on_429 = times;
        self
    }

    /// Also trusts the certificate(s) of this PEM, besides the platform's: the CA of a local
    /// simulator (`mde-sim --tls --tls-ca-out FILE`) or of a TLS-intercepting proxy.
    /// Verification is never turned off. Needs the `rustls` feature (`build` says so).
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.roots.push(pem.as_ref().to_vec());
        self
    }

    /// The largest answer body read (1 MiB by default; a list page, up to 10,000 entities, may
    /// take 64 MiB); a larger one is an [`Error::UnexpectedResponse`], and memory stays
    /// bounded.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Called each time a call is about to wait (rate limit, `Retry-After`, backoff).
    pub fn on_wait(mut self, hook: impl Fn(&WaitEvent) + Send + Sync + 'static) -> Self {
        self.on_wait = Some(Arc::new(hook));
        self
    }

    /// An HTTP client from `builder` with the settings every request shares: the connect
    /// timeout, the user agent, and the extra CA certificates.
    fn http(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, Error> {
        let builder = builder
            .connect_timeout(self.connect_timeout)
            .user_agent(&self.user_agent);
        trusting(builder, &self.roots)?
            .build()
            .map_err(|e| Error::Configuration(format!("cannot set up HTTP: {e}")))
    }

    /// The client, or what is wrong with the settings.
    pub fn build(mut self) -> Result<Client, Error> {
        let credentials = self.credentials.take().ok_or_else(|| {
            Error::Configuration("no credentials: give a bearer token or client credentials".into())
        })?;
        let endpoints = Endpoints::of(self.cloud, self.region).map_err(Error::Configuration)?;
        let base_url = self
            .base_url
            .as_deref()
            .map(|u| checked_url("base URL", u))
            .transpose()?;
        let login_url = checked_url(
            "login URL",
            self.login_url.as_deref().unwrap_or(&endpoints.authority),
        )?;
        let api = checked_url("API host", &endpoints.api)?;
        install_crypto_provider();
        let http = self.http(reqwest::Client::builder().timeout(self.timeout))?;
        // A package is large: no bound on the whole transfer, only on each read.
        let downloads = self.http(reqwest::Client::builder().read_timeout(self.timeout))?;
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::default()));
        let scopes = OperationId::ALL
            .iter()
            .map(|op| scope_for(op.facts(), self.cloud, &endpoints.token_scope))
            .collect();
        let tokens = Tokens::new(endpoints.token_scope.clone(), scopes, |scope| {
            TokenSource::new(
                credentials.clone(),
                http.clone(),
                &login_url,
                scope,
                clock.clone(),
                self.body_limit,
            )
        });
        let runtime = Arc::new(Runtime {
            tokens,
            limiter: self.enforce_rate_limits.then(|| {
                let budget = self.tenant_budget.clone().unwrap_or_else(|| {
                    let host = base_url.as_deref().unwrap_or(&api);
                    match &credentials {
                        Credentials::ClientSecret { tenant_id, .. } => {
                            TenantBudget::of(host, tenant_id)
                        }
                        _ => TenantBudget::default(),
                    }
                });
                RateLimiter::new(self.rate_limit_margin, budget)
            }),
            clock,
            body_limit: self.body_limit,
            on_wait: self.on_wait,
            created: Default::default(),
        });
        let raw = OperationId::ALL
            .iter()
            .map(|op| {
                let host = match &base_url {
                    Some(url) => Ok(url.as_str()),
                    None => host_for(op.facts(), self.cloud, &api),
                };
                host.map(|h| generated::Client::new_with_client(h, http.clone(), runtime.clone()))
            })
            .collect();
        Ok(Client {
            runtime,
            raw,
            downloads,
            max_retry_after: self.max_retry_after,
            retries_on_429: self.retries_on_429,
        })
    }
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            cloud: Cloud::default(),
            region: Region::default(),
            base_url: None,
            login_url: None,
            credentials: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: format!("mde-client/{}", env!("CARGO_PKG_VERSION")),
            clock: None,
            enforce_rate_limits: true,
            rate_limit_margin: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(15 * 60),
            retries_on_429: 3,
            body_limit: 1 << 20,
            on_wait: None,
            tenant_budget: None,
            roots: Vec::new(),
        }
    }
}
