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

mod answers;
mod collections;
mod downloads;
mod hunting;
mod live_response;
mod quotas;

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

/// A client of the app `client_id` signing in at the simulator, a token for each audience its
/// operations need (the API's, Microsoft Graph's); it sends at once and does not retry 429s.
fn app_client(sim: &Simulator, client_id: &str, secret: &str) -> mde_client::Client {
    sim.client_builder()
        .client_credentials(DEFAULT_TENANT, client_id, secret)
        .enforce_rate_limits(false)
        .retries_on_429(0)
        .build()
        .unwrap()
}

/// A token of the default app for `op`'s audience, by the client's own sign-in.
async fn token_for(sim: &Simulator, op: &operations::Operation) -> String {
    let app = (DEFAULT_TENANT, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    let scope = mde_sim::scope_of(op);
    mde_sim::sign_in_for(sim.base_url(), app, &scope)
        .await
        .unwrap()
}

/// A client that sends at once and does not retry 429s: it meets the service's own limits.
fn client_of(sim: &Simulator, token: &str) -> mde_client::Client {
    mde_tests::client(sim.base_url(), token)
}
