//! The members of an operation's JSON request body, as a command line takes them: the rules
//! of progenitor's CLI generator (a scalar is a `--kebab-case` flag, an enum its possible
//! values, an array a repeatable flag, anything else JSON), with two spec extensions for the
//! names people type: `x-cli-name` (the flag of a value of that schema) and `x-cli-values`
//! (enum value to the name typed for it; the documented value is accepted too).

use heck::ToKebabCase;
use serde_json::Value;

use crate::{Operation, Spec};

/// One member of a request body.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyField {
    /// Its name in the JSON body, e.g. `IsolationType`.
    pub name: String,
    /// The flag that takes it, without `--`: `x-cli-name`, or the name in kebab case.
    pub flag: String,
    /// What it is: the first sentence of its description, without the citation.
    pub help: String,
    /// Whether the body requires it.
    pub required: bool,
    /// What the flag takes.
    pub kind: FieldKind,
}

/// What a body member's flag takes.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// Text, of at least `min` and at most `max` characters.
    Text {
        /// `minLength`.
        min: Option<u64>,
        /// `maxLength`.
        max: Option<u64>,
    },
    /// One of the enum's values: each with the name typed for it.
    Choice(Vec<(String, String)>),
    /// A boolean: the flag alone.
    Switch,
    /// An integer.
    Integer,
    /// An array: the flag repeated, one item each.
    List,
    /// Anything else: JSON text.
    Json,
}

impl Spec {
    /// The members of `op`'s JSON request body, in the schema's order; empty without one.
    pub fn body_fields(&self, op: &Operation) -> Vec<BodyField> {
        let Some(schema) = op
            .value
            .pointer("/requestBody/content/application~1json/schema")
            .map(|s| self.resolve(s))
        else {
            return Vec::new();
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let properties = schema.get("properties").and_then(Value::as_object);
        properties
            .into_iter()
            .flatten()
            .map(|(name, property)| {
                let own = property.get("description").and_then(Value::as_str);
                let property = self.resolve(property);
                let text = |key| property.get(key).and_then(Value::as_str);
                let flag = text("x-cli-name").map_or_else(|| name.to_kebab_case(), str::to_string);
                let help = first_sentence(own.or(text("description")).unwrap_or(name));
                BodyField {
                    name: name.clone(),
                    flag,
                    help,
                    required: required.contains(&name.as_str()),
                    kind: kind(property),
                }
            })
            .collect()
    }
}

fn kind(schema: &Value) -> FieldKind {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names = schema.get("x-cli-values").and_then(Value::as_object);
        let choices = values.iter().filter_map(Value::as_str).map(|value| {
            let typed = names
                .and_then(|n| n.get(value))
                .and_then(Value::as_str)
                .map_or_else(|| value.to_lowercase(), str::to_string);
            (value.to_string(), typed)
        });
        return FieldKind::Choice(choices.collect());
    }
    let length = |key| schema.get(key).and_then(Value::as_u64);
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => FieldKind::Text {
            min: length("minLength"),
            max: length("maxLength"),
        },
        Some("boolean") => FieldKind::Switch,
        Some("integer") => FieldKind::Integer,
        Some("array") => FieldKind::List,
        _ => FieldKind::Json,
    }
}

/// The first sentence of a description, without its citation and its full stop (as a flag's
/// help reads).
fn first_sentence(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let end = [". ", " (reference", ": `"]
        .iter()
        .filter_map(|stop| text.find(stop))
        .min()
        .unwrap_or(text.len());
    text[..end].trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_body_schema() {
        let spec = Spec::load_workspace().unwrap();
        let isolate = spec.operation("isolateMachine").unwrap();
        let fields = spec.body_fields(&isolate);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].name, "Comment");
        assert_eq!(fields[0].flag, "comment");
        assert!(fields[0].required);
        assert_eq!(fields[0].help, "Comment to associate with the action");
        assert_eq!(
            fields[0].kind,
            FieldKind::Text {
                min: Some(1),
                max: None
            }
        );
        assert_eq!(fields[1].flag, "type", "x-cli-name");
        assert!(!fields[1].required);
        let FieldKind::Choice(choices) = &fields[1].kind else {
            panic!("{:?}", fields[1].kind)
        };
        assert!(choices.contains(&("UnManagedDevice".into(), "unmanaged".into())));
        assert!(choices.contains(&("Full".into(), "full".into())));
        let lists = spec.operation("listMachineActions").unwrap();
        assert!(spec.body_fields(&lists).is_empty(), "no body");
    }

    #[test]
    fn the_help_is_the_first_sentence_without_its_citation() {
        assert_eq!(
            first_sentence("The type of the scan (reference: run-av-scan.md): `Quick`."),
            "The type of the scan"
        );
        assert_eq!(
            first_sentence("SHA-1 of the file, 40 hex.\n Required."),
            "SHA-1 of the file, 40 hex"
        );
    }
}
