//! `cargo xtask check` refuses an unsound spec and says where: each case breaks the real
//! spec in one place and expects a problem that names it.

use mde_spec::Spec;

fn problems_after(from: &str, to: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Spec::workspace_path()).unwrap();
    assert!(
        text.contains(from),
        "the spec no longer contains {from:?}: update this case"
    );
    let broken = text.replacen(from, to, 1);
    let spec = Spec::parse(broken, "spec/openapi.yaml".into()).expect("still YAML");
    spec.problems().iter().map(ToString::to_string).collect()
}

fn assert_reported(problems: &[String], location: &str, message: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.contains(location) && p.contains(message)),
        "expected a problem at {location:?} saying {message:?}, got {problems:#?}"
    );
}

#[test]
fn the_workspace_spec_is_sound() {
    let problems = mde_tests::spec().problems();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn an_example_that_does_not_match_its_schema() {
    let problems = problems_after(
        r#"startTime: "2020-01-06T13:05:15Z""#,
        "startTime: yesterday",
    );
    assert_reported(
        &problems,
        "components.examples.Investigation",
        "does not match Investigation",
    );
    assert_reported(&problems, "`/startTime`", "date-time");
    // The location carries the line of the example in the file.
    let line = problems[0].strip_prefix("spec/openapi.yaml:").unwrap();
    assert!(
        line.split(':').next().unwrap().parse::<usize>().is_ok(),
        "{}",
        problems[0]
    );
}

#[test]
fn a_request_example_without_its_required_comment() {
    let problems = problems_after("Comment: Test investigation", "comment: Test investigation");
    assert_reported(
        &problems,
        "StartInvestigationRequest",
        "does not match CommentRequest",
    );
}

#[test]
fn an_operation_without_operation_id() {
    let problems = problems_after("operationId: collectInvestigationPackage\n      ", "");
    assert_reported(
        &problems,
        "/api/machines/{id}/collectInvestigationPackage",
        "no operationId",
    );
}

#[test]
fn an_operation_id_that_is_not_camel_case() {
    let problems = problems_after(
        "operationId: startInvestigation",
        "operationId: start_investigation",
    );
    assert_reported(&problems, "startInvestigation", "not camelCase");
}

#[test]
fn an_operation_without_rate_limit() {
    let problems = problems_after("x-rate-limit: []", "");
    assert_reported(
        &problems,
        "/testwdatppreview/machines/{id}/collectInvestigationPackage",
        "no x-rate-limit",
    );
}

#[test]
fn a_rate_limit_window_of_zero_calls() {
    let problems = problems_after("- calls: 50", "- calls: 0");
    assert_reported(
        &problems,
        "startInvestigation",
        "`calls` must be a positive integer",
    );
}

#[test]
fn an_operation_without_permissions() {
    let problems = problems_after(
        "x-permissions:\n        directoryRoles",
        "x-roles:\n        directoryRoles",
    );
    assert_reported(&problems, "/testwdatppreview", "no x-permissions");
}

#[test]
fn an_openapi_version_progenitor_cannot_read() {
    let problems = problems_after("openapi: 3.0.3", "openapi: 3.1.0");
    assert_reported(&problems, "openapi", "OpenAPI 3.0.x only");
}

#[test]
fn a_server_without_its_sign_in_authority() {
    let problems = problems_after("    x-authority: https://login.microsoftonline.us\n", "");
    assert_reported(&problems, "servers", "server without x-authority");
}

/// Every extension the generator reads, its reader refuses when malformed, with the line.
#[test]
fn extensions_the_generator_needs() {
    let cases = [
        (
            "      x-deprecation:\n        source: 004_570bf575d5329650.txt\n        note: The Graph preview endpoint is deprecated; use collectInvestigationPackage.\n",
            "",
            "/testwdatppreview",
            "deprecated without x-deprecation",
        ),
        (
            "retired: \"2026-09-01\"",
            "retired: September",
            "x-deprecation.retired",
            "must be a date",
        ),
        (
            "    x-cloud: [gcc-high, dod]\n",
            "    x-cloud: []\n",
            "servers",
            "x-cloud must be a name or a non-empty list",
        ),
        (
            "        - calls: 5\n",
            "        - calls: many\n",
            "x-rate-limit",
            "`calls` must be a positive integer",
        ),
        (
            "      enum: [Sha1, Sha256, Md5]\n",
            "      enum: [1, 2]\n",
            "FileIdentifierType",
            "x-extensible-enum needs",
        ),
        (
            "          x-secret: true\n",
            "          x-secret: yes please\n",
            "ODataString",
            "x-secret must be true or false",
        ),
        (
            "          x-secret: true\n",
            "          x-secret: true\n          format: uri\n",
            "ODataString",
            "x-secret needs `type: string` and no `format`",
        ),
        (
            "tokenUrl: https://login.microsoftonline.com/%7Btenant%7D/oauth2/v2.0/token",
            "tokenUrl: https://login.microsoftonline.com/common/oauth2/v2.0/token",
            "tokenUrl",
            "`{tenant}` placeholder",
        ),
        (
            "          $ref: \"#/components/responses/Unauthorized\"\n",
            "          description: no body\n",
            "401",
            "common `Error` body",
        ),
    ];
    for (from, to, location, message) in cases {
        let problems = problems_after(from, to);
        assert_reported(&problems, location, message);
        let with_line = problems
            .iter()
            .find(|p| p.contains(message))
            .and_then(|p| p.strip_prefix("spec/openapi.yaml:"))
            .and_then(|rest| rest.split(':').next()?.parse::<usize>().ok());
        assert!(with_line.is_some(), "{message}: no line in {problems:#?}");
    }
}

#[test]
fn a_post_answering_a_machine_action_without_its_action_type() {
    let missing = problems_after("      x-machine-action-type: RunAntiVirusScan\n", "");
    assert_reported(
        &missing,
        "/api/machines/{id}/runAntiVirusScan",
        "needs x-machine-action-type",
    );
    let unknown = problems_after(
        "x-machine-action-type: RunAntiVirusScan",
        "x-machine-action-type: RunAVScan",
    );
    assert_reported(
        &unknown,
        "runAntiVirusScan",
        "\"RunAVScan\" is not a value of MachineActionType",
    );
    // On an operation that creates no machine action, it is refused.
    let misplaced = problems_after(
        "      operationId: listMachines\n",
        "      operationId: listMachines\n      x-machine-action-type: Isolate\n",
    );
    assert_reported(
        &misplaced,
        "/api/machines",
        "not a POST answering a MachineAction",
    );
}

#[test]
fn an_x_cli_command_that_is_not_words_is_reported() {
    let problems = problems_after(
        "x-cli-command: package collect",
        "x-cli-command: Package  Collect",
    );
    assert_reported(
        &problems,
        "collectInvestigationPackage",
        "x-cli-command must be the words",
    );
}
