//! A run that saves evidence (`package collect --download`, `live --out`): each machine from
//! its request to verified evidence in the folder (a tenant's own folder in a run of several),
//! journaled at every stage, its progress on the bar or in a line every ten seconds.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use mde_client::WaitEvent;
use mde_client::operations::{self, OperationId};

use crate::cli::{Cli, Targets};
use crate::json::Lines;
use crate::pipeline::{self, Board, Evidence, Package};
use crate::session::{SIMULATED_DOWNLOAD, plan, resume_command, simulator, speed, stop_signal};
use crate::vocabulary::{self, Stage, USAGE, fail};
use crate::{fleet, output, tenants};

use super::parts::{self, Ending, ReadyPart, RunStart};

/// Each machine from the template's request (a collection, a live response session) to
/// verified evidence in the folder, journaled at every stage; `ensure`, a library script
/// uploaded first when the library lacks it.
pub(crate) async fn run(
    cli: &Cli,
    targets: &Targets,
    template: &operations::AnyRequest,
    settings: pipeline::Settings<'_>,
    ensure: Option<operations::UploadLibraryFile>,
) -> Result<u8, u8> {
    let op = template.operation();
    let evidence =
        Evidence::of(op).ok_or_else(|| fail(USAGE, format!("{op} saves no evidence")))?;
    let mut prepared = parts::prepare(cli, targets, template, Some(settings.dir))?;
    if targets.journaling.retry_failed {
        // A collection the service ended Failed or TimeOut: a new one is asked for.
        for history in &mut prepared.histories {
            for machine in std::mem::take(&mut history.collections_failed) {
                history.done.remove(&machine);
            }
        }
    }
    let several = prepared.several;
    let first = &prepared.parts[0];
    let (scale, simulate) = (prepared.scale, first.conn.simulate);
    let simulator = simulator(&first.conn, scale, &first.ids, &first.names).await?;
    // Each tenant's evidence in a folder of its own: DIR/PROFILE, with its own manifest.
    let folder_of = |profile: Option<&str>| match profile.filter(|_| several) {
        Some(profile) => settings.dir.join(profile),
        None => settings.dir.to_path_buf(),
    };
    let folders: Vec<PathBuf> = (prepared.parts.iter())
        .map(|p| folder_of(p.profile.as_deref()))
        .collect();
    let intent = (op, None, Some(evidence.link_operation()));
    // Waits for the limits are the pace here, not news: the bar's time left says them.
    let quiet = |_: Option<&str>| |_: &WaitEvent| {};
    let before = (|| make_folders(&folders), ensure);
    let begun = parts::begin(
        cli,
        targets,
        &prepared,
        simulator.as_ref(),
        quiet,
        intent,
        before,
    );
    let RunStart {
        going,
        stopped,
        path,
        journal,
    } = begun.await?;
    if let Some(code) = parts::found_nothing(targets, &going, &stopped) {
        return Ok(code);
    }
    let lines = Lines::of(cli.run.output).map(|l| l.with_tenant(prepared.named));
    show_unresolved(&going, lines.as_ref());
    let real = speed(&first.conn, scale);
    say_floor(evidence, op, &going, several, real);
    let started = Instant::now();
    let stages = Stages::new(&going, lines.as_ref(), real);
    let part = Part {
        targets,
        template,
        settings,
        journal: &journal,
        stages: &stages,
    };
    let part = &part;
    let reports = join_all(going.iter().enumerate().map(|(i, going)| {
        let dir = folder_of(going.profile());
        async move { part.run(i, going, &dir).await }
    }))
    .await;
    if let Some(bar) = &stages.bar {
        bar.finish_and_clear();
    }
    let ended = ended_parts(&going, reports, &stopped)?;
    let said = show_end(&ended, lines.as_ref(), started);
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    let endings: Vec<Ending<'_>> = ended.iter().map(ending).collect();
    let resume = match simulate {
        true => Err(SIMULATED_DOWNLOAD),
        false => {
            let resuming = targets.journaling.resume.is_some();
            Ok(resume_command(std::env::args().collect(), &path, resuming))
        }
    };
    let interrupted = "interrupted; every stage reached is journaled.";
    Ok(parts::finish(said, &endings, interrupted, resume))
}

