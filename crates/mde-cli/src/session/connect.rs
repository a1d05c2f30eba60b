//! Connecting: the embedded simulator of `--simulate`, the client of a connection, and signing
//! in before the first request.

use std::sync::Arc;

use mde_client::{Client, WaitEvent};

use crate::cli::{Cli, Connection};
use crate::targets;
use crate::vocabulary::{AUTH, USAGE, fail};

/// The simulator's speed when `--simulate` is given without `--time-scale`.
const DEFAULT_TIME_SCALE: f64 = 60.0;

/// The client of a command that is not a fleet run (and the simulator of `--simulate`, empty):
/// every wait for a limit is said on stderr.
pub(crate) async fn connect(
    cli: &Cli,
    names: &[String],
) -> Result<(Option<mde_sim::Simulator>, Client), u8> {
    let conn = &cli.connection;
    if conn.profile.len() > 1 {
        return Err(fail(
            USAGE,
            "only a run of actions on machines goes to several profiles at once; give this command one --profile",
        ));
    }
    let scale = time_scale(conn)?;
    let simulator = simulator(conn, scale, &[], names).await?;
    let client = client(conn, simulator.as_ref(), scale, |event: &WaitEvent| {
        // The documented pace is expected: a wait of it under a second is not worth a line.
        if event.wait.as_secs() >= 1 || event.reason != mde_client::WaitReason::RateLimit {
            eprintln!(
                "mde: waiting {} s for {:?}",
                event.wait.as_secs(),
                event.reason
            );
        }
    })?;
    sign_in(&client).await?;
    Ok((simulator, client))
}

pub(crate) fn credentials_error() -> String {
    "no credentials: set MDE_TOKEN, or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or give --token, or --tenant-id, --client-id and --client-secret), or try --simulate".into()
}

/// The simulated seconds per real second: `--time-scale`, only where it cannot outrun the
/// real service's limits.
pub(crate) fn time_scale(conn: &Connection) -> Result<f64, u8> {
    if conn.time_scale.is_some() && !conn.simulate && conn.api_url.is_none() {
        // Against the real service a faster clock would send faster than the documented limits.
        return Err(fail(
            USAGE,
            "--time-scale needs --simulate or a simulator's --api-url",
        ));
    }
    let scale = conn.time_scale.unwrap_or(DEFAULT_TIME_SCALE);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(fail(USAGE, "--time-scale must be a positive number"));
    }
    Ok(scale)
}

/// How many times faster than real time the run's clock goes: `scale` against a simulator
/// (`--simulate`, or one's `--api-url` with `--time-scale`), 1 against the service.
pub(crate) fn speed(conn: &Connection, scale: f64) -> f64 {
    if conn.simulate || conn.time_scale.is_some() {
        scale
    } else {
        1.0
    }
}

/// The embedded simulator of `--simulate`, with the run's well-formed ids and its names in its
/// inventory.
pub(crate) async fn simulator(
    conn: &Connection,
    scale: f64,
    machines: &[String],
    names: &[String],
) -> Result<Option<mde_sim::Simulator>, u8> {
    if !conn.simulate {
        return Ok(None);
    }
    let config = mde_sim::Config {
        listen: "127.0.0.1:0".parse().expect("a loopback address"),
        time_scale: scale,
        machines: machines
            .iter()
            .filter(|id| targets::well_formed(id))
            .cloned()
            .collect(),
        names: names.to_vec(),
        ..mde_sim::Config::default()
    };
    let sim = mde_sim::Simulator::start(config)
        .await
        .map_err(|e| fail(AUTH, format!("cannot start the simulator: {e}")))?;
    eprintln!(
        "mde: simulating at {} (time x{scale}; tenant sim-tenant, client sim-client)",
        sim.base_url()
    );
    Ok(Some(sim))
}

/// The client: of the simulator, or of the service with the given credentials; every wait
/// shown by `on_wait`.
pub(crate) fn client(
    conn: &Connection,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
) -> Result<Client, u8> {
    try_client(conn, simulator, scale, on_wait).map_err(|(code, why)| fail(code, why))
}

