//! What makes the spec unfit to generate from: checked by `cargo xtask check`.

use std::fmt;

use serde_json::Value;

use crate::Spec;

/// Something wrong in the spec, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File, line when found, and the path in the document.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl Spec {
    /// Everything that keeps the spec from being a sound source for the client: an
    /// OpenAPI version progenitor cannot read, an operation without a camelCase
    /// `operationId`, `x-rate-limit` or `x-permissions`, a server without `x-cloud`,
    /// `x-region` or `x-authority`, an example that does not match its schema. Empty when the
    /// spec is sound.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut report = |pointer: &str, message: String| {
            problems.push(Problem {
                location: self.locate(pointer),
                message,
            })
        };
        let version = self.document().get("openapi").and_then(Value::as_str);
        if !version.is_some_and(|v| v.starts_with("3.0.")) {
            report(
                "/openapi",
                format!("progenitor reads OpenAPI 3.0.x only, found {version:?}"),
            );
        }
        let top = self
            .document()
            .get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut servers: Vec<(String, Value)> = top
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("/servers/{i}"), s))
            .collect();
        for op in self.operations() {
            let own = op
                .value
                .get("servers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            servers.extend(
                own.into_iter()
                    .enumerate()
                    .map(|(i, s)| (format!("{}/servers/{i}", op.pointer()), s)),
            );
        }
        for (at, server) in &servers {
            for field in ["x-cloud", "x-region", "x-authority"] {
                if server.get(field).is_none() {
                    report(at, format!("server without {field}"));
                }
            }
        }
        for op in self.operations() {
            let at = op.pointer();
            match op.operation_id.as_deref() {
                None => report(&at, "no operationId".into()),
                Some(id) if !is_camel_case(id) => report(
                    &format!("{at}/operationId"),
                    format!("operationId `{id}` is not camelCase"),
                ),
                Some(_) => {}
            }
            if let Err(e) = op.rate_limits() {
                report(&at, e);
            }
            if let Err(e) = permissions_shape(op.value.get("x-permissions")) {
                report(&at, e);
            }
        }
        for example in self.examples() {
            if let Err(errors) = self.check_value(&example.schema, &example.value) {
                let schema = example.schema_name.as_deref().unwrap_or("its schema");
                for error in errors {
                    report(
                        &example.pointer,
                        format!("example does not match {schema}: {error}"),
                    );
                }
            }
        }
        problems
    }
}

fn is_camel_case(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `x-permissions` is a non-empty map of permission kinds to a name or a list of names.
fn permissions_shape(value: Option<&Value>) -> Result<(), String> {
    let map = value
        .ok_or("no x-permissions (the documented permissions or directory roles)")?
        .as_object()
        .filter(|m| !m.is_empty())
        .ok_or("x-permissions must be a non-empty map")?;
    for (kind, names) in map {
        let ok = match names {
            Value::String(s) => !s.is_empty(),
            Value::Array(items) => {
                !items.is_empty()
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "x-permissions.{kind} must be a name or a non-empty list of names"
            ));
        }
    }
    Ok(())
}
