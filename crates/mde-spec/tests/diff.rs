//! `cargo xtask diff`'s rules, one fixture each: the base spec and a copy changed in one way.
//! Each report is snapshotted; adding `fixtures/diff/<rule>.yaml` adds a case.

use mde_spec::Spec;
use mde_spec::diff::diff;

#[test]
fn each_rule_reports_and_classes_its_change() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff");
    let base = Spec::load(&dir.join("base.yaml")).unwrap();
    assert!(
        diff(&base, &base).changes.is_empty(),
        "a spec against itself has no changes"
    );
    let mut rules: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("base.yaml"))
        .collect();
    rules.sort();
    assert!(rules.len() >= 9);
    for path in rules {
        let rule = path.file_stem().unwrap().to_str().unwrap().to_string();
        let report = diff(&base, &Spec::load(&path).unwrap());
        assert!(!report.changes.is_empty(), "{rule}: no change found");
        let expect_breaking = ["removed", "newly_required", "changed_type", "changed_hosts"]
            .iter()
            .any(|w| rule.contains(w));
        assert_eq!(
            report.breaking(),
            expect_breaking,
            "{rule}:\n{}",
            report.markdown()
        );
        insta::with_settings!({ description => format!("base.yaml → {rule}.yaml"), omit_expression => true }, {
            insta::assert_snapshot!(rule, report.markdown());
        });
    }
}

/// The workspace spec against itself, and against a copy with a field removed from
/// MachineAction (the example of the closing note).
#[test]
fn the_workspace_spec() {
    let text = std::fs::read_to_string(Spec::workspace_path()).unwrap();
    let spec = Spec::parse(text.clone(), "spec/openapi.yaml".into()).unwrap();
    assert!(!diff(&spec, &spec).breaking());
    let removed = text.replacen("        requestor:\n          description: Who issued the action; a UPN, a GUID or \"Defender for Endpoint API\".\n          type: string\n", "", 1);
    assert_ne!(
        removed, text,
        "the spec no longer has MachineAction.requestor as this test expects"
    );
    let report = diff(
        &spec,
        &Spec::parse(removed, "spec/openapi.yaml".into()).unwrap(),
    );
    assert!(report.breaking());
    assert!(
        report
            .markdown()
            .contains("`MachineAction.requestor`: property removed"),
        "{}",
        report.markdown()
    );
}
