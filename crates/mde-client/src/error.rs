//! One error type a caller can act on: match on its variants, the service's `code` and the
//! HTTP status, never on message text.

use std::fmt;
use std::time::Duration;

use crate::operations::OperationId;
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

impl ServiceError {
    /// The 400 for an action of the same kind already running on the machine.
    ///
    /// The one place that reads the message: callers have seen the service say it either with
    /// the code `ActiveRequestAlreadyExists` or with a generic code and only the text "Action
    /// is already in progress" (reference: mde-facts.md, issues 5903, 5905, 5907).
    pub fn is_already_running(&self) -> bool {
        self.status == 400
            && (self.code == "ActiveRequestAlreadyExists"
                || self.message.contains("already in progress"))
    }
}

/// Everything a call can end in besides success. New variants may come: match with a
/// fallback arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Refused before sending: an empty comment, an empty or malformed path parameter.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The client is set up wrong: a plain `http://` host that is not loopback, a region
    /// its cloud does not have, an operation its cloud does not offer.
    #[error("configuration: {0}")]
    Configuration(String),
    /// No answer: connecting, DNS, TLS, a timeout, a dropped connection. Whether the action
    /// may exist now is [`Error::delivery`]. The transport's own error, with its causes, is
    /// the [`source`](std::error::Error::source).
    #[error("transport: {message}")]
    Transport {
        /// What went wrong, in a line.
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
        /// Whether the request may have left: `false` when no connection was made (refused,
        /// DNS, TLS) or no token could be had for it.
        sent: bool,
        /// The transport's error.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// 401, or Azure AD refused the credentials.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// 403: the token lacks the permission the operation needs.
    #[error("{}", permission_text(error, required))]
    Permission {
        /// The permissions or roles the spec documents for the operation, any one of which
        /// would do.
        required: Vec<&'static str>,
        /// The service's error.
        error: ServiceError,
    },
    /// 404: the machine (or action) was not found.
    #[error("not found: {0}")]
    NotFound(ServiceError),
    /// The 400 when the same kind of action is already running on the machine.
    #[error("already running: {0}")]
    AlreadyRunning(ServiceError),
    /// A request for a new action answered with the action already pending on the machine,
    /// the other way the service says "already running" (a repeated scan, reference:
    /// run-av-scan.md; issues 5903, 5905, 5907): no new action was created. Told apart from a
    /// new action by its id (one this client was already given) or by its creation time,
    /// well before the answer's `Date`. The pending action is here, to follow.
    #[error("already running: the service answered with the pending action {} created {}, not a new one", .0.id.as_deref().unwrap_or("?"), .0.creation_date_time_utc.as_ref().map(|t| t.as_str()).unwrap_or("?"))]
    AlreadyPending(Box<types::MachineAction>),
    /// Another 400: the service's message says what is wrong with the request.
    #[error("invalid request: {0}")]
    InvalidRequest(ServiceError),
    /// 429, and waiting for it was not allowed (over the client's bound, or retries spent).
    #[error("rate limited{}{}", retry_after.map(|w| format!("; retry after {} s", w.as_secs())).unwrap_or_default(), error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    RateLimited {
        /// How long the service asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// The service's error, when it sent one.
        error: Option<ServiceError>,
    },
    /// A file could not be read or written (a package download: a read-only folder, a full
    /// disk). Nothing was left that looks complete.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A package download that could not be completed: it stayed short, or was not an archive.
    #[error("download: {0}")]
    Download(String),
    /// An answer the spec does not describe: another status, a body that is not what the spec
    /// says, or one over the size cap. `excerpt` is bounded and never holds a secret.
    #[error("unexpected response{}: {excerpt}", status.map(|s| format!(" {s}")).unwrap_or_default())]
    UnexpectedResponse {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// The start of the body, or what was wrong with it.
        excerpt: String,
    },
}

/// Longest excerpt of a body kept in an error.
pub(crate) const EXCERPT: usize = 512;

/// At most `max` characters of `text`, without control characters, with `…` when cut: the
/// one way caller input and answers are shortened for messages.
pub fn shorten(text: &str, max: usize) -> String {
    let mut chars = text.chars().filter(|c| !c.is_control() || *c == ' ');
    let mut shown: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

pub(crate) fn excerpt(bytes: &[u8]) -> String {
    // Decode a little more than needed: a cut multi-byte character is not a cut text.
    shorten(
        &String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT * 4)]),
        EXCERPT,
    )
}

pub(crate) fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What the service may have done with a request that failed: what a run tells a person,
/// and whether sending it again can start a second action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It never reached the service: refused before sending, no connection, no token, or a
    /// 429 (counted, not acted on). Sending it again starts nothing twice.
    NotSent,
    /// It may have reached the service, and no answer says what came of it (a timeout, a
    /// dropped connection, a 5xx, an answer that cannot be read): the action may exist.
    Unknown,
    /// The service answered: it refused the request, or said why it could not act.
    Answered,
}

