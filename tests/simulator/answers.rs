//! The simulator against the spec: answers.

use mde_client::types::MachineAction;

use super::*;

/// What the operations on a machine action act on: a completed collection (its package can
/// be linked) and a completed live response session (its first result can be linked).
struct Done {
    collection: String,
    session: String,
}

impl Done {
    async fn on(sim: &Simulator, client: &mde_client::Client) -> Done {
        let collection = sim
            .client_builder()
            .build()
            .unwrap()
            .collect_investigation_package(&generated_machine_id(7), "done")
            .await
            .unwrap()
            .id
            .unwrap();
        // The session's script in the library first.
        let script = operations::UploadLibraryFile::new("minidump.ps1", "Get-Process | Out-File");
        client.send(script).await.unwrap();
        let op = OperationId::RunLiveResponse;
        let session = call(client, op, &generated_machine_id(8), "done").await;
        let session = session.unwrap()["id"].as_str().unwrap().to_string();
        let config = Config::default();
        sim.clock()
            .advance(config.collection_time.max(config.scan_time));
        Done {
            collection,
            session,
        }
    }

    /// What `op` acts on: the completed one (its package, its result) or the newest action,
    /// still running (to read or cancel); the others `machine`.
    fn target(&self, sim: &Simulator, op: &operations::Operation, machine: String) -> String {
        if op.path.ends_with("/getPackageUri") {
            self.collection.clone()
        } else if op.id == OperationId::GetLiveResponseResultDownloadLink {
            self.session.clone()
        } else if op.id == OperationId::DeleteLibraryFile {
            // The file `call` uploads.
            "mdatp1.png".to_string()
        } else if op.path.starts_with("/api/machineactions/") {
            sim.actions().last().unwrap().id.clone().unwrap()
        } else {
            machine
        }
    }
}

#[tokio::test]
async fn every_operation_succeeds_as_documented() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(operations::ALL.len())).await;
    let client = app_client(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    let done = Done::on(&sim, &client).await;
    let documented = operations::DOCUMENTED_MACHINE_IDS;
    for (i, op) in operations::ALL.iter().enumerate() {
        let machine = &done.target(&sim, op, documented[i % documented.len()].to_string());
        let answer = call(&client, op.id, machine, "Test investigation").await;
        let body = answer.unwrap_or_else(|e| panic!("{}: {e:?}", op.id));
        let success = spec.operation(op.id.as_str()).unwrap().value["responses"]
            .as_object()
            .unwrap()
            .keys()
            .find(|s| s.starts_with('2'))
            .unwrap()
            .parse()
            .unwrap();
        assert_conforms(&spec, op.method, &path_of(op.id, machine), success, &body);
    }
    each_operation_answers_a_plain_client(&spec, &sim, &done).await;
    let (collections, responses) = actions_of_the_loops(&sim, &done);
    each_response_action_is_pending_as_documented(&responses);
    collections_are_kept_in_their_generations(&sim, &collections);
    sim.stop().await;
}

