//! What the commands share to start a run, below them: connecting and signing in, the
//! machines of a run and their choice, the run's record and journal, and the signals that stop
//! a run.

mod choice;
mod connect;
mod record;
mod signals;

pub(crate) use choice::*;
pub(crate) use connect::*;
pub(crate) use record::*;
pub(crate) use signals::*;
