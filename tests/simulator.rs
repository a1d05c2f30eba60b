//! The generated client against the simulator, over real HTTP on 127.0.0.1, and the
//! simulator's answers checked against the spec's schemas, read at test time.

use std::collections::HashMap;
use std::time::Duration;

use mde_client::operations::{self, OperationId};
use mde_client::reqwest;
use mde_sim::{
    App, Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, Simulator,
    generated_machine_id,
};
use mde_spec::Spec;
use mde_tests::{Answer, call, client, spec};
use serde_json::{Value, json};

const COLLECT: OperationId = OperationId::CollectInvestigationPackage;
const START: OperationId = OperationId::StartInvestigation;
const OK: u16 = 200;

/// One HTTP client for the whole file: building one per request costs the TLS set-up each time.
fn http() -> &'static reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(reqwest::Client::new)
}

async fn simulator(config: Config) -> Simulator {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    Simulator::start(config).await.unwrap()
}

/// An app that holds only `permissions`.
fn app(id: &str, permissions: &str) -> App {
    App::parse(&format!("{id}:{id}-secret:{permissions}")).unwrap()
}

/// A token for the app, by the client's own client-credentials sign-in.
async fn sign_in(sim: &Simulator, client_id: &str, secret: &str) -> String {
    mde_sim::sign_in(sim.base_url(), DEFAULT_TENANT, client_id, secret)
        .await
        .unwrap_or_else(|e| panic!("{client_id} signs in: {e}"))
}

/// A token request as it is, so that the endpoint's refusals can be tested too.
async fn token_request(
    sim: &Simulator,
    tenant: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", scope),
    ];
    let response = http()
        .post(sim.token_url(tenant))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// An answer received with a plain HTTP client.
