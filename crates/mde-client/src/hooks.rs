//! What every request of the generated client goes through (progenitor's `ClientHooks`):
//! the documented rate limits, the bearer token, and a cap on the answer's size. Raw calls
//! through [`Client::raw`](crate::Client::raw) get all of it too.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH};

use crate::body::{read_capped, read_chunks};
use crate::error::Error;
use crate::generated;
use crate::operations::OperationId;
use crate::rate_limit::{Clock, Quota, RateLimiter, Ticket};
use crate::token::Tokens;

/// Why a call waits before it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// The documented rate limit of the operation has no room yet.
    RateLimit,
    /// The service answered 429 and asked to wait (`Retry-After`).
    RetryAfter,
    /// The service said a quota of the tenant is spent (advanced hunting's calls a minute
    /// or an hour, or its CPU until the next cycle): every call of the tenant's
    /// [`TenantBudget`](crate::TenantBudget) waits.
    TenantQuota,
    /// A transient failure, retried because the caller opted in.
    Backoff,
    /// runLiveResponse was refused for the 50 sessions running at once: the call waits
    /// until one of them ends (looked at with listMachineActions), not a fixed time.
    SessionLimit,
}

/// A call is about to wait: given to the builder's `on_wait` hook and logged with `tracing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitEvent {
    /// The operation.
    pub operation: OperationId,
    /// Why it waits.
    pub reason: WaitReason,
    /// How long, in the client's clock.
    pub wait: Duration,
    /// The client's clock now (see [`Clock::now`]): the wait ends at `now + wait`.
    pub now: Duration,
}

pub(crate) type WaitHook = Arc<dyn Fn(&WaitEvent) + Send + Sync>;

/// What the generated clients of one [`Client`](crate::Client) share. Public only because
/// the generated client names it; not reachable from outside the crate.
pub struct Runtime {
    pub(crate) tokens: Tokens,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) body_limit: usize,
    pub(crate) on_wait: Option<WaitHook>,
    /// The actions this client was given (see `Error::AlreadyPending`).
    pub(crate) created: Created,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("tokens", &self.tokens)
            .field("limiter", &self.limiter)
            .field("clock", &self.clock)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// The generated client's inner state (progenitor's `inner_type`).
pub type Inner = Arc<Runtime>;

impl Runtime {
    /// Waits until the operation's documented limits have room (without counting the call).
    pub(crate) async fn wait_for_room(&self, op: OperationId) {
        let Some(limiter) = &self.limiter else { return };
        loop {
            let now = self.clock.now();
            let (reason, wait) = match limiter.blocked(op, now) {
                blocked if !blocked.is_zero() => (WaitReason::TenantQuota, blocked),
                _ => (WaitReason::RateLimit, limiter.wait(op, now)),
            };
            if wait.is_zero() {
                return;
            }
            self.waiting(op, reason, wait);
            self.clock.sleep(wait).await;
        }
    }

    /// Counts the call, waiting first if others took the room meanwhile.
    pub(crate) async fn acquire(&self, op: OperationId) -> Option<Ticket> {
        let limiter = self.limiter.as_ref()?;
        loop {
            self.wait_for_room(op).await;
            match limiter.try_acquire(op, self.clock.now()) {
                Ok(ticket) => return ticket,
                Err(wait) => {
                    self.waiting(op, WaitReason::RateLimit, wait);
                    self.clock.sleep(wait).await;
                }
            }
        }
    }

    /// How long a 429 of `op` asks to wait: its `Retry-After`; else the quota its words
    /// name (a window of calls: the window; the tenant's CPU: when it says, or the next
    /// cycle); else a second.
    pub(crate) fn wait_after_429(
        &self,
        op: OperationId,
        retry_after: Option<Duration>,
        error: Option<&crate::error::ServiceError>,
    ) -> Duration {
        let quota = error.and_then(|e| Quota::of(&e.message));
        let cycle = op.facts().tenant_quota.map(|q| q.cycle.max(1));
        let next_cycle = || {
            let cycle = cycle?;
            let now = self.clock.now_utc().timestamp().max(0) as u64;
            Some(Duration::from_secs(cycle - now % cycle))
        };
        retry_after
            .or(match quota {
                Some(Quota::Calls { per, .. }) => Some(per),
                Some(Quota::Cpu { again_in }) => again_in.or_else(next_cycle),
                None => None,
            })
            .unwrap_or(Duration::from_secs(1))
    }

