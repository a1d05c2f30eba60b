//! Reads `spec/openapi.yaml`, the single source of truth of this workspace.
//!
//! The xtask, the tests and (later) the simulator all ask this crate for what the spec
//! says (operations, their `x-rate-limit` and `x-permissions`, documented examples and
//! the JSON Schema of each) instead of retyping it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
pub mod diff;
mod examples;
mod extensions;
mod json_schema;
mod lint;

pub use json_schema::check_json_schema;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use body::{BodyField, FieldKind};
pub use examples::{Example, ExampleUse};
pub use extensions::{
    ClientCredentials, Deprecation, ExtensibleEnum, ExtensionError, Permissions, RateWindow,
    SecretProperty, Server, TenantQuota,
};
pub use lint::Problem;

/// The spec, parsed, with the text it came from (for line numbers in messages).
#[derive(Debug, Clone)]
pub struct Spec {
    document: Value,
    text: String,
    display_path: String,
}

/// Why the spec could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// The file is not valid YAML.
    Yaml(String, yaml_serde::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            LoadError::Yaml(path, e) => write!(f, "{path}: not valid YAML: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// One operation of the spec: a method on a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The path template, e.g. `/api/machines/{id}/startInvestigation`.
    pub path: String,
    /// The HTTP method in upper case, e.g. `POST`.
    pub method: String,
    /// The `operationId`, if the spec gives one.
    pub operation_id: Option<String>,
    /// The operation object itself.
    pub value: Value,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Spec {
    /// The path of `spec/openapi.yaml` in this workspace.
    pub fn workspace_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/openapi.yaml")
    }

    /// Reads the workspace's spec.
    pub fn load_workspace() -> Result<Spec, LoadError> {
        Spec::load(&Spec::workspace_path())
    }

    /// Reads a spec from a file.
    pub fn load(path: &Path) -> Result<Spec, LoadError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| LoadError::Io(path.to_path_buf(), e))?;
        let display_path = match path.canonicalize() {
            Ok(p) if p.ends_with("spec/openapi.yaml") => "spec/openapi.yaml".to_string(),
            _ => path.display().to_string(),
        };
        Spec::parse(text, display_path)
    }

    /// Parses spec text; `display_path` names it in messages.
    pub fn parse(text: String, display_path: String) -> Result<Spec, LoadError> {
        let document =
            yaml_serde::from_str(&text).map_err(|e| LoadError::Yaml(display_path.clone(), e))?;
        Ok(Spec {
            document,
            text,
            display_path,
        })
    }

    /// The whole document as JSON.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The operations in the order the spec lists them.
    pub fn operations(&self) -> Vec<Operation> {
        let Some(paths) = self.document.get("paths").and_then(Value::as_object) else {
            return Vec::new();
        };
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS.iter().filter_map(move |method| {
                    let value = item.get(*method)?;
                    Some(Operation {
                        path: path.clone(),
                        method: method.to_uppercase(),
                        operation_id: value
                            .get("operationId")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        value: value.clone(),
                    })
                })
            })
            .collect()
    }

    /// The `components/schemas` entries, in the spec's order.
    pub fn schemas(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.document
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    }

    /// The operation with this `operationId`.
    pub fn operation(&self, operation_id: &str) -> Option<Operation> {
        self.operations()
            .into_iter()
            .find(|op| op.operation_id.as_deref() == Some(operation_id))
    }

    /// Follows a local `$ref` (`#/components/...`) until it reaches a value that is not one.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        // A bounded walk: a reference cycle must not hang the caller.
        for _ in 0..32 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => match self.pointer(reference) {
                    Some(target) => value = target,
                    None => return value,
                },
                None => return value,
            }
        }
        value
    }

    /// The value a local reference (`#/a/b`) points to.
    pub fn pointer(&self, reference: &str) -> Option<&Value> {
        self.document.pointer(reference.strip_prefix('#')?)
    }

    /// Where a JSON pointer of the document stands, for people: the file, the line of the
    /// nearest path key found in the text, and the pointer in a readable form.
    pub fn locate(&self, pointer: &str) -> String {
        let segments: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let readable = segments
            .iter()
            .map(|s| {
                if s.contains('/') || s.contains('.') {
                    format!("[{s:?}]")
                } else {
                    format!(".{s}")
                }
            })
            .collect::<String>();
        match self.line_of(&segments) {
            Some(line) => format!(
                "{}:{line}: {}",
                self.display_path,
                readable.trim_start_matches('.')
            ),
            None => format!(
                "{}: {}",
                self.display_path,
                readable.trim_start_matches('.')
            ),
        }
    }

    /// The line of the deepest key of `segments` that can be found in order in the text.
    fn line_of(&self, segments: &[String]) -> Option<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut from = 0;
        let mut found = None;
        for segment in segments {
            let plain = format!("{segment}:");
            let quoted = format!("\"{segment}\":");
            let hit = lines[from..].iter().position(|line| {
                let line = line.trim_start().trim_start_matches("- ");
                line.starts_with(&plain) || line.starts_with(&quoted)
            });
            match hit {
                Some(offset) => {
                    from += offset;
                    found = Some(from + 1);
                }
                None => break,
            }
        }
        found
    }
}

impl Operation {
    /// The JSON pointer of this operation in the document.
    pub fn pointer(&self) -> String {
        format!(
            "/paths/{}/{}",
            self.path.replace('~', "~0").replace('/', "~1"),
            self.method.to_lowercase()
        )
    }

    /// Whether the spec marks the operation `deprecated: true`.
    pub fn deprecated(&self) -> bool {
        self.value.get("deprecated").and_then(Value::as_bool) == Some(true)
    }
}
