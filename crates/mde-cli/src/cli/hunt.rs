//! `mde hunt`'s arguments: the query, its window, which API runs it, where the rows go.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Which API runs a hunting query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// Microsoft Graph's runHuntingQuery: a window, split past the caps.
    #[default]
    Graph,
    /// The Defender API's runAdvancedQuery: no window, no split; retiring (refused after
    /// 2027-02-01, MC1220762).
    Defender,
}

/// An advanced hunting query and where its rows go.
#[derive(Clone, Debug, Args)]
pub struct Hunt {
    /// The KQL query.
    #[arg(value_name = "QUERY", required_unless_present = "query_file")]
    pub query: Option<String>,
    /// Reads the query from FILE (UTF-8).
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    pub query_file: Option<PathBuf>,
    /// The window, as runHuntingQuery's Timespan: P7D (back from now), START/END, P7D/END,
    /// START/P7D or START (to now); times in RFC 3339. Without one, the 30 days the service
    /// keeps.
    #[arg(long, value_name = "ISO8601", conflicts_with_all = ["since", "until"])]
    pub timespan: Option<String>,
    /// The window's start: a date (midnight UTC) or an RFC 3339 date-time.
    #[arg(long, value_name = "TIME", value_parser = super::time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// The window's end (now by default).
    #[arg(long, value_name = "TIME", value_parser = super::time, requires = "since")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// The API that runs the query.
    #[arg(long, value_enum, default_value_t = Api::Graph)]
    pub api: Api,
    /// Writes the rows to FILE instead of stdout (complete, or not at all: FILE.part until
    /// the last row).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
