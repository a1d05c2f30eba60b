//! Demos checked further than their exit codes: what they print, against snapshots.

use crate::markdown::Block;
use crate::run::Invocation;

macro_rules! assert_redacted {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[guid]"),
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
                (r"in \d+\.\d s", "in [seconds] s"),
            ],
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

/// The further checks of the block of `page` that runs these demos, if any.
pub fn more(page: &str, block: &Block, runs: &[Invocation]) {
    let runs_command = |command: &str| block.script.contains(command);
    if page.ends_with("guide/fleet-runs.md") && runs_command("scan --type full --machine-name") {
        // A full scan on two machines by name, followed to the end; a dry run of a
        // collection from a file of names.
        assert_eq!(runs.len(), 2);
        assert_redacted!("readme_scan_wait_table", runs[0].stdout.as_str());
        assert!(
            runs[0].stderr.contains("following the actions"),
            "{}",
            runs[0].stderr
        );
        assert_redacted!("readme_collect_dry_run", runs[1].stdout.as_str());
    }
}
