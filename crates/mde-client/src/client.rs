//! The client a caller builds: hosts, credentials, limits, and typed calls that validate their
//! input and retry only what is safe to retry.

use std::cell::RefCell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::hooks::{CALL, CallState, Runtime, WaitReason};
use crate::operations::{self, OperationId, Request};
use crate::rate_limit::{Clock, Ticket};
use crate::{generated, types};

/// A client of the Defender for Endpoint machine-investigation API.
///
/// Build one with [`Client::builder`]; send any operation's request with [`Client::send`]
/// (the typed methods such as [`Client::collect_investigation_package`] are shorthands for
/// it). Each call waits for room in the operation's documented rate limit before it is sent,
/// carries a bearer token (renewed before it expires), and turns every failure into an
/// [`Error`] a caller can act on.
///
/// # Retries
///
/// These operations *start* things: an investigation, a package collection. After a timeout
/// or a 5xx the action may exist already, and sending again can start a second one. So the
/// client retries only what the service refused without acting on it: a 429 (after waiting
/// `Retry-After`, at most [`ClientBuilder::max_retry_after`](crate::ClientBuilder::max_retry_after)) and a 401 with a cached token
/// (once, with a new token). A caller that prefers a possible duplicate to a missed action
/// opts in per call with [`Call::retry_transient`].
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) runtime: Arc<Runtime>,
    /// One generated client per operation (indexed by [`OperationId::index`]), pointed at the
    /// host it is documented on.
    pub(crate) raw: Vec<Result<generated::Client, String>>,
    /// For package downloads: another host, no bearer token, no whole-request timeout.
    pub(crate) downloads: reqwest::Client,
    pub(crate) max_retry_after: Duration,
    pub(crate) retries_on_429: u32,
}

/// The request body of the operations that take only a `Comment`.
fn comment_body(comment: &str) -> Result<types::CommentRequest, Error> {
    let comment = types::CommentRequestComment::try_from(comment)
        .map_err(|e| Error::InvalidInput(format!("the comment: {e}")))?;
    Ok(types::CommentRequest { comment })
}

impl Client {
    /// The generated client for `op`, pointed at the host the operation is documented on, for
    /// full control over a call (it still gets the rate limits, the token and the body cap).
    pub fn raw(&self, op: OperationId) -> Result<&generated::Client, Error> {
        self.raw[op.index()]
            .as_ref()
            .map_err(|e| Error::Configuration(e.clone()))
    }

    pub(crate) fn downloads(&self) -> &reqwest::Client {
        &self.downloads
    }