/// [`client`], its error its exit code and what to say.
pub(crate) fn try_client(
    conn: &Connection,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
) -> Result<Client, (u8, String)> {
    let builder = try_builder(conn, simulator, scale, on_wait)?;
    builder.build().map_err(|e| (AUTH, e.to_string()))
}

/// The builder of [`try_client`]'s client, for a command that sets more.
pub(crate) fn try_builder(
    conn: &Connection,
    simulator: Option<&mde_sim::Simulator>,
    scale: f64,
    on_wait: impl Fn(&WaitEvent) + Send + Sync + 'static,
) -> Result<mde_client::ClientBuilder, (u8, String)> {
    let mut builder = match simulator {
        Some(sim) => sim.client_builder(),
        None => Client::builder(),
    }
    .cloud(conn.cloud)
    .region(conn.region)
    .on_wait(on_wait);
    if let Some(path) = &conn.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| (USAGE, format!("cannot read {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(pem);
    }
    if simulator.is_none() {
        if let Some(url) = &conn.api_url {
            builder = builder.base_url(url);
        }
        if let Some(url) = &conn.login_url {
            builder = builder.login_url(url);
        }
        let secret = conn.client_secret.as_deref().filter(|s| !s.is_empty());
        let auth = crate::signin::chosen(conn);
        let identity = match auth {
            Some(auth) => crate::signin::credential(auth, conn).map_err(|e| (AUTH, e))?,
            None => None,
        };
        builder = if let Some(credential) = identity {
            let auth = auth.map_or("", |a| a.as_str());
            eprintln!("mde: signing in with {auth}");
            builder.token_credential(credential)
        } else {
            match (
                crate::signin::token(conn),
                &conn.tenant_id,
                &conn.client_id,
                secret,
            ) {
                (Some(token), ..) => {
                    let from = if std::env::var("MDE_TOKEN").is_ok_and(|t| t == token) {
                        "MDE_TOKEN"
                    } else {
                        "--token"
                    };
                    eprintln!("mde: signing in with the bearer token of {from}");
                    builder.bearer_token(token)
                }
                (None, Some(tenant), Some(client), Some(secret)) => {
                    let from = match &conn.secret_from {
                        Some(variable) => variable.as_str(),
                        None if std::env::var("AZURE_CLIENT_SECRET").is_ok_and(|s| s == secret) => {
                            "AZURE_CLIENT_SECRET"
                        }
                        None => "--client-secret",
                    };
                    eprintln!(
                        "mde: signing in as client {} of tenant {} with the secret of {from}",
                        crate::vocabulary::escape(client),
                        crate::vocabulary::escape(tenant)
                    );
                    builder.client_credentials(tenant, client, secret)
                }
                _ => return Err((AUTH, credentials_error())),
            }
        };
        if conn.time_scale.is_some() {
            // Against a simulator of its own (--api-url), at the speed it was told.
            builder = builder.clock(Arc::new(mde_sim::Clock::scaled(scale)));
        }
    }
    Ok(builder)
}

/// Gets a token before the first request: wrong credentials or an unreachable sign-in
/// host end the command (exit 3) before anything is sent or journaled.
pub(crate) async fn sign_in(client: &Client) -> Result<(), u8> {
    try_sign_in(client)
        .await
        .map_err(|(code, why)| fail(code, why))
}

/// [`sign_in`], its error its exit code and what to say.
pub(crate) async fn try_sign_in(client: &Client) -> Result<(), (u8, String)> {
    client.sign_in().await.map_err(|e| {
        let text = crate::vocabulary::error_text(&e);
        // rustls's words for a host whose certificate no trusted CA signed.
        let untrusted = ["UnknownIssuer", "invalid peer certificate", "self-signed"]
            .iter()
            .any(|t| text.contains(t));
        let fix = match untrusted {
            true => "\nThe sign-in host's TLS certificate is not trusted: give its CA with --ca-cert FILE (or a profile's ca_cert).",
            false => "",
        };
        (AUTH, format!("cannot sign in, nothing was sent: {text}{fix}"))
    })
}
