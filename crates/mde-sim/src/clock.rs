//! Simulated time: real time times a scale, plus whatever a test skips ahead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The simulator's clock. Clones share one time line.
///
/// Rate-limit windows, token lifetimes and how long actions run are all measured on it, so a
/// test can let an hour pass with [`Clock::advance`] and a demo can run an hour in a minute
/// with a scale of 60.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    started_utc: DateTime<Utc>,
    scale: f64,
    skipped_nanos: AtomicU64,
}

impl Clock {
    /// A clock that runs `scale` times faster than real time (1.0: real time).
    pub fn scaled(scale: f64) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                started: Instant::now(),
                started_utc: Utc::now(),
                scale: if scale.is_finite() && scale > 0.0 {
                    scale
                } else {
                    1.0
                },
                skipped_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// How fast it runs against real time.
    pub fn scale(&self) -> f64 {
        self.inner.scale
    }

    /// Simulated time since the clock started.
    pub fn elapsed(&self) -> Duration {
        let real = self.inner.started.elapsed().mul_f64(self.inner.scale);
        real + Duration::from_nanos(self.inner.skipped_nanos.load(Ordering::SeqCst))
    }

    /// Jumps ahead: for tests that must see an hour pass at once.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.skipped_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// The simulated wall-clock time, for timestamps in answers.
    pub fn now_utc(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.inner
            .started_utc
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::scaled(1.0)
    }
}

/// A client and the simulator on one time line: the client's rate limits and token renewal
/// then run at the simulator's speed.
impl mde_client::Clock for Clock {
    fn now(&self) -> Duration {
        self.elapsed()
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration.div_f64(self.inner.scale)))
    }

    fn now_utc(&self) -> DateTime<Utc> {
        Clock::now_utc(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_runs_faster_and_advances_on_demand() {
        let clock = Clock::scaled(1000.0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            clock.elapsed() >= Duration::from_secs(20),
            "{:?}",
            clock.elapsed()
        );
        let before = clock.now_utc();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_utc() - before >= chrono::Duration::hours(1));
        assert_eq!(Clock::scaled(f64::NAN).scale(), 1.0);
    }
}
