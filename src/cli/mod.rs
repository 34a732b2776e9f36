//! The `meridian` command line, as a library so that every piece of it is
//! tested: `src/main.rs` only wires these together and prints.
//!
//! - [`args`]: the command line as clap types.
//! - [`command`]: data command words (`set k v --ex 10`) → protocol
//!   [`Command`](crate::protocol::Command); pure.
//! - [`format`]: answers → redis-cli style text; pure.
//! - [`target`]: which topology, region and certificate a data command
//!   uses.
//! - [`certs`]: `meridian certs ...`.
//! - [`cluster`]: `meridian cluster up | down | kill | status`.
//! - [`shutdown`]: Ctrl-C and SIGTERM.

pub mod args;
pub mod certs;
pub mod cluster;
pub mod command;
pub mod format;
pub mod shutdown;
pub mod target;
