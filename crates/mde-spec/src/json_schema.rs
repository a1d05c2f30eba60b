//! OpenAPI 3.0 schemas as JSON Schema, so that a standard validator can check values.

use serde_json::{Value, json};

use crate::Spec;

impl Spec {
    /// A self-contained JSON Schema (draft 4, the dialect OpenAPI 3.0 builds on) for
    /// `schema`: the spec's `components/schemas` ride along so `$ref`s resolve, and
    /// OpenAPI's `nullable: true` becomes a `"null"` type.
    pub fn json_schema(&self, schema: &Value) -> Value {
        let components = self
            .document()
            .pointer("/components/schemas")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut root = json!({
            "allOf": [schema],
            "components": { "schemas": components },
        });
        nullable_to_type(&mut root);
        root
    }

    /// Checks `instance` against `schema` (an OpenAPI schema of this spec); `Err` lists
    /// each violation with where it is in the instance.
    pub fn check_value(&self, schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
        check_json_schema(&self.json_schema(schema), instance)
    }
}

/// Checks `instance` against a JSON Schema (the draft its `$schema` names, else draft 4,
/// the dialect of OpenAPI 3.0), formats asserted; `Err` lists each violation with where it
/// is in the instance.
pub fn check_json_schema(schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
    let mut options = jsonschema::options();
    if schema.get("$schema").is_none() {
        options = options.with_draft(jsonschema::Draft::Draft4);
    }
    let validator = options
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| vec![format!("the schema itself is invalid: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn nullable_to_type(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let nullable = map.remove("nullable") == Some(Value::Bool(true));
            if nullable
                && ["allOf", "anyOf", "oneOf", "$ref"]
                    .iter()
                    .any(|k| map.contains_key(*k))
            {
                // `nullable` beside a composition (`allOf: [$ref]`, the 3.0 way to describe a
                // field of another schema): null, or what the composition allows.
                let mut inner = Value::Object(std::mem::take(map));
                nullable_to_type(&mut inner);
                *value = json!({ "anyOf": [{ "type": "null" }, inner] });
                return;
            }
            if nullable {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            map.values_mut().for_each(nullable_to_type);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_type),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_beside_all_of_admits_null_and_what_the_reference_allows() {
        let spec = crate::Spec::parse(
            "components:\n  schemas:\n    File:\n      type: object\n      properties:\n        hash: {type: string}\n".into(),
            "test.yaml".into(),
        )
        .unwrap();
        let field = json!({ "type": "object", "nullable": true, "allOf": [{ "$ref": "#/components/schemas/File" }] });
        assert!(spec.check_value(&field, &Value::Null).is_ok());
        assert!(spec.check_value(&field, &json!({ "hash": "ab" })).is_ok());
        assert!(spec.check_value(&field, &json!({ "hash": 1 })).is_err());
        assert!(spec.check_value(&field, &json!("a string")).is_err());
    }
}
