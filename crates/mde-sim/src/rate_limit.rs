//! The documented rate limits (`x-rate-limit`, read through `mde_client::operations`),
//! enforced per app, tenant and operation over sliding windows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mde_client::operations::OperationId;
use mde_client::rate_limit::CallLog;

/// Who a limit is counted for: the service counts per application and tenant.
pub type Caller = (String, String);

/// Calls accepted so far, per caller and operation, on the client's sliding-window core; and
/// the calls refused (answered 429), per caller.
#[derive(Debug, Default)]
pub struct RateLimiter {
    calls: Mutex<HashMap<(Caller, OperationId), CallLog>>,
    refused: Mutex<HashMap<Caller, usize>>,
}

impl RateLimiter {
    /// Counts a call at `now` if every window of `op` has room; otherwise counts nothing and
    /// returns how long until one would.
    pub fn admit(&self, caller: &Caller, op: OperationId, now: Duration) -> Result<(), Duration> {
        let windows = op.facts().rate_limits;
        if windows.is_empty() {
            return Ok(());
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let log = calls.entry((caller.clone(), op)).or_default();
        let admitted = log.try_admit(windows, Duration::ZERO, now).map(|_| ());
        if admitted.is_err() {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            *refused.entry(caller.clone()).or_default() += 1;
        }
        admitted
    }

    /// How many calls of `tenant`'s apps were refused for the limits (answered 429).
    pub fn refused_in(&self, tenant: &str) -> usize {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(app: &str) -> Caller {
        ("t".into(), app.into())
    }

    #[test]
    fn start_investigation_allows_its_documented_calls_an_hour() {
        let limiter = RateLimiter::default();
        let op = OperationId::StartInvestigation;
        let calls = op.facts().rate_limits[0].calls;
        for i in 0..calls {
            assert!(
                limiter
                    .admit(&caller("a"), op, Duration::from_secs(i.into()))
                    .is_ok()
            );
        }
        let wait = limiter
            .admit(&caller("a"), op, Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(3600 - 60));
        assert_eq!((limiter.refused_in("t"), limiter.refused_in("u")), (1, 0));
        // Another app has its own budget.
        assert!(
            limiter
                .admit(&caller("b"), op, Duration::from_secs(60))
                .is_ok()
        );
        // Once the first call is an hour old, there is room for one.
        assert!(
            limiter
                .admit(&caller("a"), op, Duration::from_secs(3600))
                .is_ok()
        );
        assert!(
            limiter
                .admit(&caller("a"), op, Duration::from_secs(3600))
                .is_err()
        );
    }

    #[test]
    fn collection_has_a_minute_and_an_hour_window() {
        let limiter = RateLimiter::default();
        let op = OperationId::CollectInvestigationPackage;
        let burst = (0..150)
            .filter(|_| limiter.admit(&caller("burst"), op, Duration::ZERO).is_ok())
            .count();
        assert_eq!(burst, 100);
        let wait = limiter
            .admit(&caller("burst"), op, Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));

        let mut accepted = 0;
        // Two hours of one call a second: at most 100 in any minute, 1500 in any hour.
        for s in 0..7200u64 {
            if limiter
                .admit(&caller("a"), op, Duration::from_secs(s))
                .is_ok()
            {
                accepted += 1;
            }
        }
        // 1500 in the first hour (100 a minute for 15 minutes), 1500 in the second.
        assert_eq!(accepted, 3000);
    }

    #[test]
    fn no_limit_documented_means_none_enforced() {
        let limiter = RateLimiter::default();
        let op = OperationId::CollectInvestigationPackageGraph;
        for _ in 0..10_000 {
            assert!(limiter.admit(&caller("a"), op, Duration::ZERO).is_ok());
        }
    }
}
