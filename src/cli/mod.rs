//! The `meridian` command line, as a library so that every piece of it is
//! tested: `src/main.rs` only wires these together and prints.
//!
//! - [`args`]: the command line as clap types.
//! - [`command`]: data command words (`set k v --ex 10`) → protocol
//!   [`Command`](crate::protocol::Command); pure.
//! - [`format`](mod@format): answers → redis-cli style text; pure.
//! - [`target`]: which topology, region and certificate a data command
//!   uses.
//! - [`certs`]: `meridian certs ...`.
//! - [`cluster`]: `meridian cluster up | down | kill | status | partition
//!   | heal`.
//! - [`shutdown`]: Ctrl-C and SIGTERM.
//! - `serve`, `data`, [`bench`], [`status`] and [`demo`]: the only parts
//!   that need the network layer and the client SDK.
//!
//! Exit codes of the binary: 0 on success, 1 when a command fails (an
//! error from the cluster, a bad topology, a failed start), 2 for a
//! command line that does not parse.

pub mod args;
pub mod certs;
pub mod cluster;
pub mod command;
pub mod format;
pub mod shutdown;
pub mod target;

pub mod bench;
pub mod data;
pub mod demo;
pub mod serve;
pub mod status;
