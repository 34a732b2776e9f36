//! The wire protocol shared by clients and nodes: messages (serde +
//! postcard), the stream preamble with its version check, and framing with
//! enforced size limits. Bad bytes become a [`frame::FrameError`], never a panic.

pub mod codes;
#[cfg(test)]
mod compat;
pub mod frame;
mod messages;
#[cfg(test)]
pub(crate) mod samples;

pub use frame::{FrameError, FrameReader, PROTOCOL_VERSION};
pub use messages::{
    Answer, Command, ErrorReply, LinkStatus, NodeStatus, PeerMsg, RebalanceStatus, Reply, Request,
    Response,
};