/// Each operation answered to a plain HTTP client: each raw body matches the spec's schema
/// for its status (`raw` checks it).
async fn each_operation_answers_a_plain_client(spec: &Spec, sim: &Simulator, done: &Done) {
    let base = sim.base_url().to_string();
    let examples = spec.examples();
    for (i, op) in operations::ALL.iter().enumerate() {
        let path = path_of(op.id, &done.target(sim, op, generated_machine_id(i)));
        // The required query parameters, with their documented examples.
        let query: Vec<String> = spec.operation(op.id.as_str()).unwrap().value["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| spec.resolve(p))
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .filter_map(|p| {
                let value = p["examples"]["documented"]["value"].as_str()?;
                Some(format!("{}={value}", p["name"].as_str()?))
            })
            .collect();
        let path = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        // The operation's documented request body, as a plain client would send it.
        let body = examples
            .iter()
            .find(|e| {
                e.uses
                    .iter()
                    .any(|u| u.operation == op.id.as_str() && u.place == "request")
            })
            .map_or_else(|| json!({ "Comment": "c" }), |e| e.value.clone());
        let (content_type, body) = if op.id == OperationId::UploadLibraryFile {
            multipart(&body)
        } else if ["GET", "DELETE"].contains(&op.method) {
            ("application/json".to_string(), Vec::new())
        } else {
            (
                "application/json".to_string(),
                serde_json::to_vec(&body).unwrap(),
            )
        };
        let token = token_for(sim, op).await;
        let answer = raw(spec, &base, &path, Some(&token), Some(&content_type), body).await;
        assert!(
            [200, 201, 204].contains(&answer.status),
            "{}: {answer:?}",
            op.id
        );
    }
}

/// The actions the two loops created: the collections (the completed one first), and the
/// response actions but the session started before them. One scan each loop, as documented:
/// type and scope.
fn actions_of_the_loops(sim: &Simulator, done: &Done) -> (Vec<MachineAction>, Vec<MachineAction>) {
    use mde_client::types::MachineActionStatus as Status;
    use mde_client::types::MachineActionType as Type;
    let (scans, actions): (Vec<_>, Vec<_>) = sim
        .actions()
        .into_iter()
        .partition(|a| a.type_ == Some(Type::RunAntiVirusScan));
    assert_eq!(scans.len(), 2);
    for scan in &scans {
        assert_eq!(scan.scope.as_deref(), Some("Full"));
        assert_eq!(scan.status, Some(Status::Pending));
    }
    let (collections, responses): (Vec<_>, Vec<_>) = actions
        .into_iter()
        .partition(|a| a.type_ == Some(Type::CollectInvestigationPackage));
    let responses = responses
        .into_iter()
        .filter(|a| a.id.as_deref() != Some(done.session.as_str()))
        .collect();
    (collections, responses)
}

/// One response action of each type each loop, pending, as documented: an isolation's scope
/// its type, a quarantine's file in relatedFileInfo. The types: those the spec's operations
/// create, but the scan's and the collections'.
fn each_response_action_is_pending_as_documented(responses: &[MachineAction]) {
    use mde_client::types::MachineActionStatus as Status;
    use mde_client::types::MachineActionType as Type;
    let mut kinds: Vec<Type> = (operations::ALL.iter())
        .filter_map(|op| op.id.creates_action())
        .collect();
    kinds.retain(|k| ![Type::RunAntiVirusScan, Type::CollectInvestigationPackage].contains(k));
    kinds.dedup();
    assert!(
        kinds.contains(&Type::Isolate) && kinds.contains(&Type::LiveResponse),
        "{kinds:?}"
    );
    for kind in &kinds {
        let of_kind: Vec<_> = responses
            .iter()
            .filter(|a| a.type_.as_ref() == Some(kind))
            .collect();
        assert_eq!(of_kind.len(), 2, "{kind}");
        for action in of_kind {
            assert_eq!(action.status, Some(Status::Pending), "{kind}");
            match kind {
                Type::Isolate => assert_eq!(action.scope.as_deref(), Some("Full")),
                Type::StopAndQuarantineFile => assert_eq!(
                    action
                        .related_file_info
                        .as_ref()
                        .and_then(|f| f.file_identifier.as_deref()),
                    Some("87662bc3d60e4200ceaf7aae249d1c343f4b83c9")
                ),
                // The documented commands, each Created until the device runs it.
                Type::LiveResponse => {
                    let commands = action.commands.as_deref().unwrap_or_default();
                    let statuses: Vec<_> =
                        commands.iter().map(|c| c.command_status.clone()).collect();
                    use mde_client::types::LiveResponseCommandStatus as Command;
                    assert_eq!(statuses, [Some(Command::Created), Some(Command::Created)]);
                    assert_eq!(commands[1].index, Some(1));
                }
                _ => assert_eq!(action.scope, None, "{kind}"),
            }
        }
    }
    assert_eq!(responses.len(), 2 * kinds.len());
}

/// The completed collection, then two of each loop (the second of each cancelled), every one
/// kept; the Graph variant answers the older shape; a collection succeeds once its time has
/// passed and a cancelled one stays cancelled.
fn collections_are_kept_in_their_generations(sim: &Simulator, actions: &[MachineAction]) {
    use mde_client::types::MachineActionStatus as Status;
    let statuses: Vec<_> = actions.iter().map(|a| a.status.clone().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            Status::Succeeded,
            Status::Pending,
            Status::Cancelled,
            Status::Pending,
            Status::Cancelled
        ]
    );
    assert_eq!(
        actions[2].cancellation_comment.as_deref(),
        Some("Test investigation")
    );
    assert_eq!(sim.investigations().len(), 4);
    let graph = &actions[2];
    assert_eq!(actions.len(), 5, "every collection is kept");
    assert!(graph.last_update_time_utc.is_some() && graph.last_update_date_time_utc.is_none());
    assert_eq!(graph.error.as_deref(), Some("None"));
    let config = Config::default();
    sim.clock()
        .advance(config.collection_time.max(config.scan_time));
    assert!(
        sim.actions()
            .iter()
            .all(|a| matches!(a.status, Some(Status::Succeeded | Status::Cancelled)))
    );
}