    /// Waits `wait` after a 429 of `op`; for an operation of the tenant's quota, every call of
    /// the tenant's budget waits with it (before its request is sent).
    pub(crate) async fn refused(&self, op: OperationId, wait: Duration) {
        match &self.limiter {
            Some(limiter) if op.facts().tenant_quota.is_some() => {
                limiter.block(op, self.clock.now() + wait);
            }
            _ => {
                self.waiting(op, WaitReason::RetryAfter, wait);
                self.clock.sleep(wait).await;
            }
        }
    }

    pub(crate) fn waiting(&self, op: OperationId, reason: WaitReason, wait: Duration) {
        let event = WaitEvent {
            operation: op,
            reason,
            wait,
            now: self.clock.now(),
        };
        tracing::info!(
            operation = event.operation.as_str(),
            ?reason,
            wait_ms = wait.as_millis() as u64,
            "mde-client: waiting"
        );
        let _ = WAITED.try_with(|w| w.set((w.get().0 + 1, w.get().1 + wait)));
        if let Some(hook) = &self.on_wait {
            hook(&event);
        }
    }
}

/// What the hooks learn about the call under way, for the error the caller gets: progenitor
/// forgets the status of an answer it cannot decode, and carries hook errors as text.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    /// A call already counted by [`Call::reserve`](crate::Call::reserve).
    pub(crate) reserved: Option<Ticket>,
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) error: Option<Error>,
}

tokio::task_local! {
    pub(crate) static CALL: RefCell<CallState>;
    /// The waits of the work under way (a hunt's): how many, and how long in all.
    pub(crate) static WAITED: std::cell::Cell<(u32, Duration)>;
    /// A hunt's rows: where a hunt asks for them, a successful answer's rows are cut out of
    /// its body as it arrives and put here, and the rest of the body (its schema) is read
    /// as the answer, with no rows. The body is never held whole.
    pub(crate) static ROWS: RefCell<Vec<crate::rows::Row>>;
}

fn stash<E>(e: Error) -> progenitor_client::Error<E> {
    let text = e.to_string();
    let _ = CALL.try_with(|call| call.borrow_mut().error = Some(e));
    progenitor_client::Error::Custom(text)
}

/// A token that could not be had: the request it was for never left.
fn unsent(e: Error) -> Error {
    match e {
        Error::Transport {
            message,
            timeout,
            source,
            ..
        } => Error::Transport {
            message: format!("signing in: {message}"),
            timeout,
            sent: false,
            source,
        },
        e => e,
    }
}

/// The most a page's body may need: 10,000 entities of a few KB (reference: get-machines.md,
/// get-machineactions-collection.md), or a hunting answer under the Defender API's 50 MB
/// result cap (run-advanced-query-api.md, LEARN 2026-07-28; the older pages' 124 MB and
/// Graph's undocumented one end in the same typed error past it).
const PAGE_BODY_LIMIT: usize = 64 << 20;

/// The cap on an operation's answer: the client's, or a full page's for the operations that
/// answer a page.
fn body_cap(op: Option<OperationId>, limit: usize) -> usize {
    if op.is_some_and(|op| op.facts().answers_page) {
        limit.max(PAGE_BODY_LIMIT)
    } else {
        limit
    }
}

/// Marks an answer whose body was over the cap (the body is dropped).
#[derive(Clone, Copy, Debug)]
struct OverCap(usize);

/// Marks a hunting answer with a row that is not an object: what it began with.
#[derive(Clone, Debug)]
struct BadRow(String);

/// The head of `response` for a body read here: its length dropped, as the body may differ.
fn head_of(response: &mut reqwest::Response) -> http::Response<()> {
    let mut head = http::Response::new(());
    *head.status_mut() = response.status();
    *head.version_mut() = response.version();
    *head.headers_mut() = std::mem::take(response.headers_mut());
    head.headers_mut().remove(CONTENT_LENGTH);
    head
}

/// A hunt's answer read as it arrives (see [`ROWS`]): its rows into `ROWS`, the answer left
/// with the rest of its body; marked over the cap past `limit` bytes, or for a row that is
/// not an object.
async fn split_rows(
    response: &mut reqwest::Response,
    limit: usize,
    head: http::Response<()>,
) -> reqwest::Result<http::Response<Vec<u8>>> {
    let mut splitter = crate::rows::split::Splitter::default();
    let complete = read_chunks(response, limit, |chunk| splitter.feed(chunk)).await?;
    let mut rest = head.map(|()| Vec::new());
    if !complete {
        rest.extensions_mut().insert(OverCap(limit));
    } else if let Some(what) = splitter.bad_row.take() {
        rest.extensions_mut().insert(BadRow(what));
    } else {
        let rows = std::mem::take(&mut splitter.rows);
        let _ = ROWS.try_with(|r| *r.borrow_mut() = rows);
        *rest.body_mut() = splitter.skeleton().to_vec();
    }
    Ok(rest)
}

