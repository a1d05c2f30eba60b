//! Evidence on disk and its chain of custody: `DIR/manifest.jsonl`, one JSON record a package
//! or a live response result (who asked for it, why, when it was collected and downloaded,
//! where it is, its size and SHA-256; for a result, its command: index, the device path or
//! the script and its arguments), appended and synced as each file is verified;
//! `mde package verify` re-hashes every file against it, both kinds alike. Files are written
//! `0600` in a `0700` folder.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use mde_client::types::{LiveResponseCommandResult, MachineAction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name in the evidence folder.
pub const MANIFEST: &str = "manifest.jsonl";

/// One package of the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The machine id.
    #[serde(alias = "machine_id")]
    pub machine: String,
    /// The machine's name, as the action gave it.
    #[serde(alias = "machine_name")]
    pub name: Option<String>,
    /// The collection's machine action id.
    pub action_id: String,
    /// Who asked for the collection.
    pub requestor: Option<String>,
    /// The comment it was asked with.
    pub comment: Option<String>,
    /// When the collection was asked for (the service's text).
    pub created: Option<String>,
    /// When it completed (its last update, the service's text).
    pub completed: Option<String>,
    /// When the package was saved here, UTC.
    pub downloaded: String,
    /// The file, relative to the evidence folder.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// A live response result: the command's index in its session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_index: Option<i32>,
    /// A live response result: the command's type, `RunScript` or `GetFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A GetFile's path on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_path: Option<String>,
    /// A RunScript's library script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// A RunScript's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
}

impl Record {
    /// The record of a package just saved, at `downloaded` (the client's clock, the one the
    /// service's times are on).
    pub fn new(
        action: &MachineAction,
        file: &str,
        (size, sha256): (u64, &str),
        downloaded: chrono::DateTime<chrono::Utc>,
    ) -> Record {
        let text = |t: &Option<mde_client::Timestamp>| t.as_ref().map(ToString::to_string);
        Record {
            machine: action.machine_id.clone().unwrap_or_default(),
            name: action.computer_dns_name.clone(),
            action_id: action.id.clone().unwrap_or_default(),
            requestor: action.requestor.clone(),
            comment: action.requestor_comment.clone(),
            created: text(&action.creation_date_time_utc),
            completed: text(if action.last_update_date_time_utc.is_some() {
                &action.last_update_date_time_utc
            } else {
                &action.last_update_time_utc
            }),
            downloaded: downloaded.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            file: file.to_string(),
            size,
            sha256: sha256.to_string(),
            command_index: None,
            command: None,
            device_path: None,
            script: None,
            args: None,
        }
    }

    /// The record of a live response command's result just saved: the session's who and
    /// why, the command's own times, and what it was asked to do.
    pub fn of_result(
        action: &MachineAction,
        command: &LiveResponseCommandResult,
        file: &str,
        saved: (u64, &str),
        downloaded: chrono::DateTime<chrono::Utc>,
    ) -> Record {
        let asked = command.command.as_ref();
        let param = |key: &str| asked.and_then(|c| c.param(key)).map(str::to_string);
        let text = |t: &Option<mde_client::Timestamp>| t.as_ref().map(ToString::to_string);
        Record {
            created: text(&command.start_time).or_else(|| text(&action.creation_date_time_utc)),
            completed: text(&command.end_time),
            command_index: command.index,
            command: asked.map(|c| c.type_.to_string()),
            device_path: param("Path"),
            script: param("ScriptName"),
            args: param("Args"),
            ..Record::new(action, file, saved, downloaded)
        }
    }

    /// What it holds, for its key among the records: the action, and the command's index
    /// for a live response result.
    pub fn key(&self) -> String {
        key(&self.action_id, self.command_index)
    }
}

/// The key of an action's package (`index` none) or of one of its command's results.
pub fn key(action_id: &str, index: Option<i32>) -> String {
    match index {
        Some(i) => format!("{action_id}#{i}"),
        None => action_id.to_string(),
    }
}