#[tokio::test]
async fn documented_errors_reach_the_client_with_their_status_and_body() {
    let mut config = Config::default().with_generated_machines(60);
    config.apps.push(app("reader", "Alert.ReadWrite.All"));
    config.apps.push(app("starter", "Alert.ReadWrite.All"));
    let sim = simulator(config).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client(sim.base_url(), &token);
    let machine = generated_machine_id(0);

    // 400: a collection is already running on the device.
    assert!(call(&client, COLLECT, &machine, "first").await.is_ok());
    let again = call(&client, COLLECT, &machine, "second").await;
    assert_eq!(code(&again), (400, "ActiveRequestAlreadyExists".into()));

    // 400: an investigation is already running (the simulator's choice; the documents are
    // silent), whichever investigation operation asks.
    assert!(call(&client, START, &machine, "first").await.is_ok());
    for op in [START, OperationId::InitiateInvestigation] {
        let again = call(&client, op, &machine, "second").await;
        assert_eq!(
            code(&again),
            (400, "ActiveRequestAlreadyExists".into()),
            "{op}"
        );
    }

    // 401: no valid token, and an expired one.
    let stranger = mde_tests::client(sim.base_url(), "not-a-token");
    for op in operations::ALL {
        let answer = call(&stranger, op.id, &machine, "c").await;
        assert_eq!(code(&answer), (401, "Unauthorized".into()), "{}", op.id);
    }

    // 403: a token without Machine.CollectForensics may investigate but not collect.
    let reader = mde_tests::client(
        sim.base_url(),
        &sign_in(&sim, "reader", "reader-secret").await,
    );
    let denied = call(&reader, COLLECT, &generated_machine_id(1), "c").await;
    assert_eq!(code(&denied), (403, "Forbidden".into()));
    assert!(
        denied.unwrap_err().1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Machine.CollectForensics")
    );
    assert!(
        call(&reader, START, &generated_machine_id(1), "c")
            .await
            .is_ok()
    );

    not_found_limited_and_expired(&sim, &client).await;
    sim.stop().await;
}