/// The ids of the actions a client was given, the latest [`Created::KEPT`]: an id given again
/// is an action already pending, not a new one.
#[derive(Debug, Default)]
pub(crate) struct Created(
    std::sync::Mutex<(
        std::collections::HashSet<String>,
        std::collections::VecDeque<String>,
    )>,
);

impl Created {
    const KEPT: usize = 100_000;

    /// Remembers `id`; `false` when it was already known.
    pub(crate) fn remember(&self, id: &str) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *guard;
        if !set.insert(id.to_string()) {
            return false;
        }
        order.push_back(id.to_string());
        if order.len() > Self::KEPT
            && let Some(oldest) = order.pop_front()
        {
            set.remove(&oldest);
        }
        true
    }
}

impl ClientHooks<Inner> for generated::Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let runtime = self.inner();
        // Wait here, before the token is taken, so a long wait cannot outlast the token; the
        // call is counted when it is sent (`exec`).
        if let Some(op) = OperationId::from_method(info.operation_id) {
            let reserved = CALL
                .try_with(|call| call.borrow().reserved.is_some())
                .unwrap_or(false);
            if !reserved {
                runtime.wait_for_room(op).await;
            }
        }
        let tokens = match OperationId::from_method(info.operation_id) {
            Some(op) => runtime.tokens.of(op),
            None => runtime.tokens.api(),
        };
        let value = tokens.authorization().await.map_err(|e| stash(unsent(e)))?;
        request.headers_mut().insert(AUTHORIZATION, value);
        // progenitor adds `api-version: <info.version>`; the service documents no such header.
        request.headers_mut().remove("api-version");
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let runtime = self.inner();
        let op = OperationId::from_method(info.operation_id);
        let ticket = match op {
            Some(op) => match CALL
                .try_with(|call| call.borrow_mut().reserved.take())
                .ok()
                .flatten()
            {
                Some(ticket) => Some(ticket),
                None => runtime.acquire(op).await,
            },
            None => None,
        };
        // What `-v` shows of each request: never a query (a package link's is a secret), a
        // header or a body.
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let operation = op.map_or(info.operation_id, OperationId::as_str);
        let started = std::time::Instant::now();
        let sent = self.client().execute(request).await;
        let took_ms = started.elapsed().as_millis() as u64;
        match &sent {
            Ok(response) => tracing::debug!(
                operation,
                %method,
                path,
                status = response.status().as_u16(),
                took_ms,
                "mde-client: answered"
            ),
            Err(e) => tracing::debug!(
                operation,
                %method,
                path,
                took_ms,
                error = %e,
                "mde-client: no answer"
            ),
        }
        if let (Some(op), Some(ticket), Some(limiter)) = (op, ticket, &runtime.limiter) {
            limiter.answered(op, ticket, runtime.clock.now());
        }
        let mut response = sent?;
        let limit = body_cap(op, self.inner().body_limit);
        let split = response.status().is_success() && ROWS.try_with(|_| ()).is_ok();
        // A declared length within the cap is the cap: hyper reads no byte past it. A page is
        // read here all the same, into one buffer of its length: read in chunks and joined
        // after, it would be held twice.
        let page = op.is_some_and(|op| op.facts().answers_page);
        if !split && !page && response.content_length().is_some_and(|n| n <= limit as u64) {
            return Ok(response);
        }
        let head = head_of(&mut response);
        let answer = if split {
            split_rows(&mut response, limit, head).await?
        } else {
            let (body, complete) = read_capped(response, limit).await?;
            let mut capped = head.map(|()| body);
            if !complete {
                capped.extensions_mut().insert(OverCap(limit));
            }
            capped
        };
        Ok(reqwest::Response::from(answer))
    }

    async fn post<E>(
        &self,
        result: &reqwest::Result<reqwest::Response>,
        _: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let Ok(response) = result else { return Ok(()) };
        let status = response.status().as_u16();
        let retry_after = crate::error::parse_retry_after(response.headers());
        let _ = CALL.try_with(|call| {
            let mut call = call.borrow_mut();
            call.status = Some(status);
            call.retry_after = retry_after;
        });
        if let Some(BadRow(what)) = response.extensions().get::<BadRow>() {
            return Err(stash(Error::UnexpectedResponse {
                status: Some(status),
                excerpt: format!("a row of the answer is not a JSON object: {what}"),
            }));
        }
        if let Some(OverCap(limit)) = response.extensions().get::<OverCap>() {
            return Err(stash(Error::UnexpectedResponse {
                status: Some(status),
                excerpt: format!("the body is over the {limit}-byte cap"),
            }));
        }
        Ok(())
    }
}
