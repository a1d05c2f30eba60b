//! The simulator against the spec: collections.

use super::*;

/// Hostile ids and bodies each get a clear 4xx with the error body, and the server keeps
/// serving.
#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client(sim.base_url(), &token);
    let base = sim.base_url().to_string();
    bad_ids_are_refused(&spec, &client, &base, &token).await;
    let machine = path_of(COLLECT, &generated_machine_id(0));
    let json = Some("application/json");
    bad_bodies_are_refused(&spec, &base, &machine, &token).await;
    // Wrong methods and unknown paths get the error body too.
    let get = http().get(format!("{base}{machine}")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_conforms(&spec, "GET", &machine, 405, &get.json().await.unwrap());
    let nowhere = raw(
        &spec,
        &base,
        "/api/nowhere",
        Some(&token),
        json,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(nowhere.status, 404);

    // Still serving: the first well-formed request succeeds.
    let ok = raw(
        &spec,
        &base,
        &machine,
        Some(&token),
        json,
        br#"{"Comment":"c"}"#.to_vec(),
    )
    .await;
    assert_eq!(ok.status, 201, "{ok:?}");
    sim.stop().await;
}

/// Bodies the service refuses, each with its documented status and code.
async fn bad_bodies_are_refused(spec: &Spec, base: &str, machine: &str, token: &str) {
    let json = Some("application/json");
    for (what, content_type, body, status, code) in bad_bodies() {
        let answer = raw(spec, base, machine, Some(token), content_type, body).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer:?}"
        );
    }
    let message = raw(
        spec,
        base,
        machine,
        Some(token),
        json,
        br#"{"comment": "c"}"#.to_vec(),
    )
    .await;
    assert!(
        message.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("case-sensitive"),
        "{message:?}"
    );
}

/// A body the service refuses: what it is, its content type, the body, the status and the
/// error code.
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

/// Bodies the service refuses, each with its documented status and code.
fn bad_bodies() -> Vec<Case> {
    let json = Some("application/json");
    vec![
        (
            "text content type",
            Some("text/plain"),
            br#"{"Comment":"c"}"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "no content type",
            None,
            br#"{"Comment":"c"}"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "not JSON",
            json,
            b"Comment=c".to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "truncated JSON",
            json,
            br#"{"Comment": "c"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "invalid UTF-8",
            json,
            b"{\"Comment\": \"\xff\"}".to_vec(),
            400,
            "InvalidRequestBody",
        ),
        ("an array", json, b"[]".to_vec(), 400, "InvalidRequestBody"),
        (
            "a number",
            json,
            br#"{"Comment": 5}"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "null",
            json,
            br#"{"Comment": null}"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "missing",
            json,
            b"{}".to_vec(),
            400,
            "MissingRequiredParameter",
        ),
        (
            "empty",
            json,
            br#"{"Comment": ""}"#.to_vec(),
            400,
            "InvalidInput",
        ),
        (
            "wrong case",
            json,
            br#"{"comment": "c"}"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "unknown field",
            json,
            br#"{"Comment": "c", "Extra": 1}"#.to_vec(),
            400,
            "InvalidRequestBody",
        ),
        (
            "10 MB",
            json,
            vec![b' '; 10 << 20],
            413,
            "RequestEntityTooLarge",
        ),
    ]
}

