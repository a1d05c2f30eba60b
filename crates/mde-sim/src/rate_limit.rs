//! The documented rate limits (`x-rate-limit`, read through `mde_client::operations`),
//! enforced per app, tenant and operation over sliding windows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mde_client::operations::{OperationId, RateWindow, TenantQuota};
use mde_client::rate_limit::CallLog;

/// Who a limit is counted for: the service counts per application and tenant, and per tenant
/// alone for an operation with a `TenantQuota` (its app is then [`EVERY_APP`]).
pub type Caller = (String, String);

/// The app of a caller counted per tenant.
const EVERY_APP: &str = "*";

/// The CPU a tenant's queries spent over the last day: (when, how much).
type Spent = Vec<(Duration, Duration)>;

/// Why a call was refused for the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A window of calls is full; room comes back after `wait`.
    Calls {
        /// The full window.
        window: RateWindow,
        /// How long until it has room.
        wait: Duration,
    },
    /// The tenant's CPU allocation is spent; queries run again at the cycle after `wait`.
    Cpu {
        /// How long until that cycle.
        wait: Duration,
    },
}

/// Calls accepted so far, per caller and operation, on the client's sliding-window core; the
/// CPU each tenant's queries spent; and the calls refused (answered 429), per caller.
#[derive(Debug, Default)]
pub struct RateLimiter {
    calls: Mutex<HashMap<(Caller, OperationId), CallLog>>,
    cpu: Mutex<HashMap<(String, OperationId), Spent>>,
    refused: Mutex<HashMap<Caller, usize>>,
}

/// The CPU an operation of a [`TenantQuota`] may spend, an hour and a day: the documented
/// figures, or the Defender API's (10 minutes an hour, 3 hours a day) where Graph's page
/// gives none (it allocates "by size").
pub fn cpu_allocation(quota: &TenantQuota) -> (Duration, Duration) {
    let secs = |n: Option<u64>, default| Duration::from_secs(n.unwrap_or(default));
    (
        secs(quota.cpu_per_hour, 600),
        secs(quota.cpu_per_day, 3 * 3600),
    )
}

impl RateLimiter {
    /// Counts a call at `now` if every window of `op` has room and its tenant's CPU is not
    /// spent; otherwise counts nothing and says why.
    pub fn admit(&self, caller: &Caller, op: OperationId, now: Duration) -> Result<(), Refusal> {
        let facts = op.facts();
        let caller = match facts.tenant_quota {
            Some(_) => (caller.0.clone(), EVERY_APP.to_string()),
            None => caller.clone(),
        };
        let refusal = self.cpu_wait(&caller.0, op, now).map_or_else(
            || self.admit_call(&caller, op, now),
            |wait| Err(Refusal::Cpu { wait }),
        );
        if refusal.is_err() {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            *refused.entry(caller).or_default() += 1;
        }
        refusal
    }

