//! Framing: how messages travel on QUIC streams.
//!
//! A stream opens with a 6-byte preamble (`MRDN` and the protocol version,
//! u16 little-endian), then carries frames: a u32 little-endian length and
//! that many bytes of a postcard-encoded message. Frames are small and
//! written in batches, so one long-lived stream carries many requests.
//!
//! A stream between two nodes adds, after the preamble, the sending
//! process's life: a u64 (little-endian) drawn when the process started.
//! A node that sees a peer's life change knows the peer restarted, and that
//! its own connection to the peer leads to a process that is gone.
//!
//! Decoding never trusts a length: a frame longer than the limit is refused
//! before anything is allocated for it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The bytes every stream starts with.
pub const MAGIC: [u8; 4] = *b"MRDN";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 10;
/// The oldest client protocol version a node still serves. Since version
/// 7 the client messages only gained commands and replies at the end of
/// their enums (`SScan`, `HScan`, `SetPage`, `MapPage` in 9), so an older
/// client's requests decode the same, and the answers to them use nothing
/// it lacks (an answer that would is replaced by a `BadRequest` it reads,
/// see `Response::for_client`). A node answers on a client stream in the
/// client's version. Streams between nodes need [`PROTOCOL_VERSION`]
/// itself, so every node of a cluster runs one version.
///
/// `protocol::compat`'s tests pin how the messages of each version served
/// encode. A change to an existing client message must raise this past the
/// versions it breaks. So must a new key in the topology file, which nodes
/// send clients as text (`Command::Topology`) that older clients parse
/// strictly.
pub const CLIENT_VERSION_MIN: u16 = 7;
/// Bytes of the stream preamble.
pub const PREAMBLE_LEN: usize = 6;
/// Bytes of the sender's life after the preamble of a stream between two
/// nodes.
pub const PEER_LIFE_LEN: usize = 8;
/// Bytes of the preamble of a stream between two nodes (the preamble, then
/// the sender's life).
pub const PEER_PREAMBLE_LEN: usize = PREAMBLE_LEN + PEER_LIFE_LEN;
/// Bytes of a frame's length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// What went wrong reading or writing frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The stream did not start with the Meridian preamble.
    #[error("not a Meridian stream (bad preamble)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error(
        "protocol version {theirs} is not supported (this build speaks {ours}, and serves \
         clients of versions {CLIENT_VERSION_MIN} to {ours})"
    )]
    VersionMismatch {
        /// The peer's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// A frame was longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame's bytes were not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// The stream preamble for this build.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    preamble_of(PROTOCOL_VERSION)
}

/// The stream preamble naming protocol `version`.
pub fn preamble_of(version: u16) -> [u8; PREAMBLE_LEN] {
    let v = version.to_le_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1]]
}

