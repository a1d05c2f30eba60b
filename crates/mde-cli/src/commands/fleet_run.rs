//! The action commands (`scan`, `package collect`, `investigation`, `action cancel`, the
//! containment and remediation actions, `tag`, `live`): one operation sent to every machine,
//! journaled, and with `--wait` followed to the end.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mde_client::operations::AnyRequest;
use mde_client::{WaitEvent, WaitReason};

use crate::cli::{Cli, Targets};
use crate::fleet::{self, FleetEvent};
use crate::json::{Lines, outcome_line};
use crate::output;
use crate::session::{plan, resume_command, simulator, speed, stop_signal};
use crate::vocabulary::{self, Kind, Outcome};
use crate::wait::{EndedEarly, Waited};

use super::parts::{self, Ending, ReadyPart, RunStart};

/// Sends the template to every machine of `targets`, each with its id, journaled, and
/// reports; with `wait`, follows every action to its final status, looking every `wait`.
/// `ensure`: a library script uploaded first, when the library lacks it (not in a dry run).
/// With several profiles, each tenant's part runs at once with its own client and rate
/// budget; one that cannot sign in, or is refused permission, stops alone.
pub(crate) async fn run(
    cli: &Cli,
    template: &AnyRequest,
    targets: &Targets,
    wait: Option<Duration>,
    ensure: Option<mde_client::operations::UploadLibraryFile>,
) -> Result<u8, u8> {
    let op = template.operation();
    let prepared = parts::prepare(cli, targets, template, None)?;
    let first = &prepared.parts[0];
    let simulator = simulator(&first.conn, prepared.scale, &first.ids, &first.names).await?;
    let pacing = Pacing::new(speed(&first.conn, prepared.scale));
    let on_wait = |profile: Option<&str>| pacing.on_wait(profile);
    let intent = (op, detail(template), None);
    let before = (|| Ok(()), ensure);
    let begun = parts::begin(
        cli,
        targets,
        &prepared,
        simulator.as_ref(),
        on_wait,
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
    let needed = going.iter().map(|g| g.selection.machines.len()).max();
    let _ = pacing
        .needed
        .set(mde_client::minimum_duration(op, needed.unwrap_or(0)));

    let started = Instant::now();
    let lines = Lines::of(cli.run.output).map(|l| l.with_tenant(prepared.named));
    let sink = Sink {
        lines: lines.as_ref(),
        live: lines.is_some() && wait.is_none(),
        bar: pacing.bar.as_ref(),
    };
    for going in &going {
        let selection = &going.selection;
        for outcome in selection.cancelled.iter().chain(&selection.unresolved) {
            sink.line(&labelled(going, outcome));
        }
    }
    let part = Part {
        targets,
        template,
        wait,
        journal: &journal,
        sink: &sink,
    };
    let ran = join_all(going.iter().map(|going| part.run(going))).await;
    if let Some(bar) = &pacing.bar {
        bar.finish_and_clear();
    }
    let mut ended: Vec<(Option<&str>, fleet::FleetReport, Option<Waited>)> = going
        .iter()
        .zip(ran)
        .map(|(going, (report, waited))| (going.profile(), report, waited))
        .collect();
    // A part stopped before sending: every machine given not sent, the reason its error.
    for (part, (_, why)) in &stopped {
        let report = fleet::FleetReport {
            fatal: Some(why.clone()),
            not_sent: part.given(),
            ..fleet::FleetReport::default()
        };
        ended.push((part.profile.as_deref(), report, None));
    }
    let (block, summaries, total) = show_end(&ended, lines.as_ref(), started);
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    let endings: Vec<Ending<'_>> = ended.iter().map(ending).collect();
    let resuming = targets.journaling.resume.is_some();
    let resume = resume_command(std::env::args().collect(), &path, resuming);
    Ok(parts::finish(
        (block, summaries, total),
        &endings,
        "interrupted; the requests in flight were answered and journaled.",
        Ok(resume),
    ))
}

/// What every part of a run shares: what it sends, how it waits, where it is journaled and
/// where its lines go.
struct Part<'a> {
    targets: &'a Targets,
    template: &'a AnyRequest,
    wait: Option<Duration>,
    journal: &'a crate::journal::Journal,
    sink: &'a Sink<'a>,
}

