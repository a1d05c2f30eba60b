//! placeholder
mod timestamp;
#[rustfmt::skip]
mod generated;
pub use generated::*;
pub use timestamp::{Timestamp, TimestampError};
