//! The run's record and its resume: what a run is (journaled first, held to on resume), the
//! journal opened or resumed, and the command line that resumes a run.

use std::path::PathBuf;

use crate::cli::{Connection, Targets};
use crate::fleet;
use crate::journal::{Entry, History, Journal, Recorded, RunRecord};
use crate::selection::{self, Selection};
use crate::targets;
use crate::vocabulary::{LOCAL, USAGE, fail};

/// What the run is, to journal and to hold a resume to: the plan's request, where it goes
/// and as whom, and the machines as given.
pub(crate) fn run_record(
    conn: &Connection,
    plan: &fleet::Plan<'_>,
    (ids, names, tag): (&[String], &[String], selection::Tag<'_>),
    download: Option<&std::path::Path>,
) -> RunRecord {
    let (tenant, client_id) = if conn.simulate {
        (
            Some(mde_sim::DEFAULT_TENANT.to_string()),
            Some(mde_sim::DEFAULT_CLIENT_ID.to_string()),
        )
    } else if crate::signin::token(conn).is_some() {
        (None, None)
    } else {
        (conn.tenant_id.clone(), conn.client_id.clone())
    };
    let api = if conn.simulate {
        "simulator".to_string()
    } else {
        match &conn.api_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => mde_client::Endpoints::of(conn.cloud, conn.region)
                .map(|e| e.api)
                .unwrap_or_else(|e| e),
        }
    };
    let mut machines: Vec<String> = ids.iter().map(|id| targets::id_key(id)).collect();
    machines.sort();
    let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.sort();
    RunRecord {
        operation: plan.op(),
        request: plan.body(),
        tenant,
        client_id,
        api,
        machines,
        names,
        tag: selection::tag_key(tag),
        hunt: None,
        download: download.map(|d| d.display().to_string()),
    }
}

/// The resumed journal, read once (nothing for a new run), when it records a run of the same
/// profiles (`profiles`: the run's, none for a run of one connection); `download`: the run
/// saves evidence, which a simulated run cannot resume.
pub(crate) fn recorded(
    conn: &Connection,
    targets: &Targets,
    download: bool,
    profiles: &[&str],
) -> Result<Option<Recorded>, u8> {
    let Some(path) = &targets.journaling.resume else {
        return Ok(None);
    };
    if conn.simulate && download {
        return Err(fail(USAGE, SIMULATED_DOWNLOAD));
    }
    let recorded = Recorded::read(path).map_err(|e| {
        fail(
            USAGE,
            format!("cannot read the journal {}: {e}", path.display()),
        )
    })?;
    let parts = recorded.profiles();
    if parts.len() != profiles.len() || profiles.iter().any(|p| !parts.iter().any(|r| r == p)) {
        let list = |p: &[&str]| match p {
            [] => "one connection (no --profile, or one)".to_string(),
            _ => format!("the profiles {}", p.join(", ")),
        };
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        return Err(fail(
            USAGE,
            format!(
                "{} records a run of {}, not of {}; resume it as it was started, or start a new run without --resume",
                path.display(),
                list(&parts),
                list(profiles)
            ),
        ));
    }
    Ok(Some(recorded))
}

/// What the resumed journal recorded of `profile`'s part (nothing for a new run). A resume
/// continues the same run or is refused: another request, tenant, client, host or machine
/// set is named.
pub(crate) fn history(
    targets: &Targets,
    record: &RunRecord,
    (profile, recorded): (Option<&str>, Option<&Recorded>),
) -> Result<History, u8> {
    let (Some(path), Some(recorded)) = (&targets.journaling.resume, recorded) else {
        return Ok(History::default());
    };
    let history = recorded.history(profile);
    let Some(run) = &history.run else {
        return Err(fail(
            USAGE,
            format!(
                "{} records no run (its first line is not a run of this mde); start a new run without --resume",
                path.display()
            ),
        ));
    };
    let differences = run.differences(record);
    if !differences.is_empty() {
        return Err(fail(
            USAGE,
            format!(
                "{} records another run; resume it as it was started, or start a new run without --resume:\n  {}",
                path.display(),
                differences.join("\n  ")
            ),
        ));
    }
    Ok(history)
}

/// Why a simulated `--download` run cannot be resumed.
pub(crate) const SIMULATED_DOWNLOAD: &str = "a --simulate --download run cannot be resumed: its collections lived in the embedded simulator, which ended with the run; start it again without --resume";

