//! What changed between two versions of the spec, and whether an existing caller of the
//! generated crate breaks: a report for a pull request.
//!
//! Breaking: a removed operation, field or schema, a newly required request field, a changed
//! type (`x-secret` changes a field's Rust type too), a removed enum value, a removed success status, a removed host or path. Not breaking:
//! a new operation, an added optional field, an added enum value, a deprecation, changed
//! permissions, rate limits or error statuses (listed for the reviewer).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::Spec;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Whether a caller of the generated crate breaks.
    pub breaking: bool,
    /// Where: an operation, a schema and property, …
    pub place: String,
    /// What changed.
    pub what: String,
}

/// Every change, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The changes.
    pub changes: Vec<Change>,
}

impl Report {
    fn add(&mut self, breaking: bool, place: impl Into<String>, what: impl Into<String>) {
        self.changes.push(Change {
            breaking,
            place: place.into(),
            what: what.into(),
        });
    }

    /// Whether any change breaks a caller.
    pub fn breaking(&self) -> bool {
        self.changes.iter().any(|c| c.breaking)
    }

    /// The report as Markdown, fit for a pull-request comment.
    pub fn markdown(&self) -> String {
        let breaking: Vec<&Change> = self.changes.iter().filter(|c| c.breaking).collect();
        let other: Vec<&Change> = self.changes.iter().filter(|c| !c.breaking).collect();
        if self.changes.is_empty() {
            return "## API description: no changes\n".to_string();
        }
        let mut out = format!(
            "## API description: {} breaking, {} other\n",
            breaking.len(),
            other.len()
        );
        for (title, list) in [
            ("Breaking for callers of the generated crate", breaking),
            ("Not breaking", other),
        ] {
            if list.is_empty() {
                continue;
            }
            out.push_str(&format!("\n### {title}\n\n"));
            for change in list {
                out.push_str(&format!("- `{}`: {}\n", change.place, change.what));
            }
        }
        out
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(Value::String(s)) => [s.clone()].into(),
        _ => BTreeSet::new(),
    }
}

/// A schema's type as a reader sees it: a `$ref`'s name, or its type and format.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array)
        && all.len() == 1
    {
        return type_of(&all[0]);
    }
    let t = schema.get("type").map(text).unwrap_or_else(|| "any".into());
    let t = match schema.get("format").and_then(Value::as_str) {
        Some(f) => format!("{t} ({f})"),
        None => t,
    };
    // A credential has a Rust type of its own (`Secret`, not `String`).
    match schema.get("x-secret") {
        Some(Value::Bool(true)) => format!("{t} (x-secret)"),
        _ => t,
    }
}

