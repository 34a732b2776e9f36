//! Every way a client request can fail, as one matchable type.

use crdt_types::Kind;

use crate::protocol::ErrorReply;

/// Why a request failed.
///
/// The first group mirrors what a node answered ([`From<ErrorReply>`]);
/// the last group (`Tls`, `Connect`, `Protocol`) is about reaching a node.
/// Variants are stable, so callers can match on them:
///
/// ```
/// use meridian::client::ClientError;
/// use meridian::crdt::Kind;
///
/// fn explain(e: &ClientError) -> &'static str {
///     match e {
///         ClientError::WrongType { found: Kind::Counter, .. } => "that key is a counter",
///         ClientError::QuorumNotReached { .. } => "kept, but not yet on enough replicas",
///         // The request may have been applied before the answer was
///         // lost: repeating a `set` is harmless, repeating an `incr` may
///         // count twice (the client already tried the key's other
///         // replicas where that was safe; see the module docs).
///         ClientError::Timeout | ClientError::Connect(_) => "perhaps applied: re-read before repeating",
///         _ => "see the message",
///     }
/// }
/// assert_eq!(explain(&ClientError::Timeout), "perhaps applied: re-read before repeating");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The key holds another type.
    #[error(
        "WRONGTYPE operation against a key holding {}, wanted {}",
        found.with_article(),
        wanted.with_article()
    )]
    WrongType {
        /// The type the operation works on.
        wanted: Kind,
        /// The key's type.
        found: Kind,
    },
    /// The write was applied and kept (it is replicated later), but fewer
    /// replicas than asked acknowledged it in time.
    #[error("write reached {acked} of the {needed} replicas needed (kept, and replicated later)")]
    QuorumNotReached {
        /// Replicas that applied the write.
        acked: u8,
        /// Replicas the request asked for.
        needed: u8,
    },
    /// Too few replicas answered a quorum read in time.
    #[error("read reached {replied} of the {needed} replicas needed")]
    ReadQuorumNotReached {
        /// Replicas that answered.
        replied: u8,
        /// Replicas the read needed.
        needed: u8,
    },
    /// No answer in time (from the node, or from the replica it asked).
    #[error("timed out")]
    Timeout,
    /// A key, value or whole request is over the cluster's size limit.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// `"key"`, `"value"`, `"the key's value"` (a set or map that
        /// would grow past what one answer can carry) or `"request"`.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A counter would overflow.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// No replica of the key could serve the request.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request was malformed or not allowed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A replica refused the request (for example, a clock too far ahead).
    #[error("refused: {0}")]
    Refused(String),
    /// Certificates could not be loaded, or the TLS handshake was refused.
    #[error("TLS: {0}")]
    Tls(String),
    /// A node could not be reached, or the connection to it was lost.
    #[error("cannot reach the node: {0}")]
    Connect(String),
    /// The node broke the wire protocol, or refused this client's.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// The `what` of a [`ClientError::TooLarge`] about a set or map too large
/// for one answer.
pub(crate) const TOO_LARGE_VALUE: &str = "the key's value";

impl ClientError {
    /// Whether another replica might succeed where this attempt failed.
    pub(crate) fn fails_over(&self) -> bool {
        matches!(self, ClientError::Timeout | ClientError::Connect(_))
    }
}

impl From<ErrorReply> for ClientError {
    fn from(e: ErrorReply) -> Self {
        match e {
            ErrorReply::WrongType { wanted, found } => ClientError::WrongType { wanted, found },
            ErrorReply::KeyTooLarge { len, max } => ClientError::TooLarge {
                what: "key",
                len,
                max,
            },
            ErrorReply::ValueTooLarge { len, max } => ClientError::TooLarge {
                what: "value",
                len,
                max,
            },
            ErrorReply::KeyValueTooLarge { len, max } => ClientError::TooLarge {
                what: TOO_LARGE_VALUE,
                len,
                max,
            },
            ErrorReply::Overflow => ClientError::Overflow,
            e @ ErrorReply::NestingTooDeep { .. } => ClientError::BadRequest(e.to_string()),
            ErrorReply::QuorumNotReached { acked, needed } => {
                ClientError::QuorumNotReached { acked, needed }
            }
            ErrorReply::ReadQuorumNotReached { replied, needed } => {
                ClientError::ReadQuorumNotReached { replied, needed }
            }
            ErrorReply::Timeout => ClientError::Timeout,
            ErrorReply::Unavailable { reason } => ClientError::Unavailable(reason),
            ErrorReply::BadRequest { reason } => ClientError::BadRequest(reason),
            ErrorReply::Refused { reason } => ClientError::Refused(reason),
        }
    }
}

impl From<crate::tls::TlsError> for ClientError {
    fn from(e: crate::tls::TlsError) -> Self {
        ClientError::Tls(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_errors_map_to_matchable_variants() {
        let e = ClientError::from(ErrorReply::ValueTooLarge { len: 10, max: 5 });
        assert_eq!(
            e,
            ClientError::TooLarge {
                what: "value",
                len: 10,
                max: 5
            }
        );
        let e = ClientError::from(ErrorReply::QuorumNotReached {
            acked: 1,
            needed: 2,
        });
        assert_eq!(
            e,
            ClientError::QuorumNotReached {
                acked: 1,
                needed: 2
            }
        );
        assert!(!e.fails_over(), "a short write was kept: never resend it");
        assert!(ClientError::Connect("x".into()).fails_over());
        assert!(!ClientError::from(ErrorReply::WrongType {
            wanted: Kind::Set,
            found: Kind::Counter
        })
        .fails_over());
    }
}
