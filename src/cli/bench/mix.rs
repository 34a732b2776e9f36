//! The operations a benchmark runs, and in what proportions.
//!
//! `--ops` takes `OP[:WEIGHT]` items separated by commas: `set:50,get:50`
//! sends as many sets as gets, `get:90,set:10` nine gets per set, and a plain
//! list (`get,set,incr,hset`) weighs every operation 1. Each request picks
//! its operation at random with these weights. Pure: nothing here touches
//! the network.

use std::fmt;

/// An operation of the benchmark, named and keyed as redis-benchmark's
/// tests of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `GET key:<n>` of a register written by the preload.
    Get,
    /// `SET key:<n> <value>`.
    Set,
    /// `INCR counter:<n>`.
    Incr,
    /// `HSET myhash element:<n> <value>`: fields of a single map.
    HSet,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 4] = [Op::Get, Op::Set, Op::Incr, Op::HSet];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Incr => "incr",
            Op::HSet => "hset",
        }
    }

    /// The position of the operation in [`Op::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(name: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest weight of one operation.
pub const WEIGHT_MAX: u32 = 1_000_000;

/// Why an `--ops` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// No operation was given.
    #[error("no operation given (expected e.g. `get`, `get,set` or `set:50,get:50`)")]
    Empty,
    /// An operation name is not known.
    #[error("unknown operation `{0}` (known: get, set, incr, hset)")]
    UnknownOp(String),
    /// A weight is not a whole number up to [`WEIGHT_MAX`].
    #[error("bad weight `{weight}` for {op} (expected a whole number from 0 to {WEIGHT_MAX})")]
    BadWeight {
        /// The operation.
        op: Op,
        /// The text after the colon.
        weight: String,
    },
    /// An operation appears twice.
    #[error("{0} is given twice")]
    Duplicate(Op),
    /// Every weight is zero.
    #[error("every weight is 0: nothing would run")]
    AllZero,
}

/// Operations with their weights; see the module docs.
///
/// ```
/// use meridian::cli::bench::{Mix, Op};
///
/// let mix: Mix = "set:25,get:75".parse()?;
/// assert_eq!(mix.weight(Op::Get), 75);
/// assert_eq!(mix.ops().collect::<Vec<_>>(), [Op::Get, Op::Set]);
/// assert_eq!(mix.to_string(), "get:75,set:25");
/// # Ok::<(), meridian::cli::bench::MixError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Weight per operation, indexed by [`Op::index`].
    weights: [u32; Op::ALL.len()],
    total: u64,
}

impl Mix {
    /// A mix of one operation.
    pub fn only(op: Op) -> Mix {
        let mut weights = [0; Op::ALL.len()];
        weights[op.index()] = 1;
        Mix { weights, total: 1 }
    }

    /// The weight of `op` (0 when it is not in the mix).
    pub fn weight(&self, op: Op) -> u32 {
        self.weights[op.index()]
    }

    /// The operations of weight above 0, in report order.
    pub fn ops(&self) -> impl Iterator<Item = Op> + '_ {
        Op::ALL.into_iter().filter(|op| self.weight(*op) > 0)
    }

    /// Whether the mix runs `op`.
    pub fn contains(&self, op: Op) -> bool {
        self.weight(op) > 0
    }

    /// The operation for a number drawn uniformly from `[0, 2^64)`: each
    /// operation's share of the range is its share of the total weight.
    pub fn pick(&self, draw: u64) -> Op {
        // Scale the draw to [0, total) without modulo bias.
        let mut point = ((u128::from(draw) * u128::from(self.total)) >> 64) as u64;
        for op in Op::ALL {
            let weight = u64::from(self.weight(op));
            if point < weight {
                return op;
            }
            point -= weight;
        }
        unreachable!("the weights add up to total")
    }
}

impl std::str::FromStr for Mix {
    type Err = MixError;