/// Names of the component schemas reachable from `roots` (following `$ref`s).
fn reachable(spec: &Spec, roots: Vec<&Value>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<Value> = roots.into_iter().cloned().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                    && found.insert(name.to_string())
                    && let Some(target) = spec.pointer(r)
                {
                    stack.push(target.clone());
                }
                stack.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The schemas a request carries, resolving request bodies and parameters.
fn request_schemas(spec: &Spec) -> BTreeSet<String> {
    let mut roots: Vec<Value> = Vec::new();
    for op in spec.operations() {
        roots.extend(op.value.get("requestBody").map(|b| spec.resolve(b).clone()));
        let params = op
            .value
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        roots.extend(params.iter().map(|p| spec.resolve(p).clone()));
    }
    reachable(spec, roots.iter().collect())
}

fn compare_schema(report: &mut Report, place: &str, base: &Value, head: &Value, in_request: bool) {
    let (bt, ht) = (type_of(base), type_of(head));
    if bt != ht {
        report.add(true, place, format!("type changed from {bt} to {ht}"));
        return;
    }
    if base.get("nullable") != head.get("nullable") {
        let now = head
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        report.add(
            false,
            place,
            if now {
                "now nullable"
            } else {
                "no longer nullable"
            },
        );
    }
    let (be, he) = (strings(base.get("enum")), strings(head.get("enum")));
    for removed in be.difference(&he) {
        report.add(true, place, format!("enum value `{removed}` removed"));
    }
    if !be.is_empty() {
        for added in he.difference(&be) {
            report.add(false, place, format!("enum value `{added}` added"));
        }
    }
    let (bp, hp) = (
        base.get("properties").and_then(Value::as_object),
        head.get("properties").and_then(Value::as_object),
    );
    let (br, hr) = (strings(base.get("required")), strings(head.get("required")));
    let empty = serde_json::Map::new();
    let (bp, hp) = (bp.unwrap_or(&empty), hp.unwrap_or(&empty));
    for (name, schema) in bp {
        let at = format!("{place}.{name}");
        match hp.get(name) {
            None => report.add(true, at, "property removed"),
            Some(new) => compare_schema(report, &at, schema, new, in_request),
        }
    }
    for name in hp.keys().filter(|n| !bp.contains_key(*n)) {
        let required = hr.contains(name);
        let breaking = required && in_request;
        let what = if required {
            "required property added"
        } else {
            "optional property added"
        };
        report.add(breaking, format!("{place}.{name}"), what);
    }
    for name in hr.difference(&br).filter(|n| bp.contains_key(*n)) {
        report.add(in_request, format!("{place}.{name}"), "now required");
    }
    for name in br.difference(&hr).filter(|n| hp.contains_key(*n)) {
        report.add(false, format!("{place}.{name}"), "no longer required");
    }
    if let (Some(b), Some(h)) = (base.get("items"), head.get("items")) {
        compare_schema(report, &format!("{place}[]"), b, h, in_request);
    }
}

fn servers(spec: &Spec, op: &crate::Operation) -> BTreeSet<String> {
    op.servers(spec)
        .map(|s| s.into_iter().map(|s| s.url).collect())
        .unwrap_or_default()
}

fn responses(spec: &Spec, op: &Value) -> Vec<(String, Option<Value>)> {
    let list = op.get("responses").and_then(Value::as_object);
    list.into_iter()
        .flatten()
        .map(|(status, r)| {
            (
                status.clone(),
                spec.resolve(r)
                    .pointer("/content/application~1json/schema")
                    .cloned(),
            )
        })
        .collect()
}

/// Compares two versions of the spec.
pub fn diff(base: &Spec, head: &Spec) -> Report {
    let mut report = Report::default();
    let key = |op: &crate::Operation| {
        op.operation_id
            .clone()
            .unwrap_or_else(|| format!("{} {}", op.method, op.path))
    };
    let (base_ops, head_ops) = (base.operations(), head.operations());
    for op in &base_ops {
        if !head_ops.iter().any(|h| key(h) == key(op)) {
            report.add(
                true,
                key(op),
                format!("operation removed ({} {})", op.method, op.path),
            );
        }
    }
    for op in &head_ops {
        let name = key(op);
        let Some(old) = base_ops.iter().find(|b| key(b) == name) else {
            report.add(
                false,
                &name,
                format!("operation added ({} {})", op.method, op.path),
            );
            continue;
        };
        compare_operation(&mut report, (base, head), &name, (old, op));
    }
    compare_schemas(&mut report, base, head);
    report
}

/// What changed of an operation both versions have, named `name`: its method and path, its
/// deprecation, parameters, body, responses, permissions and limits.
fn compare_operation(
    report: &mut Report,
    (base, head): (&Spec, &Spec),
    name: &str,
    (old, op): (&crate::Operation, &crate::Operation),
) {
    if (old.method.as_str(), old.path.as_str()) != (op.method.as_str(), op.path.as_str()) {
        report.add(
            true,
            name,
            format!(
                "moved from {} {} to {} {}",
                old.method, old.path, op.method, op.path
            ),
        );
    }
    if op.deprecated() && !old.deprecated() {
        report.add(false, name, "deprecated");
    }
    compare_parameters(report, (base, head), name, (old, op));
    compare_body(report, (base, head), name, (old, op));
    compare_responses(report, (base, head), name, (old, op));
    compare_access(report, (base, head), name, (old, op));
}

/// What changed of an operation both versions have: its parameters, by name and place.
fn compare_parameters(
    report: &mut Report,
    (base, head): (&Spec, &Spec),
    name: &str,
    (old, op): (&crate::Operation, &crate::Operation),
) {
    let params = |spec: &Spec, op: &crate::Operation| -> Vec<Value> {
        let list = op
            .value
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        list.iter().map(|p| spec.resolve(p).clone()).collect()
    };
    let (bp, hp) = (params(base, old), params(head, op));
    let id = |p: &Value| {
        format!(
            "{} {}",
            p.get("in").map(text).unwrap_or_default(),
            p.get("name").map(text).unwrap_or_default()
        )
    };
    for p in &bp {
        match hp.iter().find(|h| id(h) == id(p)) {
            None => report.add(
                true,
                format!("{name} › parameter {}", id(p)),
                "parameter removed",
            ),
            Some(h) => {
                let empty = Value::Null;
                compare_schema(
                    report,
                    &format!("{name} › parameter {}", id(p)),
                    p.get("schema").unwrap_or(&empty),
                    h.get("schema").unwrap_or(&empty),
                    true,
                )
            }
        }
    }
    for h in hp.iter().filter(|h| !bp.iter().any(|p| id(p) == id(h))) {
        let required = h.get("required").and_then(Value::as_bool).unwrap_or(false);
        report.add(
            required,
            format!("{name} › parameter {}", id(h)),
            if required {
                "required parameter added"
            } else {
                "optional parameter added"
            },
        );
    }
}

/// What changed of an operation both versions have: its request body: the top-level schema (component schemas are compared once).
fn compare_body(
    report: &mut Report,
    (base, head): (&Spec, &Spec),
    name: &str,
    (old, op): (&crate::Operation, &crate::Operation),
) {
    let body = |spec: &Spec, op: &crate::Operation| {
        op.value.get("requestBody").map(|b| spec.resolve(b).clone())
    };
    match (body(base, old), body(head, op)) {
        (Some(b), Some(h)) => {
            let schema = |v: &Value| {
                v.pointer("/content/application~1json/schema")
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let (bs, hs) = (schema(&b), schema(&h));
            if type_of(&bs) != type_of(&hs) {
                report.add(
                    true,
                    format!("{name} › request"),
                    format!("type changed from {} to {}", type_of(&bs), type_of(&hs)),
                );
            }
            if h.get("required") == Some(&Value::Bool(true))
                && b.get("required") != Some(&Value::Bool(true))
            {
                report.add(true, format!("{name} › request"), "body now required");
            }
        }
        (None, Some(h)) => {
            let required = h.get("required") == Some(&Value::Bool(true));
            report.add(required, format!("{name} › request"), "body added");
        }
        (Some(_), None) => report.add(true, format!("{name} › request"), "body removed"),
        (None, None) => {}
    }
}

/// What changed of an operation both versions have: its responses, by status.
fn compare_responses(
    report: &mut Report,
    (base, head): (&Spec, &Spec),
    name: &str,
    (old, op): (&crate::Operation, &crate::Operation),
) {
    let (br, hr) = (responses(base, &old.value), responses(head, &op.value));
    for (status, schema) in &br {
        let success = status.starts_with('2');
        match hr.iter().find(|(s, _)| s == status) {
            None => report.add(
                success,
                format!("{name} › response {status}"),
                if success {
                    "success status removed"
                } else {
                    "error status removed"
                },
            ),
            Some((_, new)) => {
                let (b, h) = (schema.as_ref().map(type_of), new.as_ref().map(type_of));
                if b != h {
                    let show = |t: Option<String>| t.unwrap_or_else(|| "no body".into());
                    report.add(
                        true,
                        format!("{name} › response {status}"),
                        format!("type changed from {} to {}", show(b), show(h)),
                    );
                }
            }
        }
    }
    for (status, _) in hr.iter().filter(|(s, _)| !br.iter().any(|(b, _)| b == s)) {
        report.add(false, format!("{name} › response {status}"), "status added");
    }
}

/// What changed of an operation both versions have: its hosts, permissions, the action it creates and its rate limits.
fn compare_access(
    report: &mut Report,
    (base, head): (&Spec, &Spec),
    name: &str,
    (old, op): (&crate::Operation, &crate::Operation),
) {
    let (bs, hs) = (servers(base, old), servers(head, op));
    for host in bs.difference(&hs) {
        report.add(true, format!("{name} › hosts"), format!("{host} removed"));
    }
    for host in hs.difference(&bs) {
        report.add(false, format!("{name} › hosts"), format!("{host} added"));
    }
    let (bp, hp) = (old.permissions(), op.permissions());
    if bp != hp {
        let show = |p: Result<crate::Permissions, crate::ExtensionError>| {
            p.map_or_else(|e| e.message, |p| p.to_string())
        };
        report.add(
            false,
            format!("{name} › permissions"),
            format!("{} → {}", show(bp), show(hp)),
        );
    }
    let kind = |spec: &Spec, op: &crate::Operation| {
        op.machine_action_type(spec).map_or_else(
            |_| "not stated".into(),
            |k| k.unwrap_or_else(|| "none".into()),
        )
    };
    if kind(base, old) != kind(head, op) {
        report.add(
            false,
            format!("{name} › machine action type"),
            format!("{} → {}", kind(base, old), kind(head, op)),
        );
    }
    let limits = |op: &crate::Operation| {
        op.rate_limits()
            .map(|ws| {
                ws.iter()
                    .map(|w| format!("{}/{}s", w.calls, w.seconds))
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .unwrap_or_default()
    };
    if limits(old) != limits(op) {
        let show = |s: String| {
            if s.is_empty() {
                "none documented".to_string()
            } else {
                s
            }
        };
        report.add(
            false,
            format!("{name} › rate limit"),
            format!("{} → {}", show(limits(old)), show(limits(op))),
        );
    }
}

/// What changed of the component schemas, each once.
fn compare_schemas(report: &mut Report, base: &Spec, head: &Spec) {
    // Component schemas, once each.
    let requests = request_schemas(head);
    let schemas = |spec: &Spec| {
        spec.schemas()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect::<serde_json::Map<_, _>>()
    };
    let (bs, hs) = (schemas(base), schemas(head));
    for (name, schema) in &bs {
        match hs.get(name) {
            None => report.add(true, name, "schema removed"),
            Some(new) => compare_schema(report, name, schema, new, requests.contains(name)),
        }
    }
    for name in hs.keys().filter(|n| !bs.contains_key(*n)) {
        report.add(false, name, "schema added");
    }
}
