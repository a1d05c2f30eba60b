//! `mde_client::Client` over real HTTP on 127.0.0.1: against the simulator for what the service
//! does, and against a hostile server for what it should never do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use mde_client::{Client, ClientBuilder, Error, OperationId, WaitEvent, WaitReason, operations};
use mde_sim::{
    App, Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, Simulator,
    generated_machine_id,
};

const MACHINE: &str = "fb9ab6be3965095a09c057be7c90f0a2";

async fn simulator(config: Config) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .unwrap()
}

/// A client of `sim` signing in as its default app, on the simulator's clock.
fn builder(sim: &Simulator) -> ClientBuilder {
    sim.client_builder()
}

/// Collects the wait events a client reports.
fn recorder() -> (
    Arc<Mutex<Vec<WaitEvent>>>,
    impl Fn(&WaitEvent) + Send + Sync + 'static,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e: &WaitEvent| sink.lock().unwrap().push(*e))
}

/// A server that answers every request with what `answer` makes, and counts requests.
async fn hostile(
    answer: impl Fn() -> Response<Body> + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        async move { answer() }
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(socket, app).await });
    (base, hits)
}

fn answer(status: u16, content_type: &str, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

fn hostile_client(base: &str) -> Client {
    Client::builder()
        .base_url(base)
        .bearer_token("t")
        .retries_on_429(0)
        .build()
        .unwrap()
}

mod actions_and_tls;
mod tokens_and_errors;
