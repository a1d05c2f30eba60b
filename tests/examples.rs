//! Every documented example of the spec, read from `spec/openapi.yaml` at test time, against
//! the generated type of its schema: it deserializes, its typed value is snapshotted, it
//! serializes back to the same JSON, and it matches both the spec's schema and the schema
//! the Rust type really accepts (schemars). A new example in the spec is a new case here.

use std::fmt::Debug;

use mde_client::operations::{self, OperationId, TypeVisitor};
use mde_client::types;
use mde_spec::{Example, check_json_schema};
use mde_tests::{spec, without_nulls};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Holds one example against the Rust type `T`.
fn check<T: DeserializeOwned + Serialize + Debug + JsonSchema>(example: &Example) {
    let name = &example.name;
    let typed: T = serde_json::from_value(example.value.clone())
        .unwrap_or_else(|e| panic!("example {name} does not deserialize: {e}"));

    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        back,
        without_nulls(&example.value),
        "example {name} does not serialize back to the same JSON"
    );

    let rust_schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    if let Err(errors) = check_json_schema(&rust_schema, &example.value) {
        panic!("example {name} does not match the Rust type's schema: {errors:#?}");
    }

    let uses: Vec<String> = example
        .uses
        .iter()
        .map(|u| format!("{} {}", u.operation, u.place))
        .collect();
    insta::with_settings!({
        description => format!(
            "spec example {} as {}, shown by: {}",
            example.pointer,
            example.schema_name.as_deref().map_or_else(
                || std::any::type_name::<T>().rsplit("::").next().unwrap_or_default().to_string(),
                |s| format!("types::{s}")
            ),
            uses.join("; ")
        ),
        omit_expression => true,
    }, {
        insta::assert_debug_snapshot!(name.as_str(), typed);
    });
}

#[test]
fn every_example_round_trips_through_its_generated_type() {
    let spec = spec();
    let examples = spec.examples();
    assert!(
        examples.len() >= 8,
        "the spec should show its documented examples"
    );
    for example in &examples {
        if let Err(errors) = spec.check_value(&example.schema, &example.value) {
            panic!(
                "example {} does not match the spec: {errors:#?}",
                example.name
            );
        }
        for place in &example.uses {
            check_use(example, &place.operation, &place.place);
        }
    }
}

/// Holds `example` against the type `visit` is given.
struct Check<'a>(&'a Example);

impl TypeVisitor for Check<'_> {
    type Output = ();

    fn visit<T: DeserializeOwned + Serialize + Debug + JsonSchema>(self) {
        check::<T>(self.0)
    }
}

/// Holds an example against the type of the place that shows it: an operation's request body
/// and success as the operation model types them (a new operation costs nothing here), the
/// error body and the parameters from their schemas.
fn check_use(example: &Example, operation: &str, place: &str) {
    let op: OperationId = operation.parse().unwrap();
    let status = place.strip_prefix("response ");
    if status.is_some_and(|s| s.starts_with('2')) {
        return op.visit_success(Check(example));
    }
    if place == "request" {
        // A multipart form as JSON: what each part holds (the client sends it as parts).
        return op
            .visit_body(Check(example))
            .unwrap_or_else(|| panic!("example {}: {operation} takes no body", example.name));
    }
    match example.schema_name.as_deref() {
        Some("Error") if status.is_some() => check::<types::Error>(example),
        None if example.schema.get("type") == Some(&Value::from("string")) => {
            check::<String>(example)
        }
        None if example.schema.get("type") == Some(&Value::from("boolean")) => {
            check::<bool>(example)
        }
        None if example.schema.get("type") == Some(&Value::from("integer")) => {
            check::<i32>(example)
        }
        other => panic!(
            "example {} ({operation} {place}) uses schema {other:?}, which this test does not map to a type yet",
            example.name
        ),
    }
}

/// The hand-written upload (progenitor cannot generate a multipart body) sends exactly the
/// form's members the spec names, and its name rule is the spec's `fileName` pattern.
#[test]
fn the_hand_written_upload_follows_the_spec() {
    let spec = spec();
    let form = spec
        .pointer("#/components/schemas/LibraryFileUpload/properties")
        .and_then(Value::as_object)
        .unwrap();
    let mut named: Vec<&str> = form.keys().map(String::as_str).collect();
    let mut sent = operations::UploadLibraryFile::FORM.to_vec();
    named.sort_unstable();
    sent.sort_unstable();
    assert_eq!(named, sent);
    let limit = &form["file"]["maxLength"];
    assert_eq!(limit.as_u64(), Some(mde_client::LIBRARY_FILE_LIMIT as u64));

    let pattern =
        spec.operation("deleteLibraryFile").unwrap().value["parameters"][0]["schema"]["pattern"]
            .as_str()
            .unwrap()
            .to_string();
    let pattern = regex::Regex::new(&pattern).unwrap();
    for name in [
        "script1.ps1",
        "a-b_c.sh",
        "x",
        "a b",
        "a/b",
        "é",
        "",
        "x;y",
        "%2F",
    ] {
        assert_eq!(
            mde_client::is_library_name(name),
            pattern.is_match(name),
            "{name:?}"
        );
    }
}

