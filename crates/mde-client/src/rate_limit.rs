//! The documented rate limits (`x-rate-limit`, through the generated [`operations`](crate::operations)),
//! enforced before sending, so that a caller going as fast as it can never meets a 429 from
//! a service that counts them.
//!
//! The service counts calls over windows ("100 calls per minute and 1500 calls per hour"), so
//! the client keeps the times of its own calls and sends when every window has room: a burst
//! goes out at once, and nothing waits longer than the windows require. A token bucket (GCRA,
//! as in `governor`) cannot do both: with a burst of 100 it lets through 101 calls in a
//! minute, without one it spaces every call 0.6 s apart.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::operations::{OperationId, RateWindow};

/// Time as the limiter and the token cache see it. The default is the system's monotonic
/// clock; the simulator's accelerated clock implements it too, so that a demo's client and
/// simulator share one time line.
pub trait Clock: Debug + Send + Sync {
    /// Time since some fixed origin.
    fn now(&self) -> Duration;
    /// Waits `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// The date and time now on this clock: the system's by default; a simulator's clock
    /// gives its own, so that times a program records agree with the ones it is answered.
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        std::time::SystemTime::now().into()
    }
}

/// The system's monotonic clock (tokio's, so tests may pause it).
#[derive(Debug)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The calls counted against one operation's windows for one caller, in time order: the
/// sliding-window core of the client (which waits for room) and of the simulator (which
/// answers 429 when there is none).
#[derive(Debug, Default, Clone)]
pub struct CallLog {
    /// (ticket, time), sorted by time.
    calls: Vec<(u64, Duration)>,
    next_ticket: u64,
}

/// A call counted by a [`CallLog`]; [`CallLog::answered`] moves it to its answer's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl CallLog {
    /// How long until every window has room at `now` (zero: now). `margin` widens each
    /// window.
    pub fn wait(&mut self, windows: &[RateWindow], margin: Duration, now: Duration) -> Duration {
        let longest = windows.iter().map(|w| w.seconds).max().unwrap_or(0);
        let horizon = Duration::from_secs(longest) + margin;
        // Calls older than the longest window count in none.
        let expired = self
            .calls
            .partition_point(|(_, t)| now.saturating_sub(*t) >= horizon);
        self.calls.drain(..expired);
        let mut wait = Duration::ZERO;
        for window in windows {
            let length = Duration::from_secs(window.seconds) + margin;
            let first_inside = self
                .calls
                .partition_point(|(_, t)| now.saturating_sub(*t) >= length);
            let inside = self.calls.len() - first_inside;
            let allowed = window.calls as usize;
            if inside >= allowed {
                // Room comes back when the oldest call that keeps the window full leaves it.
                let (_, oldest) = self.calls[self.calls.len() - allowed];
                wait = wait.max((oldest + length).saturating_sub(now));
            }
        }
        wait
    }

    /// How many more calls every window takes at `now`.
    pub fn left(&self, windows: &[RateWindow], margin: Duration, now: Duration) -> u32 {
        windows
            .iter()
            .map(|window| {
                let length = Duration::from_secs(window.seconds) + margin;
                let inside = self
                    .calls
                    .iter()
                    .filter(|(_, t)| now.saturating_sub(*t) < length)
                    .count();
                window.calls.saturating_sub(inside as u32)
            })
            .min()
            .unwrap_or(u32::MAX)
    }

    /// Counts a call at `now` if every window has room; else counts nothing and says how long
    /// until one does.
    pub fn try_admit(
        &mut self,
        windows: &[RateWindow],
        margin: Duration,
        now: Duration,
    ) -> Result<Ticket, Duration> {
        let wait = self.wait(windows, margin, now);
        if wait > Duration::ZERO {
            return Err(wait);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.insert(ticket, now);
        Ok(Ticket(ticket))
    }

    /// The call's answer (or failure) arrived at `now`: it counts from then on.
    pub fn answered(&mut self, ticket: Ticket, now: Duration) {
        if let Some(i) = self.calls.iter().rposition(|(t, _)| *t == ticket.0) {
            let (_, sent) = self.calls.remove(i);
            self.insert(ticket.0, sent.max(now));
        }
    }

    fn insert(&mut self, ticket: u64, at: Duration) {
        let i = self.calls.partition_point(|(_, t)| *t <= at);
        self.calls.insert(i, (ticket, at));
    }
}

