//! `mde package download`, `mde package verify` and `mde package collect --download`: packages
//! from the service to a verified file with its chain-of-custody record.

use std::io::Write;

use mde_client::operations::{self, OperationId};
use mde_client::types;

use crate::body_flags;
use crate::cli::{Cli, Targets};
use crate::json::{Line, Lines};
use crate::pipeline;
use crate::session::connect;
use crate::vocabulary::{AUTH, ErrorInfo, OK, PARTIAL, USAGE, code_of, error_text, fail};

/// `mde package download`: each completed collection's package, saved, verified and recorded
/// in the folder's manifest; one already recorded and still verified is not fetched again.
pub(crate) async fn download(cli: &Cli, ids: &[String], out: &std::path::Path) -> Result<u8, u8> {
    use crate::evidence;
    let (simulator, client) = connect(cli, &[]).await?;
    evidence::folder(out).map_err(|e| {
        fail(
            USAGE,
            format!("cannot make the folder {}: {e}", out.display()),
        )
    })?;
    let recorded = evidence::read(out).map_err(|e| {
        fail(
            USAGE,
            format!("cannot read the manifest in {}: {e}", out.display()),
        )
    })?;
    let mut code = OK;
    let lines = Lines::of(cli.run.output);
    let say = |line: Line, detail: &str| match &lines {
        Some(lines) => lines.write(&line),
        None => println!(
            "{:<36}  {:<13}  {}",
            crate::vocabulary::escape(line.action_id.as_deref().unwrap_or_default()),
            line.outcome,
            crate::vocabulary::escape(detail)
        ),
    };
    for id in ids {
        let (line, detail, ok) = match recorded.iter().rev().find(|r| r.action_id == *id) {
            Some(record) => recorded_again(out, record, id),
            None => fetch(&client, out, id).await?,
        };
        if !ok {
            code = PARTIAL;
        }
        say(line, &detail);
    }
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(code)
}

/// What one line of `package download` says: its line, its detail, and whether it went well.
type Said = (Line, String, bool);

/// A line of `package download` for the action `id`.
fn of_id(outcome: &str, id: &str) -> Line {
    Line {
        action_id: Some(id.to_string()),
        ..Line::new(outcome)
    }
}

/// An action the manifest records already: not fetched again, whether it still verifies or
/// not (a file that differs is never replaced).
fn recorded_again(out: &std::path::Path, record: &crate::evidence::Record, id: &str) -> Said {
    match crate::evidence::verify(out, record) {
        Ok(crate::evidence::Verdict::Verified) => {
            let line = Line {
                machine: Some(record.machine.clone()),
                name: record.name.clone(),
                ..of_id("already_saved", id)
            };
            (line.with("record", record), record.file.clone(), true)
        }
        verdict => {
            let why = format!(
                "{} is recorded but not as recorded ({verdict:?}); not replaced",
                record.file
            );
            let line = Line {
                error: Some(ErrorInfo::new("recorded_differs", why.clone())),
                ..of_id("failed", id)
            };
            (line, why, false)
        }
    }
}

/// The action `id`, read, then its package saved and recorded when it is complete; `Err` when
/// what went wrong holds for every call (sign-in, permission) or the manifest cannot be
/// written.
async fn fetch(client: &mde_client::Client, out: &std::path::Path, id: &str) -> Result<Said, u8> {
    use crate::evidence;
    let failed = |line: Line, error: ErrorInfo| {
        let why = error.message.clone();
        (
            Line {
                error: Some(error),
                ..line
            },
            why,
            false,
        )
    };
    let action = match client
        .send(operations::GetMachineAction { id: id.to_string() })
        .await
    {
        Ok(action) => action,
        Err(e) if code_of(&e) == AUTH => return Err(fail(AUTH, error_text(&e))),
        Err(e) => return Ok(failed(of_id("failed", id), ErrorInfo::of(&e))),
    };
    if action.status != Some(types::MachineActionStatus::Succeeded) {
        let status = action
            .status
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let why = format!("the collection is {status}");
        return Ok((Line::of_action("not_ready", &action), why, false));
    }
    let machine = action.machine_id.clone().unwrap_or_default();
    let file = evidence::file_name(&machine, id);
    let saved = match client.download_package(id, None, &out.join(&file)).await {
        Ok(saved) => saved,
        Err(e) => {
            return Ok(failed(
                Line::of_action("failed", &action),
                ErrorInfo::of(&e),
            ));
        }
    };
    let downloaded = client.clock().now_utc();
    let record = evidence::Record::new(&action, &file, (saved.size, &saved.sha256), downloaded);
    evidence::append(out, &record).map_err(|e| {
        let why = format!("cannot write the manifest in {}: {e}", out.display());
        fail(USAGE, why)
    })?;
    let detail = format!("{file} {} bytes sha256 {}", saved.size, saved.sha256);
    Ok((
        Line::of_action("saved", &action).with("record", &record),
        detail,
        true,
    ))
}