    /// The clock the client's limits and token cache run on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.runtime.clock
    }

    /// How many more calls of `op` its documented limits take now, as this client counts them
    /// (with its tenant's budget for hunting); `None` when none is documented or the limits
    /// are not enforced.
    pub fn calls_left(&self, op: OperationId) -> Option<u32> {
        let limiter = self.runtime.limiter.as_ref()?;
        limiter.left(op, self.runtime.clock.now())
    }

    /// Sends any operation's request: `client.send(operations::CollectInvestigationPackage
    /// { id, body })`. The path parameters are checked before anything is sent; see
    /// [`Call`] for what awaiting it does.
    pub fn send<R: Request>(&self, request: R) -> Call<'_, R> {
        self.prepare(Ok(request))
    }

    /// Gets a token now (from the cache, or from Azure AD), so that a run finds wrong
    /// credentials or an unreachable sign-in host before its first request. A bearer token
    /// given as is cannot be checked without a call: it passes.
    pub async fn sign_in(&self) -> Result<(), Error> {
        self.runtime.tokens.api().authorization().await.map(drop)
    }

    /// The action a request for a new one was answered with, when it is not new: an id this
    /// client was already given, or created more than [`NOT_NEW`] before the answer's `Date`.
    fn repeated<R: Request>(
        &self,
        response: &R::Response,
        date: Option<&reqwest::header::HeaderValue>,
    ) -> Option<types::MachineAction> {
        let action = R::created_action(response)?;
        let id = action.id.as_deref()?;
        let known = !self.runtime.created.remember(id);
        // The `Date` is read only for an id not seen before.
        let old = || match (date.and_then(answer_date), &action.creation_date_time_utc) {
            (Some(date), Some(created)) => chrono::Duration::from_std(NOT_NEW)
                .is_ok_and(|not_new| created.instant() + not_new < date),
            _ => false,
        };
        (known || old()).then(|| action.clone())
    }

    /// Refuses an operation the service stopped serving (`x-deprecation.retiring` is past on
    /// the client's clock): what it would answer is undocumented.
    fn check_not_retired(&self, op: OperationId) -> Result<(), Error> {
        let Some(date) = op.facts().retiring else {
            return Ok(());
        };
        let last = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|e| Error::Configuration(format!("{op}: retiring date {date:?}: {e}")))?;
        if self.clock().now_utc().date_naive() <= last {
            return Ok(());
        }
        Err(Error::Configuration(format!(
            "the service stopped serving {op} after {date}: {}",
            op.facts().deprecation.unwrap_or_default()
        )))
    }

    fn prepare<R: Request>(&self, request: Result<R, Error>) -> Call<'_, R> {
        let request = request.and_then(|r| {
            for (name, value) in r.path_parameters() {
                check_path_parameter(name, value)?;
            }
            Ok(r)
        });
        Call {
            client: self,
            request,
            transient_retries: 0,
            reserved: None,
        }
    }

    /// Starts an automated investigation on a device (201 and the investigation).
    #[deprecated(
        note = "Retired by the service on 2026-09-01 (OperationId::StartInvestigation.facts().deprecation); the replacement for on-demand checks is a full antivirus scan, run_antivirus_scan(id, comment, ScanType::Full) (MC1411577)."
    )]
    #[allow(deprecated)]
    pub fn start_investigation(
        &self,
        machine_id: &str,
        comment: &str,
    ) -> Call<'_, operations::StartInvestigation> {
        self.prepare(
            comment_body(comment).map(|body| operations::StartInvestigation {
                id: machine_id.into(),
                body,
            }),
        )
    }

    /// Initiates an automated investigation (preview; 200 and the investigation id).
    #[deprecated(
        note = "Retired by the service on 2026-09-01 (OperationId::InitiateInvestigation.facts().deprecation); the replacement for on-demand checks is a full antivirus scan, run_antivirus_scan(id, comment, ScanType::Full) (MC1411577)."
    )]
    #[allow(deprecated)]
    pub fn initiate_investigation(
        &self,
        machine_id: &str,
        comment: &str,
    ) -> Call<'_, operations::InitiateInvestigation> {
        self.prepare(
            comment_body(comment).map(|body| operations::InitiateInvestigation {
                id: machine_id.into(),
                body,
            }),
        )
    }

    /// Collects the investigation package of a device (201 and the machine action).
    pub fn collect_investigation_package(
        &self,
        machine_id: &str,
        comment: &str,
    ) -> Call<'_, operations::CollectInvestigationPackage> {
        self.prepare(
            comment_body(comment).map(|body| operations::CollectInvestigationPackage {
                id: machine_id.into(),
                body,
            }),
        )
    }

    /// Runs a Microsoft Defender Antivirus scan on a device (201 and the machine action). A
    /// full scan is the on-demand replacement for the retired investigations (MC1411577).
    pub fn run_antivirus_scan(
        &self,
        machine_id: &str,
        comment: &str,
        scan_type: types::ScanType,
    ) -> Call<'_, operations::RunAntiVirusScan> {
        let comment = types::RunAntiVirusScanRequestComment::try_from(comment)
            .map_err(|e| Error::InvalidInput(format!("the comment: {e}")));
        self.prepare(comment.map(|comment| operations::RunAntiVirusScan {
            id: machine_id.into(),
            body: types::RunAntiVirusScanRequest { comment, scan_type },
        }))
    }

    /// Cancels a machine action that is not final yet (prerelease; 200 and the action).
    pub fn cancel_machine_action(
        &self,
        action_id: &str,
        comment: &str,
    ) -> Call<'_, operations::CancelMachineAction> {
        self.prepare(
            comment_body(comment).map(|body| operations::CancelMachineAction {
                id: action_id.into(),
                body,
            }),
        )
    }

    /// A machine action as the service has it now (200 and the action).
    pub fn get_machine_action(&self, action_id: &str) -> Call<'_, operations::GetMachineAction> {
        self.send(operations::GetMachineAction {
            id: action_id.into(),
        })
    }

    /// Collects the investigation package through the deprecated Graph endpoint.
    #[deprecated(
        note = "The Graph preview endpoint is deprecated; use collect_investigation_package."
    )]
    #[allow(deprecated)]
    pub fn collect_investigation_package_graph(
        &self,
        machine_id: &str,
        comment: &str,
    ) -> Call<'_, operations::CollectInvestigationPackageGraph> {
        self.prepare(comment_body(comment).map(|body| {
            operations::CollectInvestigationPackageGraph {
                id: machine_id.into(),
                body,
            }
        }))
    }
}

