//! The machines of a run: ids (arguments, then `--machines-file`) and names
//! (`--machine-name`, then `--names-file`), each de-duplicated, each kept with where it was
//! given, and each held to the run's profiles before anything is sent.

use std::io::Read;
use std::path::Path;

/// Reads the ids of the arguments and the file (`-`: stdin), skipping blank lines and `#`
/// comments, keeping the first of each id; returns them and the repeated ones. `scope`: the
/// profiles the command line (or `MDE_PROFILE`) gives: a machine naming another is refused.
pub fn machine_ids(
    arguments: &[String],
    file: Option<&Path>,
    scope: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    read(arguments, file, id_key, scope)
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
    scope: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    read(arguments, file, str::to_ascii_lowercase, scope)
}

/// A machine as given (maybe `PROFILE,MACHINE`) and where: `the argument X`, `FILE line N`.
struct Given {
    text: String,
    origin: String,
}

fn read(
    arguments: &[String],
    file: Option<&Path>,
    key: impl Fn(&str) -> String,
    scope: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut all: Vec<Given> = Vec::new();
    for argument in arguments {
        let text = one_value(argument.trim()).map_err(|e| format!("the argument {e}"))?;
        let origin = format!(
            "the argument {}",
            crate::vocabulary::escape(argument.trim())
        );
        all.push(Given { text, origin });
    }
    if let Some(path) = file {
        let (bytes, what) = if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            (bytes, "stdin".to_string())
        } else {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            (bytes, path.display().to_string())
        };
        let text = text_of(&bytes).map_err(|e| format!("{what} {e}"))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if !line.is_empty() {
                let origin = format!("{what} line {}", i + 1);
                let text = one_value(line).map_err(|e| format!("{origin}: {e}"))?;
                all.push(Given { text, origin });
            }
        }
    }
    in_scope(&all, scope)?;
    let mut seen = std::collections::HashSet::new();
    let (mut unique, mut repeated) = (Vec::new(), Vec::new());
    for Given { text: item, .. } in all {
        let key = match crate::vocabulary::qualified(&item) {
            (Some(profile), machine) => format!("{profile},{}", key(machine)),
            (None, machine) => key(machine),
        };
        if seen.insert(key) {
            unique.push(item);
        } else if !repeated.contains(&item) {
            repeated.push(item);
        }
    }
    Ok((unique, repeated))
}

/// Holds the machines to the run's profiles before anything is sent: a profile given on the
/// command line or in the environment (`scope`) is the run's scope, so a machine naming
/// another is refused, never added to the run; and where any machine names its profile, one
/// that names none is refused (it would go to a tenant nobody chose). Each refusal names its
/// line.
fn in_scope(all: &[Given], scope: &[String]) -> Result<(), String> {
    let named = all
        .iter()
        .any(|g| crate::vocabulary::qualified(&g.text).0.is_some());
    let mut refused = Vec::new();
    for given in all {
        match crate::vocabulary::qualified(&given.text).0 {
            Some(profile) if !scope.is_empty() && !scope.iter().any(|s| s == profile) => {
                refused.push(format!(
                    "{}: {} names the profile {}, outside this run's --profile {}",
                    given.origin,
                    crate::vocabulary::escape(&given.text),
                    crate::vocabulary::escape(profile),
                    scope.join(", ")
                ));
            }
            None if named => refused.push(format!(
                "{}: {} names no profile, while other machines do: write PROFILE,{1}",
                given.origin,
                crate::vocabulary::escape(&given.text)
            )),
            _ => {}
        }
    }
    match refused.len() {
        0 => Ok(()),
        n => Err(format!(
            "{n} machine(s) refused, nothing was sent:\n  {}",
            refused.join("\n  ")
        )),
    }
}

/// The text of a file a person wrote (a query), read as [`text_of`] reads it.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text_of(&bytes)
        .map(str::to_string)
        .map_err(|why| format!("{} {why}", path.display()))
}

/// A file's text as Windows tools write it too: a UTF-8 byte-order mark (PowerShell's
/// `Set-Content -Encoding UTF8`, Excel's "CSV UTF-8") is dropped; UTF-16 (PowerShell 5.1's
/// `>`) and other encodings are refused with what to do.
fn text_of(bytes: &[u8]) -> Result<&str, String> {
    const SAVE: &str =
        "save it as UTF-8 (PowerShell: Get-Content FILE | Set-Content -Encoding utf8 NEW)";
    let utf16 = bytes.starts_with(&[0xff, 0xfe])
        || bytes.starts_with(&[0xfe, 0xff])
        || (bytes.len() >= 2 && bytes.iter().take(64).any(|b| *b == 0));
    if utf16 {
        return Err(format!("is UTF-16 text, not UTF-8: {SAVE}"));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "is not UTF-8 text (byte {} is not): {SAVE}",
            e.valid_up_to() + 1
        )
    })
}

