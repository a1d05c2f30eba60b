//! A run over many machines: as fast as the documented limits allow, each request journaled
//! before it is sent and after its outcome, going on past per-machine failures.

use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mde_client::operations::{self, Operation};
use mde_client::{Call, Client, Error};
use serde::Serialize;
use serde_json::Value;

use crate::journal::{Entry, History, Journal, now};

/// What a run does to each machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `startInvestigation`.
    Start,
    /// `initiateInvestigation` (preview).
    Initiate,
    /// `collectInvestigationPackage`.
    Collect,
    /// `collectInvestigationPackageGraph` (deprecated).
    CollectGraph,
}

impl Op {
    /// The spec's facts of the operation.
    pub fn spec(self) -> &'static Operation {
        match self {
            Op::Start => &operations::START_INVESTIGATION,
            Op::Initiate => &operations::INITIATE_INVESTIGATION,
            Op::Collect => &operations::COLLECT_INVESTIGATION_PACKAGE,
            Op::CollectGraph => &operations::COLLECT_INVESTIGATION_PACKAGE_GRAPH,
        }
    }
}

/// How a machine fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The action was created.
    Succeeded,
    /// The same kind of action was already running there.
    AlreadyRunning,
    /// The service does not know the machine.
    NotFound,
    /// Anything else went wrong.
    Failed,
    /// Sent in an earlier run that ended before its answer: it may or may not exist.
    Unknown,
}

impl Kind {
    fn of(text: &str) -> Kind {
        match text {
            "succeeded" => Kind::Succeeded,
            "already_running" => Kind::AlreadyRunning,
            "not_found" => Kind::NotFound,
            _ => Kind::Failed,
        }
    }

    /// The name used in the journal and the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Succeeded => "succeeded",
            Kind::AlreadyRunning => "already_running",
            Kind::NotFound => "not_found",
            Kind::Failed => "failed",
            Kind::Unknown => "unknown",
        }
    }
}

/// One machine's outcome, as the JSON output writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The machine id.
    pub machine: String,
    /// How it fared.
    pub outcome: Kind,
    /// The service's answer, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Recorded by an earlier run (resumed), not sent now.
    pub earlier: bool,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Report {
    /// Every machine's outcome, in the order the machines were given.
    pub outcomes: Vec<Outcome>,
    /// Machines not sent to: the run was stopped (Ctrl-C, or `fatal`) before them.
    pub not_sent: Vec<String>,
    /// An error that stopped the run: it holds for every machine (credentials, permission,
    /// configuration).
    pub fatal: Option<String>,
}

/// Something to show while the run goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// This many machines are to be sent to.
    Start(usize),
    /// One more ended.
    Done(&'a Outcome),
}

/// How many requests may be answered at once: the limits, not this, set the pace.
const IN_FLIGHT: usize = 32;

type Answer<'a> = Pin<Box<dyn Future<Output = Result<Value, Error>> + Send + 'a>>;
type Ready<'a> = Pin<Box<dyn Future<Output = Answer<'a>> + Send + 'a>>;

/// Reserves room in the rate limit, then hands back the call, ready to send at once.
#[allow(clippy::async_yields_async)] // on purpose: the journal line goes between the two
fn ready<'a, T: Serialize + Send + 'a>(call: Call<'a, T>) -> Ready<'a> {
    Box::pin(async move {
        let call = call.reserve().await;
        let answer: Answer<'a> = Box::pin(async move {
            call.await
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        });
        answer
    })
}

#[allow(deprecated)] // the retired and deprecated operations stay reachable
fn prepare<'a>(client: &'a Client, op: Op, machine: &str, comment: &str) -> Ready<'a> {
    match op {
        Op::Start => ready(client.start_investigation(machine, comment)),
        Op::Initiate => ready(client.initiate_investigation(machine, comment)),
        Op::Collect => ready(client.collect_investigation_package(machine, comment)),
        Op::CollectGraph => ready(client.collect_investigation_package_graph(machine, comment)),
    }
}

