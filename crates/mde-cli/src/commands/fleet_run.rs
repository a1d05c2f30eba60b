//! The action commands (`scan`, `package collect`, `investigation`, `action cancel`): one
//! operation sent to every machine, journaled, and with `scan --wait` followed to the end.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mde_client::operations::AnyRequest;
use mde_client::{WaitEvent, WaitReason};

use crate::cli::{Cli, Targets};
use crate::fleet::{self, Progress};
use crate::json::{Lines, not_sent_line, outcome_line};
use crate::output;
use crate::session::{
    AUTH, OK, PARTIAL, USAGE, client, fail, failed, history, machines, plan, resume_command,
    run_record, select, sign_in, simulator, speed, start_journal, stop_signal, stopped_code, tag,
    time_scale,
};

/// Sends the template to every machine of `targets`, each with its id, journaled, and
/// reports; with `wait`, follows every scan to its final status, looking every `wait`.
/// `ensure`: a library script uploaded first, when the library lacks it (not in a dry run).
pub(crate) async fn run(
    cli: &Cli,
    template: &AnyRequest,
    targets: &Targets,
    wait: Option<Duration>,
    ensure: Option<mde_client::operations::UploadLibraryFile>,
) -> Result<u8, u8> {
    let conn = &cli.connection;
    let op = template.operation();
    let (ids, names) = machines(targets, op)?;
    let scale = time_scale(conn)?;
    let given = (&ids[..], &names[..], tag(targets));
    let record = run_record(cli, &plan(targets, template), given, None);
    let history = history(cli, targets, &record)?;
    let simulator = simulator(conn, scale, &ids, &names).await?;

    let real = speed(conn, scale);
    // The current wait, its end in real time and why: the bar counts it down.
    let waiting = Arc::new(std::sync::Mutex::new(
        None::<(std::time::Instant, &'static str)>,
    ));
    let bar = (std::io::stderr().is_terminal()).then(|| {
        let waiting = waiting.clone();
        let pace = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let total = state.len().unwrap_or(0) as usize;
            let needed = mde_client::minimum_duration(op, total).div_f64(real);
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
    let on_wait = {
        let bar = bar.clone();
        let waiting = waiting.clone();
        move |event: &WaitEvent| {
            let end = wait_message(event, real, bar.is_some());
            *waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some((end, reason(event)));
        }
    };
    let client = client(conn, simulator.as_ref(), scale, on_wait)?;
    sign_in(&client).await?;
    let intent = (op, detail(template), None);
    let selection = select(cli, targets, &client, &history, (ids, names), intent).await?;
    let machines = selection.machines.clone();
    if let Some(script) = ensure {
        crate::commands::library::ensure(&client, script).await?;
    }
    let (path, journal) = start_journal(targets, &selection, &record)?;

    let total = machines.len();
    let started = std::time::Instant::now();
    let lines = Lines::of(cli.run.output);
    let json = lines.is_some();
    // JSON lines or CSV rows go out as each machine ends (with --wait, as its scan ends), so
    // that a pipe sees them live.
    let print_json = |outcome: &fleet::Outcome| {
        if let Some(lines) = &lines {
            lines.write(&outcome_line(&selection.named(outcome)));
        }
    };
    let live = json && wait.is_none();
    if json {
        selection.unresolved.iter().for_each(print_json);
    }
    let mut progress = |event: Progress<'_>| match (event, &bar) {
        (Progress::Earlier(outcome), _) => {
            if live {
                print_json(outcome);
            }
        }
        (Progress::Start(n), Some(bar)) => {
            bar.set_length(n as u64);
            bar.set_draw_target(ProgressDrawTarget::stderr());
            // Ticks every second, so that a wait for the limits counts down.
            bar.enable_steady_tick(Duration::from_secs(1));
        }
        (Progress::Start(n), None) => {
            if n < total {
                eprintln!(
                    "mde: {} of {total} machines already done by the journal; sending to {n}",
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
                None => eprintln!("{}", output::line(&selection.named(outcome))),
            }
        }
    };
    let batch = fleet::Batch {
        plan: plan(targets, template),
        machines,
        journal: &journal,
        history,
    };
    let mut report = fleet::run(&client, batch, &mut progress, stop_signal())
        .await
        .map_err(|e| {
            fail(
                USAGE,
                format!("cannot write the journal {}: {e}", path.display()),
            )
        })?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let mut waited = None;
    let stopped =
        report.fatal.is_some() || report.unreachable.is_some() || !report.not_sent.is_empty();
    if let Some(interval) = wait.filter(|_| !stopped) {
        eprintln!(
            "mde: following the actions to their final status: one listMachineActions call every {}",
            output::duration(interval)
        );
        let mut ended = |outcome: &fleet::Outcome| {
            if json {
                print_json(outcome);
            } else {
                eprintln!("{}", output::line(&selection.named(outcome)));
            }
        };
        let followed = crate::wait::follow(
            &client,
            op,
            &mut report,
            interval,
            &mut ended,
            stop_signal(),
        )
        .await
        .map_err(failed("cannot follow the actions"))?;
        waited = Some(followed);
    }
    report.outcomes = report
        .outcomes
        .iter()
        .map(|o| selection.named(o))
        .chain(selection.unresolved.iter().cloned())
        .collect();

    match &lines {
        None => {
            let mut stdout = std::io::stdout().lock();
            let _ = output::table(&report, &mut stdout).and_then(|()| stdout.flush());
        }
        Some(lines) => report
            .not_sent
            .iter()
            .for_each(|m| lines.write(&not_sent_line(m))),
    }
    errors(&report);
    eprintln!(
        "mde: {} in {:.1} s{}",
        output::summary(&report),
        started.elapsed().as_secs_f64(),
        match &waited {
            Some(w) => format!(
                "; {} listMachineActions call(s) followed the actions",
                w.list_calls
            ),
            None => String::new(),
        }
    );
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(exit_code(targets, &path, &report, waited.as_ref()))
}

/// How the run ended: stopped for every machine, interrupted (and how to go on), or whether
/// every machine succeeded (with `--wait`, every scan).
fn exit_code(
    targets: &Targets,
    journal: &std::path::Path,
    report: &fleet::Report,
    waited: Option<&crate::wait::Waited>,
) -> u8 {
    let resume = || {
        resume_command(
            std::env::args().collect(),
            journal,
            targets.journaling.resume.is_some(),
        )
    };
    if let Some(fatal) = &report.fatal {
        // #6054: the device's group has no automation level; only the portal changes that.
        let portal = if fatal.contains("DisallowedOperation") {
            "\nIn the Microsoft Defender portal, give the device's group an automation level (Settings > Endpoints > Device groups: at least the minimum remediation level)."
        } else {
            ""
        };
        eprintln!(
            "mde: stopped: {fatal}{portal}\nNo machine is journaled as failed; once fixed, resume with:\n  {}",
            resume()
        );
        return AUTH;
    }
    if let Some(last) = &report.unreachable {
        eprintln!(
            "mde: stopped sending: the service looks unreachable ({} requests in a row got no answer; the last: {last}). Once it answers, resume with:\n  {}",
            fleet::UNREACHABLE,
            resume()
        );
        return PARTIAL;
    }
    if !report.not_sent.is_empty() {
        eprintln!(
            "mde: interrupted; the requests in flight were answered and journaled. Resume with:\n  {}",
            resume()
        );
        return stopped_code();
    }
    if let Some(left) = waited.and_then(|w| w.interrupted.as_ref()) {
        eprintln!(
            "mde: stopped waiting; the actions go on. Follow them with:\n  mde action show {}",
            left.join(" ")
        );
        return stopped_code();
    }
    let all_ok = match waited {
        Some(_) => crate::wait::all_succeeded(report),
        None => report
            .outcomes
            .iter()
            .all(|o| o.outcome == fleet::Kind::Accepted),
    };
    if all_ok { OK } else { PARTIAL }
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
            .filter(|o| o.outcome != fleet::Kind::Accepted)
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
pub(crate) fn wait_message(event: &WaitEvent, scale: f64, on_bar: bool) -> std::time::Instant {
    let real = Duration::from_secs_f64(event.wait.as_secs_f64() / scale);
    if !on_bar {
        let until = chrono::Local::now() + chrono::Duration::from_std(real).unwrap_or_default();
        eprintln!(
            "mde: waiting for {} until {} ({} s)",
            reason(event),
            until.format("%H:%M:%S"),
            real.as_secs()
        );
    }
    std::time::Instant::now() + real
}
