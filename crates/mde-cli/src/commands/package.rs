//! `mde package download`, `mde package verify` and `mde package collect --download`: packages
//! from the service to a verified file with its chain-of-custody record.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use mde_client::operations::{self, OperationId};
use mde_client::{WaitEvent, types};

use crate::body_flags;
use crate::cli::{Cli, Targets};
use crate::json::{Line, Lines};
use crate::session::{
    SIMULATED_DOWNLOAD, connect, plan, resume_command, simulator, speed, stop_signal,
};
use crate::vocabulary::{self, AUTH, ErrorInfo, OK, PARTIAL, USAGE, code_of, error_text, fail};
use crate::{fleet, output, pipeline};

use super::parts::{self, Begun, Ending};

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
    let of_id = |outcome: &str, id: &str| Line {
        action_id: Some(id.to_string()),
        ..Line::new(outcome)
    };
    for id in ids {
        if let Some(record) = recorded.iter().rev().find(|r| r.action_id == *id) {
            match evidence::verify(out, record) {
                Ok(evidence::Verdict::Verified) => {
                    let line = Line {
                        machine: Some(record.machine.clone()),
                        name: record.name.clone(),
                        ..of_id("already_saved", id)
                    };
                    say(line.with("record", record), &record.file);
                    continue;
                }
                verdict => {
                    code = PARTIAL;
                    let why = format!(
                        "{} is recorded but not as recorded ({verdict:?}); not replaced",
                        record.file
                    );
                    let line = Line {
                        error: Some(ErrorInfo::new("recorded_differs", why.clone())),
                        ..of_id("failed", id)
                    };
                    say(line, &why);
                    continue;
                }
            }
        }
        let action = match client
            .send(operations::GetMachineAction { id: id.clone() })
            .await
        {
            Ok(action) => action,
            // What holds for every call ends the command.
            Err(e) if code_of(&e) == AUTH => return Err(fail(AUTH, error_text(&e))),
            Err(e) => {
                code = PARTIAL;
                let error = ErrorInfo::of(&e);
                let why = error.message.clone();
                say(
                    Line {
                        error: Some(error),
                        ..of_id("failed", id)
                    },
                    &why,
                );
                continue;
            }
        };
        if action.status != Some(types::MachineActionStatus::Succeeded) {
            code = PARTIAL;
            let status = action
                .status
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            say(
                Line::of_action("not_ready", &action),
                &format!("the collection is {status}"),
            );
            continue;
        }
        let machine = action.machine_id.clone().unwrap_or_default();
        let file = evidence::file_name(&machine, id);
        match client.download_package(id, None, &out.join(&file)).await {
            Ok(saved) => {
                let downloaded = client.clock().now_utc();
                let record =
                    evidence::Record::new(&action, &file, (saved.size, &saved.sha256), downloaded);
                evidence::append(out, &record).map_err(|e| {
                    fail(
                        USAGE,
                        format!("cannot write the manifest in {}: {e}", out.display()),
                    )
                })?;
                say(
                    Line::of_action("saved", &action).with("record", &record),
                    &format!("{file} {} bytes sha256 {}", saved.size, saved.sha256),
                );
            }
            Err(e) => {
                code = PARTIAL;
                let error = ErrorInfo::of(&e);
                let why = error.message.clone();
                say(
                    Line {
                        error: Some(error),
                        ..Line::of_action("failed", &action)
                    },
                    &why,
                );
            }
        }
    }
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(code)
}

