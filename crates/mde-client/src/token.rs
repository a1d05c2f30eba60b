//! Credentials, and the Azure AD client-credentials exchange with its cache.
//!
//! The exchange is one form POST (`grant_type`, `client_id`, `client_secret`, `scope`) and a
//! three-field answer, written here on the client's own `reqwest` rather than with the
//! `oauth2` crate (built on another major version of `reqwest`, with about 20 more crates for
//! flows this API does not use, and it drops Azure AD's `error_codes`) or `azure_identity`
//! (its own HTTP stack and the Azure SDK core).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::hooks::read_capped;
use crate::rate_limit::Clock;

/// A secret: a client secret or an access token. It never prints: `Debug` shows
/// `Secret([redacted])`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(Arc::from(secret.into()))
    }

    /// The secret itself, for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Secret {
        Secret::new(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Secret {
        Secret::new(secret)
    }
}

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
}

/// Gets bearer tokens, asking Azure AD at most once at a time.
pub(crate) struct TokenSource {
    credentials: Credentials,
    http: reqwest::Client,
    token_url: String,
    scope: String,
    clock: Arc<dyn Clock>,
    body_limit: usize,
    cached: tokio::sync::Mutex<Option<(Secret, Duration)>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .field("token_url", &self.token_url)
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
        let token_url = match &credentials {
            Credentials::ClientSecret { tenant_id, .. } => {
                format!(
                    "{}/{tenant_id}/oauth2/v2.0/token",
                    authority.trim_end_matches('/')
                )
            }
            Credentials::BearerToken(_) => String::new(),
        };
        TokenSource {
            credentials,
            http,
            token_url,
            scope,
            clock,
            body_limit,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid now. Concurrent callers wait for one exchange and share its token.
    pub(crate) async fn bearer(&self) -> Result<Secret, Error> {
        let Credentials::ClientSecret {
            client_id,
            client_secret,
            ..
        } = &self.credentials
        else {
            let Credentials::BearerToken(token) = &self.credentials else {
                unreachable!()
            };
            return Ok(token.clone());
        };
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = &*cached
            && self.clock.now() < *renew_at
        {
            return Ok(token.clone());
        }
        let asked = self.clock.now();
        let (token, lifetime) = self.exchange(client_id, client_secret).await?;
        // Renewed a tenth of its life (at most 5 minutes) before it expires.
        let early = (lifetime / 10).min(Duration::from_secs(300));
        *cached = Some((token.clone(), asked + lifetime - early));
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "mde-client: new access token"
        );
        Ok(token)
    }

    /// Forgets the cached token, after the service refused it.
    pub(crate) async fn forget(&self) -> bool {
        self.cached.lock().await.take().is_some()
    }

    async fn exchange(
        &self,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<(Secret, Duration), Error> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("scope", &self.scope),
        ];
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| Error::transport(&e))?;
        let status = response.status().as_u16();
        let (bytes, complete) = read_capped(response, self.body_limit)
            .await
            .map_err(|e| Error::transport(&e))?;
        let scrub = |text: String| text.replace(client_secret.expose(), "[redacted]");
        if !complete {
            return Err(Error::Authentication(format!(
                "Azure AD answered {status} with a body over {} bytes",
                self.body_limit
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
            return Ok((
                Secret::new(answer.access_token),
                Duration::from_secs(answer.expires_in),
            ));
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
}

/// `application/x-www-form-urlencoded` value encoding.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
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
    fn form_encoding() {
        assert_eq!(encode("https://x/.default"), "https%3A%2F%2Fx%2F.default");
        assert_eq!(encode("a b&c=d"), "a+b%26c%3Dd");
    }
}
