//! Hybrid logical clocks (Kulkarni et al., 2014).
//!
//! An [`Hlc`] packs 48 bits of physical milliseconds and a 16-bit logical
//! counter into one `u64`, so timestamps compare as integers. The clock never
//! reads the system time: the caller passes the physical time in, which keeps
//! this crate pure and lets simulations skew clocks at will.
//!
//! A remote timestamp further ahead of local physical time than the
//! configured bound is reported as [`ClockSkew`] and not adopted, so one node
//! with a bad clock cannot drag every clock in the cluster forward.

use serde::{Deserialize, Serialize};
use std::fmt;

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// The largest physical time an [`Hlc`] can hold (ms); about 8900 years after 1970.
pub const PHYSICAL_MS_MAX: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// A hybrid logical timestamp: physical milliseconds and a logical counter.
/// Encoded as 8 little-endian bytes (a varint of a current timestamp takes 9).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(from = "[u8; 8]", into = "[u8; 8]")]
pub struct Hlc(u64);

impl From<[u8; 8]> for Hlc {
    fn from(b: [u8; 8]) -> Self {
        Hlc(u64::from_le_bytes(b))
    }
}

impl From<Hlc> for [u8; 8] {
    fn from(h: Hlc) -> Self {
        h.0.to_le_bytes()
    }
}

impl Hlc {
    /// The smallest timestamp.
    pub const ZERO: Hlc = Hlc(0);

    /// A timestamp from physical milliseconds (clamped to [`PHYSICAL_MS_MAX`]) and a logical count.
    pub fn new(physical_ms: u64, logical: u16) -> Self {
        Hlc((physical_ms.min(PHYSICAL_MS_MAX) << LOGICAL_BITS) | u64::from(logical))
    }

    /// The timestamp as one integer (its total order).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The inverse of [`Hlc::as_u64`].
    pub fn from_u64(raw: u64) -> Self {
        Hlc(raw)
    }

    /// The physical part, in milliseconds since the Unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The next timestamp after `self` (logical + 1, carrying into the physical part).
    fn successor(self) -> Self {
        Hlc(self.0.saturating_add(1))
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// A remote timestamp was too far ahead of local physical time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("remote clock is {ahead_ms} ms ahead of local time (bound {max_skew_ms} ms)")]
pub struct ClockSkew {
    /// How far the remote physical time was ahead of ours.
    pub ahead_ms: u64,
    /// The configured bound.
    pub max_skew_ms: u64,
}

/// The hybrid logical clock of one replica.
///
/// ```
/// use crdt_types::{HlcClock, Hlc};
/// let mut clock = HlcClock::new(500);
/// let a = clock.now(1_000);
/// let b = clock.now(1_000); // same millisecond: the logical part moves on
/// assert!(b > a);
/// // A remote stamp 10 s ahead is reported, not adopted.
/// assert!(clock.observe(Hlc::new(11_000, 0), 1_000).is_err());
/// assert!(clock.now(1_000) < Hlc::new(2_000, 0));
/// ```
#[derive(Debug, Clone)]
pub struct HlcClock {
    last: Hlc,
    max_skew_ms: u64,
}

impl HlcClock {
    /// A clock that rejects remote stamps more than `max_skew_ms` ahead of local time.
    pub fn new(max_skew_ms: u64) -> Self {
        HlcClock {
            last: Hlc::ZERO,
            max_skew_ms,
        }
    }

    /// The bound on accepted remote skew.
    pub fn max_skew_ms(&self) -> u64 {
        self.max_skew_ms
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A fresh timestamp for a local event at physical time `physical_ms`:
    /// greater than every timestamp this clock issued or accepted before.
    pub fn now(&mut self, physical_ms: u64) -> Hlc {
        let wall = Hlc::new(physical_ms, 0);
        self.last = if wall > self.last {
            wall
        } else {
            self.last.successor()
        };
        self.last
    }

    /// Takes a timestamp received from another replica into account, so the
    /// next local timestamp is greater than it. A stamp more than the skew
    /// bound ahead of `physical_ms` is reported and not adopted.
    pub fn observe(&mut self, remote: Hlc, physical_ms: u64) -> Result<(), ClockSkew> {
        let ahead_ms = remote.physical_ms().saturating_sub(physical_ms);
        if ahead_ms > self.max_skew_ms {
            return Err(ClockSkew {
                ahead_ms,
                max_skew_ms: self.max_skew_ms,
            });
        }
        if remote > self.last {
            self.last = remote;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_strictly_monotonic_even_when_wall_clock_goes_back() {
        let mut c = HlcClock::new(1000);
        let a = c.now(5_000);
        let b = c.now(4_000);
        let d = c.now(5_000);
        assert!(a < b && b < d);
        assert_eq!(c.now(6_000), Hlc::new(6_000, 0));
    }

    #[test]
    fn observed_stamp_within_bound_orders_later_local_events() {
        let mut c = HlcClock::new(1000);
        c.observe(Hlc::new(1_500, 7), 1_000).unwrap();
        assert_eq!(c.now(1_000), Hlc::new(1_500, 8));
    }

    #[test]
    fn stamp_beyond_skew_bound_is_reported_and_not_adopted() {
        let mut c = HlcClock::new(500);
        let err = c.observe(Hlc::new(2_000, 0), 1_000).unwrap_err();
        assert_eq!(
            err,
            ClockSkew {
                ahead_ms: 1_000,
                max_skew_ms: 500
            }
        );
        assert_eq!(c.now(1_000), Hlc::new(1_000, 0));
    }

    #[test]
    fn logical_overflow_carries_into_physical() {
        let mut c = HlcClock::new(0);
        c.observe(Hlc::new(10, u16::MAX), 10).unwrap();
        assert_eq!(c.now(10), Hlc::new(11, 0));
    }
}