impl Part<'_> {
    /// One tenant's part: its requests sent, then (with `--wait`) its actions followed; every
    /// machine's line written whatever ended the wait.
    async fn run(&self, going: &ReadyPart<'_>) -> (fleet::FleetReport, Option<Waited>) {
        let journal = self.journal.of_profile(going.profile());
        let mut progress = |event: FleetEvent<'_>| {
            let labelled = |o: &Outcome| labelled(going, o);
            match event {
                FleetEvent::Start(n) => self.sink.event(going, FleetEvent::Start(n)),
                FleetEvent::Done(o) => self.sink.event(going, FleetEvent::Done(&labelled(o))),
                FleetEvent::Earlier(o) => self.sink.event(going, FleetEvent::Earlier(&labelled(o))),
            }
        };
        let batch = fleet::Batch {
            plan: plan(self.targets, self.template),
            machines: going.selection.machines.clone(),
            journal: &journal,
            history: going.history.clone(),
        };
        let mut report = fleet::run(&going.client, batch, &mut progress, stop_signal()).await;
        let stopped = report.fatal.is_some()
            || report.unreachable.is_some()
            || report.local.is_some()
            || !report.not_sent.is_empty();
        // The machines whose line is out: with --wait, each as its action ends.
        let mut printed = std::collections::HashSet::new();
        let mut waited = None;
        if let Some(interval) = self.wait.filter(|_| !stopped) {
            eprintln!(
                "mde: {}following the actions to their final status: one listMachineActions call every {}",
                output::of_tenant(going.profile()),
                vocabulary::duration(interval)
            );
            let mut ended = |outcome: &Outcome| {
                printed.insert(outcome.machine.clone());
                self.sink.ended(&labelled(going, outcome));
            };
            let op = self.template.operation();
            let follow = crate::wait::follow(
                &going.client,
                op,
                &mut report,
                interval,
                &mut ended,
                stop_signal(),
            );
            waited = Some(follow.await);
        }
        // Every machine's line, whatever ended the wait (or kept it from starting).
        if self.wait.is_some() {
            for outcome in report
                .outcomes
                .iter()
                .filter(|o| !printed.contains(&o.machine))
            {
                self.sink.line(&labelled(going, outcome));
            }
        }
        let selection = &going.selection;
        report.outcomes = (report.outcomes.iter())
            .chain(&selection.unresolved)
            .chain(&selection.cancelled)
            .map(|o| labelled(going, o))
            .collect();
        (report, waited)
    }
}

/// Where a run's lines go: JSON lines or CSV rows on stdout as each machine ends (with
/// `--wait`, as its action ends), so that a pipe sees them live; progress on stderr, or on
/// the bar.
struct Sink<'a> {
    lines: Option<&'a Lines>,
    /// Lines go out as each request ends (no `--wait`).
    live: bool,
    bar: Option<&'a ProgressBar>,
}

impl Sink<'_> {
    /// A machine's line, in JSON or CSV.
    fn line(&self, outcome: &Outcome) {
        if let Some(lines) = self.lines {
            lines.write(&outcome_line(outcome));
        }
    }

    /// A followed machine's end: its line, or a progress line.
    fn ended(&self, outcome: &Outcome) {
        match self.lines {
            Some(_) => self.line(outcome),
            None => eprintln!("{}", output::line(outcome)),
        }
    }

    /// The parts' events, one at a time: the bar counts every part's machines.
    fn event(&self, going: &ReadyPart<'_>, event: FleetEvent<'_>) {
        match (event, self.bar) {
            (FleetEvent::Earlier(outcome), _) => {
                if self.live {
                    self.line(outcome);
                }
            }
            (FleetEvent::Start(n), Some(bar)) => {
                bar.inc_length(n as u64);
                bar.set_draw_target(ProgressDrawTarget::stderr());
                // Ticks every second, so that a wait for the limits counts down.
                bar.enable_steady_tick(Duration::from_secs(1));
            }
            (FleetEvent::Start(n), None) => {
                let total = going.selection.machines.len();
                if n < total {
                    eprintln!(
                        "mde: {}{} of {total} machines already done by the journal; sending to {n}",
                        output::of_tenant(going.profile()),
                        total - n
                    );
                }
            }
            (FleetEvent::Done(outcome), bar) => {
                if self.live {
                    self.line(outcome);
                }
                match bar {
                    Some(bar) => bar.inc(1),
                    None => eprintln!("{}", output::line(outcome)),
                }
            }
        }
    }
}

