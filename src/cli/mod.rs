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
//! - [`shell`]: `meridian` with no command, one data command per line.
//! - `serve`, `data`, [`bench`](mod@bench), [`status`] and [`demo`]: the only parts
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
pub mod reload;
pub mod serve;
pub mod shell;
pub mod status;

/// An error and its causes on one line, `outer: cause: root`, leaving out a
/// cause whose text the line already ends with (many errors print their
/// cause in their own message as well as giving it as their source).
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Read {
            path: "t.toml".into(),
            source: io(),
        });
        assert_eq!(error_text(&e), "cannot read t.toml: no such file");
        // A cause the message does not carry is still printed.
        let e = anyhow::Error::new(io()).context("loading the topology");
        assert_eq!(error_text(&e), "loading the topology: no such file");
        let e = anyhow::Error::new(Read {
            path: "t.toml".into(),
            source: io(),
        })
        .context("starting the cluster");
        assert_eq!(
            error_text(&e),
            "starting the cluster: cannot read t.toml: no such file"
        );
    }
}
