//! Helpers shared by the workspace tests.

use mde_client::operations::{self, AnyRequest, OperationId, Request, RequestVisitor};
use serde_json::{Map, Value};

/// The workspace's spec; the tests derive their cases from it.
pub fn spec() -> mde_spec::Spec {
    mde_spec::Spec::load_workspace().expect("spec/openapi.yaml loads")
}

/// `value` without the object members that are `null`.
///
/// An explicit `null` and an absent member are the same `None` to a client, and the
/// generated types write neither; every other member must come back as it was.
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// A client for `base` that sends `Authorization: Bearer {token}`. It does not hold calls back
/// for the documented rate limits, so that tests can meet the service's own.
pub fn client(base: &str, token: &str) -> mde_client::Client {
    mde_client::Client::builder()
        .base_url(base)
        .bearer_token(token)
        .enforce_rate_limits(false)
        .retries_on_429(0)
        .build()
        .expect("a loopback client builds")
}

/// What an operation called through the generated client answered: `Ok` is the decoded
/// success body, `Err` the status and decoded body of an error. An undocumented answer has
/// its status and its body as a string; a request the client refused to send has status 0.
pub type Answer = Result<Value, (u16, Value)>;

/// Sends `request` through the generated client, as it is: no check, no retry.
async fn send<R: Request>(client: &mde_client::Client, request: R) -> Answer
where
    R::Response: serde::Serialize,
{
    use mde_client::generated::Error;
    let raw = client.raw(R::ID).expect("the operation has a host");
    match request.send(raw).await {
        Ok(r) => Ok(serde_json::to_value(r.into_inner()).unwrap()),
        Err(Error::ErrorResponse(r)) => Err((
            r.status().as_u16(),
            serde_json::to_value(r.into_inner()).unwrap(),
        )),
        Err(Error::UnexpectedResponse(r)) => {
            Err((r.status().as_u16(), Value::String(format!("{r:?}"))))
        }
        Err(other) => Err((
            other.status().map_or(0, |s| s.as_u16()),
            Value::String(other.to_string()),
        )),
    }
}

/// Calls an operation through the generated client with its documented request: the
/// spec's example of each parameter and of the body, the path's first parameter set to `id`
/// and the body's `Comment`, where it has one, to `comment`. A new operation costs it nothing.
pub async fn call(client: &mde_client::Client, op: OperationId, id: &str, comment: &str) -> Answer {
    let parameters = documented_parameters(op, id, comment);
    let request = match AnyRequest::from_parameters(op, &parameters) {
        Some(Ok(request)) => request,
        // A value the types refuse (an empty comment) is refused before sending: status 0.
        Some(Err(e)) => return Err((0, Value::String(e.to_string()))),
        // The one request written by hand, the multipart upload: its documented form.
        None => AnyRequest::UploadLibraryFile(documented_upload(&parameters["body"])),
    };
    request.visit(Sender(client)).await
}

/// `op`'s parameters and body (`body`) as the spec's examples show them, with `id` and
/// `comment` in place.
fn documented_parameters(op: OperationId, id: &str, comment: &str) -> Map<String, Value> {
    static SPEC: std::sync::OnceLock<(mde_spec::Spec, Vec<mde_spec::Example>)> =
        std::sync::OnceLock::new();
    let (spec, examples) = SPEC.get_or_init(|| {
        let spec = spec();
        let examples = spec.examples();
        (spec, examples)
    });
    let example = |place: &str| {
        let shown = |e: &&mde_spec::Example| {
            (e.uses.iter()).any(|u| u.operation == op.as_str() && u.place == place)
        };
        examples.iter().find(shown).map(|e| e.value.clone())
    };
    let operation = spec
        .operation(op.as_str())
        .expect("the operation is in the spec");
    let mut parameters = Map::new();
    let declared = operation.value["parameters"].as_array().cloned();
    for (i, parameter) in declared.into_iter().flatten().enumerate() {
        let parameter = spec.resolve(&parameter);
        let name = parameter["name"].as_str().unwrap_or_default();
        let value = if i == 0 && parameter["in"] == "path" {
            Some(Value::String(id.to_string()))
        } else {
            example(&format!("parameter {name}"))
        };
        parameters.extend(value.map(|v| (name.to_string(), v)));
    }
    if let Some(mut body) = example("request") {
        if let Some(said) = body.get_mut("Comment") {
            *said = Value::String(comment.to_string());
        }
        parameters.insert("body".to_string(), body);
    }
    parameters
}

/// upload-library.md's curl example, whose form sends the file `mdatp1.png`.
fn documented_upload(form: &Value) -> operations::UploadLibraryFile {
    let text = |name: &str| form[name].as_str().map(str::to_string);
    operations::UploadLibraryFile {
        description: text("Description"),
        parameters_description: text("ParametersDescription"),
        has_parameters: form["HasParameters"].as_bool(),
        override_if_exists: form["OverrideIfExists"].as_bool(),
        ..operations::UploadLibraryFile::new("mdatp1.png", text("file").unwrap_or_default())
    }
}

/// Sends a request of any operation, its type known.
struct Sender<'a>(&'a mde_client::Client);

impl<'a> RequestVisitor for Sender<'a> {
    type Output = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send + 'a>>;

    fn visit<R: Request>(self, request: R) -> Self::Output {
        Box::pin(send(self.0, request))
    }
}

/// Every log line written to it, as text: the secret tests read it.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A subscriber writing every event, TRACE and up, here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
