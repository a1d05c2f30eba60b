//! The action commands (`scan`, `package collect`, `investigation`, `action cancel`): one
//! operation sent to every machine, journaled, and with `scan --wait` followed to the end.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mde_client::operations::AnyRequest;
use mde_client::{WaitEvent, WaitReason};

use futures_util::future::join_all;
use mde_client::Client;

use crate::cli::{Cli, Targets};
use crate::fleet::{self, Progress};
use crate::journal::History;
use crate::json::{Lines, outcome_line};
use crate::output;
use crate::selection::Selection;
use crate::session::{
    AUTH, Chosen, OK, PARTIAL, USAGE, cancel_first, client_of, code_of, confirm, dry_run, fail,
    failed, history, machines, plan, resolve, resume_command, run_record, sign_in_of, simulator,
    speed, start_journal, stop_signal, stopped_code, tag, time_scale,
};
use crate::tenants::{self, Part};

/// One tenant's part of the run, once signed in and its machines resolved.
struct Going<'a> {
    part: &'a Part,
    client: Client,
    history: History,
    selection: Selection,
}

/// A part that stopped before sending: its exit code and why (printed by the run).
type Stopped = (u8, String);

/// How one part readied: signed in and its machines resolved, or stopped.
enum Readied<'a> {
    Going(Box<(Going<'a>, Chosen)>),
    Stopped(&'a Part, Stopped),
}

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
    let parts = tenants::split(cli, targets, machines(targets, op)?)?;
    let profiles: Vec<&str> = parts.iter().filter_map(|p| p.profile.as_deref()).collect();
    let several = !profiles.is_empty();
    let first = &parts[0].conn;
    let scale = time_scale(first)?;
    let mut records = Vec::new();
    let mut histories = Vec::new();
    for part in &parts {
        time_scale(&part.conn)?;
        let given = (&part.ids[..], &part.names[..], tag(targets));
        let record = run_record(&part.conn, &plan(targets, template), given, None);
        let of = (part.profile.as_deref(), &profiles[..]);
        histories.push(history(&part.conn, targets, &record, of)?);
        records.push(record);
    }
    let simulator = simulator(first, scale, &parts[0].ids, &parts[0].names).await?;

    let real = speed(first, scale);
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

    // Every part signs in and resolves its machines at once.
    let intent = (op, detail(template), None);
    let readied = join_all(parts.iter().zip(&histories).map(|(part, history)| {
        let on_wait = {
            let (bar, waiting) = (bar.clone(), waiting.clone());
            let prefix = prefix(part.profile.as_deref());
            move |event: &WaitEvent| {
                let end = wait_message(&prefix, event, real, bar.is_some());
                *waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some((end, reason(event)));
            }
        };
        ready(
            part,
            history,
            simulator.as_ref(),
            scale,
            on_wait,
            targets,
            op,
        )
    }))
    .await;
    let mut going = Vec::new();
    let mut stopped: Vec<(&Part, Stopped)> = Vec::new();
    let mut chosen = Vec::new();
    for readied in readied {
        match readied {
            Readied::Going(going_part) => {
                let (part, choice) = *going_part;
                chosen.push((part.part.profile.as_deref(), choice));
                going.push(part);
            }
            // A run of one connection ends here, as it always has.
            Readied::Stopped(_, (code, why)) if !several => return Err(fail(code, why)),
            Readied::Stopped(part, why) => stopped.push((part, why)),
        }
    }
    for (part, (_, why)) in &stopped {
        eprintln!(
            "mde: {}stopped before sending: {why}",
            prefix(part.profile.as_deref())
        );
    }
    if targets.confirm.dry_run {
        let shown: Vec<_> = chosen.iter().map(|(p, c)| (*p, c)).collect();
        let names: Vec<&str> = stopped
            .iter()
            .filter_map(|(part, _)| part.profile.as_deref())
            .collect();
        let code = dry_run(cli, &shown, &names, intent);
        return Err(stopped
            .iter()
            .map(|(_, (code, _))| *code)
            .fold(code, u8::max));
    }
    let to_send = going
        .iter()
        .zip(&chosen)
        .map(|(g, (_, c))| c.to_send(&g.history))
        .sum();
    confirm(cli, targets, op, to_send)?;
    for (going, (_, choice)) in going.iter_mut().zip(chosen) {
        going.selection = cancel_first(cli, &going.client, op, choice).await?;
    }
    if let Some(script) = ensure {
        for going in &going {
            crate::commands::library::ensure(&going.client, script.clone()).await?;
        }
    }
    let journaled: Vec<_> = parts
        .iter()
        .zip(&records)
        .map(|(part, record)| {
            let selection = going
                .iter()
                .find(|g| std::ptr::eq(g.part, part))
                .map(|g| &g.selection);
            (part.profile.as_deref(), selection, record)
        })
        .collect();
    let (path, journal) = start_journal(targets, &journaled)?;
    let _ = needed.set(
        going
            .iter()
            .map(|g| mde_client::minimum_duration(op, g.selection.machines.len()))
            .max()
            .unwrap_or_default(),
    );

    let started = std::time::Instant::now();
    let lines = Lines::of(cli.run.output).map(|l| l.with_tenant(several));
    let json = lines.is_some();
    // JSON lines or CSV rows go out as each machine ends (with --wait, as its scan ends), so
    // that a pipe sees them live.
    let print_json = |outcome: &fleet::Outcome| {
        if let Some(lines) = &lines {
            lines.write(&outcome_line(outcome));
        }
    };
    let live = json && wait.is_none();
    for going in &going {
        for outcome in &going.selection.unresolved {
            if json {
                print_json(&labelled(going, outcome));
            }
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
                    prefix(going.part.profile.as_deref()),
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
        let (show, journal) = (&show, journal.of_profile(going.part.profile.as_deref()));
        let print_json = &print_json;
        async move {
            let mut progress = |event: Progress<'_>| {
                let labelled = |o: &fleet::Outcome| labelled(going, o);
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
            let mut report = fleet::run(&going.client, batch, &mut progress, stop_signal())
                .await
                .map_err(|e| {
                    fail(
                        USAGE,
                        format!("cannot write the journal {}: {e}", path.display()),
                    )
                })?;
            let stopped = report.fatal.is_some()
                || report.unreachable.is_some()
                || !report.not_sent.is_empty();
            let mut waited = None;
            if let Some(interval) = wait.filter(|_| !stopped) {
                eprintln!(
                    "mde: {}following the actions to their final status: one listMachineActions call every {}",
                    prefix(going.part.profile.as_deref()),
                    output::duration(interval)
                );
                let mut ended = |outcome: &fleet::Outcome| {
                    let outcome = labelled(going, outcome);
                    if json {
                        print_json(&outcome);
                    } else {
                        eprintln!("{}", output::line(&outcome));
                    }
                };
                let followed =
                    crate::wait::follow(&going.client, op, &mut report, interval, &mut ended, stop_signal())
                        .await
                        .map_err(failed("cannot follow the actions"))?;
                waited = Some(followed);
            }
            report.outcomes = report
                .outcomes
                .iter()
                .chain(&going.selection.unresolved)
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
        ended.push((going.part.profile.as_deref(), report, waited));
    }
    // A part stopped before sending: every machine given not sent, the reason its error.
    for (part, (_, why)) in &stopped {
        let report = fleet::Report {
            fatal: Some(why.clone()),
            not_sent: part.ids.iter().chain(&part.names).cloned().collect(),
            ..fleet::Report::default()
        };
        ended.push((part.profile.as_deref(), report, None));
    }

    let mut all = fleet::Report::default();
    for (profile, report, _) in &ended {
        all.outcomes.extend(report.outcomes.iter().cloned());
        match profile {
            // The table and the summary show the tenant of every machine not sent to.
            Some(_) => all
                .outcomes
                .extend(report.not_sent.iter().map(|m| not_sent(*profile, m))),
            None => all.not_sent.extend(report.not_sent.iter().cloned()),
        }
        if let Some(lines) = &lines {
            for machine in &report.not_sent {
                lines.write(&outcome_line(&not_sent(*profile, machine)));
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
            eprintln!("mde: {}{}", prefix(*profile), output::summary(report));
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
    Ok(exit_code(targets, path, &ended))
}

/// Signs one part in and resolves its machines; in a run of several, an error stops the part
/// alone (its exit code and why).
async fn ready<'a>(
    part: &'a Part,
    history: &History,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
    targets: &Targets,
    op: mde_client::OperationId,
) -> Readied<'a> {
    let stopped = |stopped: Stopped| Readied::Stopped(part, stopped);
    if let Some(problem) = &part.problem {
        return stopped((AUTH, problem.clone()));
    }
    let client = match client_of(&part.conn, simulator, scale, on_wait) {
        Ok(client) => client,
        Err(e) => return stopped(e),
    };
    if let Err(e) = sign_in_of(&client).await {
        return stopped(e);
    }
    let given = (part.ids.clone(), part.names.clone());
    match resolve(targets, &client, history, given, op).await {
        Ok(chosen) => Readied::Going(Box::new((
            Going {
                part,
                client,
                history: history.clone(),
                selection: Selection::default(),
            },
            chosen,
        ))),
        Err(e) => stopped((
            code_of(&e),
            format!("cannot resolve the machines: {}", output::error_text(&e)),
        )),
    }
}

/// `outcome` of `going`'s part: with its machine's name, and its tenant in a run of several.
fn labelled(going: &Going<'_>, outcome: &fleet::Outcome) -> fleet::Outcome {
    fleet::Outcome {
        tenant: going.part.profile.clone(),
        ..going.selection.named(outcome)
    }
}

/// A machine a run did not send to, as an outcome of its tenant.
fn not_sent(profile: Option<&str>, machine: &str) -> fleet::Outcome {
    fleet::Outcome {
        machine: machine.to_string(),
        name: None,
        outcome: fleet::Kind::NotSent,
        result: None,
        error: None,
        earlier: false,
        tenant: profile.map(str::to_string),
    }
}

/// `contoso: ` before what is said of a part, in a run of several profiles.
fn prefix(profile: Option<&str>) -> String {
    profile.map(|p| format!("{p}: ")).unwrap_or_default()
}

/// How the run ended: each part stopped (and why), interrupted (and how to go on), or
/// whether every machine succeeded (with `--wait`, every scan). The most pressing part sets
/// the code: 3 when one needs its credentials or permission fixed, then a signal's, then 1.
fn exit_code(
    targets: &Targets,
    journal: &std::path::Path,
    ended: &[(Option<&str>, fleet::Report, Option<crate::wait::Waited>)],
) -> u8 {
    // Said of each part; then, once, how to go on: (the code, the tail before the command).
    let mut code = OK;
    let mut tail: Option<(u8, &str)> = None;
    let mut follow: Vec<String> = Vec::new();
    let mut said = Vec::new();
    for (profile, report, waited) in ended {
        let (part_code, sentence, then) = if let Some(fatal) = &report.fatal {
            // #6054: the device's group has no automation level; only the portal changes that.
            let portal = if fatal.contains("DisallowedOperation") {
                "\nIn the Microsoft Defender portal, give the device's group an automation level (Settings > Endpoints > Device groups: at least the minimum remediation level)."
            } else {
                ""
            };
            (
                AUTH,
                format!("stopped: {fatal}{portal}"),
                Some("\nNo machine is journaled as failed; once fixed, resume with"),
            )
        } else if let Some(last) = &report.unreachable {
            (
                PARTIAL,
                format!(
                    "stopped sending: the service looks unreachable ({} requests in a row got no answer; the last: {last}).",
                    fleet::UNREACHABLE
                ),
                Some(" Once it answers, resume with"),
            )
        } else if !report.not_sent.is_empty() {
            (
                stopped_code(),
                "interrupted; the requests in flight were answered and journaled.".to_string(),
                Some(" Resume with"),
            )
        } else if let Some(left) = waited.as_ref().and_then(|w| w.interrupted.as_ref()) {
            follow.extend(left.iter().cloned());
            (
                stopped_code(),
                "stopped waiting; the actions go on.".to_string(),
                None,
            )
        } else {
            let all_ok = match waited {
                Some(_) => crate::wait::all_succeeded(report),
                None => report
                    .outcomes
                    .iter()
                    .all(|o| o.outcome == fleet::Kind::Accepted),
            };
            code = code.max(if all_ok { OK } else { PARTIAL });
            continue;
        };
        // 3 first, then a signal's 130 or 143, then 1.
        let rank = |c: u8| match c {
            AUTH => 3,
            PARTIAL => 1,
            OK => 0,
            _ => 2,
        };
        if rank(part_code) > rank(code) {
            code = part_code;
        }
        if let Some(then) = then
            && tail.is_none_or(|(c, _)| rank(part_code) > rank(c))
        {
            tail = Some((part_code, then));
        }
        said.push(format!("mde: {}{sentence}", prefix(*profile)));
    }
    let resume = || {
        resume_command(
            std::env::args().collect(),
            journal,
            targets.journaling.resume.is_some(),
        )
    };
    let follow_line = (!follow.is_empty())
        .then(|| format!(" Follow them with:\n  mde action show {}", follow.join(" ")));
    match (&said[..], tail) {
        // One part: one message, as a run of one connection has always said it.
        ([one], Some((_, then))) => eprintln!("{one}{then}:\n  {}", resume()),
        ([one], None) => eprintln!("{one}{}", follow_line.unwrap_or_default()),
        (many, tail) => {
            for line in many {
                eprintln!("{line}");
            }
            if let Some(line) = follow_line {
                eprintln!("mde:{line}");
            }
            if let Some((_, then)) = tail {
                eprintln!("mde:{}:\n  {}", then.trim_start_matches('\n'), resume());
            }
        }
    }
    code
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
pub(crate) fn wait_message(
    prefix: &str,
    event: &WaitEvent,
    scale: f64,
    on_bar: bool,
) -> std::time::Instant {
    let real = Duration::from_secs_f64(event.wait.as_secs_f64() / scale);
    if !on_bar {
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