    fn from_str(text: &str) -> Result<Mix, MixError> {
        let mut weights = [None; Op::ALL.len()];
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = match item.split_once(':') {
                Some((name, weight)) => (name.trim(), Some(weight.trim())),
                None => (item, None),
            };
            let op = Op::parse(name).ok_or_else(|| MixError::UnknownOp(name.to_owned()))?;
            let weight = match weight {
                None => 1,
                Some(w) => w
                    .parse::<u32>()
                    .ok()
                    .filter(|w| *w <= WEIGHT_MAX)
                    .ok_or_else(|| MixError::BadWeight {
                        op,
                        weight: w.to_owned(),
                    })?,
            };
            if weights[op.index()].replace(weight).is_some() {
                return Err(MixError::Duplicate(op));
            }
        }
        if weights.iter().all(Option::is_none) {
            return Err(MixError::Empty);
        }
        let weights = weights.map(|w| w.unwrap_or(0));
        let total = weights.iter().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return Err(MixError::AllZero);
        }
        Ok(Mix { weights, total })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in self.ops().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{op}:{}", self.weight(op))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(text: &str) -> Mix {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn weighted_items_keep_their_weights() {
        let m = mix("set:50,get:50");
        assert_eq!((m.weight(Op::Set), m.weight(Op::Get)), (50, 50));
        assert_eq!((m.weight(Op::Incr), m.weight(Op::HSet)), (0, 0));
        assert_eq!(m.ops().collect::<Vec<_>>(), [Op::Get, Op::Set]);
    }

    #[test]
    fn a_plain_list_weighs_every_operation_one() {
        let m = mix("get,set,incr,hset");
        for op in Op::ALL {
            assert_eq!(m.weight(op), 1, "{op}");
        }
        assert_eq!(mix("incr"), Mix::only(Op::Incr));
    }

    #[test]
    fn names_are_case_insensitive_and_spaces_and_empty_items_are_ignored() {
        assert_eq!(mix(" GET : 3 , Set ,"), mix("get:3,set:1"));
    }

    #[test]
    fn bad_mixes_are_refused_with_the_reason() {
        let err = |text: &str| text.parse::<Mix>().unwrap_err();
        assert_eq!(err(""), MixError::Empty);
        assert_eq!(err(" , "), MixError::Empty);
        assert_eq!(err("get,del"), MixError::UnknownOp("del".into()));
        assert_eq!(
            err("get:x"),
            MixError::BadWeight {
                op: Op::Get,
                weight: "x".into()
            }
        );
        assert_eq!(
            err("get:-1"),
            MixError::BadWeight {
                op: Op::Get,
                weight: "-1".into()
            }
        );
        assert!(matches!(err("set:1000001"), MixError::BadWeight { .. }));
        assert_eq!(err("get,set,get:2"), MixError::Duplicate(Op::Get));
        assert_eq!(err("get:0,set:0"), MixError::AllZero);
        assert_eq!(
            err("del").to_string(),
            "unknown operation `del` (known: get, set, incr, hset)"
        );
    }

    #[test]
    fn a_zero_weight_leaves_the_operation_out() {
        let m = mix("get:0,set:1");
        assert!(!m.contains(Op::Get));
        assert_eq!(m.ops().collect::<Vec<_>>(), [Op::Set]);
        assert_eq!(m.to_string(), "set:1");
    }

    #[test]
    fn picks_follow_the_weights() {
        let m = mix("get:90,set:10");
        // Evenly spread draws over the whole u64 range, each in the middle
        // of its slice.
        let draws = 10_000u64;
        let step = u64::MAX / draws;
        let mut counts = [0u64; 4];
        for i in 0..draws {
            counts[m.pick(i * step + step / 2).index()] += 1;
        }
        assert_eq!(counts[Op::Get.index()], 9_000);
        assert_eq!(counts[Op::Set.index()], 1_000);
        assert_eq!(m.pick(0), Op::Get);
        assert_eq!(m.pick(u64::MAX), Op::Set);
        assert_eq!(Mix::only(Op::HSet).pick(12345), Op::HSet);
    }

    #[test]
    fn display_round_trips() {
        let m = mix("hset:2,incr:7,get");
        assert_eq!(m.to_string(), "get:1,incr:7,hset:2");
        assert_eq!(mix(&m.to_string()), m);
    }
}