/// One call of an operation; `.await` it for the operation's success type. Built by
/// [`Client::send`] and the typed methods of [`Client`].
///
/// Awaiting it: the input checks (before anything is sent), room in the documented rate
/// limits, the bearer token, the request, the body cap, and the safe retries (429 after
/// `Retry-After`, 401 once with a new token, transient failures only when opted in).
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'a, R: Request> {
    client: &'a Client,
    /// The request, or why it cannot be sent.
    request: Result<R, Error>,
    transient_retries: u32,
    reserved: Option<Ticket>,
}

impl<R: Request> Call<'_, R> {
    /// Waits until the operation's documented rate limit has room and counts the call now, so
    /// that awaiting it then sends at once. A fleet run uses this to record "sending" in its
    /// journal only when the call really goes out. A call whose input is refused reserves
    /// nothing.
    pub async fn reserve(mut self) -> Self {
        if self.reserved.is_none() && self.request.is_ok() {
            self.reserved = self.client.runtime.acquire(R::ID).await;
        }
        self
    }

    /// Also retries up to `times` after a transport error, a timeout or a 5xx, with backoff.
    /// Such a failure may come after the service started the action: a retry can start a
    /// second one. Opt in only where a duplicate is better than a missed action.
    pub fn retry_transient(mut self, times: u32) -> Self {
        self.transient_retries = times;
        self
    }
}

/// How long before the answer's `Date` an action was created, at least, when the service
/// answers a request for a new one with the one already pending. A new action is created
/// while its request is handled, within a second or two of the `Date` (whole seconds).
pub(crate) const NOT_NEW: Duration = Duration::from_secs(10);

/// An answer's `Date`.
fn answer_date(date: &reqwest::header::HeaderValue) -> Option<chrono::DateTime<chrono::Utc>> {
    let date = date.to_str().ok()?;
    chrono::DateTime::parse_from_rfc2822(date)
        .ok()
        .map(|d| d.to_utc())
}

/// A path parameter the service could look up: not empty, not a path step, no control
/// characters, not absurdly long. Anything else is percent-encoded and left to the service.
fn check_path_parameter(name: &str, value: &str) -> Result<(), Error> {
    let problem = if value.trim().is_empty() {
        "is empty"
    } else if value == "." || value == ".." {
        "is a path step"
    } else if value.chars().any(char::is_control) {
        "contains control characters"
    } else if value.len() > 256 {
        "is longer than 256 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput(format!(
        "the path parameter `{name}` {problem}"
    )))
}