/// The calls one client (one app, one tenant) made, one [`CallLog`] per operation; those of an
/// operation whose limits are the tenant's (`x-tenant-quota`) in its [`TenantBudget`].
///
/// A call counts from when it is sent, and once answered, from when its answer arrived: the
/// service counted it somewhere in between, so the next call that needs its room is sent only
/// after the service's window has surely let it go, however long the call took.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Added to every window, for clock drift or a service that counts late.
    margin: Duration,
    logs: Vec<Mutex<CallLog>>,
    budget: TenantBudget,
}

/// What one tenant's operations with a `TenantQuota` (advanced hunting) have left: their
/// calls, and until when the service said the tenant's quota is spent. Every client of a
/// process that signs in to the same tenant at the same host shares one
/// ([`TenantBudget::of`]), so that jobs running side by side spend one budget, as the service
/// counts them.
#[derive(Clone, Debug)]
pub struct TenantBudget(Arc<Budget>);

#[derive(Debug)]
struct Budget {
    logs: Vec<Mutex<CallLog>>,
    /// Per operation: the clock time before which the service refuses it.
    blocked: Vec<Mutex<Duration>>,
}

impl Default for TenantBudget {
    fn default() -> TenantBudget {
        TenantBudget(Arc::new(Budget {
            logs: OperationId::ALL.iter().map(|_| Mutex::default()).collect(),
            blocked: OperationId::ALL.iter().map(|_| Mutex::default()).collect(),
        }))
    }
}

impl TenantBudget {
    /// The process's one budget for `tenant` at `host`.
    pub fn of(host: &str, tenant: &str) -> TenantBudget {
        static BUDGETS: LazyLock<Mutex<HashMap<(String, String), TenantBudget>>> =
            LazyLock::new(Mutex::default);
        let mut budgets = BUDGETS.lock().unwrap_or_else(|e| e.into_inner());
        let key = (host.to_ascii_lowercase(), tenant.to_ascii_lowercase());
        budgets.entry(key).or_default().clone()
    }
}

impl RateLimiter {
    pub(crate) fn new(margin: Duration, budget: TenantBudget) -> RateLimiter {
        RateLimiter {
            margin,
            logs: OperationId::ALL.iter().map(|_| Mutex::default()).collect(),
            budget,
        }
    }

    fn log(&self, op: OperationId) -> std::sync::MutexGuard<'_, CallLog> {
        let logs = match op.facts().tenant_quota {
            Some(_) => &self.budget.0.logs,
            None => &self.logs,
        };
        logs[op.index()].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many more calls of `op` its windows take at `now`; `None`: no documented limit.
    pub(crate) fn left(&self, op: OperationId, now: Duration) -> Option<u32> {
        let windows = op.facts().rate_limits;
        (!windows.is_empty()).then(|| self.log(op).left(windows, self.margin, now))
    }