/// Makes each evidence folder and probes it, before anything is sent: a folder that cannot
/// be written is found now, not after hours of collections.
fn make_folders(folders: &[PathBuf]) -> Result<(), u8> {
    for dir in folders {
        crate::evidence::folder(dir).map_err(|e| {
            fail(
                USAGE,
                format!("cannot make the folder {}: {e}", dir.display()),
            )
        })?;
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
}

/// Names that came to no single machine end here, as their own lines.
fn show_unresolved(going: &[ReadyPart<'_>], lines: Option<&Lines>) {
    for going in going {
        for outcome in &going.selection.unresolved {
            let outcome = vocabulary::Outcome {
                tenant: going.part.profile.clone(),
                ..outcome.clone()
            };
            match lines {
                Some(lines) => lines.write(&crate::json::outcome_line(&outcome)),
                None => eprintln!("{}", output::line(&outcome)),
            }
        }
    }
}

/// A part's end: its profile, its report, and whether its names all resolved.
type Ended<'a> = (Option<&'a str>, pipeline::EvidenceReport, bool);

/// How each part ended: its report (its packages named), and whether its names all resolved;
/// a part stopped before sending has every machine given not sent, the reason its error.
fn ended_parts<'a>(
    going: &'a [ReadyPart<'a>],
    reports: Vec<Result<pipeline::EvidenceReport, u8>>,
    stopped: &'a [(&'a tenants::Part, parts::Stopped)],
) -> Result<Vec<Ended<'a>>, u8> {
    let mut ended = Vec::new();
    for (going, report) in going.iter().zip(reports) {
        let mut report = report?;
        report.packages = report.packages.iter().map(|p| named(going, p)).collect();
        let resolved = going.selection.unresolved.is_empty();
        ended.push((going.profile(), report, resolved));
    }
    for (part, (_, why)) in stopped {
        let report = pipeline::EvidenceReport {
            fatal: Some(why.clone()),
            not_sent: part.given(),
            ..pipeline::EvidenceReport::default()
        };
        ended.push((part.profile.as_deref(), report, true));
    }
    Ok(ended)
}

/// Says the shortest the run can take at the documented limits: its longest part's, the
/// parts running at once, each at its own limits.
fn say_floor(
    evidence: Evidence,
    op: OperationId,
    going: &[ReadyPart<'_>],
    several: bool,
    real: f64,
) {
    let longest = going
        .iter()
        .map(|g| g.selection.machines.len())
        .max()
        .unwrap_or(0);
    let shortest = mde_client::minimum_duration(evidence.link_operation(), longest)
        .max(mde_client::minimum_duration(op, longest));
    // The limits as the spec states them (`x-rate-limit`).
    let (link, at) = (evidence.link_operation(), vocabulary::duration(shortest));
    let limits = match evidence {
        Evidence::Package => format!(
            "package(s) need at least {at} at {link}'s documented limits ({})",
            crate::selection::limits(link)
        ),
        Evidence::LiveResponse => format!(
            "session(s) need at least {at} at the documented limits ({op} {}, 50 running at once; result links {})",
            crate::selection::limits(op),
            crate::selection::limits(link)
        ),
    };
    let total: usize = going.iter().map(|g| g.selection.machines.len()).sum();
    let in_real = Duration::from_secs_f64(shortest.as_secs_f64() / real);
    eprintln!(
        "mde: {total} {}{}{}",
        limits,
        match several {
            true => format!(
                " (the largest of {} tenants' parts, each at its own limits)",
                going.len()
            ),
            false => String::new(),
        },
        match real == 1.0 {
            true => String::new(),
            false => format!("; {} here at time x{real}", vocabulary::duration(in_real)),
        }
    );
}

/// A package of `going`'s part, with its machine's name and its tenant.
fn named(going: &ReadyPart<'_>, package: &Package) -> Package {
    Package {
        name: going.selection.names.get(&package.machine).cloned(),
        tenant: going.part.profile.clone(),
        ..package.clone()
    }
}

/// What every part of an evidence run shares.
struct Part<'a> {
    targets: &'a Targets,
    template: &'a operations::AnyRequest,
    settings: pipeline::Settings<'a>,
    journal: &'a crate::journal::Journal,
    stages: &'a Stages<'a>,
}

