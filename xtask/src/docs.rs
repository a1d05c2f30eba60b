//! `cargo xtask docs`: the spec as one self-contained HTML reference page, filled into
//! `xtask/templates/reference.html`.

use std::fmt::Write;

use mde_spec::Spec;
use serde_json::Value;

const TEMPLATE: &str = include_str!("../templates/reference.html");

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text with its `code` spans (and no Markdown emphasis), escaped.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(text.trim()).split('`').enumerate() {
        if i % 2 == 1 {
            write!(out, "<code>{part}</code>").unwrap();
        } else {
            out.push_str(&part.replace("**", ""));
        }
    }
    out
}

/// Text as paragraphs.
fn prose(text: &str) -> String {
    text.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", inline(p)))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn schema_type(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some([one]) = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return schema_type(one);
    }
    let mut t = escape(
        &schema
            .get("type")
            .map(|t| t.as_str().map(str::to_string).unwrap_or(t.to_string()))
            .unwrap_or_else(|| "any".into()),
    );
    if let Some(items) = schema.get("items") {
        t = format!("array of {}", schema_type(items));
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        write!(t, " ({})", escape(f)).unwrap();
    }
    if schema.get("nullable") == Some(&Value::Bool(true)) {
        t.push_str(", nullable");
    }
    t
}

fn operation(spec: &Spec, op: &mde_spec::Operation) -> String {
    let v = &op.value;
    let id = op.operation_id.clone().unwrap_or_default();
    let mut out = format!(
        "<section class=\"operation\" id=\"op-{id}\">\n<h3><span class=\"method\">{}</span> <code>{}</code></h3>\n",
        op.method,
        escape(&op.path)
    );
    write!(
        out,
        "<p><strong>{}</strong> — operationId <code>{id}</code>",
        escape(str_of(v, "summary"))
    )
    .unwrap();
    if op.deprecated() {
        out.push_str(" <span class=\"deprecated\">deprecated</span>");
    }
    out.push_str("</p>\n");
    out.push_str(&prose(str_of(v, "description")));
    match op.deprecation() {
        Ok(Some(d)) => writeln!(
            out,
            "<p><strong>Deprecation:</strong> {}</p>",
            escape(&d.to_string())
        )
        .unwrap(),
        Ok(None) => {}
        Err(e) => writeln!(
            out,
            "<p><strong>Deprecation:</strong> {}</p>",
            escape(&e.message)
        )
        .unwrap(),
    }
    out.push_str(&facts(spec, op));
    out.push_str(&responses(spec, v));
    out.push_str("</table>\n</section>\n");
    out
}

/// An operation's hosts, rate limit, permissions, parameters and request body.
fn facts(spec: &Spec, op: &mde_spec::Operation) -> String {
    let (v, mut out) = (&op.value, String::new());
    let hosts = match op.servers(spec) {
        Ok(servers) => servers
            .iter()
            .map(|s| format!("<code>{}</code>", escape(&s.url)))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => escape(&e.message),
    };
    writeln!(out, "<p><strong>Hosts:</strong> {hosts}</p>").unwrap();
    let limits = match op.rate_limits() {
        Ok(w) if w.is_empty() => "none documented".to_string(),
        Ok(w) => w
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        Err(e) => escape(&e.message),
    };
    writeln!(out, "<p><strong>Rate limit:</strong> {limits}</p>").unwrap();
    if let Ok(permissions) = op.permissions() {
        out.push_str("<table><tr><th colspan=\"2\">Permissions</th></tr>\n");
        for (kind, names) in permissions.rows() {
            writeln!(out, "<tr><td>{kind}</td><td>{}</td></tr>", escape(&names)).unwrap();
        }
        out.push_str("</table>\n");
    }
    let params = v
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in params.iter().map(|p| spec.resolve(p)) {
        writeln!(
            out,
            "<p><strong>Parameter</strong> <code>{}</code> in {}: {} — {}</p>",
            escape(str_of(p, "name")),
            escape(str_of(p, "in")),
            p.get("schema").map(schema_type).unwrap_or_default(),
            escape(str_of(p, "description"))
        )
        .unwrap();
    }
    if let Some(body) = v.get("requestBody").map(|b| spec.resolve(b)) {
        let schema = body
            .pointer("/content/application~1json/schema")
            .map(schema_type)
            .unwrap_or_default();
        writeln!(
            out,
            "<p><strong>Request body</strong> (application/json): {schema}</p>"
        )
        .unwrap();
    }
    out
}

