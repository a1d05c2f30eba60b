//! What the generated client puts on the wire, operation by operation, to a real HTTP
//! listener on 127.0.0.1, and how it decodes each documented answer. Cases come from the
//! spec: its operations, their request examples and their response examples.

use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Request, Response, StatusCode};
use mde_spec::{Example, Operation, Spec};
use mde_tests::{call, client, spec, without_nulls};
use serde_json::Value;

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-test-token";

/// A loopback HTTP server that records each request and answers with what the test set.
#[derive(Clone, Default)]
struct Listener {
    seen: Arc<Mutex<Vec<String>>>,
    answer: Arc<Mutex<(u16, Value)>>,
}

impl Listener {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let me = me.clone();
            async move { me.record(req).await }
        });
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", socket.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(socket, app).await });
        base
    }

    async fn record(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = to_bytes(body, 1 << 20).await.unwrap();
        let mut headers: Vec<String> = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = value.to_str().unwrap_or("<not UTF-8>");
                let value = match name.as_str() {
                    "authorization" => value.replace(TOKEN, "[token]"),
                    "host" => "127.0.0.1:[port]".to_string(),
                    _ => value.to_string(),
                };
                format!("{name}: {value}")
            })
            .collect();
        headers.sort();
        let mut seen = format!(
            "{} {}\n{}\n\n{}",
            parts.method,
            parts.uri,
            headers.join("\n"),
            String::from_utf8_lossy(&body)
        );
        // A multipart body's boundary is random: the same request, another boundary.
        let content_type = parts.headers.get("content-type");
        let boundary = content_type
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once("boundary="))
            .map(|(_, b)| b.to_string());
        if let Some(boundary) = boundary {
            seen = seen.replace(&boundary, "[boundary]");
        }
        self.seen.lock().unwrap().push(seen);
        let (status, value) = self.answer.lock().unwrap().clone();
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(value.to_string()))
            .unwrap()
    }
}

/// The comment of the operation's documented request (none for an operation without a body or
/// without a comment in it),
/// and the spec's example machine id.
fn documented_request(spec: &Spec, examples: &[Example], op: &Operation) -> (String, String) {
    let id = op.operation_id.as_deref().unwrap();
    let comment = if op.value.get("requestBody").is_none() {
        String::new()
    } else {
        examples
            .iter()
            .find(|e| {
                e.uses
                    .iter()
                    .any(|u| u.operation == id && u.place == "request")
            })
            .map(|e| {
                e.value
                    .get("Comment")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| panic!("{id} documents no request example"))
            .to_string()
    };
    // A path parameter other than a machine's (a library file's name) shows its own example.
    let own = op.value["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.get("$ref").is_none() && p["in"] == "path")
        .find_map(|p| {
            let example = spec.resolve(p["examples"].as_object()?.values().next()?);
            example["value"].as_str().map(str::to_string)
        });
    let machine = own.unwrap_or_else(|| {
        spec.pointer("#/components/parameters/MachineId/examples/sha1Like/value")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    });
    (comment, machine)
}

/// The documented success of an operation: its status, and an example of its schema.
fn documented_success(examples: &[Example], op: &Operation) -> (u16, Value) {
    let responses = op.value["responses"].as_object().unwrap();
    let (status, response) = responses
        .iter()
        .find(|(status, _)| status.starts_with('2'))
        .expect("a documented success");
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        // No content (204): nothing to decode.
        return (status.parse().unwrap(), Value::Null);
    }
    let example = examples
        .iter()
        .find(|e| &e.schema == schema)
        .unwrap_or_else(|| panic!("no example of the success schema of {:?}", op.operation_id));
    (status.parse().unwrap(), example.value.clone())
}

#[tokio::test]
async fn each_operation_sends_the_documented_request() {
    let spec = spec();
    let examples = spec.examples();
    let listener = Listener::default();
    let client = client(&listener.start().await, TOKEN);
    for op in spec.operations() {
        let name = op.operation_id.clone().unwrap();
        let (comment, machine) = documented_request(&spec, &examples, &op);
        let (status, body) = documented_success(&examples, &op);
        *listener.answer.lock().unwrap() = (status, body.clone());

        let decoded = call(&client, name.parse().unwrap(), &machine, &comment).await;
        assert_eq!(
            decoded,
            Ok(without_nulls(&body)),
            "{name}: the documented success decodes"
        );

        let seen = listener.seen.lock().unwrap().pop().expect("one request");
        assert!(
            !seen.contains(TOKEN),
            "{name}: the token leaked into the snapshot"
        );
        assert!(
            seen.contains("authorization: Bearer [token]"),
            "{name}: no bearer sent"
        );
        insta::with_settings!({
            description => format!("{} {} as the generated client sends it", op.method, op.path),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name.as_str(), seen);
        });
    }
    // offboard-machine-api.md says "200 - Created"; every other action answers 201: both are
    // a success with the machine action.
    let action = spec
        .pointer("#/components/examples/MachineActionIsolate/value")
        .unwrap();
    for status in [200, 201] {
        *listener.answer.lock().unwrap() = (status, action.clone());
        let op = mde_client::OperationId::OffboardMachine;
        let answer = call(&client, op, "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "c").await;
        assert!(answer.is_ok(), "offboard answered {status}: {answer:?}");
    }
}

#[tokio::test]
async fn each_documented_error_decodes_with_its_status() {
    let spec = spec();
    let examples = spec.examples();
    let listener = Listener::default();
    let client = client(&listener.start().await, TOKEN);
    let mut checked = 0;
    for op in spec.operations() {
        let name = op.operation_id.clone().unwrap();
        let (comment, machine) = documented_request(&spec, &examples, &op);
        for example in examples
            .iter()
            .filter(|e| e.schema_name.as_deref() == Some("Error"))
        {
            for place in example.uses.iter().filter(|u| u.operation == name) {
                let status: u16 = place.place.trim_start_matches("response ").parse().unwrap();
                *listener.answer.lock().unwrap() = (status, example.value.clone());
                let decoded = call(&client, name.parse().unwrap(), &machine, &comment).await;
                assert_eq!(
                    decoded,
                    Err((status, example.value.clone())),
                    "{name} {status}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 8,
        "every operation documents its 400 and 404 examples"
    );
}
