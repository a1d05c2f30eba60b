//! What makes the spec unfit to generate from: checked by `cargo xtask check`.

use std::fmt;

use serde_json::Value;

use crate::{ExtensionError, Spec};

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
    /// `operationId`, an extension its typed reader refuses (`x-rate-limit`, `x-permissions`,
    /// `x-deprecation`, `x-tenant-quota`, `x-machine-action-type`, `x-cli-command`, `x-undone-by`, `x-evidence`,
    /// a server's `x-cloud`/`x-region`/`x-authority`,
    /// `x-extensible-enum`, `x-secret`),
    /// no client-credentials flow, an error response without the common `Error` body, an
    /// example that does not match its schema. Empty when the spec is sound.
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
        // What each typed reader refuses is a problem; what it returns is not needed here.
        let refused = [
            self.servers().err(),
            self.extensible_enums().err(),
            self.secret_properties().err(),
            self.client_credentials().err(),
        ];
        for e in refused.into_iter().flatten() {
            report(&e.pointer, e.message);
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
            let refused: [Option<ExtensionError>; 9] = [
                op.rate_limits().err(),
                op.cli_command().err(),
                op.undone_by(self).err(),
                op.evidence().err(),
                op.machine_action_type(self).err(),
                op.permissions().err(),
                op.deprecation().err(),
                op.tenant_quota().err(),
                op.has_own_servers()
                    .then(|| op.servers(self).err())
                    .flatten(),
            ];
            for e in refused.into_iter().flatten() {
                report(&e.pointer, e.message);
            }
            for (status, schema) in self.error_bodies(&op) {
                if schema.as_deref() != Some("#/components/schemas/Error") {
                    report(
                        &format!("{at}/responses/{status}"),
                        "an error response must carry the common `Error` body (the client's errors are built from it)".into(),
                    );
                }
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