impl Part<'_> {
    /// One tenant's part, the `i`th: its machines to verified evidence in `dir`.
    async fn run(
        &self,
        i: usize,
        going: &ReadyPart<'_>,
        dir: &Path,
    ) -> Result<pipeline::EvidenceReport, u8> {
        let journal = self.journal.of_profile(going.profile());
        let mut progress = |board: &Board, done: Option<&Package>| {
            self.stages.show(i, going, board, done);
        };
        let batch = fleet::Batch {
            plan: plan(self.targets, self.template),
            machines: going.selection.machines.clone(),
            journal: &journal,
            history: going.history.clone(),
        };
        let settings = pipeline::Settings {
            dir,
            ..self.settings
        };
        let report = pipeline::run(&going.client, batch, settings, &mut progress, stop_signal());
        report
            .await
            .map_err(|e| fail(USAGE, format!("cannot go on: {e}")))
    }
}

/// The stages of every part, shown as they move: on the bar, or a line every ten seconds
/// (the parts take turns); each machine's JSON or CSV line as it ends.
struct Stages<'a> {
    bar: Option<ProgressBar>,
    lines: Option<&'a Lines>,
    /// What each part has ended.
    ended: RefCell<Vec<u64>>,
    /// When a line last said the stages.
    last_line: Cell<Option<Instant>>,
    /// Simulated seconds per real second.
    real: f64,
}

impl<'a> Stages<'a> {
    fn new(going: &[ReadyPart<'_>], lines: Option<&'a Lines>, real: f64) -> Stages<'a> {
        let total: usize = going.iter().map(|g| g.selection.machines.len()).sum();
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
        Stages {
            bar,
            lines,
            ended: RefCell::new(vec![0; going.len()]),
            last_line: Cell::new(None),
            real,
        }
    }

    /// The `i`th part's board moved; `done`, a machine that reached its final stage.
    fn show(&self, i: usize, going: &ReadyPart<'_>, board: &Board, done: Option<&Package>) {
        if let Some(package) = done.map(|p| named(going, p)).as_ref() {
            if let Some(lines) = self.lines {
                lines.write(&package.line());
            }
            if self.bar.is_none() {
                eprintln!("{}", output::package_line(package));
            }
        }
        // A floor, not an estimate: the collections' own minutes are not documented.
        let left = Duration::from_secs_f64(board.shortest_left().as_secs_f64() / self.real);
        let text = format!(
            "{}{} · at least {} left",
            output::of_tenant(going.profile()),
            output::stages(board),
            vocabulary::duration(left)
        );
        self.ended.borrow_mut()[i] =
            (board.count(Stage::Saved) + board.count(Stage::Failed)) as u64;
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.ended.borrow().iter().sum());
                bar.set_message(text);
            }
            None => {
                let due =
                    (self.last_line.get()).is_none_or(|at| at.elapsed() >= Duration::from_secs(10));
                if due {
                    self.last_line.set(Some(Instant::now()));
                    eprintln!("mde: {text}");
                }
            }
        }
    }
}

/// Shows what the run saved: the tables (or the lines of the machines still on their way and
/// not sent to), and returns what [`parts::finish`] says after it.
fn show_end(
    ended: &[(Option<&str>, pipeline::EvidenceReport, bool)],
    lines: Option<&Lines>,
    started: Instant,
) -> (Vec<String>, Vec<String>, String) {
    let mut all = pipeline::EvidenceReport::default();
    for (profile, report, _) in ended {
        all.packages.extend(report.packages.iter().cloned());
        all.list_calls += report.list_calls;
        // The table and the summary show the tenant of every machine not sent to.
        all.not_sent
            .extend(report.not_sent.iter().map(|m| match profile {
                Some(profile) => format!("{profile},{m}"),
                None => m.clone(),
            }));
        if let Some(lines) = lines {
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
    (block, summaries, total)
}

/// How a part ended, for the exit code and what is said of it.
fn ending<'a>(
    (profile, report, resolved): &'a (Option<&'a str>, pipeline::EvidenceReport, bool),
) -> Ending<'a> {
    Ending {
        profile: *profile,
        fatal: report.fatal.as_deref(),
        unreachable: report.unreachable.as_deref(),
        local: report.local.as_deref(),
        interrupted: report.interrupted,
        all_ok: *resolved
            && report.not_sent.is_empty()
            && report.packages.iter().all(|p| p.stage == Stage::Saved),
        ..Ending::default()
    }
}