impl<'a, R: Request> IntoFuture for Call<'a, R> {
    type Output = Result<R::Response, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + std::marker::Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let request = self.request?;
            self.client.check_not_retired(R::ID)?;
            let raw = self.client.raw(R::ID)?;
            let runtime = &self.client.runtime;
            let (mut limited, mut transient, mut reauthenticated) = (0, 0, false);
            let mut reserved = self.reserved;
            loop {
                let fresh = CallState {
                    reserved: reserved.take(),
                    ..CallState::default()
                };
                let (result, mut state) = CALL
                    .scope(RefCell::new(fresh), async {
                        let result = request.clone().send(raw).await;
                        (result, CALL.with(|c| std::mem::take(&mut *c.borrow_mut())))
                    })
                    .await;
                let error = match result {
                    Ok(value) => {
                        let date = value.headers().get(reqwest::header::DATE).cloned();
                        let response = value.into_inner();
                        return match self.client.repeated::<R>(&response, date.as_ref()) {
                            Some(pending) => Err(Error::AlreadyPending(Box::new(pending))),
                            None => Ok(response),
                        };
                    }
                    Err(e) => match state.error.take() {
                        Some(error) => error,
                        None => Error::from_generated(e, R::ID, (state.status, state.retry_after)),
                    },
                };
                // The 50 sessions running at once: wait for one to end, not a fixed time.
                if matches!(error, Error::RateLimited { .. })
                    && R::ID == crate::operations::OperationId::RunLiveResponse
                    && limited < self.client.retries_on_429
                    && self
                        .client
                        .wait_for_a_session(self.client.max_retry_after)
                        .await
                {
                    limited += 1;
                    continue;
                }
                match &error {
                    Error::RateLimited {
                        retry_after,
                        error: body,
                    } if limited < self.client.retries_on_429 => {
                        // A 429 was not acted on: waiting and sending again is safe.
                        let wait = runtime.wait_after_429(R::ID, *retry_after, body.as_ref());
                        if wait > self.client.max_retry_after {
                            return Err(error);
                        }
                        limited += 1;
                        runtime.refused(R::ID, wait).await;
                    }
                    Error::Authentication(_)
                        if !reauthenticated && runtime.tokens.of(R::ID).forget().await =>
                    {
                        // A refused cached token: the request was not acted on; one new token.
                        reauthenticated = true;
                    }
                    e if e.is_transient() && transient < self.transient_retries => {
                        transient += 1;
                        let wait = Duration::from_millis(500) * 2u32.pow(transient.min(6));
                        runtime.waiting(R::ID, WaitReason::Backoff, wait);
                        runtime.clock.sleep(wait).await;
                    }
                    _ => {
                        tracing::debug!(
                            operation = R::ID.as_str(),
                            status = error.status(),
                            correlation_id = error.correlation_id(),
                            delivery = ?error.delivery(),
                            "mde-client: {error}"
                        );
                        return Err(error);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{Cloud, Region};

    #[test]
    fn plain_http_only_on_loopback() {
        let build = |url: &str| {
            Client::builder()
                .bearer_token("t")
                .base_url(url)
                .build()
                .map(|_| ())
        };
        assert!(build("http://127.0.0.1:8787").is_ok());
        assert!(build("http://[::1]:8787/").is_ok());
        assert!(build("http://localhost:1").is_ok());
        assert!(build("https://api.security.microsoft.com").is_ok());
        let refused = build("http://api.security.microsoft.com")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("loopback"), "{refused}");
        assert!(build("ftp://127.0.0.1").is_err());
        let login = Client::builder()
            .bearer_token("t")
            .login_url("http://login.microsoftonline.com")
            .build();
        assert!(matches!(login, Err(Error::Configuration(_))));
    }

    #[test]
    fn machine_ids_that_would_change_the_path_are_refused() {
        for bad in ["", " ", ".", "..", "a\nb", &"x".repeat(300)] {
            assert!(
                matches!(check_path_parameter("id", bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
        for fine in [
            "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
            "a/b",
            "a b",
            "ünï",
            "%2e%2e",
        ] {
            assert!(check_path_parameter("id", fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn each_operation_goes_to_its_documented_host() {
        let client = Client::builder()
            .bearer_token("t")
            .region(Region::Eu)
            .build()
            .unwrap();
        let host = |op| ClientInfo::baseurl(client.raw(op).unwrap()).to_string();
        use progenitor_client::ClientInfo;
        assert_eq!(
            host(OperationId::CollectInvestigationPackage),
            "https://eu.api.security.microsoft.com"
        );
        assert_eq!(
            host(OperationId::StartInvestigation),
            "https://eu.api.security.microsoft.com"
        );
        assert_eq!(
            host(OperationId::InitiateInvestigation),
            "https://api.securitycenter.windows.com"
        );
        assert_eq!(
            host(OperationId::CollectInvestigationPackageGraph),
            "https://graph.microsoft.com"
        );
        let gov = Client::builder()
            .bearer_token("t")
            .cloud(Cloud::Dod)
            .build()
            .unwrap();
        assert!(matches!(
            gov.raw(OperationId::InitiateInvestigation),
            Err(Error::Configuration(_))
        ));
        let sim = Client::builder()
            .bearer_token("t")
            .base_url("http://127.0.0.1:9/")
            .build()
            .unwrap();
        for op in OperationId::ALL {
            assert_eq!(
                ClientInfo::baseurl(sim.raw(op).unwrap()),
                "http://127.0.0.1:9"
            );
        }
    }
}
