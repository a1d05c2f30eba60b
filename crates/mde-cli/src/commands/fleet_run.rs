//! The action commands (`scan`, `package collect`, `investigation`, `action cancel`): one
//! operation sent to every machine, journaled, and with `scan --wait` followed to the end.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mde_client::operations::AnyRequest;
use mde_client::{WaitEvent, WaitReason};

use futures_util::future::join_all;

use crate::cli::{Cli, Targets};
use crate::fleet::{self, Progress};
use crate::json::{Lines, outcome_line};
use crate::output;
use crate::session::{plan, resume_command, simulator, speed, stop_signal};
use crate::wait::EndedEarly;

use super::parts::{self, Begun, Ending, Going};
use crate::vocabulary;

/// Sends the template to every machine of `targets`, each with its id, journaled, and
/// reports; with `wait`, follows every scan to its final status, looking every `wait`.
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
    let (several, named, scale) = (prepared.several, prepared.named, prepared.scale);
    let first = &prepared.parts[0];
    let simulator = simulator(&first.conn, scale, &first.ids, &first.names).await?;

    let real = speed(&first.conn, scale);
    // The current wait, its end in real time and why: the bar counts it down.
    let waiting = Arc::new(std::sync::Mutex::new(
        None::<(std::time::Instant, &'static str)>,
    ));
    // The shortest the run can take at the limits: its longest part's.
    let needed = Arc::new(std::sync::OnceLock::<Duration>::new());
    let bar = (std::io::stderr().is_terminal()).then(|| {
        let (waiting, needed) = (waiting.clone(), needed.clone());
        let pace = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let needed = needed.get().copied().unwrap_or_default().div_f64(real);
            let wait = *waiting.lock().unwrap_or_else(|e| e.into_inner());
            let wait = wait.and_then(|(end, why)| {
                let left = end.saturating_duration_since(std::time::Instant::now());
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
    let on_wait = |profile: Option<&str>| {
        let (bar, waiting) = (bar.clone(), waiting.clone());
        let prefix = output::of_tenant(profile);
        move |event: &WaitEvent| {
            let end = wait_message(&prefix, event, real, bar.is_some());
            *waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some((end, reason(event)));
        }
    };
    let intent = (op, detail(template), None);
    let begun = parts::begin(
        cli,
        targets,
        &prepared,
        simulator.as_ref(),
        on_wait,
        intent,
        (|| Ok(()), ensure),
    )
    .await?;
    let Begun {
        going,
        stopped,
        path,
        journal,
    } = begun;
    let _ = needed.set(
        going
            .iter()
            .map(|g| mde_client::minimum_duration(op, g.selection.machines.len()))
            .max()
            .unwrap_or_default(),
    );

    let started = std::time::Instant::now();
    let lines = Lines::of(cli.run.output).map(|l| l.with_tenant(named));
    let json = lines.is_some();
    // JSON lines or CSV rows go out as each machine ends (with --wait, as its scan ends), so
    // that a pipe sees them live.
    let print_json = |outcome: &vocabulary::Outcome| {
        if let Some(lines) = &lines {
            lines.write(&outcome_line(outcome));
        }
    };
    let live = json && wait.is_none();
    for going in &going {
        let selection = &going.selection;
        for outcome in selection.cancelled.iter().chain(&selection.unresolved) {
            print_json(&labelled(going, outcome));
        }
    }
    // The parts' events, one at a time: the bar counts every part's machines.
    let show = |going: &Going<'_>, event: Progress<'_>| match (event, &bar) {
        (Progress::Earlier(outcome), _) => {
            if live {
                print_json(outcome);
            }
        }
        (Progress::Start(n), Some(bar)) => {
            bar.inc_length(n as u64);
            bar.set_draw_target(ProgressDrawTarget::stderr());
            // Ticks every second, so that a wait for the limits counts down.
            bar.enable_steady_tick(Duration::from_secs(1));
        }
        (Progress::Start(n), None) => {
            let total = going.selection.machines.len();
            if n < total {
                eprintln!(
                    "mde: {}{} of {total} machines already done by the journal; sending to {n}",
                    output::of_tenant(going.profile()),
                    total - n
                );
            }
        }
        (Progress::Done(outcome), bar) => {
            if live {
                print_json(outcome);
            }
            match bar {
                Some(bar) => bar.inc(1),
                None => eprintln!("{}", output::line(outcome)),
            }
        }
    };
    let path = &path;
    let ran = join_all(going.iter().map(|going| {
        let (show, journal) = (&show, journal.of_profile(going.profile()));
        let print_json = &print_json;
        async move {
            let mut progress = |event: Progress<'_>| {
                let labelled = |o: &vocabulary::Outcome| labelled(going, o);
                match event {
                    Progress::Start(n) => show(going, Progress::Start(n)),
                    Progress::Done(o) => show(going, Progress::Done(&labelled(o))),
                    Progress::Earlier(o) => show(going, Progress::Earlier(&labelled(o))),
                }
            };
            let batch = fleet::Batch {
                plan: plan(targets, template),
                machines: going.selection.machines.clone(),
                journal: &journal,
                history: going.history.clone(),
            };
            let mut report = fleet::run(&going.client, batch, &mut progress, stop_signal()).await;
            let stopped = report.fatal.is_some()
                || report.unreachable.is_some()
                || report.local.is_some()
                || !report.not_sent.is_empty();
            let mut waited = None;
            // The machines whose line is out: with --wait, each as its action ends.
            let mut printed = std::collections::HashSet::new();
            if let Some(interval) = wait.filter(|_| !stopped) {
                eprintln!(
                    "mde: {}following the actions to their final status: one listMachineActions call every {}",
                    output::of_tenant(going.profile()),
                    vocabulary::duration(interval)
                );
                let mut ended = |outcome: &vocabulary::Outcome| {
                    printed.insert(outcome.machine.clone());
                    let outcome = labelled(going, outcome);
                    if json {
                        print_json(&outcome);
                    } else {
                        eprintln!("{}", output::line(&outcome));
                    }
                };
                let followed =
                    crate::wait::follow(&going.client, op, &mut report, interval, &mut ended, stop_signal())
                        .await;
                waited = Some(followed);
            }
            // Every machine's line, whatever ended the wait (or kept it from starting).
            if json && wait.is_some() {
                for outcome in report.outcomes.iter().filter(|o| !printed.contains(&o.machine)) {
                    print_json(&labelled(going, outcome));
                }
            }
            report.outcomes = report
                .outcomes
                .iter()
                .chain(&going.selection.unresolved)
                .chain(&going.selection.cancelled)
                .map(|o| labelled(going, o))
                .collect();
            Ok::<_, u8>((report, waited))
        }
    }))
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut ended: Vec<(Option<&str>, fleet::Report, Option<crate::wait::Waited>)> = Vec::new();
    for (going, ran) in going.iter().zip(ran) {
        let (report, waited) = ran?;
        ended.push((going.profile(), report, waited));
    }
    // A part stopped before sending: every machine given not sent, the reason its error.
    for (part, (_, why)) in &stopped {
        let report = fleet::Report {
            fatal: Some(why.clone()),
            not_sent: part.given(),
            ..fleet::Report::default()
        };
        ended.push((part.profile.as_deref(), report, None));
    }

    let mut all = fleet::Report::default();
    for (profile, report, _) in &ended {
        all.outcomes.extend(report.outcomes.iter().cloned());
        match profile {
            // The table and the summary show the tenant of every machine not sent to.
            Some(_) => all.outcomes.extend(
                report
                    .not_sent
                    .iter()
                    .map(|m| not_sent(*profile, m, report)),
            ),
            None => all.not_sent.extend(report.not_sent.iter().cloned()),
        }
        if let Some(lines) = &lines {
            for machine in &report.not_sent {
                lines.write(&outcome_line(&not_sent(*profile, machine, report)));
            }
        }
    }
    if lines.is_none() {
        let mut stdout = std::io::stdout().lock();
        let _ = output::table(&all, &mut stdout).and_then(|()| stdout.flush());
    }
    errors(&all);
    let list_calls: usize = ended
        .iter()
        .filter_map(|(_, _, w)| w.as_ref())
        .map(|w| w.list_calls)
        .sum();
    if several {
        for (profile, report, _) in &ended {
            eprintln!(
                "mde: {}{}",
                output::of_tenant(*profile),
                output::summary(report)
            );
        }
    }
    eprintln!(
        "mde: {} in {:.1} s{}",
        output::summary(&all),
        started.elapsed().as_secs_f64(),
        if ended.iter().any(|(_, _, w)| w.is_some()) {
            format!("; {list_calls} listMachineActions call(s) followed the actions")
        } else {
            String::new()
        }
    );
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    let endings: Vec<Ending<'_>> = ended
        .iter()
        .map(|(profile, report, waited)| {
            let early = waited
                .as_ref()
                .and_then(|w| Some((w.ended_early.as_ref()?, &w.left[..])));
            // Followed, a machine is done when its action succeeded; else when it was accepted.
            let ok = if waited.is_some() {
                vocabulary::Kind::Succeeded
            } else {
                vocabulary::Kind::Accepted
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
                    && report
                        .outcomes
                        .iter()
                        .all(|o| o.outcome == ok || o.outcome.is_done_before()),
            }
        })
        .collect();
    let resume = resume_command(
        std::env::args().collect(),
        path,
        targets.journaling.resume.is_some(),
    );
    Ok(parts::exit_code(
        &endings,
        "interrupted; the requests in flight were answered and journaled.",
        Ok(resume),
    ))
}

/// `outcome` of `going`'s part: with its machine's name, and its tenant in a run of several.
fn labelled(going: &Going<'_>, outcome: &vocabulary::Outcome) -> vocabulary::Outcome {
    vocabulary::Outcome {
        tenant: going.part.profile.clone(),
        ..going.selection.named(outcome)
    }
}

/// A machine a run did not send to, as an outcome of its tenant.
/// The reason is what stopped its part (credentials, a local fault, an unreachable service),
/// else the run stopping before it.
fn not_sent(profile: Option<&str>, machine: &str, report: &fleet::Report) -> vocabulary::Outcome {
    let why = (report.fatal.as_deref())
        .or(report.local.as_deref())
        .or(report.unreachable.as_deref())
        .unwrap_or("the run stopped before it; resume to send it");
    vocabulary::Outcome {
        machine: machine.to_string(),
        name: None,
        outcome: vocabulary::Kind::NotSent,
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

/// The distinct errors of the run, each in full, after the table.
fn errors(report: &fleet::Report) {
    let block = output::error_block(
        report
            .outcomes
            .iter()
            .filter(|o| {
                !matches!(
                    o.outcome,
                    vocabulary::Kind::Accepted
                        | vocabulary::Kind::Succeeded
                        | vocabulary::Kind::CancelledPending
                        | vocabulary::Kind::AlreadyInEffect
                )
            })
            .filter_map(|o| Some((o.machine.as_str(), o.error.as_ref()?.message.as_str()))),
    );
    if !block.is_empty() {
        eprintln!("mde: errors:\n{}", block.join("\n"));
    }
}

/// Why a call waits, for people.
fn reason(event: &WaitEvent) -> &'static str {
    match event.reason {
        WaitReason::RateLimit => "the documented rate limit",
        WaitReason::RetryAfter => "the service's Retry-After",
        WaitReason::Backoff => "a retry",
        WaitReason::SessionLimit => "a live response session to end (50 run at once)",
    }
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
            reason(event),
            until.format("%H:%M:%S"),
            real.as_secs()
        );
    }
    std::time::Instant::now() + real
}
