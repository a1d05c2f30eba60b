//! The simulator against the spec: downloads.

use super::*;

/// The download host behind a package link: no bearer token; a real zip archive; `Range`;
/// 403 once the link expired, 404 for a token never issued; a body cut on purpose; and the
/// seeded share of collections that fail, which have no package.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_download_host_serves_real_archives_with_ranges_expiry_and_faults() {
    let config = Config {
        package_size: 200_000,
        ..Config::default().with_generated_machines(4)
    };
    let lifetime = config.package_link_lifetime;
    // A client that keeps no idle connection: a simulator started later may get the port of
    // one stopped before, and a pooled connection to it would be dead.
    mde_client::install_crypto_provider();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let http = || &http;
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let action = client
        .collect_investigation_package(&generated_machine_id(0), "evidence")
        .await
        .unwrap();
    let id = action.id.unwrap();
    let config = Config::default();
    sim.clock()
        .advance(config.collection_time.max(config.scan_time));
    let answer = client
        .send(operations::GetPackageUri { id: id.clone() })
        .await
        .unwrap();
    let url = answer.value.expose().trim_matches('"').to_string();

    // No Authorization header: the link carries its own token.
    let whole = http().get(&url).send().await.unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let length = whole.content_length().unwrap();
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, length);
    assert!((190_000..210_000).contains(&length), "{length}");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut summary = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("CollectionSummaryReport.txt").unwrap(),
        &mut summary,
    )
    .unwrap();
    assert!(summary.contains(&id) && summary.contains(&generated_machine_id(0)));

    // The rest from an offset: 206 and the same bytes.
    let tail = http()
        .get(&url)
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(
        tail.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1000-{}/{length}", length - 1)
    );
    assert_eq!(tail.bytes().await.unwrap(), bytes.slice(1000..));

    let unknown = url.replace("token=", "token=0");
    assert_eq!(
        http().get(&unknown).send().await.unwrap().status().as_u16(),
        404
    );
    sim.clock().advance(lifetime);
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        403
    );
    sim.stop().await;

    faults_are_seeded_and_cut_short(http()).await;
    a_slow_body_arrives_whole(http()).await;
}

/// Every download dropped halfway; a seeded half of the collections failing, the same with
/// the same seed.
async fn faults_are_seeded_and_cut_short(http: &reqwest::Client) {
    let http = || http;
    // Every download dropped halfway; a seeded half of the collections failing.
    let faulty = Config {
        package_size: 200_000,
        download_faults: "drop:1".parse().unwrap(),
        collection_failures: 0.5,
        seed: 7,
        ..Config::default().with_generated_machines(40)
    };
    let sim = simulator(faulty).await;
    let client = sim.client_builder().build().unwrap();
    for i in 0..40 {
        client
            .collect_investigation_package(&generated_machine_id(i), "many")
            .await
            .unwrap();
    }
    let config = Config::default();
    sim.clock()
        .advance(config.collection_time.max(config.scan_time));
    use mde_client::types::MachineActionStatus as Status;
    let actions = sim.actions();
    let count = |s: Status| {
        actions
            .iter()
            .filter(|a| a.status == Some(s.clone()))
            .count()
    };
    let (failed, timed_out) = (count(Status::Failed), count(Status::TimeOut));
    assert!(
        failed > 0 && timed_out > 0 && failed + timed_out < 40,
        "{failed} {timed_out}"
    );
    let failing = actions
        .iter()
        .find(|a| a.status == Some(Status::Failed))
        .unwrap();
    let no_package = client
        .send(operations::GetPackageUri {
            id: failing.id.clone().unwrap(),
        })
        .await;
    assert!(matches!(no_package, Err(mde_client::Error::NotFound(_))));
    let good = actions
        .iter()
        .find(|a| a.status == Some(Status::Succeeded))
        .unwrap();
    let link = client
        .send(operations::GetPackageUri {
            id: good.id.clone().unwrap(),
        })
        .await
        .unwrap();
    // Cut on purpose: the whole archive never arrives (the body is cut short, or, on a
    // starved machine, the connection closes before the head).
    let cut = http()
        .get(link.value.expose().trim_matches('"'))
        .send()
        .await;
    if let Ok(response) = cut {
        let declared = response.content_length().unwrap();
        assert!(
            response.bytes().await.is_err(),
            "a body of {declared} bytes cut on purpose"
        );
    }
    // The same seed, the same outcomes.
    let again = simulator(Config {
        collection_failures: 0.5,
        seed: 7,
        ..Config::default().with_generated_machines(40)
    })
    .await;
    let client = again.client_builder().build().unwrap();
    for i in 0..40 {
        client
            .collect_investigation_package(&generated_machine_id(i), "many")
            .await
            .unwrap();
    }
    again.clock().advance(Config::default().collection_time);
    let statuses = |actions: Vec<mde_client::types::MachineAction>| {
        actions.into_iter().map(|a| a.status).collect::<Vec<_>>()
    };
    assert_eq!(statuses(again.actions()), statuses(sim.actions()));
    sim.stop().await;
    again.stop().await;
}

