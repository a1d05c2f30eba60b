//! Typed readers of the project's extensions (`x-rate-limit`, `x-permissions`,
//! `x-deprecation`, the servers' `x-cloud`/`x-region`/`x-authority`/`x-token-scope`/`x-source`,
//! `x-extensible-enum`, `x-secret`). Each is parsed here and only here: the lint reports what these
//! readers refuse (with file:line), and the code generation, the docs page and the diff read
//! the values they return, so no consumer falls back to a default the lint never saw.

use std::fmt;

use serde_json::Value;

use crate::{Operation, Spec};

mod operation;

/// One window of an operation's `x-rate-limit`: at most `calls` per `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Calls allowed in the window.
    pub calls: u64,
    /// Length of the window in seconds.
    pub seconds: u64,
}

impl fmt::Display for RateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} calls per {} s", self.calls, self.seconds)
    }
}

/// An operation's `x-permissions`: any one permission of a kind allows the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Application permissions (`application`).
    pub application: Vec<String>,
    /// Delegated permissions (`delegated`).
    pub delegated: Vec<String>,
    /// Directory roles (`directoryRoles`).
    pub directory_roles: Vec<String>,
    /// The portal role a user needs (`userRole`).
    pub user_role: Option<String>,
    /// More on what a user needs (`userNote`).
    pub user_note: Option<String>,
    /// The document it comes from (`source`).
    pub source: Option<String>,
}

impl Permissions {
    /// Each documented kind with its names, in a fixed order, for people.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let lists = [
            ("application", &self.application),
            ("delegated", &self.delegated),
            ("directory roles", &self.directory_roles),
        ];
        let texts = [
            ("user role", &self.user_role),
            ("user note", &self.user_note),
            ("source", &self.source),
        ];
        lists
            .into_iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(kind, names)| (kind, names.join(", ")))
            .chain(
                texts
                    .into_iter()
                    .filter_map(|(kind, text)| Some((kind, text.clone()?))),
            )
            .collect()
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<String> = self
            .rows()
            .into_iter()
            .map(|(kind, names)| format!("{kind}: {names}"))
            .collect();
        f.write_str(&rows.join("; "))
    }
}

/// An operation's `x-tenant-quota`: its call limits are counted per tenant (every app of it
/// together), and its queries spend the tenant's CPU allocation, checked every cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantQuota {
    /// CPU seconds a tenant may spend an hour, when documented.
    pub cpu_per_hour: Option<u64>,
    /// CPU seconds a tenant may spend a day, when documented.
    pub cpu_per_day: Option<u64>,
    /// How often the service checks the allocation: a blocked tenant runs again at the next
    /// cycle.
    pub cycle: u64,
    /// What the pages say, and where they disagree.
    pub note: String,
    /// The documents.
    pub source: Option<String>,
}

/// An operation's `x-deprecation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// Why, for a caller.
    pub note: String,
    /// The date the service stopped serving it, when it did.
    pub retired: Option<String>,
    /// The date the service stops serving it, when announced: a call after it is refused.
    pub retiring: Option<String>,
    /// The document that says so.
    pub source: Option<String>,
}

impl fmt::Display for Deprecation {
    /// "NOTE Retired by the service on DATE. Source: SOURCE."
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.note.trim())?;
        if let Some(date) = &self.retired {
            write!(f, " Retired by the service on {date}.")?;
        }
        if let Some(date) = &self.retiring {
            write!(f, " Refused after {date}.")?;
        }
        if let Some(source) = &self.source {
            write!(f, " Source: {source}.")?;
        }
        Ok(())
    }
}

/// A server of the spec with its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Base URL.
    pub url: String,
    /// The clouds it serves (`x-cloud`, a name or a list).
    pub clouds: Vec<String>,
    /// `global` or a geography (`x-region`).
    pub region: String,
    /// Where its callers sign in (`x-authority`).
    pub authority: String,
    /// The token scope its callers ask for, when not the security scheme's (`x-token-scope`).
    pub token_scope: Option<String>,
    /// The document it comes from (`x-source`).
    pub source: Option<String>,
}

/// A string enum marked `x-extensible-enum: true`: the service may add values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensibleEnum {
    /// The `components/schemas` name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The documented values, in the spec's order.
    pub values: Vec<String>,
}