#[derive(Debug)]
struct Raw {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

/// POSTs `body` to `path` as is, and checks that the answer matches the spec: the schema the
/// operation documents for that status, else the common error body.
async fn raw(
    spec: &Spec,
    base: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Raw {
    // The operation's own method (of two on one path, the one that takes a body when there
    // is one); a path of no operation is POSTed.
    let on_path = || {
        operations::ALL
            .iter()
            .filter(|op| template_matches(op.path, path))
    };
    let method = on_path()
        .find(|op| (op.method == "POST") != body.is_empty())
        .or_else(|| on_path().next())
        .map_or("POST", |op| op.method);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http()
        .request(method.clone(), format!("{base}{path}"))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let text = response.text().await.unwrap();
    // No content (a 204) reads as null.
    let body: Value = if text.is_empty() && status == 204 {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status} {path}: not JSON ({e}): {text}"))
    };
    assert_conforms(spec, method.as_str(), path, status, &body);
    Raw {
        status,
        retry_after,
        body,
    }
}

/// A form as a plain client sends it (`curl -F`): each member of `form` a part, `file` a file
/// named as upload-library.md's example names it.
fn multipart(form: &Value) -> (String, Vec<u8>) {
    let boundary = "----mde-test-boundary";
    let mut body = String::new();
    for (name, value) in form.as_object().unwrap() {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        let file = if name == "file" {
            "; filename=\"mdatp1.png\""
        } else {
            ""
        };
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n{text}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// The simulator's answer matches the schema the spec gives for it.
fn assert_conforms(spec: &Spec, method: &str, path: &str, status: u16, body: &Value) {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let response = spec
        .operations()
        .into_iter()
        .find(|op| op.method == method && template_matches(&op.path, path))
        .and_then(|op| {
            Some(
                spec.resolve(op.value.pointer(&format!("/responses/{status}"))?)
                    .clone(),
            )
        });
    if response
        .as_ref()
        .is_some_and(|r| r.get("content").is_none())
    {
        assert_eq!(body, &Value::Null, "{status} for {path} has no content");
        return;
    }
    let documented = response.and_then(|r| r.pointer("/content/application~1json/schema").cloned());
    let schema = documented.unwrap_or(error);
    if let Err(errors) = spec.check_value(&schema, body) {
        panic!("{status} for {path} does not match the spec: {errors:#?}\n{body}");
    }
}

/// POSTs a valid body with a request line written by hand, for what a URI type cannot hold;
/// returns the status.
async fn tcp_post(base: &str, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = r#"{"Comment":"c"}"#;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).to_string();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"))
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    // A parameter may sit inside a segment, as in `GetLiveResponseResultDownloadLink(index={index})`.
    let matches = |t: &str, p: &str| match t.split_once('{') {
        Some((before, rest)) => {
            let after = rest.split_once('}').map_or("", |(_, after)| after);
            p.starts_with(before) && p.ends_with(after)
        }
        None => t == p,
    };
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| matches(t, p))
}

fn path_of(operation: OperationId, encoded_id: &str) -> String {
    // The first command of a live response action, where the path takes one.
    let path = operation.facts().path.replace("{index}", "0");
    // The one name a path takes: a machine's, an action's or a library file's.
    path.replace("{id}", encoded_id)
        .replace("{fileName}", encoded_id)
}

/// An answer's status and error code; any documented success reads as `(OK, "")`.
fn code(answer: &Answer) -> (u16, String) {
    match answer {
        Ok(_) => (OK, String::new()),
        Err((status, body)) => (
            *status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
    }
}

#[tokio::test]
async fn every_operation_succeeds_as_documented() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(operations::ALL.len())).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client(sim.base_url(), &token);
    // A collection completed before the others start: its package can be linked.
    let done = sim
        .client_builder()
        .build()
        .unwrap()
        .collect_investigation_package(&generated_machine_id(7), "done")
        .await
        .unwrap()
        .id
        .unwrap();
    // And a live response session: its first command's result can be linked (its script in
    // the library first).
    let script = operations::UploadLibraryFile::new("minidump.ps1", "Get-Process | Out-File");
    client.send(script).await.unwrap();
    let session = call(
        &client,
        OperationId::RunLiveResponse,
        &generated_machine_id(8),
        "done",
    )
    .await
    .unwrap();
    let session = session["id"].as_str().unwrap().to_string();
    let config = Config::default();
    sim.clock()
        .advance(config.collection_time.max(config.scan_time));
    // Operations on a machine action take the completed one (its package, its result) or the
    // newest, still running (to read or cancel); the others a machine id.
    let target = |op: &operations::Operation, machine: String| {
        if op.path.ends_with("/getPackageUri") {
            done.clone()
        } else if op.id == OperationId::GetLiveResponseResultDownloadLink {
            session.clone()
        } else if op.id == OperationId::DeleteLibraryFile {
            // The file `call` uploads.
            "mdatp1.png".to_string()
        } else if op.path.starts_with("/api/machineactions/") {
            sim.actions().last().unwrap().id.clone().unwrap()
        } else {
            machine
        }
    };
    let documented = operations::DOCUMENTED_MACHINE_IDS;
    for (i, op) in operations::ALL.iter().enumerate() {
        let machine = &target(op, documented[i % documented.len()].to_string());
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
    // The same, answered to a plain HTTP client: each raw body matches the spec's schema for
    // its status (`raw` checks it).
    let base = sim.base_url().to_string();
    let examples = spec.examples();
    for (i, op) in operations::ALL.iter().enumerate() {
        let path = path_of(op.id, &target(op, generated_machine_id(i)));
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
        let answer = raw(&spec, &base, &path, Some(&token), Some(&content_type), body).await;
        assert!(
            [200, 201, 204].contains(&answer.status),
            "{}: {answer:?}",
            op.id
        );
    }
    // One scan each loop, as documented: type and scope.
    use mde_client::types::MachineActionStatus as Status;
    let (scans, actions): (Vec<_>, Vec<_>) = sim
        .actions()
        .into_iter()
        .partition(|a| a.type_ == Some(mde_client::types::MachineActionType::RunAntiVirusScan));
    assert_eq!(scans.len(), 2);
    for scan in &scans {
        assert_eq!(scan.scope.as_deref(), Some("Full"));
        assert_eq!(scan.status, Some(Status::Pending));
    }
    use mde_client::types::MachineActionType as Type;
    let (actions, responses): (Vec<_>, Vec<_>) = actions
        .into_iter()
        .partition(|a| a.type_ == Some(Type::CollectInvestigationPackage));
    // The session started first, completed, is not one of the loops'.
    let responses: Vec<_> = responses
        .into_iter()
        .filter(|a| a.id.as_deref() != Some(session.as_str()))
        .collect();
    // One response action of each type each loop, pending, as documented: an isolation's
    // scope its type, a quarantine's file in relatedFileInfo.
    for kind in [
        Type::Isolate,
        Type::Unisolate,
        Type::RestrictCodeExecution,
        Type::UnrestrictCodeExecution,
        Type::StopAndQuarantineFile,
        Type::Offboard,
        Type::LiveResponse,
    ] {
        let of_kind: Vec<_> = responses
            .iter()
            .filter(|a| a.type_.as_ref() == Some(&kind))
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
    assert_eq!(responses.len(), 14);
    // The completed one, then two collections of each loop (the second of each cancelled).
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

    // The documented generations: the Graph variant answers the older shape.
    let graph = &actions[2];
    assert_eq!(actions.len(), 5, "every collection is kept");
    assert!(graph.last_update_time_utc.is_some() && graph.last_update_date_time_utc.is_none());
    assert_eq!(graph.error.as_deref(), Some("None"));
    // A collection succeeds once its time has passed; a cancelled one stays cancelled.
    let config = Config::default();
    sim.clock()
        .advance(config.collection_time.max(config.scan_time));
    assert!(
        sim.actions()
            .iter()
            .all(|a| matches!(a.status, Some(Status::Succeeded | Status::Cancelled)))
    );
    sim.stop().await;
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
            &client,
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
        &sign_in(&sim, "starter", "starter-secret").await,
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
    let expired = call(&client, START, &generated_machine_id(59), "c").await;
    assert_eq!(code(&expired), (401, "Unauthorized".into()));
    assert!(
        expired.unwrap_err().1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let renewed = mde_tests::client(
        sim.base_url(),
        &sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await,
    );
    assert!(
        call(&renewed, START, &generated_machine_id(59), "c")
            .await
            .is_ok()
    );
    sim.stop().await;
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

/// Hostile ids and bodies each get a clear 4xx with the error body, and the server keeps
/// serving.
#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client(sim.base_url(), &token);
    let base = sim.base_url().to_string();
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
        let answer = call(&client, COLLECT, id, "c").await;
        let status = code(&answer).0;
        assert!(
            status == 0 || (400..500).contains(&status),
            "{:.40?}: {answer:.200?}",
            id
        );

        // Over a bare TCP connection: the id percent-encoded byte by byte, however long.
        let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
        let status = tcp_post(&base, &path_of(COLLECT, &encoded), &token).await;
        assert!((400..500).contains(&status), "{:.40?}: {status}", id);
    }
    for literal in ["%ZZ", "%FF", "%00", "..%2F..", "%2e%2e"] {
        let answer = raw(
            &spec,
            &base,
            &path_of(COLLECT, literal),
            Some(&token),
            Some("application/json"),
            br#"{"Comment":"c"}"#.to_vec(),
        )
        .await;
        assert!((400..500).contains(&answer.status), "{literal}: {answer:?}");
    }

    let machine = path_of(COLLECT, &generated_machine_id(0));
    let json = Some("application/json");
    // (what, content type, body, status, error code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let bodies: Vec<Case> = vec![
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
    ];
    for (what, content_type, body, status, code) in bodies {
        let answer = raw(&spec, &base, &machine, Some(&token), content_type, body).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer:?}"
        );
    }
    let message = raw(
        &spec,
        &base,
        &machine,
        Some(&token),
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

/// Collects on 100 machines with `per_machine` concurrent requests each, spread over `apps`
/// apps; returns the simulator and each answer's status.
async fn concurrent_collections(
    apps: usize,
    per_machine: usize,
) -> (Simulator, Vec<(String, u16)>) {
    let mut config = Config::default().with_generated_machines(100);
    config
        .apps
        .extend((0..apps).map(|i| app(&format!("load{i}"), "Machine.CollectForensics")));
    let sim = simulator(config).await;
    let mut clients = Vec::new();
    for i in 0..apps {
        let id = format!("load{i}");
        clients.push(client(
            sim.base_url(),
            &sign_in(&sim, &id, &format!("{id}-secret")).await,
        ));
    }
    let mut tasks = Vec::new();
    for round in 0..per_machine {
        for m in 0..100 {
            let client = clients[(round * 100 + m) % apps].clone();
            let machine = generated_machine_id(m);
            tasks.push(tokio::spawn(async move {
                let answer = call(&client, COLLECT, &machine, "load").await;
                (machine, code(&answer).0)
            }));
        }
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    (sim, answers)
}

fn tally(answers: &[(String, u16)]) -> HashMap<u16, usize> {
    let mut counts = HashMap::new();
    for (_, status) in answers {
        *counts.entry(*status).or_default() += 1;
    }
    counts
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
    use mde_client::types::MachineActionStatus as Status;
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
    sim.stop().await;
}

/// A client that sends at once and does not retry 429s: it meets the service's own limits.
fn client_of(sim: &Simulator, token: &str) -> mde_client::Client {
    mde_tests::client(sim.base_url(), token)
}

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
    sim.stop().await;
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
    let nobody = client(
        sim.base_url(),
        &sign_in(&sim, "nobody", "nobody-secret").await,
    );
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
    let run = async |machine: &str, body: Value| {
        let path = path_of(OperationId::RunLiveResponse, machine);
        let body = serde_json::to_vec(&body).unwrap();
        raw(
            &spec,
            &base,
            &path,
            Some(&token),
            Some("application/json"),
            body,
        )
        .await
    };
    let command = |kind: &str, params: &[(&str, &str)]| {
        let params: Vec<Value> = params
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        json!({ "type": kind, "params": params })
    };
    let session = |commands: Vec<Value>| json!({ "Commands": commands, "Comment": "triage" });
    let triage = || {
        session(vec![
            command("PutFile", &[("FileName", "collect.ps1")]),
            command(
                "RunScript",
                &[("ScriptName", "collect.ps1"), ("Args", "-Fast")],
            ),
            command("GetFile", &[("Path", "C:\\triage.zip")]),
        ])
    };

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
        let refused = run(&generated_machine_id(1), body.clone()).await;
        assert_eq!(
            (refused.status, refused.body["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }

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

/// A live response command's result, as get-live-response-result.md describes it: a link in
/// the OData string wrapper (no quotes around it), only once the command completed and only
/// for RunScript (its transcript, NULs kept) and GetFile (the file), valid 30 minutes and made
/// again by another call; the function path takes the index inside its parentheses.
#[tokio::test]
async fn live_response_results_are_linked_once_their_command_completed() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let base = sim.base_url().to_string();
    // The script the sessions put and run, in the library first.
    let script = operations::UploadLibraryFile::new("collect.ps1", "Get-ChildItem C:\\");
    client_of(&sim, &token).send(script).await.unwrap();
    let post = async |path: String, body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        raw(
            &spec,
            &base,
            &path,
            Some(&token),
            Some("application/json"),
            body,
        )
        .await
    };
    let session = post(
        path_of(OperationId::RunLiveResponse, &generated_machine_id(0)),
        json!({
            "Commands": [
                { "type": "PutFile", "params": [{ "key": "FileName", "value": "collect.ps1" }] },
                { "type": "RunScript", "params": [{ "key": "ScriptName", "value": "collect.ps1" }, { "key": "Args", "value": "-Fast" }] },
                { "type": "GetFile", "params": [{ "key": "Path", "value": "C:\\triage.zip" }] }
            ],
            "Comment": "triage"
        }),
    )
    .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    let action = session.body["id"].as_str().unwrap().to_string();
    let link = async |index: &str| {
        let path = format!(
            "/api/machineactions/{action}/GetLiveResponseResultDownloadLink(index={index})"
        );
        raw(&spec, &base, &path, Some(&token), None, Vec::new()).await
    };
    assert_eq!(link("1").await.status, 404, "not completed yet");

    let config = Config::default();
    sim.clock()
        .advance(config.pickup_time + config.command_time * 3);
    assert_eq!(link("0").await.status, 404, "a PutFile has no result");
    assert_eq!(link("7").await.status, 404, "no such command");
    assert_eq!(link("one").await.status, 400);
    let other = format!("{base}/api/machineactions/{action}/GetSomethingElse(index=1)");
    let other = http().get(other).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        other.status().as_u16(),
        404,
        "another function is no resource"
    );

    let download = async |answer: Raw| {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let url = answer.body["value"].as_str().unwrap().to_string();
        assert!(url.starts_with("http"), "no quotes around the link: {url}");
        let response = http().get(&url).send().await.unwrap();
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
            url,
        )
    };
    let (status, transcript, url) = download(link("1").await).await;
    assert_eq!(status, 200);
    let transcript: mde_client::types::RunScriptTranscript =
        serde_json::from_slice(&transcript).unwrap();
    assert_eq!(transcript.script_name.as_deref(), Some("collect.ps1"));
    assert!(
        transcript.script_output.unwrap().contains('\u{0}'),
        "NULs as real output has them"
    );
    let (status, file, _) = download(link("2").await).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(file)
            .unwrap()
            .starts_with("C:\\triage.zip on ")
    );

    // 30 minutes later the link is refused; another call makes a new one.
    sim.clock().advance(Duration::from_secs(30 * 60));
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        403
    );
    let (status, _, _) = download(link("1").await).await;
    assert_eq!(status, 200);
    sim.stop().await;
}