/// `mde package verify`: every record's file re-hashed, every line of the manifest read,
/// every file of the folder accounted for; exit 0 only when all is as recorded.
pub(crate) fn verify(cli: &Cli, dir: &std::path::Path) -> Result<u8, u8> {
    use crate::evidence::{self, Verdict};
    let cannot = |e: std::io::Error| {
        fail(
            PARTIAL,
            format!("cannot read the evidence folder {}: {e}", dir.display()),
        )
    };
    let manifest = evidence::manifest(dir).map_err(cannot)?;
    if !manifest.exists {
        // A run of several profiles keeps each tenant's evidence in a folder of its own.
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
        return Err(fail(
            PARTIAL,
            format!("no {} in {}{hint}", evidence::MANIFEST, dir.display()),
        ));
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
        let action = Some(record);
        match evidence::verify(dir, record) {
            Ok(Verdict::Verified) => {
                count("verified");
                say("verified", &record.file, action, String::new());
            }
            Ok(Verdict::Missing) => {
                count("missing");
                say("missing", &record.file, action, String::new());
            }
            Ok(Verdict::Mismatch { size, sha256 }) => {
                count("changed");
                let detail = format!(
                    " ({size} bytes, sha256 {sha256}; recorded {} bytes, sha256 {})",
                    record.size, record.sha256
                );
                say("changed", &record.file, action, detail);
            }
            Err(e) => {
                count("unreadable");
                say("unreadable", &record.file, action, format!(" ({e})"));
            }
        }
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

/// `mde package collect --download`: each machine from its collection to a verified package
/// in the evidence folder, journaled at every stage.
pub(crate) async fn collect_download(
    cli: &Cli,
    targets: &Targets,
    settings: pipeline::Settings<'_>,
) -> Result<u8, u8> {
    let op = OperationId::CollectInvestigationPackage;
    let template = body_flags::template(op, &cli.body).map_err(|e| fail(USAGE, e))?;
    save_evidence(cli, targets, &template, settings, None).await
}

/// Each machine from the template's request (a collection, a live response session) to
/// verified evidence in the folder, journaled at every stage; `ensure`, a library script
/// uploaded first when the library lacks it.
pub(crate) async fn save_evidence(
    cli: &Cli,
    targets: &Targets,
    template: &operations::AnyRequest,
    settings: pipeline::Settings<'_>,
    ensure: Option<operations::UploadLibraryFile>,
) -> Result<u8, u8> {
    let op = template.operation();
    let evidence =
        pipeline::Evidence::of(op).ok_or_else(|| fail(USAGE, format!("{op} saves no evidence")))?;
    let template = template.clone();
    let mut prepared = parts::prepare(cli, targets, &template, Some(settings.dir))?;
    if targets.journaling.retry_failed {
        // A collection the service ended Failed or TimeOut: a new one is asked for.
        for history in &mut prepared.histories {
            for machine in std::mem::take(&mut history.collections_failed) {
                history.done.remove(&machine);
            }
        }
    }
    let (several, named) = (prepared.several, prepared.named);
    let first = &prepared.parts[0];
    let (scale, simulate) = (prepared.scale, first.conn.simulate);
    let simulator = simulator(&first.conn, scale, &first.ids, &first.names).await?;
    // Each tenant's evidence in a folder of its own: DIR/PROFILE, with its own manifest.
    let folder_of = |profile: Option<&str>| match profile.filter(|_| several) {
        Some(profile) => settings.dir.join(profile),
        None => settings.dir.to_path_buf(),
    };
    let folders: Vec<std::path::PathBuf> = prepared
        .parts
        .iter()
        .map(|p| folder_of(p.profile.as_deref()))
        .collect();
    let make_folders = || {
        for dir in &folders {
            crate::evidence::folder(dir).map_err(|e| {
                fail(
                    USAGE,
                    format!("cannot make the folder {}: {e}", dir.display()),
                )
            })?;
            // Found now, not after hours of collections.
            match crate::evidence::probe(dir) {
                Ok(warning) => warning.iter().for_each(|w| eprintln!("warning: {w}")),
                Err(e) => {
                    return Err(fail(
                        USAGE,
                        format!(
                            "cannot write packages in {}: {e}; nothing was sent",
                            dir.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    };
    let intent = (op, None, Some(evidence.link_operation()));
    // Waits for the limits are the pace here, not news: the bar's time left says them.
    let quiet = |_: Option<&str>| |_: &WaitEvent| {};
    let begun = parts::begin(
        cli,
        targets,
        &prepared,
        simulator.as_ref(),
        quiet,
        intent,
        (make_folders, ensure),
    )
    .await?;
    let Begun {
        going,
        stopped,
        path,
        journal,
    } = begun;
    // Names that came to no single machine end here, as their own lines.
    let lines = Lines::of(cli.run.output).map(|l| l.with_tenant(named));
    for going in &going {
        for outcome in &going.selection.unresolved {
            let outcome = vocabulary::Outcome {
                tenant: going.part.profile.clone(),
                ..outcome.clone()
            };
            match &lines {
                Some(lines) => lines.write(&crate::json::outcome_line(&outcome)),
                None => eprintln!("{}", output::line(&outcome)),
            }
        }
    }
    let real = speed(&first.conn, scale);
    let in_real = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / real);
    // The parts run at once, each at its own limits: the longest sets the run's floor.
    let longest = going
        .iter()
        .map(|g| g.selection.machines.len())
        .max()
        .unwrap_or(0);
    let shortest = mde_client::minimum_duration(evidence.link_operation(), longest)
        .max(mde_client::minimum_duration(op, longest));
    let limits = match evidence {
        pipeline::Evidence::Package => {
            "package(s) need at least {} at getPackageUri's documented limits (2 a minute, 120 an hour)"
        }
        pipeline::Evidence::LiveResponse => {
            "session(s) need at least {} at the documented limits (runLiveResponse 10 a minute, 50 running at once; result links 100 a minute)"
        }
    };
    let total: usize = going.iter().map(|g| g.selection.machines.len()).sum();
    eprintln!(
        "mde: {total} {}{}{}",
        limits.replace("{}", &vocabulary::duration(shortest)),
        if several {
            format!(
                " (the largest of {} tenants' parts, each at its own limits)",
                going.len()
            )
        } else {
            String::new()
        },
        if real == 1.0 {
            String::new()
        } else {
            format!(
                "; {} here at time x{real}",
                vocabulary::duration(in_real(shortest))
            )
        }
    );

    let bar = (std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
                .expect("a valid template"),
        );
        // Moves every second, whatever the wait between two looks.
        bar.enable_steady_tick(Duration::from_secs(1));
        bar
    });
    let started = std::time::Instant::now();
    // What each part has ended, and when a line last said the stages: the parts take turns.
    let ended = std::cell::RefCell::new(vec![0u64; going.len()]);
    let last_line = std::cell::Cell::new(None::<std::time::Instant>);
    let named = |going: &parts::Going<'_>, package: &pipeline::Package| pipeline::Package {
        name: going.selection.names.get(&package.machine).cloned(),
        tenant: going.part.profile.clone(),
        ..package.clone()
    };
    let reports = join_all(going.iter().enumerate().map(|(i, going)| {
        let (ended, last_line, lines, bar) = (&ended, &last_line, &lines, &bar);
        let journal = journal.of_profile(going.profile());
        let dir = folder_of(going.profile());
        let template = &template;
        async move {
            let mut progress = |board: &pipeline::Board, done: Option<&pipeline::Package>| {
                if let Some(package) = done.map(|p| named(going, p)).as_ref() {
                    if let Some(lines) = lines {
                        lines.write(&package.line());
                    }
                    if bar.is_none() {
                        eprintln!("{}", output::package_line(package));
                    }
                }
                // A floor, not an estimate: the collections' own minutes are not documented.
                let left = vocabulary::duration(in_real(board.shortest_left()));
                let text = format!(
                    "{}{} · at least {left} left",
                    output::of_tenant(going.profile()),
                    output::stages(board)
                );
                ended.borrow_mut()[i] = (board.count(vocabulary::Stage::Saved)
                    + board.count(vocabulary::Stage::Failed))
                    as u64;
                match bar {
                    Some(bar) => {
                        bar.set_position(ended.borrow().iter().sum());
                        bar.set_message(text);
                    }
                    None => {
                        if last_line
                            .get()
                            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
                        {
                            last_line.set(Some(std::time::Instant::now()));
                            eprintln!("mde: {text}");
                        }
                    }
                }
            };
            let batch = fleet::Batch {
                plan: plan(targets, template),
                machines: going.selection.machines.clone(),
                journal: &journal,
                history: going.history.clone(),
            };
            let settings = pipeline::Settings {
                dir: &dir,
                ..settings
            };
            let report =
                pipeline::run(&going.client, batch, settings, &mut progress, stop_signal()).await;
            report.map_err(|e| fail(USAGE, format!("cannot go on: {e}")))
        }
    }))
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut all = pipeline::Report::default();
    let mut ended: Vec<(Option<&str>, pipeline::Report, bool)> = Vec::new();
    for (going, report) in going.iter().zip(reports) {
        let mut report = report?;
        report.packages = report.packages.iter().map(|p| named(going, p)).collect();
        let resolved = going.selection.unresolved.is_empty();
        ended.push((going.profile(), report, resolved));
    }
    // A part stopped before sending: every machine given not sent, the reason its error.
    for (part, (_, why)) in &stopped {
        let report = pipeline::Report {
            fatal: Some(why.clone()),
            not_sent: part.given(),
            ..pipeline::Report::default()
        };
        ended.push((part.profile.as_deref(), report, true));
    }
    for (profile, report, _) in &ended {
        all.packages.extend(report.packages.iter().cloned());
        all.list_calls += report.list_calls;
        // The table and the summary show the tenant of every machine not sent to.
        all.not_sent
            .extend(report.not_sent.iter().map(|m| match profile {
                Some(profile) => format!("{profile},{m}"),
                None => m.clone(),
            }));
        if let Some(lines) = &lines {
            // Those still on their way when the run stopped (a signal, a local fault): a line
            // each, as the table has; the final ones were written as they ended.
            for package in report.packages.iter().filter(|p| !p.stage.is_final()) {
                lines.write(&package.line());
            }
            for machine in &report.not_sent {
                let line = crate::json::not_sent_line(machine).with_some("tenant", *profile);
                lines.write(&line);
            }
        }
    }
    if lines.is_none() {
        let mut stdout = std::io::stdout().lock();
        let _ = output::packages_table(&all, &mut stdout)
            .and_then(|()| output::commands_table(&all, &mut stdout))
            .and_then(|()| stdout.flush());
    }
    let block = output::error_block(
        all.packages
            .iter()
            .filter_map(|p| Some((p.machine.as_str(), p.error.as_ref()?.message.as_str()))),
    );
    let summaries = ended
        .iter()
        .map(|(profile, report, _)| {
            format!(
                "{}{}",
                output::of_tenant(*profile),
                output::packages_summary(report)
            )
        })
        .collect();
    let total = format!(
        "{} in {:.1} s; {} listMachineActions call(s) followed them",
        output::packages_summary(&all),
        started.elapsed().as_secs_f64(),
        all.list_calls
    );
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    let endings: Vec<Ending<'_>> = ended
        .iter()
        .map(|(profile, report, resolved)| Ending {
            profile: *profile,
            fatal: report.fatal.as_deref(),
            unreachable: report.unreachable.as_deref(),
            local: report.local.as_deref(),
            interrupted: report.interrupted,
            all_ok: *resolved
                && report.not_sent.is_empty()
                && report
                    .packages
                    .iter()
                    .all(|p| p.stage == vocabulary::Stage::Saved),
            ..Ending::default()
        })
        .collect();
    let resume = match simulate {
        true => Err(SIMULATED_DOWNLOAD),
        false => Ok(resume_command(
            std::env::args().collect(),
            &path,
            targets.journaling.resume.is_some(),
        )),
    };
    Ok(parts::finish(
        (block, summaries, total),
        &endings,
        "interrupted; every stage reached is journaled.",
        resume,
    ))
}
