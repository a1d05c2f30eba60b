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

/// A generated client that sends `Authorization: Bearer {token}` (marked sensitive).
pub fn client(base: &str, token: &str) -> mde_client::Client {
    use mde_client::reqwest;
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    auth.set_sensitive(true);
    let http = reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::AUTHORIZATION, auth)]
                .into_iter()
                .collect(),
        )
        .build()
        .unwrap();
    mde_client::Client::new_with_client(base, http)
}

/// What an operation called through the generated client answered: `Ok` is the decoded
/// success body, `Err` the status and decoded body of an error. An undocumented answer has
/// its status and its body as a string; a request the client refused to send has status 0.
pub type Answer = Result<Value, (u16, Value)>;

/// Calls an operation of the spec, by `operationId`, through its generated method.
#[allow(deprecated)] // the retired and deprecated operations are still part of the client
pub async fn call(client: &mde_client::Client, operation: &str, id: &str, comment: &str) -> Answer {
    use mde_client::Error;
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