/// Shows what the run did: the table (or the lines of the machines not sent to), and returns
/// what [`parts::finish`] says after it: the distinct errors, each tenant's summary in a run of
/// several, and the run's.
fn show_end(
    ended: &[(Option<&str>, fleet::FleetReport, Option<Waited>)],
    lines: Option<&Lines>,
    started: Instant,
) -> (Vec<String>, Vec<String>, String) {
    let mut all = fleet::FleetReport::default();
    for (profile, report, _) in ended {
        all.outcomes.extend(report.outcomes.iter().cloned());
        match profile {
            // The table and the summary show the tenant of every machine not sent to.
            Some(_) => {
                let not_sent = report
                    .not_sent
                    .iter()
                    .map(|m| not_sent(*profile, m, report));
                all.outcomes.extend(not_sent);
            }
            None => all.not_sent.extend(report.not_sent.iter().cloned()),
        }
        if let Some(lines) = lines {
            for machine in &report.not_sent {
                lines.write(&outcome_line(&not_sent(*profile, machine, report)));
            }
        }
    }
    if lines.is_none() {
        let mut stdout = std::io::stdout().lock();
        let _ = output::table(&all, &mut stdout).and_then(|()| stdout.flush());
    }
    let done = |o: &&Outcome| {
        !matches!(o.kind, Kind::Accepted | Kind::Succeeded) && !o.kind.is_done_before()
    };
    let block = output::error_block(
        (all.outcomes.iter().filter(done))
            .filter_map(|o| Some((o.machine.as_str(), o.error.as_ref()?.message.as_str()))),
    );
    let summaries = ended
        .iter()
        .map(|(profile, report, _)| {
            format!("{}{}", output::of_tenant(*profile), output::summary(report))
        })
        .collect();
    let waited: Vec<&Waited> = ended.iter().filter_map(|(_, _, w)| w.as_ref()).collect();
    let calls: usize = waited.iter().map(|w| w.list_calls).sum();
    let total = format!(
        "{} in {:.1} s{}",
        output::summary(&all),
        started.elapsed().as_secs_f64(),
        match waited.is_empty() {
            true => String::new(),
            false => format!("; {calls} listMachineActions call(s) followed the actions"),
        }
    );
    (block, summaries, total)
}

/// How a part ended, for the exit code and what is said of it.
fn ending<'a>(
    (profile, report, waited): &'a (Option<&'a str>, fleet::FleetReport, Option<Waited>),
) -> Ending<'a> {
    let early = waited
        .as_ref()
        .and_then(|w| Some((w.ended_early.as_ref()?, &w.left[..])));
    // Followed, a machine is done when its action succeeded; else when it was accepted.
    let ok = match waited {
        Some(_) => Kind::Succeeded,
        None => Kind::Accepted,
    };
    Ending {
        profile: *profile,
        fatal: report.fatal.as_deref(),
        unreachable: report.unreachable.as_deref(),
        local: report.local.as_deref(),
        interrupted: !report.not_sent.is_empty(),
        following: match early {
            Some((EndedEarly::Stopped, left)) => Some(left),
            _ => None,
        },
        lost: match early {
            Some((EndedEarly::Lost(why), left)) => Some((why.as_str(), left)),
            _ => None,
        },
        all_ok: report.not_sent.is_empty()
            && (report.outcomes.iter()).all(|o| o.kind == ok || o.kind.is_done_before()),
    }
}

