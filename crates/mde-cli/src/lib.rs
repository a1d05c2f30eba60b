//! `mde`, the command-line tool: its parts as a library, for its tests and its benchmark.
#![forbid(unsafe_code)]

pub mod app;
pub mod body_flags;
pub mod cli;
mod commands;
pub mod evidence;
pub mod fleet;
pub mod journal;
pub mod json;
pub mod names;
pub mod output;
pub mod pending;
pub mod pipeline;
pub mod profiles;
pub mod selection;
pub mod session;
mod signin;
pub mod targets;
mod tenants;
pub mod wait;