/// The documented 404, 429 and 401 of an expired token.
async fn not_found_limited_and_expired(sim: &Simulator, client: &mde_client::Client) {
    // 404: an unknown machine or action, for every operation with one in its path that
    // documents it (listMachines' 404 means no recent machines at all).
    let spec = spec();
    for op in operations::ALL.iter().filter(|op| {
        op.path.contains("{id}")
            && spec.operation(op.id.as_str()).unwrap().value["responses"]
                .get("404")
                .is_some()
    }) {
        let answer = call(
            client,
            op.id,
            "0000000000000000000000000000000000000000",
            "c",
        )
        .await;
        assert_eq!(code(&answer), (404, "ResourceNotFound".into()), "{}", op.id);
    }

    // 429: the documented 50 starts an hour, counted per app.
    let starter = mde_tests::client(
        sim.base_url(),
        &sign_in(sim, "starter", "starter-secret").await,
    );
    let limit = operations::START_INVESTIGATION.rate_limits[0].calls as usize;
    for i in 2..2 + limit {
        assert!(
            call(&starter, START, &generated_machine_id(i), "c")
                .await
                .is_ok()
        );
    }
    let limited = call(&starter, START, &generated_machine_id(2 + limit), "c").await;
    assert_eq!(code(&limited), (429, "TooManyRequests".into()));

    // 401 again once the token has expired; an hour also refills the rate limit.
    sim.clock().advance(Duration::from_secs(3600));
    let expired = call(client, START, &generated_machine_id(59), "c").await;
    assert_eq!(code(&expired), (401, "Unauthorized".into()));
    assert!(
        expired.unwrap_err().1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let renewed = mde_tests::client(
        sim.base_url(),
        &sign_in(sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await,
    );
    assert!(
        call(&renewed, START, &generated_machine_id(59), "c")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rate_limits_follow_the_spec_and_an_hour_passes_in_milliseconds() {
    let spec = spec();
    // Tokens outlive the two simulated hours this test skips through.
    let config = Config {
        token_lifetime: Duration::from_secs(24 * 3600),
        ..Config::default().with_generated_machines(1600)
    };
    let sim = simulator(config).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let base = sim.base_url().to_string();
    let post = |i: usize, op: OperationId| {
        let (spec, base, token) = (&spec, &base, &token);
        async move {
            let body = br#"{"Comment":"c"}"#.to_vec();
            raw(
                spec,
                base,
                &path_of(op, &generated_machine_id(i)),
                Some(token),
                Some("application/json"),
                body,
            )
            .await
        }
    };

    // startInvestigation: 50 an hour; the 51st waits for the first to be an hour old.
    let start_limit = operations::START_INVESTIGATION.rate_limits[0];
    for i in 0..start_limit.calls as usize {
        assert_eq!(post(i, START).await.status, 201);
    }
    let refused = post(1000, START).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (429, Some("TooManyRequests"))
    );
    assert!(
        refused
            .retry_after
            .is_some_and(|s| s > 3500 && s <= start_limit.seconds),
        "{refused:?}"
    );
    sim.clock()
        .advance(Duration::from_secs(start_limit.seconds));
    assert_eq!(post(1000, START).await.status, 201);

    // collectInvestigationPackage: 100 a minute and 1500 an hour, both enforced.
    let [minute, hour] = operations::COLLECT_INVESTIGATION_PACKAGE.rate_limits else {
        panic!("collection documents a minute and an hour window");
    };
    let mut accepted = 0;
    let mut machine = 0;
    loop {
        for _ in 0..minute.calls {
            assert_eq!(post(machine, COLLECT).await.status, 201);
            machine += 1;
            accepted += 1;
        }
        if accepted == hour.calls {
            break;
        }
        // The minute is full, the hour is not: room again within the minute.
        let over = post(machine, COLLECT).await;
        assert_eq!(over.status, 429);
        assert!(
            over.retry_after
                .is_some_and(|s| s >= 1 && s <= minute.seconds),
            "{over:?}"
        );
        sim.clock().advance(Duration::from_secs(minute.seconds));
    }
    sim.clock().advance(Duration::from_secs(minute.seconds));
    // A new minute, but the hour is full.
    let over = post(machine, COLLECT).await;
    assert_eq!(over.status, 429);
    assert!(
        over.retry_after.is_some_and(|s| s > minute.seconds),
        "{over:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_answers_like_azure_ad() {
    let sim = simulator(Config::default()).await;
    let scope = operations::TOKEN_SCOPES[0];
    let (status, ok) = token_request(
        &sim,
        DEFAULT_TENANT,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        scope,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], Config::default().token_lifetime.as_secs());
    let cases = [
        (
            DEFAULT_TENANT,
            DEFAULT_CLIENT_ID,
            "wrong",
            scope,
            401,
            "invalid_client",
            "AADSTS7000215",
        ),
        (
            DEFAULT_TENANT,
            "nobody",
            DEFAULT_CLIENT_SECRET,
            scope,
            400,
            "unauthorized_client",
            "AADSTS700016",
        ),
        (
            "other-tenant",
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            scope,
            400,
            "invalid_request",
            "AADSTS90002",
        ),
        (
            DEFAULT_TENANT,
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            "https://graph.microsoft.com/User.Read",
            400,
            "invalid_scope",
            "AADSTS1002012",
        ),
    ];
    for (tenant, client_id, secret, scope, status, error, code) in cases {
        let (got, body) = token_request(&sim, tenant, client_id, secret, scope).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(code),
            "{body}"
        );
        assert!(
            !body.to_string().contains(DEFAULT_CLIENT_SECRET),
            "the secret is echoed: {body}"
        );
    }
    sim.stop().await;
}
