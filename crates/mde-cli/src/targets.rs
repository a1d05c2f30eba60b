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
    let mut all: Vec<String> = Vec::new();
    for argument in arguments {
        all.push(one_value(argument.trim()).map_err(|e| format!("the argument {e}"))?);
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
                all.push(one_value(line).map_err(|e| format!("{what} line {}: {e}", i + 1))?);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let (mut unique, mut repeated) = (Vec::new(), Vec::new());
    for item in all {
        let key = match crate::tenants::qualified(&item) {
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
        Some((profile, machine)) if one(profile.trim()) && one(machine.trim()) => {
            Ok(format!("{},{}", profile.trim(), machine.trim()))
        }
        _ => Err(format!(
            "holds more than one value ({}): give one id or name a line (PROFILE,MACHINE for a machine of a profile's tenant), or an argument each",
            crate::output::escape(text)
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
        let (ids, repeated) =
            machine_ids(&["a".into(), "b".into(), "a".into(), " a ".into()], None).unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(repeated, ["a"]);
        let upper = "FB9AB6BE3965095A09C057BE7C90F0A2".to_string();
        let (ids, repeated) = machine_ids(&[upper.to_lowercase(), upper.clone()], None).unwrap();
        assert_eq!((ids.len(), repeated), (1, vec![upper]));
        assert!(machine_ids(&["a b".into()], None).is_err());
        // A profile before a comma names the machine's tenant; a second comma is refused.
        let (ids, repeated) = machine_ids(
            &[
                "contoso,FB9AB6BE3965095A09C057BE7C90F0A2".into(),
                "contoso , fb9ab6be3965095a09c057be7c90f0a2".into(),
                "fabrikam,fb9ab6be3965095a09c057be7c90f0a2".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(repeated.len(), 1);
        assert!(machine_ids(&["a,b,c".into()], None).is_err());
        assert!(machine_ids(&[",b".into()], None).is_err());
        assert!(machine_ids(&[], Some(Path::new("/nonexistent/file"))).is_err());
        assert!(well_formed("fb9ab6be3965095a09c057be7c90f0a2") && !well_formed("fb9ab6be"));
        let (names, repeated) =
            machine_names(&["WS-1".into(), "ws-1".into(), "ws-2".into()], None).unwrap();
        assert_eq!(names, ["WS-1", "ws-2"]);
        assert_eq!(repeated, ["ws-1"]);
    }
}