/// How a run paces itself where people see it: the bar (on a terminal) counting the
/// machines and down the current wait, or a line for each wait worth one.
struct Pacing {
    bar: Option<ProgressBar>,
    /// The current wait: its end in real time and why.
    waiting: Arc<Mutex<Option<(Instant, &'static str)>>>,
    /// The shortest the run can take at the limits: its longest part's.
    needed: Arc<OnceLock<Duration>>,
    /// Simulated seconds per real second.
    real: f64,
}

impl Pacing {
    fn new(real: f64) -> Pacing {
        let waiting = Arc::new(Mutex::new(None::<(Instant, &'static str)>));
        let needed = Arc::new(OnceLock::<Duration>::new());
        let bar = (std::io::stderr().is_terminal()).then(|| {
            let (waiting, needed) = (waiting.clone(), needed.clone());
            let pace = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let needed = needed.get().copied().unwrap_or_default().div_f64(real);
                let wait = *waiting.lock().unwrap_or_else(|e| e.into_inner());
                let wait = wait.and_then(|(end, why)| {
                    let left = end.saturating_duration_since(Instant::now());
                    (!left.is_zero()).then_some((left, why))
                });
                let left = needed
                    .saturating_sub(state.elapsed())
                    .max(wait.map(|(left, _)| left).unwrap_or_default());
                let _ = w.write_str(&output::pace(state.pos(), state.elapsed(), left, wait));
            };
            // Drawn from the start of the sending, not over the lines said before it.
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {pace}")
                    .expect("a valid template")
                    .with_key("pace", pace),
            );
            bar
        });
        Pacing {
            bar,
            waiting,
            needed,
            real,
        }
    }

    /// What a part does with each of its client's waits: a line, or the bar's count down.
    fn on_wait(&self, profile: Option<&str>) -> impl Fn(&WaitEvent) + Send + Sync + use<> {
        let (on_bar, waiting, real) = (self.bar.is_some(), self.waiting.clone(), self.real);
        let prefix = output::of_tenant(profile);
        move |event: &WaitEvent| {
            let end = wait_message(&prefix, event, real, on_bar);
            *waiting.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((end, crate::vocabulary::wait_reason(event.reason)));
        }
    }
}

/// `outcome` of `going`'s part: with its machine's name, and its tenant in a run of several.
fn labelled(going: &ReadyPart<'_>, outcome: &vocabulary::Outcome) -> vocabulary::Outcome {
    vocabulary::Outcome {
        tenant: going.part.profile.clone(),
        ..going.selection.named(outcome)
    }
}

/// A machine a run did not send to, as an outcome of its tenant.
/// The reason is what stopped its part (credentials, a local fault, an unreachable service),
/// else the run stopping before it.
fn not_sent(
    profile: Option<&str>,
    machine: &str,
    report: &fleet::FleetReport,
) -> vocabulary::Outcome {
    let why = (report.fatal.as_deref())
        .or(report.local.as_deref())
        .or(report.unreachable.as_deref())
        .unwrap_or("the run stopped before it; resume to send it");
    vocabulary::Outcome {
        machine: machine.to_string(),
        name: None,
        kind: vocabulary::Kind::NotSent,
        result: None,
        error: Some(crate::vocabulary::ErrorInfo::new("not_sent", why)),
        earlier: false,
        tenant: profile.map(str::to_string),
    }
}

/// What the request carries besides its comment, for the dry run: `ScanType Full`.
fn detail(template: &AnyRequest) -> Option<String> {
    let body = template.body()?;
    let rest: Vec<String> = body
        .as_object()?
        .iter()
        .filter(|(name, _)| *name != "Comment")
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => format!("{name} {text}"),
            other => format!("{name} {other}"),
        })
        .collect();
    (!rest.is_empty()).then(|| rest.join(", "))
}

/// Says a wait as a line, when there is no bar to count it down; returns when it ends, in
/// real time.
pub(crate) fn wait_message(
    prefix: &str,
    event: &WaitEvent,
    scale: f64,
    on_bar: bool,
) -> std::time::Instant {
    let real = Duration::from_secs_f64(event.wait.as_secs_f64() / scale);
    // The documented pace is expected: a wait of it under a second is not worth a line.
    let worth = real >= Duration::from_secs(1) || event.reason != WaitReason::RateLimit;
    if !on_bar && worth {
        let until = chrono::Local::now() + chrono::Duration::from_std(real).unwrap_or_default();
        eprintln!(
            "mde: {prefix}waiting for {} until {} ({} s)",
            crate::vocabulary::wait_reason(event.reason),
            until.format("%H:%M:%S"),
            real.as_secs()
        );
    }
    std::time::Instant::now() + real
}
