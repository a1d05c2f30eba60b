//! The machines of a run: ids (arguments, then `--machines-file`) and names
//! (`--machine-name`, then `--names-file`), each de-duplicated.

use std::io::Read;
use std::path::Path;

/// Reads the ids of the arguments and the file (`-`: stdin), skipping blank lines and `#`
/// comments, keeping the first of each id; returns them and the repeated ones.
pub fn machine_ids(
    arguments: &[String],
    file: Option<&Path>,
) -> Result<(Vec<String>, Vec<String>), String> {
    read(arguments, file, id_key)
}

/// An id as runs compare it: a hex id in lower case (the service's ids are hex, its case
/// not significant), any other as given.
pub fn id_key(id: &str) -> String {
    if well_formed(id) {
        id.to_ascii_lowercase()
    } else {
        id.to_string()
    }
}

/// Reads the names as [`machine_ids`] reads ids; a name given twice in another case is the
/// same name.
pub fn machine_names(
    arguments: &[String],
    file: Option<&Path>,
) -> Result<(Vec<String>, Vec<String>), String> {
    read(arguments, file, str::to_ascii_lowercase)
}

fn read(
    arguments: &[String],
    file: Option<&Path>,
    key: impl Fn(&str) -> String,
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut all: Vec<String> = arguments.iter().map(|a| a.trim().to_string()).collect();
    if let Some(path) = file {
        let text = if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            text
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        };
        all.extend(mde_sim::parse_machine_list(&text));
    }
    let mut seen = std::collections::HashSet::new();
    let (mut unique, mut repeated) = (Vec::new(), Vec::new());
    for item in all {
        if seen.insert(key(&item)) {
            unique.push(item);
        } else if !repeated.contains(&item) {
            repeated.push(item);
        }
    }
    Ok((unique, repeated))
}

/// Whether `op`'s id is a machine's (otherwise an action's, or none).
#[allow(deprecated)] // the retired and deprecated operations stay reachable
pub fn on_machines(op: mde_client::OperationId) -> bool {
    use mde_client::OperationId as Op;
    match op {
        Op::StartInvestigation
        | Op::InitiateInvestigation
        | Op::CollectInvestigationPackage
        | Op::CollectInvestigationPackageGraph
        | Op::RunAntiVirusScan => true,
        Op::CancelMachineAction
        | Op::GetMachineAction
        | Op::GetPackageUri
        | Op::ListMachines
        | Op::ListMachineActions => false,
    }
}

/// An id as the documents show them: 40 or 32 hex characters.
pub fn well_formed(id: &str) -> bool {
    matches!(id.len(), 32 | 40) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ids_are_kept_once_and_named() {
        let (ids, repeated) =
            machine_ids(&["a".into(), "b".into(), "a".into(), " a ".into()], None).unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(repeated, ["a"]);
        assert!(machine_ids(&[], Some(Path::new("/nonexistent/file"))).is_err());
        assert!(well_formed("fb9ab6be3965095a09c057be7c90f0a2") && !well_formed("fb9ab6be"));
        let (names, repeated) =
            machine_names(&["WS-1".into(), "ws-1".into(), "ws-2".into()], None).unwrap();
        assert_eq!(names, ["WS-1", "ws-2"]);
        assert_eq!(repeated, ["ws-1"]);
    }
}