/// An operation's table of responses, without its closing tag.
fn responses(spec: &Spec, v: &Value) -> String {
    let mut out = String::new();
    out.push_str("<table><tr><th>Status</th><th>Body</th><th>Description</th></tr>\n");
    for (status, r) in v
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let r = spec.resolve(r);
        let schema = r
            .pointer("/content/application~1json/schema")
            .map(schema_type)
            .unwrap_or_else(|| "—".into());
        let mut headers = String::new();
        for h in r
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(h, _)| h)
        {
            write!(headers, " Header <code>{}</code>.", escape(h)).unwrap();
        }
        writeln!(
            out,
            "<tr><td>{status}</td><td>{schema}</td><td>{}{headers}</td></tr>",
            inline(str_of(r, "description"))
        )
        .unwrap();
    }
    out
}

fn schema(name: &str, s: &Value, extensible: bool) -> String {
    let mut out = format!(
        "<section class=\"schema\" id=\"schema-{name}\">\n<h3>{name}</h3>\n{}",
        prose(str_of(s, "description"))
    );
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .map(|v| {
                format!(
                    "<code>{}</code>",
                    escape(&v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                )
            })
            .collect();
        writeln!(
            out,
            "<p>Values: {}{}</p>",
            values.join(", "),
            if extensible {
                "; the service may add more"
            } else {
                ""
            }
        )
        .unwrap();
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("<table><tr><th>Property</th><th>Type</th><th>Description</th></tr>\n");
        for (p, ps) in props {
            let req = if required.contains(&p.as_str()) {
                " (required)"
            } else {
                ""
            };
            writeln!(
                out,
                "<tr><td><code>{}</code>{req}</td><td>{}</td><td>{}</td></tr>",
                escape(p),
                schema_type(ps),
                inline(str_of(ps, "description"))
            )
            .unwrap();
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
    out
}

/// The page for `spec`.
pub fn render(spec: &Spec) -> String {
    let doc = spec.document();
    let info = doc.get("info").cloned().unwrap_or_default();
    let ops = spec.operations();
    let mut contents = String::new();
    let mut operations = String::new();
    for op in &ops {
        let id = op.operation_id.clone().unwrap_or_default();
        write!(contents, "<li><a href=\"#op-{id}\">{id}</a></li>").unwrap();
        operations.push_str(&operation(spec, op));
    }
    let mut schemas = String::new();
    let extensible = spec.extensible_enums().unwrap_or_default();
    for (name, s) in spec.schemas() {
        write!(contents, "<li><a href=\"#schema-{name}\">{name}</a></li>").unwrap();
        schemas.push_str(&schema(name, s, extensible.iter().any(|e| e.name == *name)));
    }
    let mut examples = String::new();
    for e in spec.examples() {
        let uses: Vec<String> = e
            .uses
            .iter()
            .map(|u| {
                format!(
                    "<a href=\"#op-{0}\">{0}</a> {1}",
                    u.operation,
                    escape(&u.place)
                )
            })
            .collect();
        let json = serde_json::to_string_pretty(&e.value).unwrap_or_default();
        writeln!(examples, "<section class=\"example\" id=\"example-{}\">\n<h3>{}</h3>\n<p>{} — shown by {}</p>\n<pre>{}</pre>\n</section>", escape(&e.name), escape(&e.name), e.schema_name.as_deref().map(|s| format!("<a href=\"#schema-{s}\">{s}</a>")).unwrap_or_else(|| "string".into()), uses.join("; "), escape(&json)).unwrap();
    }
    TEMPLATE
        .replace("{{title}}", &escape(str_of(&info, "title")))
        .replace("{{version}}", &escape(str_of(&info, "version")))
        .replace("{{description}}", &prose(str_of(&info, "description")))
        .replace("{{contents}}", &contents)
        .replace("{{operations}}", &operations)
        .replace("{{schemas}}", &schemas)
        .replace("{{examples}}", &examples)
}
