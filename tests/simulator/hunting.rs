//! The simulator against the spec: advanced hunting, and Microsoft Graph's audience.

use super::*;

/// Microsoft Graph's operations take a token for Graph's audience, the API's a token for the
/// API's: the other is the 401 `InvalidAuthenticationToken` naming both. A client signing in
/// with client credentials gets one token per audience from the same credentials.
#[tokio::test]
async fn each_audience_takes_its_own_token() {
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let hunt = operations::RUN_HUNTING_QUERY;
    let api_token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let graph_token = token_for(&sim, &hunt).await;
    let machine = generated_machine_id(0);
    let with_api = call(&client_of(&sim, &api_token), hunt.id, &machine, "c").await;
    let with_graph = call(&client_of(&sim, &graph_token), COLLECT, &machine, "c").await;
    for (answer, audience) in [
        (&with_api, "graph.microsoft.com"),
        (&with_graph, "api.securitycenter"),
    ] {
        assert_eq!(code(answer).0, 401, "{answer:?}");
        let message = answer.clone().unwrap_err().1["error"]["message"].to_string();
        assert!(
            message.contains("Invalid audience") && message.contains(audience),
            "{message}"
        );
    }
    assert_eq!(code(&with_api).1, "InvalidAuthenticationToken");
    let issued = sim.tokens_issued();
    let client = app_client(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    assert!(call(&client, hunt.id, &machine, "c").await.is_ok());
    assert!(call(&client, COLLECT, &machine, "c").await.is_ok());
    assert!(call(&client, hunt.id, &machine, "c").await.is_ok());
    assert_eq!(
        sim.tokens_issued() - issued,
        2,
        "one token an audience, each cached"
    );
    sim.stop().await;
}

/// Graph binds a body's members without regard to case (the beta page sends `query`); the
/// Defender API does not. A query answers the rows a direct count of the simulator's table
/// finds, in Graph's shape and in the Defender API's.
#[tokio::test]
async fn hunting_queries_answer_in_each_familys_shape() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(4)).await;
    let base = sim.base_url().to_string();
    let json = Some("application/json");
    let query = "DeviceInfo | summarize count() by DeviceId";
    for op in [
        operations::RUN_HUNTING_QUERY,
        operations::RUN_ADVANCED_QUERY,
    ] {
        let token = token_for(&sim, &op).await;
        let path = path_of(op.id, "");
        let lower = serde_json::to_vec(&json!({ "query": query })).unwrap();
        let lower = raw(&spec, &base, &path, Some(&token), json, lower).await;
        let graph = op.id == OperationId::RunHuntingQuery;
        assert_eq!(
            lower.status,
            if graph { 200 } else { 400 },
            "{}: {lower:?}",
            op.id
        );
        let body = serde_json::to_vec(&json!({ "Query": query })).unwrap();
        let answer = raw(&spec, &base, &path, Some(&token), json, body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let (schema, results) = if graph {
            ("schema", "results")
        } else {
            ("Schema", "Results")
        };
        let rows = answer.body[results].as_array().unwrap();
        // One report a machine a day over the 30 days back from now (29 to 31 of them, as
        // the window cuts the first and last days): each machine of the inventory once.
        assert_eq!(rows.len(), sim.machines().len(), "{}", answer.body);
        let count = |r: &Value| r["count_"].as_i64().unwrap();
        assert!(
            rows.iter().all(|r| (29..=31).contains(&count(r))),
            "{}",
            answer.body
        );
        assert_eq!(answer.body[schema].as_array().unwrap().len(), 2);
    }
    sim.stop().await;
}

/// An answer past the 100,000-row cap: the client splits the window in halves until each
/// part is under it, and the parts joined are every row of the window once, as the
/// simulator's own count says. The Defender API, with no window, says so; a query that
/// aggregates is not split.
#[tokio::test]
async fn a_capped_answer_is_split_and_joined_whole() {
    use mde_client::hunting::{Cell, ColumnType, Family, Hunt};
    let config = Config {
        hunting_rows: 100,
        ..Config::default().with_generated_machines(90)
    };
    let sim = simulator(config).await;
    let client = app_client(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    // A day short of the 30 the service keeps: its oldest rows age out while the test runs.
    let now = client.clock().now_utc();
    let start = now - mde_client::hunting::RETENTION + mde_client::chrono::TimeDelta::days(1);
    let hunt = |query: &str| Hunt {
        window: Some((start, now)),
        ..Hunt::new(query)
    };
    let counted = client
        .hunt(&hunt("DeviceFileEvents | summarize count()"))
        .await
        .unwrap();
    let Cell::Integer(all) = counted.rows[0][0] else {
        panic!("{counted:?}")
    };
    assert!(all > 250_000, "{all}");
    let query = "DeviceFileEvents | project Timestamp, DeviceId, SHA256";
    let table = client.hunt(&hunt(query)).await.unwrap();
    assert_eq!(table.rows.len() as i64, all, "none missing");
    let distinct: std::collections::HashSet<String> =
        table.rows.iter().map(|r| format!("{r:?}")).collect();
    assert_eq!(distinct.len(), table.rows.len(), "no row twice");
    assert_eq!(
        table.columns[0],
        ("Timestamp".to_string(), ColumnType::DateTime)
    );
    assert!(matches!(table.rows[0][0], Cell::Time(_)));
    let cost = table.cost;
    assert!(
        cost.splits >= 2 && cost.calls == 2 * cost.splits + 1,
        "{cost:?}"
    );
    assert_eq!(cost.rows, all as u64);

    let aggregated = client
        .hunt(&hunt("DeviceFileEvents | take 200000"))
        .await
        .unwrap_err();
    assert!(
        aggregated.to_string().contains("aggregates"),
        "{aggregated}"
    );
    let defender = Hunt {
        family: Family::Defender,
        ..Hunt::new(query)
    };
    let refused = client.hunt(&defender).await.unwrap_err();
    assert!(refused.to_string().contains("use Graph"), "{refused}");
    sim.stop().await;
}