fn outcome(machine: String, answer: Result<Value, Error>) -> (Outcome, Option<String>) {
    let (kind, result, error) = match answer {
        Ok(value) => (Kind::Succeeded, Some(value), None),
        Err(e @ Error::AlreadyRunning(_)) => (Kind::AlreadyRunning, None, Some(e.to_string())),
        Err(e @ Error::NotFound(_)) => (Kind::NotFound, None, Some(e.to_string())),
        Err(e) => {
            let fatal = matches!(
                e,
                Error::Authentication(_) | Error::Permission { .. } | Error::Configuration(_)
            );
            let text = e.to_string();
            return (
                Outcome {
                    machine,
                    outcome: Kind::Failed,
                    result: None,
                    error: Some(text.clone()),
                    earlier: false,
                },
                fatal.then_some(text),
            );
        }
    };
    (
        Outcome {
            machine,
            outcome: kind,
            result,
            error,
            earlier: false,
        },
        None,
    )
}

/// Runs `op` on `machines`, journaling each request. Machines `history` shows as done are
/// reported as they were and not sent again; those it shows as sent without an outcome are
/// reported unknown, and sent again only with `retry_unknown`. Stops sending when `stop`
/// resolves, and lets the requests in flight end.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    op: Op,
    comment: &str,
    machines: Vec<String>,
    journal: &mut Journal,
    history: History,
    retry_unknown: bool,
    progress: &mut dyn FnMut(Progress<'_>),
    stop: impl Future<Output = ()>,
) -> std::io::Result<Report> {
    let mut report = Report::default();
    let order: std::collections::HashMap<String, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), i))
        .collect();
    let mut queue = Vec::new();
    for machine in machines {
        if let Some((outcome, detail)) = history.done.get(&machine) {
            let detail = detail.clone();
            let ok = outcome == "succeeded";
            report.outcomes.push(Outcome {
                machine,
                outcome: Kind::of(outcome),
                result: ok.then(|| detail.clone()),
                error: (!ok).then(|| {
                    detail
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| detail.to_string())
                }),
                earlier: true,
            });
        } else if history.unknown.contains(&machine) && !retry_unknown {
            report.outcomes.push(Outcome {
                machine,
                outcome: Kind::Unknown,
                result: None,
                error: Some("sent by an earlier run that ended before the answer; not sent again (--retry-unknown sends it)".into()),
                earlier: true,
            });
        } else {
            queue.push(machine);
        }
    }
    journal.append(&Entry::Run {
        operation: op.spec().operation_id.into(),
        comment: comment.into(),
        machines: queue.len(),
        at: now(),
    })?;
    progress(Progress::Start(queue.len()));

    let mut queue = queue.into_iter();
    // The next machine, waiting for room in the rate limit.
    let mut next: Option<(String, Ready<'_>)> = None;
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;
    tokio::pin!(stop);
    loop {
        if next.is_none() && !stopping && in_flight.len() < IN_FLIGHT {
            next = queue.next().map(|machine| {
                let ready = prepare(client, op, &machine, comment);
                (machine, ready)
            });
        }
        if next.is_none() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(answer) = async { Some(next.as_mut()?.1.as_mut().await) }, if next.is_some() => {
                let (machine, _) = next.take().expect("a machine was waiting");
                journal.append(&Entry::Sending { machine: machine.clone(), at: now() })?;
                in_flight.push(async move { (machine.clone(), answer.await) });
            }
            Some((machine, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                let (outcome, fatal) = outcome(machine, answer);
                let detail = match (&outcome.result, &outcome.error) {
                    (Some(result), _) => result.clone(),
                    (None, Some(error)) => Value::String(error.clone()),
                    (None, None) => Value::Null,
                };
                journal.append(&Entry::Done { machine: outcome.machine.clone(), outcome: outcome.outcome.as_str().into(), detail, at: now() })?;
                progress(Progress::Done(&outcome));
                report.outcomes.push(outcome);
                if fatal.is_some() && report.fatal.is_none() {
                    report.fatal = fatal;
                    stopping = true;
                    report.not_sent.extend(next.take().map(|(machine, _)| machine));
                }
            }
            _ = &mut stop, if !stopping => {
                stopping = true;
                report.not_sent.extend(next.take().map(|(machine, _)| machine));
            }
        }
    }
    report.not_sent.extend(queue);
    // Reported in the order given, whatever order the answers came in.
    report
        .outcomes
        .sort_by_key(|o| order.get(&o.machine).copied().unwrap_or(usize::MAX));
    Ok(report)
}