/// The evidence folder: created `0700` if new.
pub fn folder(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// `text` with every character but letters, digits, `-` and those of `also` made `_`.
fn plain(text: &str, also: &[char]) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || also.contains(&c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The file name of an action's package: machine id and action id, both plain.
pub fn file_name(machine_id: &str, action_id: &str) -> String {
    format!("{}_{}.zip", plain(machine_id, &[]), plain(action_id, &[]))
}

/// The file name of a live response command's result: machine id, action id, the command's
/// index, then what it is: the device file's own name (a GetFile), or the script's name and
/// `transcript.json` (a RunScript). Only letters, digits, `-` and `.` are kept.
pub fn result_file_name(
    machine_id: &str,
    action_id: &str,
    command: &LiveResponseCommandResult,
) -> String {
    let safe = |s: &str| plain(s, &['.']);
    let asked = command.command.as_ref();
    let param = |key: &str| asked.and_then(|c| c.param(key));
    // A device path's last step, whichever separator the device writes.
    let what = match (param("Path"), param("ScriptName")) {
        (Some(path), _) => path
            .rsplit(['\\', '/'])
            .find(|s| !s.is_empty())
            .unwrap_or("file")
            .to_string(),
        (None, Some(script)) => format!("{script}.transcript.json"),
        (None, None) => "result".into(),
    };
    let what = safe(&what);
    // Never `.` or `..`, never hidden.
    let what = what.trim_start_matches('.');
    format!(
        "{}_{}_{}_{}",
        safe(machine_id),
        safe(action_id),
        command.index.unwrap_or_default(),
        if what.is_empty() { "result" } else { what }
    )
}

/// The records of a manifest (none when there is none yet); a line cut by a crash is skipped.
pub fn read(dir: &Path) -> std::io::Result<Vec<Record>> {
    let path = dir.join(MANIFEST);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        if let Ok(record) = serde_json::from_str::<Record>(&line?) {
            records.push(record);
        }
    }
    Ok(records)
}

/// A manifest as `mde package verify` reads it: every line accounted for.
#[derive(Debug, Default)]
pub struct Manifest {
    /// Whether the folder has one.
    pub exists: bool,
    /// Its records, in order.
    pub records: Vec<Record>,
    /// Lines that are not a record, by line number (from 1), with their start: a tampered
    /// or damaged manifest.
    pub unreadable: Vec<(usize, String)>,
    /// The last line, cut short by a crash while it was written (no line end): forgiven.
    pub torn_last: bool,
}

/// Reads every line of the manifest; only a last line without its end that is not a record
/// (a crash while appending) is forgiven, as `torn_last`.
pub fn manifest(dir: &Path) -> std::io::Result<Manifest> {
    let text = match std::fs::read(dir.join(MANIFEST)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
        Err(e) => return Err(e),
    };
    let mut manifest = Manifest {
        exists: true,
        ..Manifest::default()
    };
    let ended = text.last().is_none_or(|b| *b == b'\n');
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let last = i + 1 == count;
        if line.is_empty() && last {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => manifest.records.push(record),
            Err(_) if last && !ended => manifest.torn_last = true,
            Err(_) => manifest.unreadable.push((
                i + 1,
                mde_client::workspace::shorten(&String::from_utf8_lossy(line), 80),
            )),
        }
    }
    Ok(manifest)
}

/// The files of the folder (and its subfolders) that no record names, but the manifest:
/// an extra file, a second copy, a download left unfinished (`.part`).
pub fn unrecorded(dir: &Path, records: &[Record]) -> std::io::Result<Vec<String>> {
    let named: std::collections::HashSet<&str> = records.iter().map(|r| r.file.as_str()).collect();
    let mut found = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(dir.join(&folder))? {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                folders.push(relative);
                continue;
            }
            let text = relative.to_string_lossy().into_owned();
            if text != MANIFEST && !named.contains(text.as_str()) {
                found.push(text);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Checks, before a run asks for anything, that packages can be written in `dir` (a file is
/// created and removed); returns a warning when others can read the folder.
pub fn probe(dir: &Path) -> std::io::Result<Option<String>> {
    let path = dir.join(format!(".mde-probe-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"probe").and_then(|()| f.sync_all()));
    let removed = std::fs::remove_file(&path);
    written?;
    removed?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Ok(Some(format!(
                "{} can be read by other users (mode {mode:o}) and packages hold forensic data: chmod 700 {0}",
                dir.display()
            )));
        }
    }
    Ok(None)
}

/// Appends a record and syncs the manifest: it is on disk when this returns.
pub fn append(dir: &Path, record: &Record) -> std::io::Result<()> {
    let path = dir.join(MANIFEST);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_all()
}

/// How one record's file fared against the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Size and SHA-256 as recorded.
    Verified,
    /// The file is not there.
    Missing,
    /// The file differs from its record.
    Mismatch {
        /// Its size now.
        size: u64,
        /// Its SHA-256 now.
        sha256: String,
    },
}

/// A file's size and SHA-256 (lower-case hex); `None` when there is no such file.
pub fn sha256_of_file(path: &Path) -> std::io::Result<Option<(u64, String)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some((size, sha256)))
}

/// Re-hashes a record's file.
pub fn verify(dir: &Path, record: &Record) -> std::io::Result<Verdict> {
    let Some((size, sha256)) = sha256_of_file(&dir.join(&record.file))? else {
        return Ok(Verdict::Missing);
    };
    Ok(if size == record.size && sha256 == record.sha256 {
        Verdict::Verified
    } else {
        Verdict::Mismatch { size, sha256 }
    })
}