/// The library as list-library-files.md, upload-library.md and delete-library.md describe it:
/// a multipart upload (name rule, 20 MiB, `OverrideIfExists`), the list, a delete answering
/// 204 then 404; the client refuses what the service would before sending.
#[tokio::test]
async fn the_library_takes_uploads_lists_and_deletes() {
    let spec = spec();
    let sim = simulator(Config::default()).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client_of(&sim, &token);
    let upload = |name: &str, content: &str| operations::UploadLibraryFile {
        description: Some("triage".into()),
        ..operations::UploadLibraryFile::new(name, content)
    };
    let file = client.send(upload("collect.ps1", "v1")).await.unwrap();
    assert_eq!(file.file_name.as_deref(), Some("collect.ps1"));
    let digest = |content: &[u8]| {
        use sha2::Digest;
        Some(format!("{:x}", sha2::Sha256::digest(content)))
    };
    assert_eq!(file.sha256, digest(b"v1"));
    // The same name again: refused unless it overrides; then the new content is listed.
    let again = client.send(upload("collect.ps1", "v2")).await.unwrap_err();
    assert!(
        matches!(again, mde_client::Error::InvalidRequest(_)),
        "{again:?}"
    );
    let replaced = operations::UploadLibraryFile {
        override_if_exists: Some(true),
        ..upload("collect.ps1", "v2")
    };
    client.send(replaced).await.unwrap();
    let listed = client.send(operations::ListLibraryFiles {}).await.unwrap();
    assert_eq!(listed.value.len(), 1);
    assert_eq!(listed.value[0].sha256, digest(b"v2"));
    assert_eq!(
        listed.value[0].creation_time, file.creation_time,
        "created once"
    );

    // What the client refuses before sending: nothing reaches the simulator.
    let calls = sim.calls(OperationId::UploadLibraryFile);
    for refused in [
        upload("../evil.ps1", "x"),
        upload("a b.ps1", "x"),
        operations::UploadLibraryFile::new(
            "big.bin",
            vec![0u8; mde_client::LIBRARY_FILE_LIMIT + 1],
        ),
    ] {
        let e = client.send(refused).await.unwrap_err();
        assert!(matches!(e, mde_client::Error::InvalidInput(_)), "{e:?}");
    }
    assert_eq!(sim.calls(OperationId::UploadLibraryFile), calls);
    // A plain client gets the service's 400 for the same.
    let base = sim.base_url().to_string();
    let (content_type, body) = multipart(&json!({ "file": "x" }));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("mdatp1.png", "a b.ps1");
    let bad = raw(
        &spec,
        &base,
        "/api/libraryfiles",
        Some(&token),
        Some(&content_type),
        body.into_bytes(),
    )
    .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    let not_a_form = raw(
        &spec,
        &base,
        "/api/libraryfiles",
        Some(&token),
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(not_a_form.status, 400);

    let delete = |name: &str| operations::DeleteLibraryFile {
        file_name: name.into(),
    };
    client.send(delete("collect.ps1")).await.unwrap();
    let gone = client.send(delete("collect.ps1")).await.unwrap_err();
    assert!(matches!(gone, mde_client::Error::NotFound(_)), "{gone:?}");
    let listed = client.send(operations::ListLibraryFiles {}).await.unwrap();
    assert!(listed.value.is_empty());
    sim.stop().await;
}

/// How sessions end on the devices: a library file that is not there fails its command and
/// the later ones never run; a missing file fails a GetFile the same way; a device that stays
/// offline keeps its session queued 2 hours, then `TimeOut`; a group without an automation
/// level is the 403 `DisallowedOperation` with #6054's text.
#[tokio::test]
async fn live_response_sessions_fail_queue_and_refuse_as_devices_do() {
    let sim = simulator(Config {
        no_automation: 1,
        offline: 1.0,
        ..Config::default().with_generated_machines(4)
    })
    .await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client_of(&sim, &token);
    let command = |kind: &str, key: &str, value: &str| mde_client::types::LiveResponseCommand {
        type_: kind.parse().unwrap(),
        params: vec![mde_client::types::LiveResponseParam {
            key: key.into(),
            value: value.into(),
        }],
    };
    let session = |machine: usize, commands| operations::RunLiveResponse {
        id: generated_machine_id(machine),
        body: mde_client::types::LiveResponseRequest {
            commands,
            comment: "triage".try_into().unwrap(),
        },
    };
    let denied = client
        .send(session(0, vec![command("GetFile", "Path", "C:\\a")]))
        .await
        .unwrap_err();
    let text = denied.to_string();
    assert!(
        text.contains("DisallowedOperation") && text.contains("Remediation Level"),
        "{text}"
    );

    // Every machine is offline: the session waits 2 hours, then times out, nothing run.
    let queued = client
        .send(session(1, vec![command("GetFile", "Path", "C:\\a")]))
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(2 * 3600 - 60));
    let action = |id: &str| {
        sim.actions()
            .into_iter()
            .find(|a| a.id.as_deref() == Some(id))
            .unwrap()
    };
    use mde_client::types::{LiveResponseCommandStatus as Command, MachineActionStatus as Status};
    let id = queued.id.clone().unwrap();
    assert_eq!(action(&id).status, Some(Status::Pending));
    sim.clock().advance(Duration::from_secs(120));
    let timed_out = action(&id);
    assert_eq!(timed_out.status, Some(Status::TimeOut));
    assert_eq!(
        timed_out.commands.unwrap()[0].command_status,
        Some(Command::Created)
    );
    sim.stop().await;

    // Online devices, one file that does not exist: the first failure stops the session.
    let sim = simulator(Config {
        missing_files: 1.0,
        ..Config::default().with_generated_machines(2)
    })
    .await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client_of(&sim, &token);
    let unknown_script = client
        .send(session(
            0,
            vec![
                command("RunScript", "ScriptName", "absent.ps1"),
                command("GetFile", "Path", "C:\\a"),
            ],
        ))
        .await
        .unwrap();
    let missing_file = client
        .send(session(
            1,
            vec![
                command("GetFile", "Path", "C:\\a"),
                command("GetFile", "Path", "C:\\b"),
            ],
        ))
        .await
        .unwrap();
    let config = Config::default();
    sim.clock()
        .advance(config.pickup_time + config.command_time * 2);
    for (session, why) in [
        (unknown_script, "library"),
        (missing_file, "does not exist"),
    ] {
        let action = sim
            .actions()
            .into_iter()
            .find(|a| a.id == session.id)
            .unwrap();
        assert_eq!(action.status, Some(Status::Failed));
        let commands = action.commands.unwrap();
        assert_eq!(commands[0].command_status, Some(Command::Failed));
        let errors = format!("{:?}", commands[0].errors);
        assert!(errors.contains(why), "{errors}");
        assert_eq!(
            commands[1].command_status,
            Some(Command::Created),
            "never run"
        );
        assert_eq!(commands[1].start_time, None);
    }
    sim.stop().await;
}