/// The journal: the one resumed, or a new one (the one named, or one here with a name of
/// its own: milliseconds and the process id), created exclusively with the run's record
/// (each part's, in a run of several profiles).
fn open_journal(
    journaling: &crate::cli::Journaling,
    records: &[(Option<&str>, &RunRecord)],
) -> Result<(PathBuf, Journal), u8> {
    let cannot = |path: &std::path::Path, e: std::io::Error| {
        fail(
            LOCAL,
            format!(
                "cannot write the journal {}: {e}; nothing was sent",
                path.display()
            ),
        )
    };
    if let Some(path) = &journaling.resume {
        let journal = Journal::open(path).map_err(|e| cannot(path, e))?;
        eprintln!("mde: journal {} (resumed)", path.display());
        return Ok((path.clone(), journal));
    }
    let path = journaling.journal.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "mde-journal-{}-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        ))
    });
    let journal = Journal::create(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => fail(
            USAGE,
            format!(
                "the journal {} exists: resume its run with --resume {0}, or name a new file",
                path.display()
            ),
        ),
        _ => cannot(&path, e),
    })?;
    for (profile, record) in records {
        let entry = Entry::Run {
            run: (*record).clone(),
            at: crate::journal::now(),
        };
        let written = journal.of_profile(*profile).append(&entry);
        if let Err(e) = written.and_then(|()| journal.sync()) {
            // Nothing was sent: no journal of a run that never began is left behind.
            let _ = std::fs::remove_file(&path);
            return Err(cannot(&path, e));
        }
    }
    eprintln!("mde: journal {}", path.display());
    Ok((path, journal))
}

/// Opens the journal of a run and records the names each part resolved (the parts: their
/// profile, the machines they resolved and their record).
pub(crate) fn start_journal(
    targets: &Targets,
    parts: &[(Option<&str>, Option<&Selection>, &RunRecord)],
) -> Result<(PathBuf, Journal), u8> {
    let records: Vec<_> = parts.iter().map(|(p, _, r)| (*p, *r)).collect();
    let (path, journal) = open_journal(&targets.journaling, &records)?;
    for (profile, selection, _) in parts {
        if let Some(selection) = selection
            && let Err(e) = selection.record(&journal.of_profile(*profile))
        {
            if targets.journaling.resume.is_none() {
                let _ = std::fs::remove_file(&path);
            }
            return Err(fail(
                LOCAL,
                format!(
                    "cannot write the journal {}: {e}; nothing was sent",
                    path.display()
                ),
            ));
        }
    }
    Ok((path, journal))
}

/// The command line that resumes this run, quoted for the shell it runs in: the same, with
/// `--resume JOURNAL` for `--journal`, and secrets given as flags left out (the line says which
/// variable to set instead), so that it runs as pasted.
pub(crate) fn resume_command(
    args: Vec<String>,
    journal: &std::path::Path,
    resuming: bool,
) -> String {
    // Each secret flag, and the variable that gives the same.
    const SECRETS: [(&str, &str); 2] = [
        ("--token", "MDE_TOKEN"),
        ("--client-secret", "AZURE_CLIENT_SECRET"),
    ];
    let mut out: Vec<String> = Vec::new();
    let mut left_out: Vec<(&str, &str)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let secret = SECRETS
            .iter()
            .find(|(flag, _)| arg == *flag || arg.starts_with(&format!("{flag}=")));
        if let Some(&(flag, variable)) = secret {
            if arg == flag {
                args.next();
            }
            if !left_out.contains(&(flag, variable)) {
                left_out.push((flag, variable));
            }
        } else if arg == "--journal" && !resuming {
            args.next();
        } else if resuming || !arg.starts_with("--journal=") {
            out.push(arg);
        }
    }
    if !resuming {
        out.push("--resume".into());
        out.push(journal.display().to_string());
    }
    let mut line = out
        .iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ");
    for (flag, variable) in left_out {
        line.push_str(&format!(
            "\n  (with {variable} set: the secret given with {flag} is not repeated here)"
        ));
    }
    line
}

/// `arg` as the shell takes it back: POSIX quoting (`shlex`), PowerShell's on Windows.
fn shell_quote(arg: &str) -> String {
    #[cfg(windows)]
    {
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./\\:=@,+".contains(c));
        if plain {
            arg.to_string()
        } else {
            format!("'{}'", arg.replace('\'', "''"))
        }
    }
    #[cfg(not(windows))]
    {
        // Only a NUL cannot be quoted, and no argument holds one.
        shlex::try_quote(arg).map_or_else(|_| arg.replace('\0', ""), |q| q.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_command_keeps_no_secret_and_resumes_the_journal() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let journal = std::path::Path::new("j.jsonl");
        let resumed = resume_command(
            args(
                "mde --token T0KEN --client-secret=S3CRET --journal j.jsonl package collect a --comment c",
            ),
            journal,
            false,
        );
        assert_eq!(
            resumed,
            "mde package collect a --comment c --resume j.jsonl\n  (with MDE_TOKEN set: the secret given with --token is not repeated here)\n  (with AZURE_CLIENT_SECRET set: the secret given with --client-secret is not repeated here)"
        );
        assert!(!resumed.contains("T0KEN") && !resumed.contains("S3CRET"));
        let again = resume_command(
            args("mde package collect a --comment c --resume j.jsonl"),
            journal,
            true,
        );
        assert_eq!(again, "mde package collect a --comment c --resume j.jsonl");
        // Pasted back into the shell, each argument is one argument again.
        let spaced: Vec<String> = ["mde", "scan", "--comment", "interrupt me", "it's $HOME"]
            .map(String::from)
            .to_vec();
        let line = resume_command(spaced, journal, false);
        assert_eq!(
            shlex::split(&line).unwrap(),
            [
                "mde",
                "scan",
                "--comment",
                "interrupt me",
                "it's $HOME",
                "--resume",
                "j.jsonl"
            ]
        );
    }
}
