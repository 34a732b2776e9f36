//! Randomized robustness of the decoding the network layer runs on bytes
//! from the outside: the stream preamble, the client stream's
//! [`RequestReader`], and the [`FrameReader`] that peer streams (`PeerMsg`)
//! and clients (`Response`) read with.
//!
//! Valid encodings of every message kind (requests of every command,
//! responses of every reply and error, every peer message, with real
//! deltas and states of every CRDT kind, type conflicts included) are
//! framed into a stream, then damaged: bytes flipped, set, cut, inserted
//! and removed, encodings spliced into each other, length prefixes
//! replaced by random or extreme lengths; pure random bytes are fed too.
//! The stream arrives in random chunks, as reads return it. Decoding must
//! give a message or a typed error, never panic; whatever decodes must
//! encode and decode back to itself; and no single allocation may grow
//! beyond what the bytes received justify (a length prefix claiming 4 GiB
//! is refused before anything is allocated for it).
//!
//! Raise the number of cases with `PROPTEST_CASES`.

use super::request_reader::{Next, RequestReader};
use crate::protocol::frame::{
    self, check_client_preamble, check_preamble, encode_into, preamble, FrameError, FrameReader,
    CLIENT_VERSION_MIN, LENGTH_PREFIX_LEN, PREAMBLE_LEN, PROTOCOL_VERSION,
};
use crate::protocol::samples::{
    apply_damage, command_name, damage, peer_msg_name, response_name, Damage, Gen,
};
use crate::protocol::{PeerMsg, Request, Response};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt::Debug;

// ---------------------------------------------------------------------------
// Allocation tracking

/// The system allocator, noting the largest single allocation a test
/// thread makes while it measures one.
struct Tracking;