    /// How long the service said `op` is refused for, from `now` (zero: not refused).
    pub(crate) fn blocked(&self, op: OperationId, now: Duration) -> Duration {
        let until = *self.budget.0.blocked[op.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.saturating_sub(now)
    }

    /// The service refused `op` until `until` (its tenant's quota is spent): every call of
    /// the tenant's budget waits for it.
    pub(crate) fn block(&self, op: OperationId, until: Duration) {
        let mut blocked = self.budget.0.blocked[op.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *blocked = (*blocked).max(until);
    }

    /// How long until every window of `op` has room at `now` (zero: now).
    pub(crate) fn wait(&self, op: OperationId, now: Duration) -> Duration {
        let windows = op.facts().rate_limits;
        if windows.is_empty() {
            return Duration::ZERO;
        }
        self.log(op).wait(windows, self.margin, now)
    }

    /// Counts a call of `op` at `now` if every window has room; else counts nothing and says
    /// how long until one does. `None`: the operation has no documented limit.
    pub(crate) fn try_acquire(
        &self,
        op: OperationId,
        now: Duration,
    ) -> Result<Option<Ticket>, Duration> {
        let windows = op.facts().rate_limits;
        if windows.is_empty() {
            return Ok(None);
        }
        self.log(op).try_admit(windows, self.margin, now).map(Some)
    }

    /// The call's answer (or failure) arrived at `now`.
    pub(crate) fn answered(&self, op: OperationId, ticket: Ticket, now: Duration) {
        self.log(op).answered(ticket, now);
    }
}

/// The quota a 429 names, read from its message: the service's `code` is the string "429"
/// and only the words tell the quotas apart (hunting-indicators-alerts.md §1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// "API calls quota exceeded! maximum allowed 45 per 00:01:00": a window of calls.
    Calls {
        /// Calls the window allows.
        calls: u32,
        /// Its length.
        per: Duration,
    },
    /// "You have exceeded processing resources allocated to this tenant. You can run queries
    /// again in `<duration>`": the tenant's CPU, with when, if the words say it.
    Cpu {
        /// How long until queries run again.
        again_in: Option<Duration>,
    },
}

impl Quota {
    /// The quota `message` names, if it names one.
    pub fn of(message: &str) -> Option<Quota> {
        if let Some(rest) = message.split("maximum allowed ").nth(1) {
            let (calls, per) = rest.split_once(" per ")?;
            return Some(Quota::Calls {
                calls: calls.trim().parse().ok()?,
                per: time_span(per.trim().trim_end_matches('.'))?,
            });
        }
        if message.contains("processing resources") {
            let again_in = message
                .split("again in ")
                .nth(1)
                .and_then(|t| time_span(t.trim().trim_end_matches('.')));
            return Some(Quota::Cpu { again_in });
        }
        None
    }
}

/// A .NET TimeSpan, `[d.]hh:mm:ss[.fffffff]`.
pub fn time_span(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once('.') {
        Some((d, rest)) if !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    let s: f64 = s
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)?;
    let whole = (days * 24 + h) * 3600 + m * 60;
    Some(Duration::from_secs(whole) + Duration::from_secs_f64(s))
}

/// For a caller planning a run: the earliest time a run of `n` calls of `op` can end,
/// starting with no calls in any window.
pub fn minimum_duration(op: OperationId, n: usize) -> Duration {
    let windows = op.facts().rate_limits;
    let mut log = CallLog::default();
    let mut now = Duration::ZERO;
    for _ in 0..n {
        while let Err(wait) = log.try_admit(windows, Duration::ZERO, now) {
            now += wait;
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_and_the_rest_when_the_window_allows() {
        let op = OperationId::CollectInvestigationPackage;
        let limiter = RateLimiter::new(Duration::ZERO, TenantBudget::default());
        for _ in 0..100 {
            assert!(limiter.try_acquire(op, Duration::ZERO).unwrap().is_some());
        }
        assert_eq!(
            limiter.try_acquire(op, Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert!(limiter.try_acquire(op, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn what_the_documented_limits_require() {
        let collect = OperationId::CollectInvestigationPackage;
        assert_eq!(minimum_duration(collect, 100), Duration::ZERO);
        assert_eq!(minimum_duration(collect, 120), Duration::from_secs(60));
        // 1500 an hour: 15 minutes of 100, then the hour must pass for the first ones.
        assert_eq!(
            minimum_duration(collect, 1500),
            Duration::from_secs(14 * 60)
        );
        assert_eq!(minimum_duration(collect, 1501), Duration::from_secs(3600));
        assert_eq!(
            minimum_duration(OperationId::StartInvestigation, 51),
            Duration::from_secs(3600)
        );
        assert_eq!(
            minimum_duration(OperationId::CollectInvestigationPackageGraph, 10_000),
            Duration::ZERO
        );
    }

    #[test]
    fn a_call_counts_from_its_answer_once_answered() {
        let windows = [RateWindow {
            calls: 2,
            seconds: 60,
        }];
        let mut log = CallLog::default();
        let slow = log
            .try_admit(&windows, Duration::ZERO, Duration::ZERO)
            .unwrap();
        log.try_admit(&windows, Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        // Sent at 0 s and answered at 5 s: the service may have counted it as late as 5 s.
        log.answered(slow, Duration::from_secs(5));
        // The call of 1 s leaves the window first now, then the slow one at 65 s.
        assert_eq!(
            log.try_admit(&windows, Duration::ZERO, Duration::from_secs(60)),
            Err(Duration::from_secs(1))
        );
        log.try_admit(&windows, Duration::ZERO, Duration::from_secs(61))
            .unwrap();
        assert_eq!(
            log.wait(&windows, Duration::ZERO, Duration::from_secs(61)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn the_margin_widens_every_window() {
        let op = OperationId::CollectInvestigationPackage;
        let limiter = RateLimiter::new(Duration::from_millis(500), TenantBudget::default());
        for _ in 0..100 {
            limiter.try_acquire(op, Duration::ZERO).unwrap();
        }
        assert_eq!(
            limiter.try_acquire(op, Duration::from_secs(60)),
            Err(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_429_is_read_for_the_quota_it_names() {
        let calls = "API calls quota exceeded! maximum allowed 1500 per 01:00:00";
        assert_eq!(
            Quota::of(calls),
            Some(Quota::Calls {
                calls: 1500,
                per: Duration::from_secs(3600)
            })
        );
        let cpu = "You have exceeded processing resources allocated to this tenant. You can run queries again in 00:12:30.";
        let again_in = Some(Duration::from_secs(750));
        assert_eq!(Quota::of(cpu), Some(Quota::Cpu { again_in }));
        let vague = "You have exceeded processing resources allocated to this tenant.";
        assert_eq!(Quota::of(vague), Some(Quota::Cpu { again_in: None }));
        assert_eq!(
            Quota::of("Rate limit is exceeded. Try again in 5 seconds."),
            None
        );
        assert_eq!(
            time_span("1.02:00:00.5"),
            Some(Duration::from_secs_f64(93_600.5))
        );
        assert_eq!(time_span("00:61"), None);
    }

    #[test]
    fn clients_of_one_tenant_share_its_hunting_budget() {
        let op = OperationId::RunHuntingQuery;
        let (one, two) = (TenantBudget::of("h", "t"), TenantBudget::of("H", "T"));
        let (a, b) = (
            RateLimiter::new(Duration::ZERO, one),
            RateLimiter::new(Duration::ZERO, two),
        );
        let other = RateLimiter::new(Duration::ZERO, TenantBudget::of("h", "u"));
        for i in 0..45 {
            let limiter = if i % 2 == 0 { &a } else { &b };
            assert!(limiter.try_acquire(op, Duration::ZERO).is_ok());
        }
        assert!(b.try_acquire(op, Duration::ZERO).is_err());
        assert!(other.try_acquire(op, Duration::ZERO).is_ok());
        a.block(op, Duration::from_secs(900));
        assert_eq!(
            b.blocked(op, Duration::from_secs(100)),
            Duration::from_secs(800)
        );
        assert_eq!(other.blocked(op, Duration::ZERO), Duration::ZERO);
        // Other operations stay each client's own.
        let collect = OperationId::CollectInvestigationPackage;
        for _ in 0..100 {
            a.try_acquire(collect, Duration::ZERO).unwrap();
        }
        assert!(b.try_acquire(collect, Duration::ZERO).is_ok());
    }
}
