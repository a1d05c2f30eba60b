//! Helpers shared by the workspace tests.

use serde_json::Value;

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

/// Calls an operation of the spec, by `operationId`, through its generated method.
#[allow(deprecated)] // the retired and deprecated operations are still part of the client
pub async fn call(client: &mde_client::Client, operation: &str, id: &str, comment: &str) -> Answer {
    use mde_client::generated::Error;
    let op = mde_client::operations::ALL
        .iter()
        .find(|op| op.operation_id == operation)
        .unwrap_or_else(|| panic!("no operation {operation}"));
    let client = client.raw(op).expect("the operation has a host");
    fn ok<T: serde::Serialize>(r: mde_client::ResponseValue<T>) -> Value {
        serde_json::to_value(r.into_inner()).unwrap()
    }
    fn err(e: Error<mde_client::types::Error>) -> (u16, Value) {
        match e {
            Error::ErrorResponse(r) => (
                r.status().as_u16(),
                serde_json::to_value(r.into_inner()).unwrap(),
            ),
            Error::UnexpectedResponse(r) => (r.status().as_u16(), Value::String(format!("{r:?}"))),
            other => (
                other.status().map_or(0, |s| s.as_u16()),
                Value::String(other.to_string()),
            ),
        }
    }
    // Every operation's builder takes the same id and body.
    macro_rules! send {
        ($builder:expr) => {
            $builder
                .id(id)
                .body_map(|b| b.comment(comment))
                .send()
                .await
                .map(ok)
                .map_err(err)
        };
    }
    // The one place that maps an operation of the spec to its generated method.
    match operation {
        "startInvestigation" => send!(client.start_investigation()),
        "initiateInvestigation" => send!(client.initiate_investigation()),
        "collectInvestigationPackage" => send!(client.collect_investigation_package()),
        "collectInvestigationPackageGraph" => send!(client.collect_investigation_package_graph()),
        other => panic!("operation {other} of the spec has no call in this test yet"),
    }
}