/// A property marked `x-secret: true`: its value is a credential (a package link carries a
/// SAS token in its query), so a client keeps it out of `Debug` output and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretProperty {
    /// The `components/schemas` name of the object.
    pub schema: String,
    /// The property.
    pub property: String,
}

/// What an extension reader refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionError {
    /// JSON pointer of the value in the document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

type Read<T> = Result<T, ExtensionError>;

/// The schema of a machine action.
const MACHINE_ACTION: &str = "MachineAction";

fn error<T>(pointer: impl Into<String>, message: impl Into<String>) -> Read<T> {
    Err(ExtensionError {
        pointer: pointer.into(),
        message: message.into(),
    })
}

/// A non-empty name, or a non-empty list of non-empty names.
fn names(value: &Value, at: &str, what: &str) -> Read<Vec<String>> {
    let list = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let complete = list.len() == value.as_array().map_or(1, Vec::len);
    if list.is_empty() || !complete || list.iter().any(|s| s.is_empty()) {
        return error(
            at,
            format!("{what} must be a name or a non-empty list of names"),
        );
    }
    Ok(list.into_iter().map(str::to_string).collect())
}

fn text(object: &Value, field: &str, at: &str) -> Read<Option<String>> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => error(
            format!("{at}/{field}"),
            format!("{field} must be a non-empty string"),
        ),
    }
}

fn required_text(object: &Value, field: &str, at: &str, what: &str) -> Read<String> {
    text(object, field, at)?.map_or_else(|| error(at, format!("{what} without {field}")), Ok)
}

fn read_servers(list: &Value, at: &str) -> Read<Vec<Server>> {
    let Some(items) = list.as_array().filter(|l| !l.is_empty()) else {
        return error(at, "servers must be a non-empty list");
    };
    items
        .iter()
        .enumerate()
        .map(|(i, server)| {
            let at = format!("{at}/{i}");
            let required = |field: &str| required_text(server, field, &at, "server");
            Ok(Server {
                url: required("url")?,
                clouds: match server.get("x-cloud") {
                    Some(v) => names(v, &format!("{at}/x-cloud"), "x-cloud")?,
                    None => return error(at, "server without x-cloud"),
                },
                region: required("x-region")?,
                authority: required("x-authority")?,
                token_scope: text(server, "x-token-scope", &at)?,
                source: text(server, "x-source", &at)?,
            })
        })
        .collect()
}

impl Spec {
    /// The spec's top-level `servers` (the hosts of the `/api/...` operations).
    pub fn servers(&self) -> Read<Vec<Server>> {
        match self.document().get("servers") {
            Some(list) => read_servers(list, "/servers"),
            None => error("/servers", "no servers"),
        }
    }

    /// Every `components/schemas` entry marked `x-extensible-enum: true`, in the spec's order.
    pub fn extensible_enums(&self) -> Read<Vec<ExtensibleEnum>> {
        self.schemas()
            .filter_map(|(name, schema)| {
                let at = format!("/components/schemas/{name}");
                match schema.get("x-extensible-enum") {
                    None | Some(Value::Bool(false)) => None,
                    Some(Value::Bool(true)) => Some(read_enum(name, schema, &at)),
                    Some(_) => Some(error(
                        format!("{at}/x-extensible-enum"),
                        "x-extensible-enum must be true or false",
                    )),
                }
            })
            .collect()
    }
}

impl Spec {
    /// Every property of a `components/schemas` object marked `x-secret: true`, in the spec's
    /// order. It must be a string without a `format` (the generator gives it one of its own).
    pub fn secret_properties(&self) -> Read<Vec<SecretProperty>> {
        let mut secrets = Vec::new();
        for (name, schema) in self.schemas() {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (property, value) in properties.into_iter().flatten() {
                let at = format!("/components/schemas/{name}/properties/{property}");
                match value.get("x-secret") {
                    None | Some(Value::Bool(false)) => continue,
                    Some(Value::Bool(true)) => {}
                    Some(_) => {
                        return error(format!("{at}/x-secret"), "x-secret must be true or false");
                    }
                }
                let string = value.get("type").and_then(Value::as_str) == Some("string");
                if !string || value.get("format").is_some() {
                    return error(at, "x-secret needs `type: string` and no `format`");
                }
                secrets.push(SecretProperty {
                    schema: name.clone(),
                    property: property.clone(),
                });
            }
        }
        Ok(secrets)
    }
}

