//! The documented rate limits (`x-rate-limit`, through the generated [`operations`]),
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
use std::sync::Mutex;
use std::time::Duration;

use crate::operations::Operation;

/// Time as the limiter and the token cache see it. The default is the system's monotonic
/// clock; the simulator's accelerated clock implements it too, so that a demo's client and
/// simulator share one time line.
pub trait Clock: Debug + Send + Sync {
    /// Time since some fixed origin.
    fn now(&self) -> Duration;
    /// Waits `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
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

/// The calls one client (one app, one tenant) made, per operation.
///
/// A call counts from when it is sent, and once answered, from when its answer arrived: the
/// service counted it somewhere in between, so the next call that needs its room is sent only
/// after the service's window has surely let it go, however long the call took.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Added to every window, for clock drift or a service that counts late.
    margin: Duration,
    calls: Mutex<Calls>,
}

#[derive(Debug, Default)]
struct Calls {
    next_ticket: u64,
    by_operation: HashMap<&'static str, Vec<(u64, Duration)>>,
}

/// A call counted by the limiter; [`RateLimiter::answered`] moves it to its answer's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

impl RateLimiter {
    pub(crate) fn new(margin: Duration) -> RateLimiter {
        RateLimiter {
            margin,
            calls: Mutex::new(Calls::default()),
        }
    }

    /// How long until every window of `op` has room at `now` (zero: now).
    pub(crate) fn wait(&self, op: &Operation, now: Duration) -> Duration {
        if op.rate_limits.is_empty() {
            return Duration::ZERO;
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        self.wait_locked(&mut calls, op, now)
    }

    fn wait_locked(&self, calls: &mut Calls, op: &Operation, now: Duration) -> Duration {
        let log = calls.by_operation.entry(op.operation_id).or_default();
        let longest = op
            .rate_limits
            .iter()
            .map(|w| Duration::from_secs(w.seconds))
            .max()
            .unwrap_or_default()
            + self.margin;
        log.retain(|(_, t)| now.saturating_sub(*t) < longest);
        let mut wait = Duration::ZERO;
        for window in op.rate_limits {
            let length = Duration::from_secs(window.seconds) + self.margin;
            let calls = window.calls as usize;
            let mut in_window: Vec<Duration> = log
                .iter()
                .map(|(_, t)| *t)
                .filter(|t| now.saturating_sub(*t) < length)
                .collect();
            if in_window.len() >= calls {
                // Room comes back when the oldest call that keeps the window full leaves it.
                in_window.sort();
                let oldest = in_window[in_window.len() - calls];
                wait = wait.max((oldest + length).saturating_sub(now));
            }
        }
        wait
    }

    /// Counts a call of `op` at `now` if every window has room; else counts nothing and says
    /// how long until one does.
    pub(crate) fn try_acquire(&self, op: &Operation, now: Duration) -> Result<Ticket, Duration> {
        if op.rate_limits.is_empty() {
            return Ok(Ticket(u64::MAX));
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let wait = self.wait_locked(&mut calls, op, now);
        if wait > Duration::ZERO {
            return Err(wait);
        }
        let ticket = calls.next_ticket;
        calls.next_ticket += 1;
        calls
            .by_operation
            .entry(op.operation_id)
            .or_default()
            .push((ticket, now));
        Ok(Ticket(ticket))
    }

    /// The call's answer (or failure) arrived at `now`.
    pub(crate) fn answered(&self, op: &Operation, ticket: Ticket, now: Duration) {
        if op.rate_limits.is_empty() {
            return;
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(call) = calls
            .by_operation
            .get_mut(op.operation_id)
            .and_then(|log| log.iter_mut().find(|(t, _)| *t == ticket.0))
        {
            call.1 = call.1.max(now);
        }
    }
}

/// Every operation's windows, for a caller planning a run: the earliest time a run of `n`
/// calls of `op` can end, starting with no calls in any window.
pub fn minimum_duration(op: &Operation, n: usize) -> Duration {
    let limiter = RateLimiter::new(Duration::ZERO);
    let mut now = Duration::ZERO;
    for _ in 0..n {
        loop {
            match limiter.try_acquire(op, now) {
                Ok(_) => break,
                Err(wait) => now += wait,
            }
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations;

    #[test]
    fn a_burst_goes_at_once_and_the_rest_when_the_window_allows() {
        let op = &operations::COLLECT_INVESTIGATION_PACKAGE;
        let limiter = RateLimiter::new(Duration::ZERO);
        for _ in 0..100 {
            assert!(limiter.try_acquire(op, Duration::ZERO).is_ok());
        }
        assert_eq!(
            limiter.try_acquire(op, Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert!(limiter.try_acquire(op, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn what_the_documented_limits_require() {
        let collect = &operations::COLLECT_INVESTIGATION_PACKAGE;
        assert_eq!(minimum_duration(collect, 100), Duration::ZERO);
        assert_eq!(minimum_duration(collect, 120), Duration::from_secs(60));
        // 1500 an hour: 15 minutes of 100, then the hour must pass for the first ones.
        assert_eq!(
            minimum_duration(collect, 1500),
            Duration::from_secs(14 * 60)
        );
        assert_eq!(minimum_duration(collect, 1501), Duration::from_secs(3600));
        assert_eq!(
            minimum_duration(&operations::START_INVESTIGATION, 51),
            Duration::from_secs(3600)
        );
        assert_eq!(
            minimum_duration(&operations::COLLECT_INVESTIGATION_PACKAGE_GRAPH, 10_000),
            Duration::ZERO
        );
    }

    #[test]
    fn the_margin_widens_every_window() {
        let op = &operations::COLLECT_INVESTIGATION_PACKAGE;
        let limiter = RateLimiter::new(Duration::from_millis(500));
        for _ in 0..100 {
            limiter.try_acquire(op, Duration::ZERO).unwrap();
        }
        assert_eq!(
            limiter.try_acquire(op, Duration::from_secs(60)),
            Err(Duration::from_millis(500))
        );
    }
}