impl Error {
    /// What the service may have done with the request.
    pub fn delivery(&self) -> Delivery {
        match self {
            Error::InvalidInput(_) | Error::Configuration(_) | Error::RateLimited { .. } => {
                Delivery::NotSent
            }
            Error::Transport { sent: false, .. } => Delivery::NotSent,
            Error::Transport { sent: true, .. } => Delivery::Unknown,
            // Azure AD refused the credentials, or the API refused the token: nothing acted.
            Error::Authentication(_) => Delivery::NotSent,
            // A 5xx, or a success whose body cannot be read: the action may exist.
            Error::UnexpectedResponse { status, .. } => match status {
                Some(s) if (400..500).contains(s) => Delivery::Answered,
                _ => Delivery::Unknown,
            },
            Error::Permission { .. }
            | Error::NotFound(_)
            | Error::AlreadyRunning(_)
            | Error::AlreadyPending(_)
            | Error::InvalidRequest(_)
            | Error::Io { .. }
            | Error::Download(_) => Delivery::Answered,
        }
    }

    /// The correlation id the service gave with its error (its `target`), to quote to
    /// Microsoft support.
    pub fn correlation_id(&self) -> Option<&str> {
        self.service_error()?.target.as_deref()
    }

    /// The service's error body, when it sent one.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Error::Permission { error, .. }
            | Error::NotFound(error)
            | Error::AlreadyRunning(error)
            | Error::InvalidRequest(error) => Some(error),
            Error::RateLimited { error, .. } => error.as_ref(),
            Error::InvalidInput(_)
            | Error::Configuration(_)
            | Error::Transport { .. }
            | Error::Authentication(_)
            | Error::AlreadyPending(_)
            | Error::Io { .. }
            | Error::Download(_)
            | Error::UnexpectedResponse { .. } => None,
        }
    }

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

    /// Whether the same kind of action is already running on the machine, whichever way the
    /// service said it ([`Error::AlreadyRunning`], [`Error::AlreadyPending`]).
    pub fn is_already_running(&self) -> bool {
        matches!(self, Error::AlreadyRunning(_) | Error::AlreadyPending(_))
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            // A success status, with an action that is not new.
            Error::AlreadyPending(_) => Some(201),
            Error::Permission { error, .. }
            | Error::NotFound(error)
            | Error::AlreadyRunning(error)
            | Error::InvalidRequest(error) => Some(error.status),
            Error::RateLimited { .. } => Some(429),
            Error::UnexpectedResponse { status, .. } => *status,
            Error::InvalidInput(_)
            | Error::Configuration(_)
            | Error::Transport { .. }
            | Error::Authentication(_)
            | Error::Io { .. }
            | Error::Download(_) => None,
        }
    }

    pub(crate) fn transport(e: reqwest::Error) -> Error {
        // reqwest's line names the URL (the machine id, never a secret); its causes stay
        // reachable through `source`.
        Error::Transport {
            message: e.to_string(),
            timeout: e.is_timeout(),
            // reqwest marks refused connections, DNS and TLS failures as connect errors.
            sent: !e.is_connect(),
            source: Some(e),
        }
    }

    /// The error for what the generated client returned; `(status, retry_after)` is what the
    /// hooks saw of the answer (progenitor drops the status of a body it could not decode).
    pub(crate) fn from_generated(
        e: generated::Error<types::Error>,
        op: OperationId,
        (status, retry_after): (Option<u16>, Option<Duration>),
    ) -> Error {
        use generated::Error as G;
        match e {
            G::ErrorResponse(response) => {
                let retry_after = parse_retry_after(response.headers());
                let status = response.status().as_u16();
                let body = response.into_inner().error;
                let service = ServiceError {
                    status,
                    code: body.code,
                    message: body.message,
                    // Graph has no `target`: its `request-id` is the one to quote.
                    target: body.target.or_else(|| {
                        let id = body.inner_error.get("request-id")?.as_str()?;
                        Some(id.to_string())
                    }),
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
                retry_after,
                error: None,
            },
            G::InvalidResponsePayload(bytes, e) => Error::UnexpectedResponse {
                status,
                excerpt: format!("{e}; body begins: {}", excerpt(&bytes)),
            },
            G::CommunicationError(e) | G::ResponseBodyError(e) | G::InvalidUpgrade(e) => {
                Error::transport(e)
            }
            G::InvalidRequest(m) => Error::InvalidInput(m),
            G::Custom(m) => Error::UnexpectedResponse { status, excerpt: m },
        }
    }

    fn from_service(
        service: ServiceError,
        retry_after: Option<Duration>,
        op: OperationId,
    ) -> Error {
        match service.status {
            401 => Error::Authentication(service.to_string()),
            403 => {
                let facts = op.facts();
                Error::Permission {
                    required: facts
                        .application_permissions
                        .iter()
                        .chain(facts.directory_roles)
                        .copied()
                        .collect(),
                    error: service,
                }
            }
            404 => Error::NotFound(service),
            429 => Error::RateLimited {
                retry_after,
                error: Some(service),
            },
            400 if service.is_already_running() => Error::AlreadyRunning(service),
            400 => Error::InvalidRequest(service),
            status => Error::UnexpectedResponse {
                status: Some(status),
                excerpt: service.to_string(),
            },
        }
    }
}

/// A 403 as a person reads it: the service's words, then the permissions that would do,
/// unless the service's words name them already.
fn permission_text(error: &ServiceError, required: &[&str]) -> String {
    let said = error.to_string();
    if !required.is_empty() && required.iter().all(|p| said.contains(p)) {
        format!("permission denied ({said})")
    } else {
        format!(
            "permission denied ({said}); the operation needs one of: {}",
            required.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_at_characters_and_drops_control_characters() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc…");
        assert_eq!(shorten("ü\nü\u{7}ü", 2), "üü…");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