/// `mde package verify`: every record's file re-hashed, every line of the manifest read,
/// every file of the folder accounted for; exit 0 only when all is as recorded.
pub(crate) fn verify(cli: &Cli, dir: &std::path::Path) -> Result<u8, u8> {
    use crate::evidence;
    let cannot = |e: std::io::Error| {
        fail(
            PARTIAL,
            format!("cannot read the evidence folder {}: {e}", dir.display()),
        )
    };
    let manifest = evidence::manifest(dir).map_err(cannot)?;
    if !manifest.exists {
        return Err(no_manifest(dir));
    }
    if manifest.torn_last {
        eprintln!(
            "warning: the last line of {} was cut short (a crash while it was written); its package is not recorded",
            evidence::MANIFEST
        );
    }
    let mut stdout = std::io::stdout().lock();
    let lines = Lines::of(cli.run.output);
    let mut say = |verdict: &str, file: &str, record: Option<&evidence::Record>, detail: String| {
        if let Some(lines) = &lines {
            let error = (verdict != "verified")
                .then(|| ErrorInfo::new(verdict, format!("{file}{detail}").trim().to_string()));
            let line = Line {
                machine: record.map(|r| r.machine.clone()),
                name: record.and_then(|r| r.name.clone()),
                action_id: record.map(|r| r.action_id.clone()),
                error,
                ..Line::new(verdict)
            };
            lines.write(&line.with("file", file));
        } else {
            // What needs a look stands out in capitals.
            let shown = match verdict {
                "verified" => verdict.to_string(),
                _ => verdict.to_uppercase(),
            };
            let line = format!("{shown:<11} {}{detail}", crate::vocabulary::escape(file));
            let _ = writeln!(stdout, "{line}");
        }
    };
    let mut counts: Vec<(&str, usize)> =
        ["verified", "changed", "missing", "unreadable", "unrecorded"]
            .map(|v| (v, 0))
            .to_vec();
    let mut count = |verdict: &str| {
        if let Some((_, n)) = counts.iter_mut().find(|(v, _)| *v == verdict) {
            *n += 1;
        }
    };
    for record in &manifest.records {
        let (verdict, detail) = verdict(dir, record);
        count(verdict);
        say(verdict, &record.file, Some(record), detail);
    }
    let unreadable_lines = manifest.unreadable.len();
    for (line, start) in &manifest.unreadable {
        let detail = format!(
            " line {line} is not a record: {}",
            crate::vocabulary::escape(start)
        );
        say("unreadable", evidence::MANIFEST, None, detail);
    }
    for file in evidence::unrecorded(dir, &manifest.records).map_err(cannot)? {
        count("unrecorded");
        say("unrecorded", &file, None, " (not in the manifest)".into());
    }
    let _ = stdout.flush();
    let mut summary: Vec<String> = counts
        .iter()
        .filter(|(v, n)| *n > 0 || *v == "verified")
        .map(|(v, n)| format!("{n} {v}"))
        .collect();
    if unreadable_lines > 0 {
        summary.push(format!("{unreadable_lines} unreadable line(s)"));
    }
    if manifest.records.is_empty() && unreadable_lines == 0 {
        summary.push(format!(
            "{} is empty: no package recorded",
            evidence::MANIFEST
        ));
    }
    eprintln!("mde: {}", summary.join(", "));
    let all_verified = counts.iter().all(|(v, n)| *v == "verified" || *n == 0)
        && unreadable_lines == 0
        && !manifest.records.is_empty();
    Ok(if all_verified { OK } else { PARTIAL })
}

/// The end of `mde package verify` on a folder without a manifest; a run of several profiles
/// keeps each tenant's evidence in a folder of its own, named then.
fn no_manifest(dir: &std::path::Path) -> u8 {
    use crate::evidence;
    let mut tenants: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(evidence::MANIFEST).is_file())
        .map(|e| e.path().display().to_string())
        .collect();
    tenants.sort();
    let hint = match &tenants[..] {
        [] => String::new(),
        _ => format!(
            "; each tenant's folder has its own, verify each: {}",
            tenants.join(", ")
        ),
    };
    fail(
        PARTIAL,
        format!("no {} in {}{hint}", evidence::MANIFEST, dir.display()),
    )
}

/// A record's verdict (`verified`, `missing`, `changed`, `unreadable`) and what to add to it.
fn verdict(dir: &std::path::Path, record: &crate::evidence::Record) -> (&'static str, String) {
    use crate::evidence::Verdict;
    match crate::evidence::verify(dir, record) {
        Ok(Verdict::Verified) => ("verified", String::new()),
        Ok(Verdict::Missing) => ("missing", String::new()),
        Ok(Verdict::Mismatch { size, sha256 }) => (
            "changed",
            format!(
                " ({size} bytes, sha256 {sha256}; recorded {} bytes, sha256 {})",
                record.size, record.sha256
            ),
        ),
        Err(e) => ("unreadable", format!(" ({e})")),
    }
}

/// `mde package collect --download`: each machine from its collection to a verified package
/// in the evidence folder, journaled at every stage.
pub(crate) async fn collect_download(
    cli: &Cli,
    targets: &Targets,
    settings: pipeline::Settings<'_>,
) -> Result<u8, u8> {
    let op = OperationId::CollectInvestigationPackage;
    let template = body_flags::template(op, &cli.body).map_err(|e| fail(USAGE, e))?;
    super::evidence_run::run(cli, targets, &template, settings, None).await
}
