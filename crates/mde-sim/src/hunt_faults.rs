//! The failures the hunting endpoints answer on demand (`mde-sim --hunt-faults`): a query
//! too large or too slow, as the service answers it.

use axum::http::StatusCode;
use mde_client::hunting::ROW_CAP;

use crate::error::ApiError;
use crate::package::{dice, shares};

/// A failure the hunting endpoints answer on demand (`mde-sim --hunt-fault`), as the service
/// answers a query too large or too slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The result-size 400, on a query that scanned more than [`HEAVY`] rows.
    Size,
    /// The preemption 400, on a query that scanned more than [`HEAVY`] rows.
    Preempt,
    /// 504 `UnknownError` with an empty message (microsoft-graph-docs #19954).
    Timeout,
    /// 500 `UnknownError` with an empty message (#19084).
    Unknown,
}

/// The rows a query must scan to be preempted or refused for its size by a fault: half the
/// row cap, so that a query split in halves gets past it.
pub const HEAVY: u64 = ROW_CAP as u64 / 2;

impl Fault {
    /// The service's answer (hunting-indicators-alerts.md §1.1, §1.7).
    pub fn error(self) -> ApiError {
        let (status, code, message) = match self {
            Fault::Size => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Query execution has exceeded the allowed result size. Optimize your query by limiting the number of results and try again",
            ),
            Fault::Preempt => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Query execution has exceeded the allowed limits. The query execution was preempted. This could possibly be due to high CPU and/or memory resource consumption. Optimize your query by following best practices and try again.",
            ),
            Fault::Timeout => (StatusCode::GATEWAY_TIMEOUT, "UnknownError", ""),
            Fault::Unknown => (StatusCode::INTERNAL_SERVER_ERROR, "UnknownError", ""),
        };
        ApiError::new(status, code, message)
    }
}

/// Faults and the share of queries each hits, e.g. `preempt:1,timeout:0.2`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults(pub Vec<(Fault, f64)>);

impl std::str::FromStr for Faults {
    type Err = String;
    fn from_str(text: &str) -> Result<Faults, String> {
        let names = [
            ("size", Fault::Size),
            ("preempt", Fault::Preempt),
            ("timeout", Fault::Timeout),
            ("error", Fault::Unknown),
        ];
        shares(text, ("fault", "preempt:1"), &names, str::eq).map(Faults)
    }
}

impl Faults {
    /// The fault the `number`-th query meets, if any: each rolled on its share, the size and
    /// preemption ones only for a query that scanned more than [`HEAVY`] rows.
    pub fn roll(&self, seed: u64, number: u64, scanned: u64) -> Option<Fault> {
        let number = number.to_string();
        self.0.iter().find_map(|&(fault, share)| {
            let heavy_only = matches!(fault, Fault::Size | Fault::Preempt);
            let name = format!("{fault:?}");
            let hit = dice(seed, &["hunt", &number, &name]) < share;
            (hit && (!heavy_only || scanned > HEAVY)).then_some(fault)
        })
    }
}
