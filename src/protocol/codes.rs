//! Application error codes carried by QUIC stream resets, `STOP_SENDING`
//! and connection closes, so both ends of a Meridian stream agree on why it
//! was cut. A code is a number on the wire; [`describe`] turns it into the
//! sentence an operator or SDK user reads.

/// The stream or connection ended normally.
pub const NO_ERROR: u32 = 0;
/// The stream did not open with the Meridian preamble.
pub const BAD_PREAMBLE: u32 = 1;
/// The stream opened with another protocol version.
pub const VERSION_MISMATCH: u32 = 2;
/// A frame was over the size limit and carried no readable request id.
pub const FRAME_TOO_LARGE: u32 = 3;
/// A frame could not be decoded and carried no readable request id.
pub const MALFORMED_FRAME: u32 = 4;
/// The peer's certificate names no node of the topology.
pub const UNKNOWN_PEER: u32 = 5;
/// The node is shutting down.
pub const SHUTDOWN: u32 = 6;
/// The node has too many connections open.
pub const OVERLOADED: u32 = 7;
/// The connection holds too many half-received requests.
pub const TOO_MANY_PARTIAL: u32 = 8;

/// What a version mismatch says; names [`PROTOCOL_VERSION`](super::frame::PROTOCOL_VERSION)
/// (a test keeps the two in step).
const VERSION_MISMATCH_TEXT: &str =
    "the peer speaks another protocol version than this build's (10): nodes serve clients of \
     their own protocol version and a few before it, and speak only their own to each other \
     (upgrade every node, then the clients)";

/// A sentence for `code`, as read from a reset, stop or close.
///
/// ```
/// use meridian::protocol::codes;
/// assert!(codes::describe(codes::VERSION_MISMATCH.into()).contains("version"));
/// ```
pub fn describe(code: u64) -> &'static str {
    match code {
        c if c == u64::from(NO_ERROR) => "closed normally",
        c if c == u64::from(BAD_PREAMBLE) => "the stream did not start with the Meridian preamble",
        c if c == u64::from(VERSION_MISMATCH) => VERSION_MISMATCH_TEXT,
        c if c == u64::from(FRAME_TOO_LARGE) => "a frame exceeded the size limit",
        c if c == u64::from(MALFORMED_FRAME) => "a frame could not be decoded",
        c if c == u64::from(UNKNOWN_PEER) => "the peer is not a node of the topology",
        c if c == u64::from(SHUTDOWN) => "the node is shutting down",
        c if c == u64::from(OVERLOADED) => "the node has too many connections",
        c if c == u64::from(TOO_MANY_PARTIAL) => {
            "the connection holds too many half-received requests"
        }
        _ => "unknown error code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_mismatch_names_this_builds_protocol_version() {
        let version = format!("({})", crate::protocol::frame::PROTOCOL_VERSION);
        assert!(
            describe(VERSION_MISMATCH.into()).contains(&version),
            "{VERSION_MISMATCH_TEXT}: keep it in step with PROTOCOL_VERSION"
        );
    }
}