/// Ids no machine has, however written: a 4xx, or refused before sending.
async fn bad_ids_are_refused(spec: &Spec, client: &mde_client::Client, base: &str, token: &str) {
    let long = "x".repeat(100_000);
    let ids = [
        "a/b",
        "a?b",
        "a#b",
        "a%b",
        "..",
        ".",
        "a b",
        "ünïcødé-機械",
        "\u{202e}",
        long.as_str(),
        "",
    ];

    for id in ids {
        // Through the generated client: a 4xx from the server, or refused before sending.
        let answer = call(client, COLLECT, id, "c").await;
        let status = code(&answer).0;
        assert!(
            status == 0 || (400..500).contains(&status),
            "{:.40?}: {answer:.200?}",
            id
        );

        // Over a bare TCP connection: the id percent-encoded byte by byte, however long.
        let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
        let status = tcp_post(base, &path_of(COLLECT, &encoded), token).await;
        assert!((400..500).contains(&status), "{:.40?}: {status}", id);
    }
    for literal in ["%ZZ", "%FF", "%00", "..%2F..", "%2e%2e"] {
        let answer = raw(
            spec,
            base,
            &path_of(COLLECT, literal),
            Some(token),
            Some("application/json"),
            br#"{"Comment":"c"}"#.to_vec(),
        )
        .await;
        assert!((400..500).contains(&answer.status), "{literal}: {answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_collections_leave_one_action_per_machine() {
    // Ten apps, each with its own 100-a-minute budget: every request passes the rate limit,
    // so every machine gets exactly one collection and every other request the documented 400.
    let (sim, answers) = concurrent_collections(10, 10).await;
    assert_eq!(answers.len(), 1000, "no request lost");
    let counts = tally(&answers);
    assert_eq!(counts.get(&OK), Some(&100), "{counts:?}");
    assert_eq!(counts.get(&400), Some(&900), "{counts:?}");
    let mut created: Vec<&String> = answers
        .iter()
        .filter(|(_, s)| *s == OK)
        .map(|(m, _)| m)
        .collect();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 100, "one success per machine");
    let actions = sim.actions();
    assert_eq!(
        actions.len(),
        100,
        "the simulator kept exactly the actions the clients were told of"
    );
    let mut machines: Vec<_> = actions
        .iter()
        .map(|a| a.machine_id.clone().unwrap())
        .collect();
    machines.sort();
    machines.dedup();
    assert_eq!(machines.len(), 100);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_collections_from_one_app_meet_its_rate_limit() {
    let (sim, answers) = concurrent_collections(1, 10).await;
    assert_eq!(answers.len(), 1000, "no request lost");
    let counts = tally(&answers);
    let minute = operations::COLLECT_INVESTIGATION_PACKAGE.rate_limits[0].calls as usize;
    let (created, running, limited) = (
        counts.get(&OK).copied().unwrap_or(0),
        counts.get(&400).copied().unwrap_or(0),
        counts.get(&429).copied().unwrap_or(0),
    );
    assert_eq!(
        created + running + limited,
        1000,
        "only 201, 400 and 429: {counts:?}"
    );
    assert_eq!(created + running, minute, "{counts:?}");
    assert_eq!(
        sim.actions().len(),
        created,
        "actions kept = successes the clients saw"
    );
    let mut machines: Vec<_> = sim
        .actions()
        .iter()
        .map(|a| a.machine_id.clone().unwrap())
        .collect();
    machines.sort();
    let before = machines.len();
    machines.dedup();
    assert_eq!(machines.len(), before, "never two actions on one machine");
    sim.stop().await;
}

/// A collection, followed with getMachineAction through the client: `Pending` until the device
/// picks it up, `InProgress`, then `Succeeded`, on the simulator's clock; an unknown id is 404.
#[tokio::test]
async fn a_collection_reads_pending_then_in_progress_then_succeeded() {
    use mde_client::types::MachineActionStatus as Status;
    let config = Config::default();
    let (pickup, lasts) = (config.pickup_time, config.collection_time);
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let machine = operations::DOCUMENTED_MACHINE_IDS[0];
    let created = client
        .collect_investigation_package(machine, "follow me")
        .await
        .unwrap();
    let id = created.id.clone().unwrap();
    let get = || client.send(operations::GetMachineAction { id: id.clone() });
    let mut seen = vec![created.status.clone().unwrap()];
    for step in [pickup, lasts - pickup] {
        sim.clock().advance(step);
        let action = get().await.unwrap();
        assert_eq!(action.id.as_deref(), Some(id.as_str()));
        assert_eq!(action.requestor_comment.as_deref(), Some("follow me"));
        seen.push(action.status.unwrap());
    }
    assert_eq!(
        seen,
        [Status::Pending, Status::InProgress, Status::Succeeded]
    );
    let unknown = client
        .send(operations::GetMachineAction {
            id: "00000000-0000-0000-0000-000000000000".into(),
        })
        .await;
    assert!(
        matches!(&unknown, Err(mde_client::Error::NotFound(e)) if e.code == "ResourceNotFound"),
        "{unknown:?}"
    );
    sim.stop().await;
}

/// The follow-up operations as documented: one filtered list call sees a run's collections;
/// getPackageUri is 404 until the collection succeeded, then the quoted link, 2 a minute;
/// cancel works only before a final status.
#[tokio::test]
async fn list_package_link_and_cancel_follow_the_documents() {
    use mde_client::Error;
    let sim = simulator(Config::default().with_generated_machines(10)).await;
    let client = sim.client_builder().build().unwrap();
    let start = sim.clock().now_utc();
    let mut ids = Vec::new();
    for i in 0..5 {
        let action = client
            .collect_investigation_package(&generated_machine_id(i), "run")
            .await
            .unwrap();
        ids.push(action.id.unwrap());
        sim.clock().advance(Duration::from_secs(1));
    }
    let list = |filter: String, top, skip| {
        client.send(operations::ListMachineActions {
            filter: Some(filter),
            top,
            skip,
        })
    };
    let since = format!(
        "type eq 'CollectInvestigationPackage' and creationDateTimeUtc ge {}",
        start.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let page = list(since.clone(), Some(10_000), None).await.unwrap();
    let listed: Vec<String> = page.value.iter().map(|a| a.id.clone().unwrap()).collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(
        listed, newest_first,
        "one call sees every collection, newest first"
    );
    let paged = list(since, Some(2), Some(1)).await.unwrap();
    assert_eq!(paged.value.len(), 2);
    assert_eq!(paged.value[0].id, page.value[1].id);
    let one = list(
        format!("machineId eq '{}'", generated_machine_id(3)),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(one.value.len(), 1);
    let bad = list("status in ('Pending')".into(), None, None).await;
    assert!(
        matches!(&bad, Err(Error::InvalidRequest(e)) if e.code == "ODataError"),
        "{bad:?}"
    );

    // The link: 404 while the collection runs, then the URL in literal quotes.
    let link = |id: &str| client.send(operations::GetPackageUri { id: id.into() });
    assert!(matches!(link(&ids[0]).await, Err(Error::NotFound(_))));
    let config = Config::default();
    sim.clock()
        .advance(config.collection_time.max(config.scan_time));
    let answer = link(&ids[0]).await.unwrap();
    let url = answer
        .value
        .expose()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert!(
        url.starts_with(sim.base_url())
            && url.contains("/safedownload/WDATP_Investigation_Package.zip?token="),
        "{url}"
    );
    // 2 a minute: a client without the limiter meets the service's 429 on the third.
    assert!(link(&ids[1]).await.is_ok());
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let bare = client_of(&sim, &token);
    let third = bare
        .send(operations::GetPackageUri { id: ids[2].clone() })
        .await;
    assert!(
        matches!(third, Err(Error::RateLimited { .. })),
        "not rate limited"
    );

    cancel_follows_the_documents(&client, &ids).await;
    sim.stop().await;
}

/// Cancel: a running collection becomes Cancelled, and frees the machine for another; a
/// final one is refused; an unknown one is 404.
async fn cancel_follows_the_documents(client: &mde_client::Client, ids: &[String]) {
    use mde_client::Error;
    use mde_client::types::MachineActionStatus as Status;
    // Cancel: a running collection becomes Cancelled, and frees the machine for another; a
    // final one is refused; an unknown one is 404.
    let running = client
        .collect_investigation_package(&generated_machine_id(0), "again")
        .await
        .unwrap();
    let running = running.id.unwrap();
    let cancelled = client
        .cancel_machine_action(&running, "Machine action was canceled by automation")
        .await
        .unwrap();
    assert_eq!(cancelled.status, Some(Status::Cancelled));
    assert_eq!(
        cancelled.cancellation_requestor.as_deref(),
        Some(DEFAULT_CLIENT_ID)
    );
    assert!(cancelled.cancellation_date_time_utc.is_some());
    assert!(
        client
            .collect_investigation_package(&generated_machine_id(0), "after cancel")
            .await
            .is_ok()
    );
    let final_one = client.cancel_machine_action(&ids[0], "too late").await;
    assert!(
        matches!(final_one, Err(Error::InvalidRequest(_))),
        "{final_one:?}"
    );
    let unknown = client
        .cancel_machine_action("00000000-0000-0000-0000-000000000000", "x")
        .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))));
}
