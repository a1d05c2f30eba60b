//! The commands, a module for each family; `app` dispatches to them and holds what they share.

pub(crate) mod action;
pub(crate) mod evidence_run;
pub(crate) mod fleet_run;
pub(crate) mod hunt;
pub(crate) mod library;
pub(crate) mod machine;
pub(crate) mod package;
mod parts;
pub(crate) mod profile;