/// What a RunScript result's link downloads: the page's transcript, corrected (its raw line
/// break is an escape in the spec), reads as `types::RunScriptTranscript` and round-trips,
/// NULs and all. No operation shows it (it is a blob's content: the schema's own example),
/// so it is held here.
#[test]
fn the_runscript_transcript_example_reads_with_its_nuls() {
    let spec = spec();
    let pointer = "/components/schemas/RunScriptTranscript/example";
    let value = spec.pointer(&format!("#{pointer}")).unwrap().clone();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/RunScriptTranscript" });
    spec.check_value(&schema, &value).unwrap();
    let example = Example {
        name: "RunScriptTranscript".into(),
        pointer: pointer.into(),
        schema,
        schema_name: Some("RunScriptTranscript".into()),
        value,
        uses: Vec::new(),
    };
    check::<types::RunScriptTranscript>(&example);
    let transcript: types::RunScriptTranscript = serde_json::from_value(example.value).unwrap();
    let output = transcript.script_output.unwrap();
    assert!(output.ends_with("51 MB\n\u{0}\u{0}\u{0}"), "{output:?}");
    assert_eq!(transcript.exit_code, Some(0));
}

/// A value the service adds later, in any extensible enum, and a field it adds later, are
/// kept and visible, and the object still reads. Built from the spec's own MachineAction
/// example, so it follows the spec.
#[test]
fn values_the_service_adds_later_are_kept() {
    let spec = spec();
    let example = spec
        .examples()
        .into_iter()
        .find(|e| e.schema_name.as_deref() == Some("MachineAction"))
        .expect("the spec shows a MachineAction example");
    let mut value = example.value.clone();
    value["status"] = "Throttled".into();
    value["type"] = "Live Response".into();
    value["relatedFileInfo"] =
        serde_json::json!({ "fileIdentifier": "abc", "fileIdentifierType": "Sha512" });
    value["addedLater"] = serde_json::json!({ "nested": [1, 2] });

    let action: types::MachineAction = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        action.status,
        Some(types::MachineActionStatus::Other("Throttled".into()))
    );
    assert_eq!(
        action.type_,
        Some(types::MachineActionType::Other("Live Response".into()))
    );
    let file = action.related_file_info.as_ref().unwrap();
    assert_eq!(
        file.file_identifier_type,
        Some(types::FileIdentifierType::Other("Sha512".into()))
    );
    assert_eq!(action.extra["addedLater"], value["addedLater"]);
    assert_eq!(serde_json::to_value(&action).unwrap(), value);

    let state: types::InvestigationState = serde_json::from_str("\"Hibernating\"").unwrap();
    assert_eq!(state.to_string(), "Hibernating");
    // A documented value still reads as its own variant, whichever way it is built.
    assert_eq!(
        types::InvestigationState::from(String::from("Unknown")),
        types::InvestigationState::Unknown
    );
}

/// The documented values of every extensible enum are the spec's, in its order.
#[test]
fn extensible_enums_document_the_spec_values() {
    let spec = spec();
    let documented = |name: &str| -> Vec<String> {
        let values = spec
            .pointer(&format!("#/components/schemas/{name}/enum"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name} has an enum in the spec"));
        values
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        types::InvestigationState::DOCUMENTED,
        documented("InvestigationState")
    );
    assert_eq!(
        types::MachineActionType::DOCUMENTED,
        documented("MachineActionType")
    );
    assert_eq!(
        types::MachineActionStatus::DOCUMENTED,
        documented("MachineActionStatus")
    );
    assert_eq!(
        types::FileIdentifierType::DOCUMENTED,
        documented("FileIdentifierType")
    );
    for value in types::MachineActionStatus::DOCUMENTED {
        let status = types::MachineActionStatus::from(*value);
        assert!(
            !matches!(status, types::MachineActionStatus::Other(_)),
            "{value}"
        );
        assert_eq!(status.as_str(), *value);
    }
}
