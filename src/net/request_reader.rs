//! Splitting a client stream into requests, and recovering from bad frames.
//!
//! A client stream multiplexes many requests, so one bad frame should cost
//! one request, not the stream. Every request frame starts with the
//! request's id (postcard varint), so even a frame that is too large or does
//! not decode usually names the request it belonged to: that request gets a
//! `BadRequest` answer, the frame is skipped (an oversized one is discarded
//! as it arrives, never buffered) and the stream goes on. Only a frame whose
//! id cannot be read loses the framing; the stream is then closed.

use crate::protocol::frame::{self, FrameError, LENGTH_PREFIX_LEN};
use crate::protocol::{codes, Request};

/// Most bytes of a postcard varint u64.
const ID_BYTES_MAX: usize = 10;

/// What the next frame of a client stream turned out to be.
#[derive(Debug)]
pub(crate) enum Next {
    /// A request to serve.
    Request(Request),
    /// A frame that cannot be served; answer request `id` with `BadRequest`.
    Bad { id: u64, error: FrameError },
    /// Framing is lost: close the stream with `code`.
    Fatal { code: u32, error: FrameError },
}

/// Buffers the bytes of a client stream and yields its frames.
#[derive(Debug)]
pub(crate) struct RequestReader {
    buf: Vec<u8>,
    pos: usize,
    max: usize,
    /// Bytes of an oversized frame still to discard as they arrive.
    skip: usize,
}

impl RequestReader {
    /// A reader refusing frames over `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        RequestReader {
            buf: Vec::new(),
            pos: 0,
            max,
            skip: 0,
        }
    }

    /// Adds received bytes.
    pub(crate) fn extend(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet taken as frames.
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next frame; `None` until one has fully arrived (or, for an
    /// oversized frame, until its id has).
    pub(crate) fn next(&mut self) -> Option<Next> {
        if self.skip > 0 {
            return None;
        }
        let avail = &self.buf[self.pos..];
        let prefix = *avail.first_chunk::<LENGTH_PREFIX_LEN>()?;
        let body = &avail[LENGTH_PREFIX_LEN..];
        let announced = u32::from_le_bytes(prefix) as usize;
        if let Err(error) = frame::frame_len(prefix, self.max) {
            let head_len = announced.min(ID_BYTES_MAX);
            let head = &body[..body.len().min(head_len)];
            return match postcard::take_from_bytes::<u64>(head) {
                Ok((id, _)) => {
                    let have = body.len().min(announced);
                    self.pos += LENGTH_PREFIX_LEN + have;
                    self.skip = announced - have;
                    Some(Next::Bad { id, error })
                }
                // The id may still be arriving.
                Err(_) if head.len() < head_len => None,
                Err(_) => Some(Next::Fatal {
                    code: codes::FRAME_TOO_LARGE,
                    error,
                }),
            };
        }
        let body = body.get(..announced)?;
        let decoded = frame::decode::<Request>(body);
        let id = postcard::take_from_bytes::<u64>(body).map(|(id, _)| id);
        self.pos += LENGTH_PREFIX_LEN + announced;
        Some(match (decoded, id) {
            (Ok(request), _) => Next::Request(request),
            (Err(error), Ok(id)) => Next::Bad { id, error },
            (Err(error), Err(_)) => Next::Fatal {
                code: codes::MALFORMED_FRAME,
                error,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::encode_into;
    use crate::protocol::Command;

    fn ping(id: u64) -> Request {
        Request {
            id,
            command: Command::Ping,
            write: None,
            read: None,
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn requests_split_across_reads_come_out_whole_and_in_order() {
        let mut wire = Vec::new();
        for id in 0..3 {
            encode_into(&ping(id), &mut wire, 1024).unwrap();
        }
        let mut reader = RequestReader::new(1024);
        let mut ids = Vec::new();
        for byte in &wire {
            reader.extend(std::slice::from_ref(byte));
            while let Some(next) = reader.next() {
                match next {
                    Next::Request(r) => ids.push(r.id),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(ids, vec![0, 1, 2]);
    }

    #[test]
    fn garbage_after_an_id_answers_that_id_and_the_stream_goes_on() {
        let mut wire = frame(&[7, 0xff, 0xff, 0xff]);
        encode_into(&ping(8), &mut wire, 1024).unwrap();
        let mut reader = RequestReader::new(1024);
        reader.extend(&wire);
        assert!(matches!(
            reader.next(),
            Some(Next::Bad {
                id: 7,
                error: FrameError::Malformed(_)
            })
        ));
        assert!(matches!(reader.next(), Some(Next::Request(r)) if r.id == 8));
        assert!(reader.next().is_none());
    }

    #[test]
    fn oversized_frame_answers_its_id_and_is_discarded_unbuffered() {
        let mut reader = RequestReader::new(16);
        let mut wire = 1000u32.to_le_bytes().to_vec();
        wire.push(9);
        reader.extend(&wire);
        assert!(matches!(
            reader.next(),
            Some(Next::Bad {
                id: 9,
                error: FrameError::TooLarge { len: 1000, max: 16 }
            })
        ));
        // The remaining 999 bytes of the body arrive and are dropped.
        reader.extend(&[0xee; 500]);
        assert!(reader.next().is_none());
        let mut rest = vec![0xee; 499];
        encode_into(&ping(10), &mut rest, 16).unwrap();
        reader.extend(&rest);
        assert!(matches!(reader.next(), Some(Next::Request(r)) if r.id == 10));
        assert!(reader.buf.len() < 64);
    }

    #[test]
    fn frame_without_a_readable_id_is_fatal() {
        let mut reader = RequestReader::new(1024);
        reader.extend(&frame(&[0xff, 0xff, 0xff]));
        assert!(matches!(
            reader.next(),
            Some(Next::Fatal {
                code: codes::MALFORMED_FRAME,
                ..
            })
        ));
        let mut reader = RequestReader::new(4);
        let mut wire = u32::MAX.to_le_bytes().to_vec();
        wire.extend_from_slice(&[0xff; 10]);
        reader.extend(&wire);
        assert!(matches!(
            reader.next(),
            Some(Next::Fatal {
                code: codes::FRAME_TOO_LARGE,
                ..
            })
        ));
    }
}
