//! The flags of an action's request body, made from the spec's facts (`Operation::body`):
//! what progenitor's CLI generator does (a scalar is a `--kebab-case` flag, an enum its
//! possible values, an array a repeated flag, anything else JSON), for the generated
//! `operations::AnyRequest` a fleet run carries.

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Arg, ArgAction, ArgMatches};
use mde_client::operations::{AnyRequest, BodyField, FieldKind, OperationId};
use serde_json::{Map, Value};

/// The flags of `op`'s body.
pub fn args(op: OperationId) -> impl Iterator<Item = Arg> {
    op.facts().body.iter().map(arg)
}

fn arg(field: &BodyField) -> Arg {
    let arg = Arg::new(field.name)
        .long(field.flag)
        .help(field.help)
        .required(field.required)
        .help_heading("Request (sent to each machine)");
    match field.kind {
        FieldKind::Text { min, max } => {
            let flag = field.flag;
            arg.value_name(field.flag.to_uppercase())
                .value_parser(move |text: &str| length(flag, text, min, max))
        }
        FieldKind::Choice(choices) => {
            // The documented value is taken too, in any case.
            let values = choices
                .iter()
                .map(|c| PossibleValue::new(c.typed).alias(c.value));
            arg.value_name(field.flag.to_uppercase())
                .value_parser(PossibleValuesParser::new(values))
                .ignore_case(true)
        }
        FieldKind::Switch => arg.action(ArgAction::SetTrue),
        FieldKind::Integer => arg.value_parser(clap::value_parser!(i64)),
        FieldKind::List => arg.action(ArgAction::Append),
        FieldKind::Json => arg.value_name("JSON").value_parser(|text: &str| {
            serde_json::from_str::<Value>(text).map(|_| text.to_string())
        }),
    }
}

/// A text within the spec's `minLength` and `maxLength`, counted in characters.
fn length(flag: &str, text: &str, min: Option<u64>, max: Option<u64>) -> Result<String, String> {
    let n = text.chars().count() as u64;
    match (min, max) {
        (Some(1), _) if text.trim().is_empty() => Err(format!("--{flag} must not be empty")),
        (Some(min), Some(max)) if min == max && n != min => {
            // A hash of another kind is the likely slip (a SHA-256 for a SHA-1): say which.
            let hex = text.bytes().all(|b| b.is_ascii_hexdigit());
            let kind = match n {
                32 if hex => " (that is an MD5's length)",
                40 if hex => " (that is a SHA-1's length)",
                64 if hex => " (that is a SHA-256's length)",
                _ => "",
            };
            Err(format!("--{flag} must be {min} characters, not {n}{kind}"))
        }
        (Some(min), _) if n < min => Err(format!("--{flag} must be at least {min} characters")),
        (_, Some(max)) if n > max => Err(format!("--{flag} must be at most {max} characters")),
        _ => Ok(text.to_string()),
    }
}

/// `op`'s body as the flags of `matches` give it: each member by its name, as the wire has
/// it; a member not given is left out.
pub fn read(op: OperationId, matches: &ArgMatches) -> Map<String, Value> {
    let mut body = Map::new();
    for field in op.facts().body {
        let text = || matches.get_one::<String>(field.name).cloned();
        let value = match field.kind {
            FieldKind::Text { .. } => text().map(Value::String),
            FieldKind::Choice(choices) => text().and_then(|typed| {
                let choice = choices.iter().find(|c| {
                    typed.eq_ignore_ascii_case(c.typed) || typed.eq_ignore_ascii_case(c.value)
                })?;
                Some(Value::String(choice.value.to_string()))
            }),
            FieldKind::Switch => matches.get_flag(field.name).then_some(Value::Bool(true)),
            FieldKind::Integer => matches.get_one::<i64>(field.name).map(|n| Value::from(*n)),
            FieldKind::List => matches
                .get_many::<String>(field.name)
                .map(|items| Value::Array(items.cloned().map(Value::String).collect())),
            FieldKind::Json => text().and_then(|t| serde_json::from_str(&t).ok()),
        };
        if let Some(value) = value {
            body.insert(field.name.to_string(), value);
        }
    }
    body
}

/// `op`'s request made from `body`, its id left to set per machine: a run's template.
pub fn template(op: OperationId, body: &Map<String, Value>) -> Result<AnyRequest, String> {
    match AnyRequest::from_body(op, Value::Object(body.clone())) {
        Some(Ok(request)) => Ok(request),
        Some(Err(e)) => Err(format!("the request of {op} cannot be made: {e}")),
        None => Err(format!("{op} is not sent from a request body")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(op: OperationId, args: &[&str]) -> Result<Map<String, Value>, clap::Error> {
        let command = clap::Command::new("t").args(super::args(op));
        let matches =
            command.try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))?;
        Ok(read(op, &matches))
    }

    #[test]
    fn the_flags_of_each_body_make_its_typed_request() {
        let body = parse(
            OperationId::IsolateMachine,
            &["--comment", "c", "--type", "unmanaged"],
        )
        .unwrap();
        assert_eq!(
            Value::Object(body.clone()),
            serde_json::json!({"Comment": "c", "IsolationType": "UnManagedDevice"})
        );
        let AnyRequest::IsolateMachine(request) =
            template(OperationId::IsolateMachine, &body).unwrap()
        else {
            panic!("not an isolation")
        };
        assert_eq!(
            request.body.isolation_type,
            Some(mde_client::types::IsolationType::UnManagedDevice)
        );
        // The documented value, in any case, is taken too; an optional member can be left out.
        let body = parse(
            OperationId::IsolateMachine,
            &["--comment", "c", "--type", "SELECTIVE"],
        )
        .unwrap();
        assert_eq!(body["IsolationType"], "Selective");
        let body = parse(OperationId::IsolateMachine, &["--comment", "c"]).unwrap();
        assert!(!body.contains_key("IsolationType"));
        let scan = parse(
            OperationId::RunAntiVirusScan,
            &["--comment", "c", "--type", "full"],
        )
        .unwrap();
        assert_eq!(scan["ScanType"], "Full");
    }

    #[test]
    fn what_the_spec_refuses_is_a_usage_error() {
        let error = |op, args: &[&str]| parse(op, args).unwrap_err().to_string();
        assert!(
            error(OperationId::IsolateMachine, &["--comment", " "])
                .contains("--comment must not be empty")
        );
        assert!(error(OperationId::IsolateMachine, &["--type", "full"]).contains("--comment"));
        assert!(
            error(
                OperationId::IsolateMachine,
                &["--comment", "c", "--type", "partial"]
            )
            .contains("partial")
        );
        let short = error(
            OperationId::StopAndQuarantineFile,
            &["--comment", "c", "--sha1", "abc"],
        );
        assert!(
            short.contains("--sha1 must be 40 characters, not 3"),
            "{short}"
        );
        let sha256 = "a".repeat(64);
        let long = error(
            OperationId::StopAndQuarantineFile,
            &["--comment", "c", "--sha1", &sha256],
        );
        assert!(
            long.contains("not 64 (that is a SHA-256's length)"),
            "{long}"
        );
        assert!(error(OperationId::RunAntiVirusScan, &["--comment", "c"]).contains("--type"));
    }
}
