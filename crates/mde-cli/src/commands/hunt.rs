//! `mde hunt`: an advanced hunting query's whole answer, in each tenant of the run at once
//! (each within its own quotas, a `tenant` column added), its progress and cost on stderr.

use std::sync::Mutex;
use std::time::Duration;

use mde_client::hunting::{Cost, Family, Hunt};
use mde_client::{Client, Error, OperationId, WaitEvent};

use crate::cli::{Api, Cli, Connection};
use crate::output::of_tenant;
use crate::rows::Rows;
use crate::session::{simulator, time_scale, try_builder, try_sign_in};
use crate::vocabulary::{AUTH, LOCAL, OK, PARTIAL, USAGE, code_of, error_text, fail};

/// The longest a query waits on a 429 of the tenant's CPU: the first 15-minute cycle after
/// an hour's allocation is freed.
const LONGEST_WAIT: Duration = Duration::from_secs(75 * 60);

/// One tenant of the hunt: its profile (in a hunt of several), its connection, and why it
/// cannot sign in, if it cannot.
struct Tenant {
    label: Option<String>,
    conn: Connection,
    problem: Option<String>,
}

/// What a hunt asks, checked before anything is sent.
pub(crate) struct Asked {
    pub query: String,
    /// The `Timespan` given, or the window of `--since`/`--until` (the end `None`: now).
    pub timespan: Option<String>,
    pub since: Option<(
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    )>,
    pub family: Family,
}

/// `mde hunt`.
pub(crate) async fn run(cli: &Cli, args: &crate::cli::Hunt) -> Result<u8, u8> {
    let query = match (&args.query, &args.query_file) {
        (_, Some(file)) => crate::targets::read_text(file).map_err(|e| fail(USAGE, e))?,
        (Some(query), None) => query.clone(),
        (None, None) => String::new(),
    };
    let family = match args.api {
        Api::Graph => Family::Graph,
        Api::Defender => Family::Defender,
    };
    let asked = Asked {
        query,
        timespan: args.timespan.clone(),
        since: args.since.map(|since| (since, args.until)),
        family,
    };
    asked.hunt(chrono::Utc::now()).map_err(|e| fail(USAGE, e))?;
    let tenants = tenants(cli)?;
    let several = tenants.len() > 1;
    let rows = Rows::open(cli.run.output, args.out.as_deref(), several)
        .map_err(|e| fail(LOCAL, format!("cannot write the rows: {e}")))?;
    let rows = Mutex::new(rows);
    let scale = time_scale(&tenants[0].conn)?;
    let sim = simulator(&tenants[0].conn, scale, &[], &[]).await?;
    let hunts = tenants
        .iter()
        .map(|t| hunt_in(t, &asked, sim.as_ref(), scale, &rows));
    let results = futures_util::future::join_all(hunts).await;
    if let Some(sim) = sim {
        sim.stop().await;
    }
    let rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    report(&tenants, results, rows)
}

/// Says each tenant's cost or why it stopped, and ends the rows; the exit code.
fn report(
    tenants: &[Tenant],
    results: Vec<Result<Cost, (u8, String)>>,
    rows: Rows,
) -> Result<u8, u8> {
    let written = rows.written;
    let mut code = OK;
    for (tenant, result) in tenants.iter().zip(results) {
        let prefix = of_tenant(tenant.label.as_deref());
        match result {
            Ok(cost) => eprintln!(
                "mde: {prefix}{} row(s) in {} call(s) ({} window(s) split), {} wait(s) ({} s)",
                cost.rows,
                cost.calls,
                cost.splits,
                cost.waits,
                cost.waited.as_secs()
            ),
            Err((c, why)) if tenants.len() == 1 => {
                rows.abandon();
                return Err(fail(c, why));
            }
            Err((c, why)) => {
                eprintln!("mde: {prefix}stopped: {why}");
                code = code.max(if c == LOCAL { LOCAL } else { PARTIAL });
            }
        }
    }
    match rows.finish() {
        Ok(Some(file)) => eprintln!("mde: {written} row(s) written to {}", file.display()),
        Ok(None) if written == 0 => eprintln!("mde: the query found no rows"),
        Ok(None) => {}
        Err(e) => return Err(fail(LOCAL, format!("cannot write the rows: {e}"))),
    }
    Ok(code)
}