/// Several tenants: each has its own inventory (other machine ids), its own actions and its
/// own rate budget per app; the default app is registered in each, another app only where it
/// is given; an unknown tenant is Azure AD's AADSTS90002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_have_their_own_inventory_actions_and_budgets() {
    let spec = spec();
    let sim = simulator(Config {
        tenants: vec!["contoso".into(), "fabrikam".into()],
        apps: vec![
            mde_sim::App::default_app(),
            App::parse("fabrikam/narrow:pw:Machine.Read.All").unwrap(),
        ],
        ..Config::default().with_generated_machines(2)
    })
    .await;
    let base = sim.base_url().to_string();
    let contoso = mde_sim::sign_in(&base, "contoso", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .await
        .unwrap();
    let home = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let theirs = mde_sim::tenant_machine_id("contoso", &generated_machine_id(0));
    assert_ne!(theirs, generated_machine_id(0));
    let ids = |tenant: &str| -> Vec<String> {
        sim.machines_in(tenant)
            .into_iter()
            .filter_map(|m| m.id)
            .collect()
    };
    assert!(ids("contoso").contains(&theirs));
    assert!(!ids("contoso").contains(&generated_machine_id(0)));

    let collect = |token: String, machine: String| {
        let (spec, base) = (&spec, &base);
        async move {
            let path = path_of(OperationId::CollectInvestigationPackage, &machine);
            let body = serde_json::to_vec(&json!({ "Comment": "tenant" })).unwrap();
            raw(
                spec,
                base,
                &path,
                Some(&token),
                Some("application/json"),
                body,
            )
            .await
        }
    };
    assert_eq!(collect(contoso.clone(), theirs.clone()).await.status, 201);
    // The same machine is not in the home tenant, and the home tenant's is not in contoso.
    assert_eq!(collect(home.clone(), theirs.clone()).await.status, 404);
    assert_eq!(
        collect(contoso.clone(), generated_machine_id(1))
            .await
            .status,
        404
    );
    assert_eq!(sim.actions_in("contoso").len(), 1);
    assert!(sim.actions().is_empty());

    // The budget is the app's in each tenant: contoso's spent, the home tenant's whole.
    let list = |token: String| {
        let (spec, base) = (&spec, &base);
        async move { raw(spec, base, "/api/machines", Some(&token), None, Vec::new()).await }
    };
    let mut statuses = Vec::new();
    for _ in 0..101 {
        statuses.push(list(contoso.clone()).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(list(home).await.status, 200);

    // Another app only where it was given; an unknown tenant as Azure AD says it.
    let scope = mde_client::operations::TOKEN_SCOPES[0];
    let narrow = token_request(&sim, "fabrikam", "narrow", "pw", scope).await;
    assert_eq!(narrow.0, 200, "{:?}", narrow.1);
    let elsewhere = token_request(&sim, "contoso", "narrow", "pw", scope).await;
    assert_eq!(elsewhere.1["error"], "unauthorized_client");
    let unknown = token_request(
        &sim,
        "nowhere",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        scope,
    )
    .await;
    assert!(
        unknown.1["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002"),
        "{:?}",
        unknown.1
    );
    sim.stop().await;
}
