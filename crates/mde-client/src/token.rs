//! Credentials, and the Azure AD client-credentials exchange with its cache.
//!
//! The exchange ([`request_token`]) is one form POST (`grant_type`, `client_id`,
//! `client_secret`, `scope`) to the spec's token URL and a three-field answer, written here on
//! the client's own `reqwest` rather than with the
//! `oauth2` crate (built on another major version of `reqwest`, with about 20 more crates for
//! flows this API does not use, and it drops Azure AD's `error_codes`) or `azure_identity`
//! (its own HTTP stack and the Azure SDK core).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::body::read_capped;
use crate::error::Error;
use crate::rate_limit::Clock;
use crate::secret::Secret;
use reqwest::header::HeaderValue;

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A bearer token obtained elsewhere, sent as it is.
    BearerToken(Secret),
    /// Azure AD's client-credentials grant; the token is cached and renewed before it expires.
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
    },
    /// A credential of the Azure SDK's identity library: a certificate's client assertion,
    /// managed identity, workload identity, the Azure CLI. Its tokens are cached and renewed
    /// here as the client-credentials grant's are.
    #[cfg(feature = "azure-identity")]
    Identity(IdentityCredential),
}

/// Any `azure_core` [`TokenCredential`](azure_core::credentials::TokenCredential), for
/// [`Credentials::Identity`]. Equal only to itself; its `Debug` shows nothing of it.
#[cfg(feature = "azure-identity")]
#[derive(Clone)]
pub struct IdentityCredential(pub Arc<dyn azure_core::credentials::TokenCredential>);

#[cfg(feature = "azure-identity")]
impl fmt::Debug for IdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityCredential(..)")
    }
}

#[cfg(feature = "azure-identity")]
impl PartialEq for IdentityCredential {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(feature = "azure-identity")]
impl Eq for IdentityCredential {}

#[cfg(feature = "azure-identity")]
impl IdentityCredential {
    /// A token for `scope`, and how long it lives from now.
    async fn token(&self, scope: &str) -> Result<AccessToken, Error> {
        let token = self.0.get_token(&[scope], None).await.map_err(|e| {
            // The identity library's errors name the credential and the cause, never a secret;
            // the cause is in the chain (a retry policy's end wraps the transport's error).
            let mut said = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !said.contains(&text) {
                    said.push_str(&format!(": {text}"));
                }
                source = cause.source();
            }
            Error::Authentication(format!("signing in: {said}"))
        })?;
        let left = token.expires_on - azure_core::time::OffsetDateTime::now_utc();
        Ok(AccessToken {
            token: Secret::new(token.token.secret()),
            lifetime: Duration::from_secs(left.whole_seconds().max(0) as u64),
        })
    }
}

/// Gets bearer tokens, asking Azure AD at most once at a time.
pub(crate) struct TokenSource {
    credentials: Credentials,
    http: reqwest::Client,
    authority: String,
    scope: String,
    clock: Arc<dyn Clock>,
    body_limit: usize,
    /// The `Authorization` value of the token in use, and when to renew it: built once a
    /// token, not once a call (a token is a kilobyte or two of JWT).
    cached: tokio::sync::Mutex<Option<(HeaderValue, Duration)>>,
    /// The `Authorization` value of a bearer token given as is (when it is a valid one).
    given: Option<HeaderValue>,
}

/// `Bearer {token}`, marked sensitive so that it never shows in `Debug`.
fn authorization(token: &Secret) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        Error::Authentication("the access token is not a valid header value".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .field("authority", &self.authority)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(deserialize_with = "seconds")]
    expires_in: u64,
}

/// `expires_in` is a number in v2.0 answers and a string in v1.0 ones.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    match Seconds::deserialize(d)? {
        Seconds::Number(n) => Ok(n),
        Seconds::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
struct AzureAdError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenSource {
    pub(crate) fn new(
        credentials: Credentials,
        http: reqwest::Client,
        authority: &str,
        scope: String,
        clock: Arc<dyn Clock>,
        body_limit: usize,
    ) -> TokenSource {
        TokenSource {
            http,
            authority: authority.to_string(),
            scope,
            clock,
            body_limit,
            cached: tokio::sync::Mutex::new(None),
            given: match &credentials {
                Credentials::BearerToken(token) => authorization(token).ok(),
                _ => None,
            },
            credentials,
        }
    }

    /// The `Authorization` value of a token valid now. Concurrent callers wait for one
    /// exchange and share its token.
    pub(crate) async fn authorization(&self) -> Result<HeaderValue, Error> {
        if let Credentials::BearerToken(token) = &self.credentials {
            return self.given.clone().map_or_else(|| authorization(token), Ok);
        }
        let mut cached = self.cached.lock().await;
        if let Some((value, renew_at)) = &*cached
            && self.clock.now() < *renew_at
        {
            return Ok(value.clone());
        }
        let asked = self.clock.now();
        let AccessToken { token, lifetime } = match &self.credentials {
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => {
                request_token(
                    &self.http,
                    &self.authority,
                    tenant_id,
                    client_id,
                    client_secret,
                    &self.scope,
                    self.body_limit,
                )
                .await?
            }
            #[cfg(feature = "azure-identity")]
            Credentials::Identity(credential) => credential.token(&self.scope).await?,
            Credentials::BearerToken(token) => AccessToken {
                token: token.clone(),
                lifetime: Duration::MAX,
            },
        };
        // Renewed a tenth of its life (at most 5 minutes) before it expires.
        let early = (lifetime / 10).min(Duration::from_secs(300));
        let value = authorization(&token)?;
        *cached = Some((value.clone(), asked + lifetime - early));
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "mde-client: new access token"
        );
        Ok(value)
    }

    /// Forgets the cached token, after the service refused it.
    pub(crate) async fn forget(&self) -> bool {
        self.cached.lock().await.take().is_some()
    }
}