std::thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = MEASURING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`, returning its result and the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (out, LARGEST.with(Cell::get))
}

/// What decoding may allocate at once for a stream of `stream_bytes`: the
/// receive buffer (which may double), plus the most a decoder preallocates
/// for one sequence whatever length it announces (1 MiB), twice over.
fn allocation_bound(stream_bytes: usize) -> usize {
    2 * stream_bytes + (2 << 20)
}

/// What a frame's length prefix says.
#[derive(Debug, Clone)]
enum Prefix {
    /// The body's real length.
    Exact,
    /// The real length, off by a little.
    Off(i8),
    /// Any length.
    Any(u32),
    /// Just over the limit, or the most a prefix can claim (4 GiB).
    Over,
    Max,
}

fn prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        12 => Just(Prefix::Exact),
        2 => any::<i8>().prop_map(Prefix::Off),
        1 => any::<u32>().prop_map(Prefix::Any),
        1 => Just(Prefix::Over),
        1 => Just(Prefix::Max),
    ]
}

/// One frame of a stream: which encoding, how its body and its prefix are damaged.
#[derive(Debug, Clone)]
struct FrameCase {
    pick: usize,
    body: Vec<Damage>,
    prefix: Prefix,
}

fn frame_case() -> impl Strategy<Value = FrameCase> {
    (
        any::<usize>(),
        prop::collection::vec(damage(), 0..3),
        prefix(),
    )
        .prop_map(|(pick, body, prefix)| FrameCase { pick, body, prefix })
}

/// A damaged stream: frames, then damage to the whole stream (its
/// preamble included), delivered in chunks of these sizes.
#[derive(Debug, Clone)]
struct StreamCase {
    seed: u64,
    frames: Vec<FrameCase>,
    stream: Vec<Damage>,
    chunks: Vec<usize>,
}

fn stream_case() -> impl Strategy<Value = StreamCase> {
    (
        any::<u64>(),
        prop::collection::vec(frame_case(), 1..6),
        prop::collection::vec(damage(), 0..2),
        prop::collection::vec(1usize..2048, 1..8),
    )
        .prop_map(|(seed, frames, stream, chunks)| StreamCase {
            seed,
            frames,
            stream,
            chunks,
        })
}

/// The frame limit of these tests: small, so that damaged prefixes often
/// exceed it.
const FRAME_MAX: usize = 64 << 10;

fn body_of<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut framed = Vec::new();
    encode_into(msg, &mut framed, usize::MAX).expect("a sample encodes");
    framed.split_off(LENGTH_PREFIX_LEN)
}

/// The stream a case describes, from valid encodings `bodies`: a preamble
/// when `with_preamble`, then the frames.
fn build_stream(case: &StreamCase, bodies: &[Vec<u8>], with_preamble: bool) -> Vec<u8> {
    let mut stream = Vec::new();
    if with_preamble {
        stream.extend_from_slice(&preamble());
    }
    for f in &case.frames {
        let mut body = bodies[f.pick % bodies.len()].clone();
        for d in &f.body {
            body = apply_damage(body, d, bodies);
        }
        let len = body.len() as u32;
        let prefix = match f.prefix {
            Prefix::Exact => len,
            Prefix::Off(by) => len.wrapping_add_signed(i32::from(by)),
            Prefix::Any(n) => n,
            Prefix::Over => FRAME_MAX as u32 + 1,
            Prefix::Max => u32::MAX,
        };
        stream.extend_from_slice(&prefix.to_le_bytes());
        stream.extend_from_slice(&body);
    }
    for d in &case.stream {
        stream = apply_damage(stream, d, bodies);
    }
    stream
}

/// Splits `stream` into chunks of the given sizes, cycling through them.
fn chunked<'a>(stream: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = stream;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

// ---------------------------------------------------------------------------
// The readers, driven as the network layer drives them

/// What became of a stream.
#[derive(Debug, Default)]
struct Outcome<T> {
    decoded: Vec<T>,
    /// Frames answered as bad (client streams) or the error that closed the stream.
    errors: Vec<FrameError>,
    closed: bool,
    /// Most bytes the reader held at once, against the bytes fed to it.
    held_max: usize,
}

/// A stream read as `peer_accept` and the client read theirs: the
/// preamble, then frames until one fails (the stream is then stopped).
/// (A stream between nodes has 8 bytes of the sender's life between the
/// two, which any bytes make; `peer_accept` reads them only once the
/// preamble checked.)
fn read_framed<T: DeserializeOwned>(
    stream: &[u8],
    chunks: &[usize],
    with_preamble: bool,
) -> Outcome<T> {
    let mut out = Outcome {
        decoded: Vec::new(),
        errors: Vec::new(),
        closed: false,
        held_max: 0,
    };
    let mut body = stream;
    if with_preamble {
        let Some(head) = stream.first_chunk::<PREAMBLE_LEN>() else {
            return out; // the stream ended before its preamble
        };
        if let Err(e) = check_preamble(head) {
            out.errors.push(e);
            out.closed = true;
            return out;
        }
        body = &stream[PREAMBLE_LEN..];
    }
    let mut reader = FrameReader::new(FRAME_MAX);
    for chunk in chunked(body, chunks) {
        reader.extend(chunk);
        out.held_max = out.held_max.max(reader.buffered());
        loop {
            match reader.next_frame::<T>() {
                Ok(Some(msg)) => out.decoded.push(msg),
                Ok(None) => break,
                Err(e) => {
                    out.errors.push(e);
                    out.closed = true;
                    return out;
                }
            }
        }
    }
    out
}

/// A client stream read as `client_stream` reads it (after its preamble):
/// a bad frame with a readable id is answered and skipped, one without
/// closes the stream.
fn read_requests(stream: &[u8], chunks: &[usize]) -> Outcome<Request> {
    let mut out = Outcome {
        decoded: Vec::new(),
        errors: Vec::new(),
        closed: false,
        held_max: 0,
    };
    let mut reader = RequestReader::new(FRAME_MAX);
    for chunk in chunked(stream, chunks) {
        reader.extend(chunk);
        out.held_max = out.held_max.max(reader.held_bytes());
        while let Some(next) = reader.next() {
            match next {
                Next::Request(r) => out.decoded.push(r),
                Next::Bad { error, .. } => out.errors.push(error),
                Next::Fatal { error, .. } => {
                    out.errors.push(error);
                    out.closed = true;
                    return out;
                }
            }
        }
    }
    out
}

/// Whatever decoded must encode and decode back to itself.
fn check_round_trip<T>(decoded: &[T]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for msg in decoded {
        let again: Result<T, _> = frame::decode(&body_of(msg));
        prop_assert_eq!(
            again.as_ref().ok(),
            Some(msg),
            "a decoded message does not round-trip"
        );
    }
    Ok(())
}

fn check_outcome<T>(out: &Outcome<T>, stream: &[u8], largest: usize) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    prop_assert!(
        out.held_max <= stream.len(),
        "the reader held {} bytes of a {}-byte stream",
        out.held_max,
        stream.len()
    );
    prop_assert!(
        largest <= allocation_bound(stream.len()),
        "decoding a {}-byte stream allocated {largest} bytes at once",
        stream.len()
    );
    for e in &out.errors {
        if let FrameError::TooLarge { len, max } = e {
            prop_assert!(len > max && *max == FRAME_MAX);
        }
    }
    check_round_trip(&out.decoded)
}

/// Encodings of one sample of every request, response and peer message.
struct Samples {
    requests: Vec<Request>,
    responses: Vec<Response>,
    peer_msgs: Vec<PeerMsg>,
}

impl Samples {
    fn new(seed: u64) -> Samples {
        let mut g = Gen::new(seed);
        Samples {
            requests: (0..Gen::COMMANDS).map(|v| g.request(v)).collect(),
            responses: (0..Gen::RESPONSES).map(|v| g.response(v)).collect(),
            peer_msgs: (0..Gen::PEER_MSGS).map(|v| g.peer_msg(v)).collect(),
        }
    }
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        // Failures are replayed from the printed seed, not from files in
        // the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid stream of `msgs` decodes to exactly them, in any chunking.
fn undamaged_streams_decode_whole<T>(msgs: &[T], chunks: &[usize]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut wire = preamble().to_vec();
    for m in msgs {
        encode_into(m, &mut wire, FRAME_MAX).expect("samples fit in a frame");
    }
    let out = read_framed::<T>(&wire, chunks, true);
    prop_assert!(out.errors.is_empty(), "{:?}", out.errors);
    prop_assert_eq!(&out.decoded[..], msgs);
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn damaged_client_request_streams_never_panic_the_request_reader(case in stream_case()) {
        let samples = Samples::new(case.seed);
        let bodies: Vec<Vec<u8>> = samples.requests.iter().map(body_of).collect();
        let stream = build_stream(&case, &bodies, false);
        let (out, largest) = largest_allocation(|| read_requests(&stream, &case.chunks));
        check_outcome(&out, &stream, largest)?;
        // Frames left whole are served whatever happened to their neighbours,
        // as long as the framing held.
        if case.stream.is_empty() && case.frames.iter().all(|f| matches!(f.prefix, Prefix::Exact)) {
            if out.closed {
                // Only a frame whose id cannot be read loses the stream.
                prop_assert!(matches!(out.errors.last(), Some(FrameError::Malformed(_))));
            } else {
                prop_assert_eq!(out.decoded.len() + out.errors.len(), case.frames.len());
            }
        }
    }

    #[test]
    fn damaged_peer_streams_never_panic_the_frame_reader(case in stream_case()) {
        let samples = Samples::new(case.seed);
        let bodies: Vec<Vec<u8>> = samples.peer_msgs.iter().map(body_of).collect();
        let stream = build_stream(&case, &bodies, true);
        let (out, largest) = largest_allocation(|| read_framed::<PeerMsg>(&stream, &case.chunks, true));
        check_outcome(&out, &stream, largest)?;
        undamaged_streams_decode_whole(&samples.peer_msgs, &case.chunks)?;
    }

    #[test]
    fn damaged_response_streams_never_panic_the_client_reader(case in stream_case()) {
        let samples = Samples::new(case.seed);
        let bodies: Vec<Vec<u8>> = samples.responses.iter().map(body_of).collect();
        let stream = build_stream(&case, &bodies, true);
        let (out, largest) = largest_allocation(|| read_framed::<Response>(&stream, &case.chunks, true));
        check_outcome(&out, &stream, largest)?;
        undamaged_streams_decode_whole(&samples.responses, &case.chunks)?;
    }

    #[test]
    fn random_bytes_never_panic_any_reader(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        chunks in prop::collection::vec(1usize..512, 1..4),
        with_preamble in any::<bool>(),
    ) {
        // Often a valid preamble, so the frames behind it are read too.
        let mut stream = if with_preamble { preamble().to_vec() } else { Vec::new() };
        stream.extend_from_slice(&bytes);
        let (out, largest) = largest_allocation(|| read_framed::<PeerMsg>(&stream, &chunks, true));
        check_outcome(&out, &stream, largest)?;
        let (out, largest) = largest_allocation(|| read_framed::<Response>(&stream, &chunks, true));
        check_outcome(&out, &stream, largest)?;
        let (out, largest) = largest_allocation(|| read_requests(&bytes, &chunks));
        check_outcome(&out, &bytes, largest)?;
        if let Some(head) = bytes.first_chunk::<PREAMBLE_LEN>() {
            let _ = check_preamble(head);
            // What a node checks a client's stream with.
            if let Ok(version) = check_client_preamble(head) {
                prop_assert!((CLIENT_VERSION_MIN..=PROTOCOL_VERSION).contains(&version));
            }
        }
    }
}

#[test]
fn every_message_kind_is_sampled() {
    let s = Samples::new(7);
    let commands: BTreeSet<&str> = s
        .requests
        .iter()
        .map(|r| command_name(&r.command))
        .collect();
    let responses: BTreeSet<&str> = s.responses.iter().map(response_name).collect();
    let peer_msgs: BTreeSet<&str> = s.peer_msgs.iter().map(peer_msg_name).collect();
    assert_eq!(commands.len(), Gen::COMMANDS, "{commands:?}");
    assert_eq!(responses.len(), Gen::RESPONSES, "{responses:?}");
    assert_eq!(peer_msgs.len(), Gen::PEER_MSGS, "{peer_msgs:?}");
}

#[test]
fn a_length_prefix_claiming_4_gib_is_refused_before_allocating() {
    for claim in [u32::MAX, FRAME_MAX as u32 + 1, 1 << 31] {
        let mut stream = preamble().to_vec();
        stream.extend_from_slice(&claim.to_le_bytes());
        // An id, then the start of a body that never arrives in full.
        stream.extend_from_slice(&[7, 0, 0, 0]);
        stream.extend(std::iter::repeat_n(0xab, 4096));
        let (peer, largest) = largest_allocation(|| read_framed::<PeerMsg>(&stream, &[100], true));
        assert!(matches!(
            peer.errors[..],
            [FrameError::TooLarge { len, max: FRAME_MAX }] if len == claim as usize
        ));
        assert!(largest < 64 << 10, "allocated {largest} bytes");
        let (resp, largest) = largest_allocation(|| read_framed::<Response>(&stream, &[100], true));
        assert!(matches!(resp.errors[..], [FrameError::TooLarge { .. }]));
        assert!(largest < 64 << 10, "allocated {largest} bytes");
        // A client stream answers the frame's id and discards its body as it arrives.
        let (req, largest) = largest_allocation(|| read_requests(&stream[PREAMBLE_LEN..], &[100]));
        assert!(matches!(req.errors[..], [FrameError::TooLarge { .. }]));
        assert!(!req.closed && req.held_max < 200, "{req:?}");
        assert!(largest < 64 << 10, "allocated {largest} bytes");
    }
}

#[test]
fn sequences_claiming_huge_lengths_are_refused_without_allocating_them() {
    // A `ReplicateBatch` announcing 2^60 entries, a `DigestRequest`
    // announcing 2^60 buckets, an `AckMany` announcing 2^60 acks: a few
    // bytes each, well inside the frame limit.
    let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
    for (tag, before) in [(1u8, &[5u8][..]), (11, &[5, 0][..]), (23, &[][..])] {
        let mut body = vec![tag];
        body.extend_from_slice(before);
        body.extend_from_slice(&huge);
        body.extend_from_slice(&[1, 2, 3]);
        let (decoded, largest) = largest_allocation(|| frame::decode::<PeerMsg>(&body));
        assert!(
            matches!(decoded, Err(FrameError::Malformed(_))),
            "{decoded:?}"
        );
        assert!(largest <= 2 << 20, "allocated {largest} bytes");
    }
}