/// `text`, when it holds one id or name, or a profile and one (`PROFILE,MACHINE`): two on one
/// line (a space, a tab or another comma between) would be sent as one.
fn one_value(text: &str) -> Result<String, String> {
    let one = |t: &str| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == ',');
    match text.split_once(',') {
        None if one(text) => Ok(text.to_string()),
        // Two ids with a comma between (a spreadsheet's row), not a profile and an id.
        Some((profile, machine))
            if one(profile.trim()) && one(machine.trim()) && !well_formed(profile.trim()) =>
        {
            Ok(format!("{},{}", profile.trim(), machine.trim()))
        }
        _ => Err(format!(
            "holds more than one value ({}): give one id or name a line (PROFILE,MACHINE for a machine of a profile's tenant), or an argument each",
            crate::vocabulary::escape(text)
        )),
    }
}

/// Whether `op`'s id is a machine's (otherwise an action's, or none).
pub fn on_machines(op: mde_client::OperationId) -> bool {
    op.facts().target == mde_client::operations::Target::Machine
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
        let (ids, repeated) = machine_ids(
            &["a".into(), "b".into(), "a".into(), " a ".into()],
            None,
            &[],
        )
        .unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(repeated, ["a"]);
        let upper = "FB9AB6BE3965095A09C057BE7C90F0A2".to_string();
        let (ids, repeated) =
            machine_ids(&[upper.to_lowercase(), upper.clone()], None, &[]).unwrap();
        assert_eq!((ids.len(), repeated), (1, vec![upper]));
        assert!(machine_ids(&["a b".into()], None, &[]).is_err());
        // A profile before a comma names the machine's tenant; a second comma is refused.
        let (ids, repeated) = machine_ids(
            &[
                "contoso,FB9AB6BE3965095A09C057BE7C90F0A2".into(),
                "contoso , fb9ab6be3965095a09c057be7c90f0a2".into(),
                "fabrikam,fb9ab6be3965095a09c057be7c90f0a2".into(),
            ],
            None,
            &[],
        )
        .unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(repeated.len(), 1);
        assert!(machine_ids(&["a,b,c".into()], None, &[]).is_err());
        assert!(machine_ids(&[",b".into()], None, &[]).is_err());
        assert!(machine_ids(&[], Some(Path::new("/nonexistent/file")), &[]).is_err());
        assert!(well_formed("fb9ab6be3965095a09c057be7c90f0a2") && !well_formed("fb9ab6be"));
        let (names, repeated) =
            machine_names(&["WS-1".into(), "ws-1".into(), "ws-2".into()], None, &[]).unwrap();
        assert_eq!(names, ["WS-1", "ws-2"]);
        assert_eq!(repeated, ["ws-1"]);
    }

    #[test]
    fn a_profile_scopes_the_run_and_a_bare_line_beside_named_ones_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("names.txt");
        std::fs::write(
            &file,
            "contoso,ws-0001\ncontoso,ws-0002\nfabrikam,ws-0001\n",
        )
        .unwrap();
        let scope = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        // --profile fabrikam: both contoso lines refused, each by its line.
        let refused = machine_names(&[], Some(&file), &scope(&["fabrikam"])).unwrap_err();
        assert!(refused.contains("2 machine(s) refused"), "{refused}");
        assert!(refused.contains("names.txt line 1: contoso,ws-0001 names the profile contoso"));
        assert!(refused.contains("names.txt line 2: contoso,ws-0002"));
        assert!(!refused.contains("line 3"), "{refused}");
        // Both profiles given: nothing refused; none given: the machines name them.
        assert!(machine_names(&[], Some(&file), &scope(&["contoso", "fabrikam"])).is_ok());
        assert_eq!(machine_names(&[], Some(&file), &[]).unwrap().0.len(), 3);
        // A bare line in a file of named ones is refused, whatever the scope.
        std::fs::write(&file, "contoso,ws-0001\n# a comment\nws-0002\n").unwrap();
        for given in [scope(&[]), scope(&["contoso"])] {
            let refused = machine_names(&[], Some(&file), &given).unwrap_err();
            assert!(
                refused.contains("names.txt line 3: ws-0002 names no profile"),
                "{refused}"
            );
        }
        // Bare lines alone are the scope's.
        std::fs::write(&file, "ws-0001\nws-0002\n").unwrap();
        assert!(machine_names(&[], Some(&file), &scope(&["contoso"])).is_ok());
    }

    #[test]
    fn two_ids_with_a_comma_are_two_values_not_a_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ids.txt");
        let (a, b) = (
            "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
            "fb9ab6be3965095a09c057be7c90f0a2",
        );
        std::fs::write(&file, format!("{a}\n{a}, {b}\n")).unwrap();
        let refused = machine_ids(&[], Some(&file), &[]).unwrap_err();
        assert!(
            refused.contains("ids.txt line 2: holds more than one value"),
            "{refused}"
        );
    }
}
