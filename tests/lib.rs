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