fn read_enum(name: &str, schema: &Value, at: &str) -> Read<ExtensibleEnum> {
    let values = schema
        .get("enum")
        .and_then(Value::as_array)
        .filter(|_| schema.get("type").and_then(Value::as_str) == Some("string"))
        .and_then(|vs| {
            vs.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .filter(|vs| !vs.is_empty());
    let Some(values) = values else {
        return error(
            at,
            "x-extensible-enum needs `type: string` and an `enum` of strings",
        );
    };
    Ok(ExtensibleEnum {
        name: name.to_string(),
        description: schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string(),
        values,
    })
}

/// The OAuth2 client-credentials flow of `components/securitySchemes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The token URL; `{tenant}` stands for the tenant id.
    pub token_url: String,
    /// The scopes a token is asked for.
    pub scopes: Vec<String>,
}

impl Spec {
    /// The client-credentials flow the client signs in with.
    pub fn client_credentials(&self) -> Read<ClientCredentials> {
        let schemes = self
            .document()
            .pointer("/components/securitySchemes")
            .and_then(Value::as_object);
        let found = schemes.into_iter().flatten().find_map(|(name, s)| {
            let flow = s.pointer("/flows/clientCredentials")?;
            Some((
                format!("/components/securitySchemes/{name}/flows/clientCredentials"),
                flow,
            ))
        });
        let Some((at, flow)) = found else {
            return error(
                "/components/securitySchemes",
                "no OAuth2 client-credentials flow in components/securitySchemes",
            );
        };
        // The placeholder is percent-encoded in the spec, so that tokenUrl is a valid URI.
        let token_url = required_text(flow, "tokenUrl", &at, "clientCredentials")?
            .replace("%7Btenant%7D", "{tenant}");
        if !token_url.contains("{tenant}") || !token_url.starts_with("https://") {
            return error(
                format!("{at}/tokenUrl"),
                "tokenUrl must be an https URL with a `{tenant}` placeholder (written `%7Btenant%7D`)",
            );
        }
        let scopes: Vec<String> = flow
            .get("scopes")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if scopes.is_empty() {
            return error(at, "clientCredentials without scopes");
        }
        Ok(ClientCredentials { token_url, scopes })
    }

    /// The name of the schema of `op`'s success (its 2xx JSON body's `$ref`), if any.
    pub fn success_schema(&self, op: &Operation) -> Option<String> {
        let responses = op.value.get("responses").and_then(Value::as_object)?;
        responses
            .iter()
            .filter(|(status, _)| status.starts_with('2'))
            .find_map(|(_, response)| {
                self.resolve(response)
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .map(str::to_string)
            })
    }

    /// Whether `op` answers a page: its success is an object whose `value` is a list (a
    /// list operation's), or whose `results`/`Results` is (a hunting answer's rows).
    pub fn answers_page(&self, op: &Operation) -> bool {
        self.success_schema(op)
            .and_then(|name| self.pointer(&format!("#/components/schemas/{name}")))
            .map(|schema| self.resolve(schema))
            .is_some_and(|schema| {
                // A list's `value`, or a hunting answer's rows (`results`, `Results`).
                ["value", "results", "Results"].iter().any(|name| {
                    (schema.pointer(&format!("/properties/{name}")))
                        .map(|items| self.resolve(items))
                        .is_some_and(|v| v.get("type").and_then(Value::as_str) == Some("array"))
                })
            })
    }

    /// Whether `op`'s JSON body requires a `Comment`.
    pub fn needs_comment(&self, op: &Operation) -> bool {
        op.value
            .pointer("/requestBody/content/application~1json/schema")
            .map(|schema| self.resolve(schema))
            .and_then(|schema| schema.get("required"))
            .and_then(Value::as_array)
            .is_some_and(|required| required.iter().any(|r| r.as_str() == Some("Comment")))
    }

    /// Each error response of `op` (4xx, 5xx, `default`) with the `$ref` of its JSON body's
    /// schema (`None`: no JSON body, or a schema written in place).
    pub fn error_bodies(&self, op: &Operation) -> Vec<(String, Option<String>)> {
        let responses = op.value.get("responses").and_then(Value::as_object);
        responses
            .into_iter()
            .flatten()
            .filter(|(status, _)| !status.starts_with(['1', '2', '3']))
            .map(|(status, response)| {
                let schema = self
                    .resolve(response)
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (status.clone(), schema)
            })
            .collect()
    }
}