/// Checks the preamble of a client's stream: the client's protocol
/// version, from [`CLIENT_VERSION_MIN`] to [`PROTOCOL_VERSION`].
pub fn check_client_preamble(bytes: &[u8; PREAMBLE_LEN]) -> Result<u16, FrameError> {
    if bytes[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let theirs = u16::from_le_bytes([bytes[4], bytes[5]]);
    if !(CLIENT_VERSION_MIN..=PROTOCOL_VERSION).contains(&theirs) {
        return Err(FrameError::VersionMismatch {
            theirs,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(theirs)
}

/// Checks a peer's preamble.
pub fn check_preamble(bytes: &[u8; PREAMBLE_LEN]) -> Result<(), FrameError> {
    if bytes[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let theirs = u16::from_le_bytes([bytes[4], bytes[5]]);
    if theirs != PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch {
            theirs,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// The preamble of a stream a node opens to another, naming the sending
/// process's `life`.
pub fn peer_preamble(life: u64) -> [u8; PEER_PREAMBLE_LEN] {
    let mut bytes = [0u8; PEER_PREAMBLE_LEN];
    bytes[..PREAMBLE_LEN].copy_from_slice(&preamble());
    bytes[PREAMBLE_LEN..].copy_from_slice(&life.to_le_bytes());
    bytes
}

/// Appends one frame holding `msg` to `out`. Refuses a message larger than `max`
/// (leaving `out` as it was).
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>, max: usize) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
    let encoded = postcard::to_extend(msg, std::mem::take(out));
    *out = match encoded {
        Ok(buf) => buf,
        Err(e) => return Err(FrameError::Malformed(e.to_string())),
    };
    let len = out.len() - start - LENGTH_PREFIX_LEN;
    if len > max {
        out.truncate(start);
        return Err(FrameError::TooLarge { len, max });
    }
    out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Reads the length prefix of a frame, refusing one over `max`.
pub fn frame_len(prefix: [u8; LENGTH_PREFIX_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a frame's body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Splits complete frames off the front of a receive buffer.
///
/// ```
/// use meridian::protocol::frame::{encode_into, FrameReader};
/// let mut wire = Vec::new();
/// encode_into(&"hello".to_string(), &mut wire, 1024).unwrap();
/// encode_into(&"world".to_string(), &mut wire, 1024).unwrap();
/// let mut reader = FrameReader::new(1024);
/// reader.extend(&wire[..7]); // a partial frame yields nothing yet
/// assert_eq!(reader.next_frame::<String>().unwrap(), None);
/// reader.extend(&wire[7..]);
/// assert_eq!(reader.next_frame::<String>().unwrap().as_deref(), Some("hello"));
/// assert_eq!(reader.next_frame::<String>().unwrap().as_deref(), Some("world"));
/// ```
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    pos: usize,
    max: usize,
}

impl FrameReader {
    /// A reader refusing frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameReader {
            buf: Vec::new(),
            pos: 0,
            max,
        }
    }

    /// Adds received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, decoded; `None` until one has fully arrived.
    /// After an error the stream must be closed: framing is lost.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let avail = &self.buf[self.pos..];
        let Some(prefix) = avail.first_chunk::<LENGTH_PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = frame_len(*prefix, self.max)?;
        if avail.len() < LENGTH_PREFIX_LEN + len {
            return Ok(None);
        }
        let body = &avail[LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len];
        let msg = decode(body)?;
        self.pos += LENGTH_PREFIX_LEN + len;
        Ok(Some(msg))
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_preamble_is_the_preamble_then_the_senders_life() {
        let life = 0x0123_4567_89ab_cdef_u64;
        let bytes = peer_preamble(life);
        assert_eq!(bytes[..PREAMBLE_LEN], preamble());
        assert_eq!(bytes[PREAMBLE_LEN..], life.to_le_bytes());
    }

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let mut r = FrameReader::new(16);
        r.extend(&u32::MAX.to_le_bytes());
        assert_eq!(
            r.next_frame::<u8>(),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 16
            })
        );
    }

    #[test]
    fn garbage_frame_is_a_typed_error() {
        let mut r = FrameReader::new(64);
        r.extend(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.next_frame::<(u64, String)>(),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn encoder_refuses_messages_over_the_limit_and_leaves_the_buffer() {
        let mut out = vec![9];
        let big = vec![0u8; 100];
        assert!(matches!(
            encode_into(&big, &mut out, 50),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn preamble_checks_magic_and_version() {
        assert_eq!(check_preamble(&preamble()), Ok(()));
        assert_eq!(check_preamble(b"HTTP/1"), Err(FrameError::BadMagic));
        let mut p = preamble();
        p[4] = 7;
        assert_eq!(
            check_preamble(&p),
            Err(FrameError::VersionMismatch {
                theirs: 7,
                ours: PROTOCOL_VERSION
            })
        );
    }

    #[test]
    fn a_client_preamble_may_name_any_version_a_node_still_serves() {
        for version in CLIENT_VERSION_MIN..=PROTOCOL_VERSION {
            assert_eq!(check_client_preamble(&preamble_of(version)), Ok(version));
        }
        for version in [0, CLIENT_VERSION_MIN - 1, PROTOCOL_VERSION + 1, u16::MAX] {
            assert_eq!(
                check_client_preamble(&preamble_of(version)),
                Err(FrameError::VersionMismatch {
                    theirs: version,
                    ours: PROTOCOL_VERSION
                })
            );
        }
        assert_eq!(check_client_preamble(b"HTTP/1"), Err(FrameError::BadMagic));
        // Between nodes, only this build's version.
        assert!(check_preamble(&preamble_of(PROTOCOL_VERSION - 1)).is_err());
    }
}
