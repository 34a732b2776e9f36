//! The `meridian` command line, as a library so that every piece of it is
//! tested: `src/main.rs` only wires these together and prints.
//!
//! - [`command`]: data command words (`set k v --ex 10`) → protocol
//!   [`Command`](crate::protocol::Command); pure.
//! - [`format`]: answers → redis-cli style text; pure.
//! - [`cluster`]: `meridian cluster up | down | kill | status`.

pub mod cluster;
pub mod command;
pub mod format;