impl Asked {
    /// The hunt at `now`, or why it cannot be asked.
    pub(crate) fn hunt(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Hunt, String> {
        if self.query.trim().is_empty() {
            return Err("the query is empty".into());
        }
        let window = match (&self.timespan, self.since) {
            (Some(text), _) => Some(mde_client::hunting::window(Some(text), now)?),
            (None, Some((since, until))) => Some((since, until.unwrap_or(now))),
            (None, None) => None,
        };
        if let Some((from, to)) = window
            && from >= to
        {
            return Err(format!("the window ends ({to}) before it starts ({from})"));
        }
        if self.family == Family::Defender && window.is_some() {
            return Err("the Defender API takes no time window: put it in the query (| where Timestamp > ago(7d))".into());
        }
        Ok(Hunt {
            window,
            family: self.family,
            ..Hunt::new(self.query.clone())
        })
    }

    /// The operation that runs it.
    fn operation(&self) -> OperationId {
        match self.family {
            Family::Graph => OperationId::RunHuntingQuery,
            Family::Defender => OperationId::RunAdvancedQuery,
        }
    }
}

/// The tenants: each `--profile` of several, else the command line's one connection.
fn tenants(cli: &Cli) -> Result<Vec<Tenant>, u8> {
    let profiles = &cli.connection.profile;
    if profiles.len() <= 1 {
        return Ok(vec![Tenant {
            label: None,
            conn: cli.connection.clone(),
            problem: None,
        }]);
    }
    if cli.connection.simulate {
        return Err(fail(
            USAGE,
            "--simulate embeds one tenant: for a hunt of several profiles, start mde-sim with a --tenant for each and point each profile's api_url and login_url at it",
        ));
    }
    profiles
        .iter()
        .map(|profile| {
            let (conn, problem) = cli.connection_of(profile).map_err(|e| fail(USAGE, e))?;
            Ok(Tenant {
                label: Some(profile.clone()),
                conn,
                problem,
            })
        })
        .collect()
}

/// The hunt in one tenant: its client, sign-in and query, its rows written as they come.
async fn hunt_in(
    tenant: &Tenant,
    asked: &Asked,
    sim: Option<&mde_sim::Simulator>,
    scale: f64,
    rows: &Mutex<Rows>,
) -> Result<Cost, (u8, String)> {
    if let Some(problem) = &tenant.problem {
        return Err((AUTH, problem.clone()));
    }
    let label = tenant.label.as_deref();
    let said = of_tenant(label);
    let on_wait = move |event: &WaitEvent| {
        eprintln!(
            "mde: {said}waiting {} s for {}",
            event.wait.as_secs(),
            crate::vocabulary::wait_reason(event.reason)
        );
    };
    let client = try_builder(&tenant.conn, sim, scale, on_wait)?
        .max_retry_after(LONGEST_WAIT)
        .build()
        .map_err(|e| (AUTH, e.to_string()))?;
    try_sign_in(&client).await?;
    let hunt = asked
        .hunt(client.clock().now_utc())
        .map_err(|e| (USAGE, e))?;
    let op = asked.operation();
    let progress = |written: u64, cost: &Cost| progress(&client, op, label, written, cost);
    let each = |columns: &[_], page: Vec<_>, cost: &Cost| {
        let mut rows = rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.write(label, columns, &page)
            .map_err(|source| Error::Io {
                path: "the rows".into(),
                source,
            })?;
        progress(rows.written, cost);
        Ok(())
    };
    match client.hunt_each(&hunt, each).await {
        Ok((_, cost)) => Ok(cost),
        Err(e @ Error::Io { .. }) => Err((LOCAL, error_text(&e))),
        Err(e) => Err((code_of(&e), error_text(&e))),
    }
}

/// A line of progress on stderr: rows so far, calls, and the calls the quota has left.
fn progress(client: &Client, op: OperationId, label: Option<&str>, written: u64, cost: &Cost) {
    let left = client
        .calls_left(op)
        .map(|n| format!(", {n} call(s) left in the quota"))
        .unwrap_or_default();
    eprintln!(
        "mde: {}{} row(s) so far ({written} written), {} call(s){left}",
        of_tenant(label),
        cost.rows,
        cost.calls
    );
}