/// A slow body still arrives whole, 50 ms (real) a 64 KiB chunk.
async fn a_slow_body_arrives_whole(http: &reqwest::Client) {
    let http = || http;
    // A slow body still arrives whole, 50 ms (real) a 64 KiB chunk.
    let slow = simulator(Config {
        package_size: 200_000,
        download_faults: "slow:1".parse().unwrap(),
        ..Config::default().with_generated_machines(1)
    })
    .await;
    let client = slow.client_builder().build().unwrap();
    let action = client
        .collect_investigation_package(&generated_machine_id(0), "slow")
        .await
        .unwrap();
    slow.clock().advance(Config::default().collection_time);
    let link = client
        .send(operations::GetPackageUri {
            id: action.id.unwrap(),
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let response = http()
        .get(link.value.expose().trim_matches('"'))
        .send()
        .await
        .unwrap();
    let declared = response.content_length().unwrap();
    assert_eq!(response.bytes().await.unwrap().len() as u64, declared);
    assert!(started.elapsed() >= Duration::from_millis(150));
    slow.stop().await;
}

/// The response actions and the machine look-ups as the pages describe them: a repeated
/// containment action answers the pending action or the 400 (#5903), both ways for some
/// seed; a SHA-1 that is not 40 hex characters is `InvalidHashValue`; offboard answers 200
/// (the page's "200 - Created"); tags are added once, removed, and found by tag, exactly or
/// by prefix; an unknown machine is a 404.
#[tokio::test]
async fn response_actions_and_machine_tags_follow_the_pages() {
    use mde_client::types;
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(40)).await;
    let client = sim.client_builder().build().unwrap();
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let comment = |text: &str| types::CommentRequest {
        comment: text.try_into().unwrap(),
    };
    let isolate = |id: String| operations::IsolateMachine {
        id,
        body: types::IsolateRequest {
            comment: "contain".try_into().unwrap(),
            isolation_type: Some(types::IsolationType::Selective),
        },
    };
    let (mut pending_again, mut refused) = (0, 0);
    for i in 0..40 {
        let machine = generated_machine_id(i);
        let first = client.send(isolate(machine.clone())).await.unwrap();
        assert_eq!(first.scope.as_deref(), Some("Selective"));
        assert_eq!(first.type_, Some(types::MachineActionType::Isolate));
        match client.send(isolate(machine)).await {
            Err(mde_client::Error::AlreadyPending(action)) => {
                assert_eq!(action.id, first.id);
                pending_again += 1;
            }
            Err(mde_client::Error::AlreadyRunning(e)) => {
                assert_eq!(e.code, "ActiveRequestAlreadyExists");
                refused += 1;
            }
            other => panic!("a repeated isolate: {other:?}"),
        }
    }
    assert!(
        pending_again > 0 && refused > 0,
        "{pending_again} pending, {refused} refused"
    );
    // Another type of action is not a repeat.
    let machine = generated_machine_id(0);
    let release = operations::UnisolateMachine {
        id: machine.clone(),
        body: comment("release"),
    };
    assert!(client.send(release).await.is_ok());

    let base = sim.base_url().to_string();
    let path = path_of(OperationId::StopAndQuarantineFile, &machine);
    let bad = json!({ "Comment": "c", "Sha1": "87662bc3d60e4200ceaf7aae249d1c343f4b83cZ" });
    let bad = raw(
        &spec,
        &base,
        &path,
        Some(&token),
        Some("application/json"),
        bad.to_string().into_bytes(),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.body["error"]["code"], "InvalidHashValue");

    let offboard = json!({ "Comment": "Offboard machine by automation" }).to_string();
    let path = path_of(OperationId::OffboardMachine, &machine);
    let offboarded = raw(
        &spec,
        &base,
        &path,
        Some(&token),
        Some("application/json"),
        offboard.into_bytes(),
    )
    .await;
    assert_eq!(offboarded.status, 200, "{offboarded:?}");
    assert_eq!(offboarded.body["type"], "Offboard");

    machine_tags_follow_the_pages(&client, &machine).await;
    sim.stop().await;
}

/// setMachineTag, getMachine and findMachinesByTag, as their pages show them.
async fn machine_tags_follow_the_pages(client: &mde_client::Client, machine: &str) {
    use mde_client::types;
    let machine = machine.to_string();
    let tag = |id: &str, value: &str, action| operations::SetMachineTag {
        id: id.to_string(),
        body: types::MachineTagRequest {
            value: value.try_into().unwrap(),
            action,
        },
    };
    for value in ["Contained", "Contained", "Case-42"] {
        client
            .send(tag(&machine, value, types::MachineTagAction::Add))
            .await
            .unwrap();
    }
    let other = generated_machine_id(1);
    client
        .send(tag(&other, "contained-too", types::MachineTagAction::Add))
        .await
        .unwrap();
    let shown = client
        .send(operations::GetMachine {
            id: machine.clone(),
        })
        .await
        .unwrap();
    assert_eq!(shown.machine_tags.unwrap(), ["Contained", "Case-42"]);
    let find = |tag: &str, prefix| operations::FindMachinesByTag {
        tag: tag.try_into().unwrap(),
        use_starts_with_filter: prefix,
    };
    let ids = |page: types::MachineCollection| -> Vec<String> {
        page.value.into_iter().filter_map(|m| m.id).collect()
    };
    assert_eq!(
        ids(client.send(find("contained", None)).await.unwrap()),
        std::slice::from_ref(&machine)
    );
    let both = ids(client.send(find("contained", Some(true))).await.unwrap());
    assert_eq!(both, [machine.clone(), other]);
    let removed = client
        .send(tag(&machine, "Contained", types::MachineTagAction::Remove))
        .await
        .unwrap();
    assert_eq!(removed.machine_tags.unwrap(), ["Case-42"]);
    let unknown = client
        .send(operations::GetMachine { id: "0".repeat(40) })
        .await;
    assert!(
        matches!(unknown, Err(mde_client::Error::NotFound(_))),
        "{unknown:?}"
    );
}

/// Permissions are enforced per operation, as the spec's `x-permissions` name them: an app
/// holding none of an operation's permissions gets the service's 403 naming one that would do
/// (`Machine.Isolate` for an isolation, `Machine.Offboard` for an offboarding, ...), whatever
/// else it holds.
#[tokio::test]
async fn every_operation_refuses_an_app_without_its_permissions() {
    let mut config = Config::default().with_generated_machines(1);
    config.apps.push(app("nobody", ""));
    let sim = simulator(config).await;
    let nobody = app_client(&sim, "nobody", "nobody-secret");
    for op in operations::ALL {
        let answer = call(&nobody, op.id, &generated_machine_id(0), "c").await;
        assert_eq!(code(&answer), (403, "Forbidden".into()), "{}", op.id);
        let message = answer.unwrap_err().1["error"]["message"].clone();
        let one = op
            .application_permissions
            .iter()
            .chain(op.directory_roles)
            .next();
        assert!(
            message.as_str().unwrap().contains(one.unwrap()),
            "{}: {message}",
            op.id
        );
    }
    assert_eq!(sim.actions().len(), 0, "nothing was started");
    sim.stop().await;
}

/// Live response as run-live-response.md describes it: the commands of a session run one
/// after the other once the device picks it up (each `Created`, then `Completed` with its
/// times); one session a device (the 400 `ActiveRequestAlreadyExists`); at most 50 running
/// at once (a 429 until one ends); the documented order and parameters, or a 400.
#[tokio::test]
async fn live_response_sessions_follow_the_documented_limits() {
    let spec = spec();
    // Commands of ten minutes, RunScript's time-out: sessions outlast the rate limit's waits.
    let config = Config {
        command_time: Duration::from_secs(600),
        ..Config::default().with_generated_machines(60)
    };
    let (pickup, command_time) = (config.pickup_time, config.command_time);
    let sim = simulator(config).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let base = sim.base_url().to_string();
    // The script the sessions put and run, in the library first.
    let script = operations::UploadLibraryFile::new("collect.ps1", "Get-ChildItem C:\\");
    client_of(&sim, &token).send(script).await.unwrap();
    let run =
        async |machine: &str, body: Value| run_session(&spec, &base, &token, machine, body).await;

    let first = run(&generated_machine_id(0), triage()).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let statuses = |action: &Value| -> Vec<String> {
        let commands = action["commands"].as_array().unwrap();
        commands
            .iter()
            .map(|c| c["commandStatus"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(statuses(&first.body), ["Created", "Created", "Created"]);
    let again = run(&generated_machine_id(0), triage()).await;
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (400, Some("ActiveRequestAlreadyExists"))
    );

    malformed_sessions_are_refused(&spec, &base, &token).await;

    // The session's time passes: every command ran, in order, each with its times.
    sim.clock().advance(pickup + command_time * 3);
    let done = sim
        .actions()
        .into_iter()
        .find(|a| a.id == first.body["id"].as_str().map(String::from))
        .unwrap();
    assert_eq!(
        done.status,
        Some(mde_client::types::MachineActionStatus::Succeeded)
    );
    let commands = done.commands.unwrap();
    for pair in commands.windows(2) {
        assert!(pair[0].end_time <= pair[1].start_time, "{pair:?}");
    }
    assert!(
        commands
            .iter()
            .all(|c| c.command_status
                == Some(mde_client::types::LiveResponseCommandStatus::Completed))
    );

    // 50 sessions at once, 10 a minute; the 51st waits for the first to end, not a minute.
    for i in 0..50 {
        if i % 10 == 0 {
            sim.clock().advance(Duration::from_secs(61));
        }
        let started = run(&generated_machine_id(2 + i), triage()).await;
        assert_eq!(started.status, 201, "session {i}: {:?}", started.body);
    }
    sim.clock().advance(Duration::from_secs(61));
    let over = run(&generated_machine_id(55), triage()).await;
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert!(over.retry_after.unwrap() > 60, "{:?}", over.retry_after);
    sim.stop().await;
}

/// A live response command of the run-live-response.md form.
fn command(kind: &str, params: &[(&str, &str)]) -> Value {
    let params: Vec<Value> = params
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    json!({ "type": kind, "params": params })
}

/// A session's body: its commands and a comment.
fn session(commands: Vec<Value>) -> Value {
    json!({ "Commands": commands, "Comment": "triage" })
}

/// The session of the tests: put the script, run it, get its archive.
fn triage() -> Value {
    session(vec![
        command("PutFile", &[("FileName", "collect.ps1")]),
        command(
            "RunScript",
            &[("ScriptName", "collect.ps1"), ("Args", "-Fast")],
        ),
        command("GetFile", &[("Path", "C:\\triage.zip")]),
    ])
}

/// Starts a session on `machine` as a plain HTTP client would.
async fn run_session(spec: &Spec, base: &str, token: &str, machine: &str, body: Value) -> Raw {
    let path = path_of(OperationId::RunLiveResponse, machine);
    let body = serde_json::to_vec(&body).unwrap();
    raw(
        spec,
        base,
        &path,
        Some(token),
        Some("application/json"),
        body,
    )
    .await
}

/// A session with no command, out of order, without a command's parameter, of an unknown
/// command or without a comment: the documented 400s.
async fn malformed_sessions_are_refused(spec: &Spec, base: &str, token: &str) {
    for (body, code) in [
        (session(vec![]), "InvalidInput"),
        (
            session(vec![
                command("GetFile", &[("Path", "a")]),
                command("PutFile", &[("FileName", "b")]),
            ]),
            "InvalidRequestBody",
        ),
        (
            session(vec![command("RunScript", &[("Args", "x")])]),
            "MissingRequiredParameter",
        ),
        (
            session(vec![command("Launch", &[("Path", "a")])]),
            "InvalidRequestBody",
        ),
        (
            json!({ "Commands": [command("GetFile", &[("Path", "a")])] }),
            "MissingRequiredParameter",
        ),
    ] {
        let refused = run_session(spec, base, token, &generated_machine_id(1), body.clone()).await;
        assert_eq!(
            (refused.status, refused.body["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
}