    fn admit_call(&self, caller: &Caller, op: OperationId, now: Duration) -> Result<(), Refusal> {
        let windows = op.facts().rate_limits;
        if windows.is_empty() {
            return Ok(());
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let log = calls.entry((caller.clone(), op)).or_default();
        log.try_admit(windows, Duration::ZERO, now)
            .map(drop)
            .map_err(|wait| {
                // The window that keeps the call out: the one whose room comes back last.
                let full = windows.iter().copied().max_by_key(|w| {
                    let mut alone = log.clone();
                    alone.wait(std::slice::from_ref(w), Duration::ZERO, now)
                });
                Refusal::Calls {
                    window: full.unwrap_or(windows[0]),
                    wait,
                }
            })
    }

    /// Records the CPU a query of `tenant` spent at `now`.
    pub fn spend(&self, tenant: &str, op: OperationId, cpu: Duration, now: Duration) {
        if op.facts().tenant_quota.is_none() {
            return;
        }
        let mut spent = self.cpu.lock().unwrap_or_else(|e| e.into_inner());
        let log = spent.entry((tenant.to_string(), op)).or_default();
        log.retain(|(at, _)| now.saturating_sub(*at) < DAY);
        log.push((now, cpu));
    }

    /// When `tenant`'s CPU for `op` is spent at `now`: how long until the first cycle at which
    /// it is not (the service checks every cycle and blocks until the next).
    fn cpu_wait(&self, tenant: &str, op: OperationId, now: Duration) -> Option<Duration> {
        let quota = op.facts().tenant_quota?;
        let (per_hour, per_day) = cpu_allocation(&quota);
        let spent = self.cpu.lock().unwrap_or_else(|e| e.into_inner());
        let log = spent.get(&(tenant.to_string(), op))?;
        let over = |at: Duration| {
            let within = |span: Duration| {
                log.iter()
                    .filter(|(t, _)| *t <= at && at.saturating_sub(*t) < span)
                    .map(|(_, cpu)| *cpu)
                    .sum::<Duration>()
            };
            within(HOUR) >= per_hour || within(DAY) >= per_day
        };
        if !over(now) {
            return None;
        }
        let cycle = quota.cycle.max(1);
        let mut at = Duration::from_secs((now.as_secs() / cycle + 1) * cycle);
        while over(at) && at < now + DAY {
            at += Duration::from_secs(cycle);
        }
        Some(at - now)
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

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

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
        let refusal = limiter
            .admit(&caller("a"), op, Duration::from_secs(60))
            .unwrap_err();
        let window = op.facts().rate_limits[0];
        let wait = Duration::from_secs(3600 - 60);
        assert_eq!(refusal, Refusal::Calls { window, wait });
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
        let refusal = limiter
            .admit(&caller("burst"), op, Duration::from_secs(1))
            .unwrap_err();
        let (window, wait) = (op.facts().rate_limits[0], Duration::from_secs(59));
        assert_eq!(refusal, Refusal::Calls { window, wait });

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

    #[test]
    fn hunting_counts_every_app_of_a_tenant_together() {
        let limiter = RateLimiter::default();
        let op = OperationId::RunAdvancedQuery;
        for i in 0..45 {
            let app = if i % 2 == 0 { "a" } else { "b" };
            assert!(limiter.admit(&caller(app), op, Duration::ZERO).is_ok());
        }
        let refusal = limiter.admit(&caller("c"), op, Duration::from_secs(1));
        let (window, wait) = (op.facts().rate_limits[0], Duration::from_secs(59));
        assert_eq!(refusal, Err(Refusal::Calls { window, wait }));
        // The hour's window names itself once the minute's has room and the hour's not.
        for m in 1..=33u64 {
            for _ in 0..45 {
                let _ = limiter.admit(&caller("a"), op, Duration::from_secs(m * 60));
            }
        }
        let Err(Refusal::Calls { window, .. }) =
            limiter.admit(&caller("a"), op, Duration::from_secs(34 * 60))
        else {
            panic!("the hour's 1500 calls are spent");
        };
        assert_eq!(window, op.facts().rate_limits[1]);
    }

    #[test]
    fn spent_cpu_blocks_the_tenant_until_the_cycle_that_frees_it() {
        let limiter = RateLimiter::default();
        let op = OperationId::RunAdvancedQuery;
        let quota = op.facts().tenant_quota.unwrap();
        let (per_hour, _) = cpu_allocation(&quota);
        // 10 minutes of CPU spent at 20 minutes past: blocked until the hour has passed over
        // it, at the first 15-minute cycle after 1:20, 1:30.
        let at = Duration::from_secs(20 * 60);
        limiter.spend("t", op, per_hour, at);
        let refusal = limiter.admit(&caller("a"), op, at + Duration::from_secs(60));
        let wait = Duration::from_secs(90 * 60) - (at + Duration::from_secs(60));
        assert_eq!(refusal, Err(Refusal::Cpu { wait }));
        assert!(limiter.admit(&("u".into(), "a".into()), op, at).is_ok());
        assert!(
            limiter
                .admit(&caller("a"), op, Duration::from_secs(90 * 60))
                .is_ok()
        );
        // Graph's page gives no figure: the Defender API's stand in.
        let graph = OperationId::RunHuntingQuery.facts().tenant_quota.unwrap();
        assert_eq!(cpu_allocation(&graph), cpu_allocation(&quota));
    }
}
