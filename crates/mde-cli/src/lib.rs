//! `mde`, the command-line tool: its parts as a library, for its tests and its benchmark.
//!
//! # Layers
//!
//! Imports run down this table, never up and never in a circle; a type lives with the lowest
//! layer that speaks it. The workspace's `tests/layers.rs` reads this table and holds the
//! sources to it.
//!
//! | layer | modules |
//! |---|---|
//! | the entry point: which command runs | `app` |
//! | the commands, one file each | `commands` |
//! | rendering: tables, summaries, progress, a hunt's rows | `output`, `rows` |
//! | the run's set-up: the command line, profiles, sign-in, machines, resume | `session`, `tenants`, `selection`, `signin`, `cli`, `body_flags`, `profiles`, `targets` |
//! | the engines: look-ups, hunts, the fleet run, the evidence pipeline, following actions | `fleet`, `pipeline`, `wait`, `pending`, `names`, `hunted` |
//! | the records: the journal, the evidence manifest, the JSON and CSV line | `journal`, `evidence`, `json` |
//! | the vocabulary every layer speaks | `vocabulary` |
#![forbid(unsafe_code)]

pub mod app;
pub mod body_flags;
pub mod cli;
mod commands;
pub mod evidence;
pub mod fleet;
pub mod hunted;
pub mod journal;
pub mod json;
pub mod names;
pub mod output;
pub mod pending;
pub mod pipeline;
pub mod profiles;
pub mod rows;
pub mod selection;
pub mod session;
mod signin;
pub mod targets;
mod tenants;
pub mod vocabulary;
pub mod wait;
