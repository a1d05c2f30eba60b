//! A run over many machines: as fast as the documented limits allow, each request journaled
//! before it is sent and after its outcome, going on past per-machine failures.

use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mde_client::operations::{Answer, AnyRequest, OperationId, Request, RequestVisitor};
use mde_client::{Call, Client, Delivery, Error};

use crate::journal::{Entry, History, Journal, now};
use crate::vocabulary::{ErrorInfo, Kind, Outcome, holds_for_every_call};

/// How a run ended.
#[derive(Debug, Default)]
pub struct FleetReport {
    /// Every machine's outcome, in the order the machines were given.
    pub outcomes: Vec<Outcome>,
    /// Machines not sent to: the run was stopped (Ctrl-C, or `fatal`) before them.
    pub not_sent: Vec<String>,
    /// An error that stopped the run: it holds for every machine (credentials, permission,
    /// configuration).
    pub fatal: Option<String>,
    /// Why the run stopped sending after [`UNREACHABLE`] requests in a row got no answer:
    /// the last one's error.
    pub unreachable: Option<String>,
    /// A local fault that stopped the run: the journal could not be written (a full disk, a
    /// read-only folder). Nothing more was sent; the requests in flight were answered.
    pub local: Option<String>,
}

/// After this many requests in a row with no answer (never sent, or sent and unanswered),
/// the service looks unreachable: the run stops sending.
pub const UNREACHABLE: usize = 10;

/// Something to show while the run goes.
#[derive(Debug)]
pub enum FleetEvent<'a> {
    /// This many machines are to be sent to.
    Start(usize),
    /// One more ended.
    Done(&'a Outcome),
    /// An earlier run's outcome, not sent again.
    Earlier(&'a Outcome),
}

/// How many requests may be answered at once: the limits, not this, set the pace.
const IN_FLIGHT: usize = 32;

type Sent<'a> = Pin<Box<dyn Future<Output = Result<Answer, Error>> + Send + 'a>>;
type Ready<'a> = Pin<Box<dyn Future<Output = Sent<'a>> + Send + 'a>>;

/// Reserves room in the rate limit, then hands back the call, ready to send at once.
#[allow(clippy::async_yields_async)] // on purpose: the journal line goes between the two
fn ready<'a, R: Request>(call: Call<'a, R>) -> Ready<'a> {
    Box::pin(async move {
        let call = call.reserve().await;
        let sent: Sent<'a> = Box::pin(async move { call.await.map(R::answer) });
        sent
    })
}

/// Sends a request of any operation through the fleet's two steps (room in the limit, then
/// the request): the template's own type is known only here.
struct Prepare<'a>(&'a Client);

impl<'a> RequestVisitor for Prepare<'a> {
    type Output = Ready<'a>;

    fn visit<R: Request>(self, request: R) -> Ready<'a> {
        ready(self.0.send(request))
    }
}

/// The call of the plan's request on one machine (or action): the template with its id.
pub fn prepare<'a>(client: &'a Client, plan: &Plan<'_>, machine: &str) -> Ready<'a> {
    plan.template.with_id(machine).visit(Prepare(client))
}

/// The outcome of an answer, and the error that stops the run when it holds for every machine
/// (credentials, permission, configuration: the machine is then `not_sent`, to be sent on
/// resume). An action already running is reported so, whichever way the service said it,
/// with the pending action when it gave it. A failure without an answer is `not_sent` or
/// `unknown`, by whether the request may have left.
fn outcome(
    op: OperationId,
    machine: String,
    answer: Result<Answer, Error>,
) -> (Outcome, Option<String>) {
    let (kind, result, error, fatal) = match answer {
        Ok(answer) => (Kind::Accepted, Some(answer), None, false),
        Err(Error::AlreadyPending(action)) => {
            let why = ErrorInfo::of(&Error::AlreadyPending(action.clone()));
            // The pending action, as the answer of the operation that asked for a new one.
            let pending = Answer::of_action(op, *action);
            (Kind::AlreadyRunning, pending, Some(why), false)
        }
        Err(e) => {
            let fatal = holds_for_every_call(&e);
            let kind = match (&e, e.delivery()) {
                _ if fatal => Kind::NotSent,
                (Error::AlreadyRunning(_), _) => Kind::AlreadyRunning,
                (Error::NotFound(_), _) => Kind::NotFound,
                (_, Delivery::NotSent) => Kind::NotSent,
                (_, Delivery::Unknown) => Kind::Unknown,
                (_, Delivery::Answered) => Kind::Failed,
            };
            (kind, None, Some(ErrorInfo::of(&e)), fatal)
        }
    };
    let fatal = fatal.then(|| {
        error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default()
    });
    let outcome = Outcome {
        machine,
        name: None,
        kind,
        result,
        error,
        earlier: false,
        tenant: None,
    };
    (outcome, fatal)
}

/// What a run does: the request each machine gets, its id set to the machine's.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The request, body included; its id is set per machine.
    pub template: &'a AnyRequest,
    /// Send again to machines an earlier run sent to without recording an answer.
    pub retry_unknown: bool,
    /// Send again to machines whose earlier answer was a failure (not `already_running`).
    pub retry_failed: bool,
}

impl Plan<'_> {
    /// The operation.
    pub fn op(&self) -> OperationId {
        self.template.operation()
    }

    /// The body each machine's request carries, as the wire has it: what the journal records
    /// and a resume must match.
    pub fn body(&self) -> serde_json::Value {
        self.template.body().unwrap_or_default()
    }

    /// The body's `Comment`.
    pub fn comment(&self) -> String {
        let body = self.body();
        body.get("Comment")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// A run's work: the plan, the machines it goes to, the journal it is recorded in, and what
/// the resumed journal recorded.
pub struct Batch<'a> {
    /// What is sent to each machine.
    pub plan: Plan<'a>,
    /// The machines, in the order given.
    pub machines: Vec<String>,
    /// Where each request is recorded before it is sent, and its outcome after.
    pub journal: &'a Journal,
    /// What the resumed journal recorded (empty for a new run).
    pub history: History,
}