/// A token source for each scope the client's operations need: the API's, and Microsoft
/// Graph's for the operations on Graph. One sign-in configuration, a token per audience, each
/// asked for when first needed, cached and renewed on its own.
pub(crate) struct Tokens {
    sources: Vec<TokenSource>,
    /// Each operation's source, by [`OperationId::index`](crate::OperationId::index).
    of_operation: Vec<usize>,
}

impl Tokens {
    /// A source for the API's scope and each other of `scopes` (`scopes[i]` operation `i`'s).
    pub(crate) fn new(
        api: String,
        scopes: Vec<String>,
        source: impl Fn(String) -> TokenSource,
    ) -> Tokens {
        let mut distinct = vec![api];
        let of_operation = scopes
            .into_iter()
            .map(|scope| match distinct.iter().position(|s| *s == scope) {
                Some(i) => i,
                None => {
                    distinct.push(scope);
                    distinct.len() - 1
                }
            })
            .collect();
        Tokens {
            sources: distinct.into_iter().map(source).collect(),
            of_operation,
        }
    }

    /// The source of `op`'s tokens.
    pub(crate) fn of(&self, op: crate::OperationId) -> &TokenSource {
        &self.sources[self.of_operation[op.index()]]
    }

    /// The source of the API's tokens (the scope most operations need).
    pub(crate) fn api(&self) -> &TokenSource {
        &self.sources[0]
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.sources).finish()
    }
}

/// A token Azure AD issued, and how long it lives from when it was asked for.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// Its `expires_in`.
    pub lifetime: Duration,
}

/// The path of the spec's token URL (`operations::TOKEN_URL`) after its host:
/// `/{tenant}/oauth2/v2.0/token`.
pub fn token_path() -> &'static str {
    let url = crate::operations::TOKEN_URL;
    let host_end = url
        .find("://")
        .and_then(|scheme| url[scheme + 3..].find('/').map(|i| scheme + 3 + i));
    host_end.map_or("", |i| &url[i..])
}

/// The spec's token URL at `authority`, for `tenant`.
pub fn token_url(authority: &str, tenant: &str) -> String {
    format!(
        "{}{}",
        authority.trim_end_matches('/'),
        token_path().replace("{tenant}", &progenitor_client::encode_path(tenant))
    )
}

/// Azure AD's client-credentials grant, once: `POST {authority}/{tenant}/oauth2/v2.0/token`.
/// Errors never show the secret; an answer over `body_limit` bytes is not read.
pub async fn request_token(
    http: &reqwest::Client,
    authority: &str,
    tenant: &str,
    client_id: &str,
    client_secret: &Secret,
    scope: &str,
    body_limit: usize,
) -> Result<AccessToken, Error> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", client_secret.expose()),
        ("scope", scope),
    ];
    let response = http
        .post(token_url(authority, tenant))
        .form(&form)
        .send()
        .await
        .map_err(Error::transport)?;
    let status = response.status().as_u16();
    let (bytes, complete) = read_capped(response, body_limit)
        .await
        .map_err(Error::transport)?;
    let scrub = |text: String| text.replace(client_secret.expose(), "[redacted]");
    if !complete {
        return Err(Error::Authentication(format!(
            "Azure AD answered {status} with a body over {body_limit} bytes"
        )));
    }
    if status == 200 {
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Authentication(format!("Azure AD's token answer is not readable: {e}"))
        })?;
        if answer.access_token.is_empty() {
            return Err(Error::Authentication(
                "Azure AD answered an empty access token".into(),
            ));
        }
        return Ok(AccessToken {
            token: Secret::new(answer.access_token),
            lifetime: Duration::from_secs(answer.expires_in),
        });
    }
    let message = match serde_json::from_slice::<AzureAdError>(&bytes) {
        Ok(e) => format!(
            "Azure AD answered {status} {}: {}",
            e.error,
            e.error_description.lines().next().unwrap_or_default()
        ),
        Err(_) => format!(
            "Azure AD answered {status}: {}",
            crate::error::excerpt(&bytes)
        ),
    };
    Err(Error::Authentication(scrub(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        let creds = Credentials::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: secret.clone(),
        };
        assert!(
            !format!("{creds:?} {:?}", Credentials::BearerToken(secret.clone()))
                .contains("hunter2")
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn the_token_url_is_the_spec_s_at_the_authority() {
        assert_eq!(
            token_url("https://login.microsoftonline.us/", "contoso.com"),
            "https://login.microsoftonline.us/contoso.com/oauth2/v2.0/token"
        );
        assert_eq!(
            token_url("http://127.0.0.1:1", "a/b"),
            "http://127.0.0.1:1/a%2Fb/oauth2/v2.0/token"
        );
    }
}
