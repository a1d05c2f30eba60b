//! Advanced hunting's quotas, per tenant: the calls, the CPU and its cycle, the reported 429
//! bodies, and the failures a query is sent again after or split past.

use super::*;
use mde_client::hunting::{Cell, Hunt};

const HUNT: OperationId = OperationId::RunHuntingQuery;

/// 46 queries in a minute, straight to the simulator: the 46th is the 429 callers reported
/// (`code` the string "429", the window a .NET TimeSpan, no `Retry-After`), in Graph's
/// envelope (`innerError`, no `target`) on Graph and with a `target` on the Defender API. Every
/// app of the tenant counts in one budget.
#[tokio::test]
async fn the_call_quota_answers_the_reported_429() {
    let spec = spec();
    let config = Config {
        apps: vec![App::default_app(), app("second", "ThreatHunting.Read.All")],
        ..Config::default().with_generated_machines(1)
    };
    let sim = simulator(config).await;
    let base = sim.base_url().to_string();
    for op in [
        operations::RUN_HUNTING_QUERY,
        operations::RUN_ADVANCED_QUERY,
    ] {
        let token = token_for(&sim, &op).await;
        let path = path_of(op.id, "");
        let body = || serde_json::to_vec(&json!({ "Query": "DeviceInfo | take 1" })).unwrap();
        let json = Some("application/json");
        for _ in 0..op.rate_limits[0].calls {
            let answer = raw(&spec, &base, &path, Some(&token), json, body()).await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        let refused = raw(&spec, &base, &path, Some(&token), json, body()).await;
        let error = &refused.body["error"];
        assert_eq!((refused.status, &error["code"]), (429, &json!("429")));
        assert_eq!(
            error["message"],
            "API calls quota exceeded! maximum allowed 45 per 00:01:00"
        );
        assert_eq!(refused.retry_after, None);
        let graph = op.id == HUNT;
        assert_eq!(error["target"].is_string(), !graph, "{error}");
        assert_eq!(
            error["innerError"]["request-id"].is_string(),
            graph,
            "{error}"
        );
    }
    // Another app of the same tenant finds Graph's minute spent too.
    let scope = mde_sim::scope_of(&operations::RUN_HUNTING_QUERY);
    let app = (DEFAULT_TENANT, "second", "second-secret");
    let token = mde_sim::sign_in_for(sim.base_url(), app, &scope)
        .await
        .unwrap();
    let body = serde_json::to_vec(&json!({ "Query": "DeviceInfo" })).unwrap();
    let json = Some("application/json");
    let other = raw(&spec, &base, &path_of(HUNT, ""), Some(&token), json, body).await;
    assert_eq!(other.status, 429, "{other:?}");
    sim.stop().await;
}

/// 60 queries at once, from two clients of one tenant: the tenant's budget, shared, keeps
/// them within 45 a minute, and the simulator refuses none.
#[tokio::test]
async fn sixty_queries_at_once_meet_no_429() {
    let config = Config {
        time_scale: 600.0,
        ..Config::default().with_generated_machines(2)
    };
    let sim = simulator(config).await;
    let clients = [
        sim.client_builder().build().unwrap(),
        sim.client_builder().build().unwrap(),
    ];
    let started = sim.clock().elapsed();
    let hunts = (0..60).map(|i| {
        let client = &clients[i % 2];
        async move { client.hunt(&Hunt::new("DeviceInfo | take 1")).await }
    });
    let tables = futures_util::future::join_all(hunts).await;
    assert!(tables.iter().all(Result::is_ok), "{tables:?}");
    assert_eq!(sim.refused_in(DEFAULT_TENANT), 0);
    assert_eq!(sim.calls(HUNT), 60);
    let waited = tables.iter().filter(|t| t.as_ref().unwrap().cost.waits > 0);
    assert_eq!(waited.count(), 15, "the 15 past the minute's 45 waited");
    assert!(sim.clock().elapsed() - started >= Duration::from_secs(60));
    sim.stop().await;
}

/// A query that spends the tenant's CPU for the hour: the next one is the CPU 429, which
/// says when queries run again (the first 15-minute cycle after the hour has passed over the
/// spent CPU); the client waits exactly that, once, and the query runs.
#[tokio::test]
async fn a_cpu_429_waits_for_the_cycle() {
    let config = Config {
        time_scale: 3600.0,
        // 2 machines, 20 rows a day for 30 days: 1,200 rows at a second each.
        hunting_cpu_per_row: Duration::from_secs(1),
        ..Config::default().with_generated_machines(2)
    };
    let sim = simulator(config).await;
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let client = sim
        .client_builder()
        .max_retry_after(Duration::from_secs(2 * 3600))
        .on_wait(move |w| seen.lock().unwrap().push((w.reason, w.wait)))
        .build()
        .unwrap();
    let heavy = Hunt::new("DeviceFileEvents | where FileName == 'x' | project DeviceId");
    client.hunt(&heavy).await.unwrap();
    let spent_at = sim.clock().elapsed();
    let table = client.hunt(&heavy).await.unwrap();
    assert_eq!(sim.refused_in(DEFAULT_TENANT), 1, "one 429, then the wait");
    let reasons = reasons.lock().unwrap().clone();
    let quota = mde_client::WaitReason::TenantQuota;
    assert!(reasons.iter().all(|(r, _)| *r == quota), "{reasons:?}");
    assert!(table.cost.waits >= 1, "{:?}", table.cost);
    // Told at the 429 when the cycle comes that frees the CPU spent before it.
    let wait = reasons[0].1;
    let freed = Duration::from_secs((spent_at + HOUR).as_secs().div_ceil(900) * 900);
    let cycle = Duration::from_secs(900);
    assert!(wait <= freed - spent_at && wait + cycle > HOUR, "{wait:?}");
    sim.stop().await;
}

const HOUR: Duration = Duration::from_secs(3600);

/// The preemption 400 on every query that scans over 50,000 rows, and a 504 on a third of
/// them: the client splits past the one and sends the other again, and the rows are those a
/// simulator without faults answers.
#[tokio::test]
async fn a_504_and_a_preemption_are_recovered() {
    let config = |faults: &str| Config {
        hunting_rows: 40,
        hunt_faults: faults.parse().unwrap(),
        seed: 7,
        ..Config::default().with_generated_machines(60)
    };
    let (plain, faulty) = (
        simulator(config("")).await,
        simulator(config("preempt:1,timeout:0.3")).await,
    );
    let query = "DeviceProcessEvents | where FileName != 'none' | project Timestamp, DeviceId";
    // One window for both, inside the 30 days each keeps.
    let now = plain.clock().now_utc();
    let day = mde_client::chrono::TimeDelta::days(1);
    let hunt = Hunt {
        window: Some((now - day * 28, now - day)),
        ..Hunt::new(query)
    };
    let rows = |sim: &Simulator| {
        let client = sim.client_builder().build().unwrap();
        let hunt = hunt.clone();
        async move { client.hunt(&hunt).await.unwrap() }
    };
    let (expected, table) = (rows(&plain).await, rows(&faulty).await);
    let cost = expected.cost;
    assert!(expected.rows.len() > 60_000 && cost.splits == 0, "{cost:?}");
    // The same rows; a split answers them window by window, so in another order.
    let sorted = |rows: &[Vec<Cell>]| {
        let mut rows: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
        rows.sort();
        rows
    };
    assert!(
        sorted(&table.rows) == sorted(&expected.rows),
        "the rows differ"
    );
    assert!(table.cost.splits >= 1, "{:?}", table.cost);
    let sent = faulty.calls(HUNT) as u32;
    let cost = table.cost;
    assert!(
        sent > cost.calls && cost.waits > 0,
        "a 504 sent again: {sent} {cost:?}"
    );
    assert!(matches!(table.rows[0][0], Cell::Time(_)));
    plain.stop().await;
    faulty.stop().await;
}

/// A clock on the day after the Defender API's hunting retires (MC1220762).
#[derive(Debug)]
struct AfterRetirement;

impl mde_client::Clock for AfterRetirement {
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn sleep(
        &self,
        d: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
    fn now_utc(&self) -> mde_client::chrono::DateTime<mde_client::chrono::Utc> {
        "2027-02-02T00:00:00Z".parse().unwrap()
    }
}

/// After its retirement date the Defender API's hunting is refused before anything is sent,
/// naming the date and the replacement; Graph's is not.
#[tokio::test]
async fn the_defender_api_is_refused_after_it_retires() {
    use mde_client::hunting::Family;
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let client = sim
        .client_builder()
        .clock(std::sync::Arc::new(AfterRetirement))
        .build()
        .unwrap();
    let defender = Hunt {
        family: Family::Defender,
        ..Hunt::new("DeviceInfo | take 1")
    };
    let refused = client.hunt(&defender).await.unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("after 2027-02-01") && text.contains("runHuntingQuery"),
        "{text}"
    );
    assert_eq!(sim.calls(OperationId::RunAdvancedQuery), 0);
    // The simulator's own clock is today's: Graph answers.
    let today = sim.client_builder().build().unwrap();
    assert!(today.hunt(&Hunt::new("DeviceInfo | take 1")).await.is_ok());
    sim.stop().await;
}

/// Every 429 body the spec documents for hunting names a quota the client reads, and the wait
/// it reads from it: the window, or the time the CPU message gives.
#[test]
fn each_documented_quota_body_is_read() {
    use mde_client::Quota;
    let spec = spec();
    let examples = spec
        .pointer("#/components/responses/HuntingQuotaExceeded/content/application~1json/examples")
        .and_then(Value::as_object)
        .expect("the hunting 429 has examples");
    assert_eq!(examples.len(), 3);
    for (name, example) in examples {
        let message = spec.resolve(example)["value"]["error"]["message"]
            .as_str()
            .unwrap();
        let quota = Quota::of(message).unwrap_or_else(|| panic!("{name}: {message}"));
        let expected = match name.as_str() {
            "callsPerMinute" => Quota::Calls {
                calls: 45,
                per: Duration::from_secs(60),
            },
            "callsPerHour" => Quota::Calls {
                calls: 1500,
                per: HOUR,
            },
            _ => Quota::Cpu {
                again_in: Some(Duration::from_secs(750)),
            },
        };
        assert_eq!(quota, expected, "{name}");
    }
}