/// Takes a request's outcome into the report, the journal and the progress; `true` when the
/// run must stop sending now: an error that holds for every machine, a journal that cannot
/// be written, or [`UNREACHABLE`] requests in a row with no answer (`unanswered` counts
/// them; `stopping`, the run stops already).
fn take_answer(
    report: &mut FleetReport,
    journal: &Journal,
    (outcome, fatal): (Outcome, Option<String>),
    (unanswered, stopping): (&mut usize, bool),
    progress: &mut dyn FnMut(FleetEvent<'_>),
) -> bool {
    let mut stop = false;
    let no_answer = fatal.is_none() && matches!(outcome.kind, Kind::NotSent | Kind::Unknown);
    *unanswered = if no_answer { *unanswered + 1 } else { 0 };
    if *unanswered >= UNREACHABLE && !stopping {
        report.unreachable = outcome.error.as_ref().map(|e| e.message.clone());
        stop = true;
    }
    if let Err(e) = journal.done(&outcome) {
        // Reported all the same; a resume reads the machine as sent, unanswered.
        if report.local.is_none() {
            let path = journal.path().display();
            report.local = Some(format!("cannot write the journal {path}: {e}"));
            stop = true;
        }
    }
    progress(FleetEvent::Done(&outcome));
    report.outcomes.push(outcome);
    if fatal.is_some() && report.fatal.is_none() {
        report.fatal = fatal;
        stop = true;
    }
    stop
}

/// The machines of a run, sorted out by what the resumed journal recorded: those done by an
/// earlier run (or sent without an answer, not to be sent again) as their outcomes, and the
/// machines to send to.
fn sort_out(
    plan: &Plan<'_>,
    machines: Vec<String>,
    history: &History,
) -> (Vec<Outcome>, Vec<String>) {
    let (mut earlier, mut queue) = (Vec::new(), Vec::new());
    for machine in machines {
        let done = history
            .done
            .get(&machine)
            .filter(|d| !(plan.retry_failed && d.kind == Kind::Failed));
        if let Some(done) = done {
            earlier.push(Outcome {
                earlier: true,
                ..done.clone()
            });
        } else if history.unknown.contains(&machine) && !plan.retry_unknown {
            earlier.push(Outcome {
                machine,
                name: None,
                kind: Kind::Unknown,
                result: None,
                error: Some(ErrorInfo::new(
                    "unknown",
                    "sent by an earlier run that ended before the answer; not sent again (--retry-unknown sends it)",
                )),
                earlier: true,
                tenant: None,
            });
        } else {
            queue.push(machine);
        }
    }
    (earlier, queue)
}

/// Runs the plan on the batch's machines, journaling each request. Machines `history` shows
/// as done are reported as they were and not sent again; those it shows as sent without an
/// outcome are reported unknown, and sent again only with `retry_unknown`. Stops sending
/// when `stop` resolves, and lets the requests in flight end. A request is sent only once its
/// journal line is on disk: when the journal cannot be written, sending stops at once, the
/// requests in flight are answered and reported, and [`FleetReport::local`] says why.
pub async fn run(
    client: &Client,
    batch: Batch<'_>,
    progress: &mut dyn FnMut(FleetEvent<'_>),
    stop: impl Future<Output = ()>,
) -> FleetReport {
    let Batch {
        plan,
        machines,
        journal,
        history,
    } = batch;
    let op = plan.op();
    let mut report = FleetReport::default();
    let order: std::collections::HashMap<String, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), i))
        .collect();
    let (earlier, queue) = sort_out(&plan, machines, &history);
    for outcome in earlier {
        progress(FleetEvent::Earlier(&outcome));
        report.outcomes.push(outcome);
    }
    let cannot =
        |e: std::io::Error| format!("cannot write the journal {}: {e}", journal.path().display());
    if history.run.is_some() {
        let resumed = Entry::Resumed {
            sending: queue.len(),
            at: now(),
        };
        if let Err(e) = journal.append(&resumed) {
            report.local = Some(cannot(e));
            report.not_sent.extend(queue);
            return report;
        }
    }
    progress(FleetEvent::Start(queue.len()));

    let mut queue = queue.into_iter();
    // The next machine, waiting for room in the rate limit.
    let mut next: Option<(String, Ready<'_>)> = None;
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;
    // Requests in a row that got no answer.
    let mut unanswered = 0;
    tokio::pin!(stop);
    loop {
        if next.is_none() && !stopping && in_flight.len() < IN_FLIGHT {
            next = match queue.next() {
                Some(machine) => {
                    let ready = prepare(client, &plan, &machine);
                    Some((machine, ready))
                }
                None => None,
            };
        }
        if next.is_none() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(answer) = async { Some(next.as_mut()?.1.as_mut().await) }, if next.is_some() => {
                let (machine, _) = next.take().expect("a machine was waiting");
                match journal.sending(&machine) {
                    Ok(()) => in_flight.push(async move { (machine.clone(), answer.await) }),
                    // Not journaled, not sent: the reserved call is dropped unsent.
                    Err(e) => {
                        report.local.get_or_insert(cannot(e));
                        stopping = true;
                        report.not_sent.push(machine);
                    }
                }
            }
            Some((machine, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                let answered = outcome(op, machine, answer);
                let tally = (&mut unanswered, stopping);
                if take_answer(&mut report, journal, answered, tally, progress) {
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
    report
}
