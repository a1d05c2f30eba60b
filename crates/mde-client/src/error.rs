//! One error type a caller can act on.

use std::fmt;
use std::time::Duration;

use crate::hooks::CallState;
use crate::operations::Operation;
use crate::{generated, types};

/// What the service said in its error body (`{"error": {"code", "message", "target"}}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status.
    pub status: u16,
    /// The error code, e.g. `ResourceNotFound`.
    pub code: String,
    /// Free text; it may change, so match on [`Error`]'s variant or on `code`, not on this.
    pub message: String,
    /// Correlation id to quote to support.
    pub target: Option<String>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(target) = &self.target {
            write!(f, " (correlation id {target})")?;
        }
        Ok(())
    }
}

/// Everything a call can end in besides success.
#[derive(Debug)]
pub enum Error {
    /// Refused before sending: an empty comment, an empty or malformed machine id.
    InvalidInput(String),
    /// The client is set up wrong: a plain `http://` host that is not loopback, a region
    /// its cloud does not have, an operation its cloud does not offer.
    Configuration(String),
    /// No answer: connecting, TLS, a timeout. The action may or may not exist now.
    Transport {
        /// What went wrong.
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// 401, or Azure AD refused the credentials.
    Authentication(String),
    /// 403: the token lacks the permission the operation needs.
    Permission {
        /// The permissions or roles the spec documents for the operation, any one of which
        /// would do; the ones the error body names come first.
        required: Vec<&'static str>,
        /// The service's error.
        error: ServiceError,
    },
    /// 404: the machine was not found.
    NotFound(ServiceError),
    /// The documented 400 when the same kind of action is already running on the machine.
    AlreadyRunning(ServiceError),
    /// Another 400: the service's message says what is wrong with the request.
    InvalidRequest(ServiceError),
    /// 429, and waiting for it was not allowed (over the client's bound, or retries spent).
    RateLimited {
        /// How long the service asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// The service's error, when it sent one.
        error: Option<ServiceError>,
    },
    /// An answer the spec does not describe: another status, a body that is not what the spec
    /// says, or one over the size cap. `excerpt` is bounded and never holds a secret.
    UnexpectedResponse {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// The start of the body, or what was wrong with it.
        excerpt: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Configuration(m) => write!(f, "configuration: {m}"),
            Error::Transport { message, .. } => write!(f, "transport: {message}"),
            Error::Authentication(m) => write!(f, "authentication failed: {m}"),
            Error::Permission { required, error } => {
                write!(
                    f,
                    "permission denied ({error}); the operation needs one of: {}",
                    required.join(", ")
                )
            }
            Error::NotFound(e) => write!(f, "not found: {e}"),
            Error::AlreadyRunning(e) => write!(f, "already running: {e}"),
            Error::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            Error::RateLimited { retry_after, error } => {
                write!(f, "rate limited")?;
                if let Some(wait) = retry_after {
                    write!(f, "; retry after {} s", wait.as_secs())?;
                }
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            Error::UnexpectedResponse {
                status: Some(s),
                excerpt,
            } => write!(f, "unexpected response {s}: {excerpt}"),
            Error::UnexpectedResponse {
                status: None,
                excerpt,
            } => write!(f, "unexpected response: {excerpt}"),
        }
    }
}

impl std::error::Error for Error {}

/// Longest excerpt of a body kept in an error.
pub(crate) const EXCERPT: usize = 512;

pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT)]);
    let mut text: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .collect();
    if bytes.len() > EXCERPT {
        text.push('…');
    }
    text
}

pub(crate) fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl Error {
    /// Whether sending again later may succeed without starting anything twice: only a 429.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::RateLimited { .. })
    }

    /// A failure after which the request may or may not have reached the service (transport
    /// errors, timeouts, 5xx): retrying it can start a second action.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::UnexpectedResponse {
                status: Some(s), ..
            } => *s >= 500,
            _ => false,
        }
    }

    pub(crate) fn transport(e: &reqwest::Error) -> Error {
        // reqwest's text names the URL (the machine id, never a secret) and the cause.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::Transport {
            message,
            timeout: e.is_timeout(),
        }
    }

    /// The error for what the generated client returned; `call` holds what the hooks saw of
    /// the answer (progenitor drops the status of a body it could not decode).
    pub(crate) fn from_generated(
        e: generated::Error<types::Error>,
        op: &Operation,
        call: &CallState,
    ) -> Error {
        use generated::Error as G;
        let status = call.status;
        match e {
            G::ErrorResponse(response) => {
                let retry_after = parse_retry_after(response.headers());
                let status = response.status().as_u16();
                let body = response.into_inner().error;
                let service = ServiceError {
                    status,
                    code: body.code,
                    message: body.message,
                    target: body.target,
                };
                Error::from_service(service, retry_after, op)
            }
            G::UnexpectedResponse(response) => {
                let status = response.status().as_u16();
                if status == 429 {
                    return Error::RateLimited {
                        retry_after: parse_retry_after(response.headers()),
                        error: None,
                    };
                }
                Error::UnexpectedResponse {
                    status: Some(status),
                    excerpt: "a status the spec does not document".into(),
                }
            }
            // A 429 is a 429 whatever its body: waiting for it is safe.
            G::InvalidResponsePayload(..) if status == Some(429) => Error::RateLimited {
                retry_after: call.retry_after,
                error: None,
            },
            G::InvalidResponsePayload(bytes, e) => Error::UnexpectedResponse {
                status,
                excerpt: format!("{e}; body begins: {}", excerpt(&bytes)),
            },
            G::CommunicationError(e) | G::ResponseBodyError(e) | G::InvalidUpgrade(e) => {
                Error::transport(&e)
            }
            G::InvalidRequest(m) => Error::InvalidInput(m),
            G::Custom(m) => Error::UnexpectedResponse { status, excerpt: m },
        }
    }

    fn from_service(service: ServiceError, retry_after: Option<Duration>, op: &Operation) -> Error {
        match service.status {
            401 => Error::Authentication(service.to_string()),
            403 => {
                let documented = op
                    .application_permissions
                    .iter()
                    .chain(op.directory_roles)
                    .copied();
                let (named, others): (Vec<&str>, Vec<&str>) =
                    documented.partition(|p| service.message.contains(p));
                Error::Permission {
                    required: named.into_iter().chain(others).collect(),
                    error: service,
                }
            }
            404 => Error::NotFound(service),
            429 => Error::RateLimited {
                retry_after,
                error: Some(service),
            },
            400 if service.code == "ActiveRequestAlreadyExists"
                || service.message.contains("already in progress") =>
            {
                Error::AlreadyRunning(service)
            }
            400 => Error::InvalidRequest(service),
            status => Error::UnexpectedResponse {
                status: Some(status),
                excerpt: service.to_string(),
            },
        }
    }
}
