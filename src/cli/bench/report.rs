//! What a benchmark measured, as a value: printed as a table for people
//! or as JSON for scripts. Pure: built from histograms and counts.

use std::fmt;

use serde::Serialize;

use super::histogram::Histogram;

/// The cluster and settings a benchmark ran against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setup {
    /// The cluster's name.
    pub cluster: String,
    /// The region whose nodes served the requests.
    pub region: String,
    /// Nodes in that region.
    pub nodes: usize,
    /// Replicas of each key in the region (N).
    pub replication_factor: usize,
    /// Write consistency of every write (`one`, `quorum`, `all`).
    pub write: String,
    /// Read consistency of every read (`one`, `quorum`).
    pub read: String,
    /// The operations and their weights (`get:1,set:1`).
    pub mix: String,
    /// Keys drawn from, uniformly.
    pub keys: u64,
    /// Bytes of every value written.
    pub value_bytes: usize,
    /// Requests kept in flight.
    pub concurrency: usize,
    /// Client connections (one per node each) the requests were spread over.
    pub connections: usize,
    /// How long the client was set to poll after each request where that
    /// pays (see `ClientOptions::busy_poll`; 0: it slept until the answer).
    pub busy_poll_us: u64,
    /// Which replica of a key each request went to first (`read-home`,
    /// `primary`, `home`; see `meridian::client::Routing`).
    pub route: String,
    /// With `read-home`: how many writes each client's home coordinated at
    /// once before further ones went to other replicas (see
    /// `ClientOptions::home_writes_max`); `None` with other routes.
    pub home_writes_max: Option<usize>,
    /// The home node of each client, where the route has one.
    pub homes: Vec<String>,
}

/// Latency percentiles of successful requests, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// The percentiles of a histogram of nanoseconds.
    pub fn of(latencies_ns: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1_000.0;
        Latency {
            p50_us: us(latencies_ns.value_at_quantile(0.50)),
            p99_us: us(latencies_ns.value_at_quantile(0.99)),
            p999_us: us(latencies_ns.value_at_quantile(0.999)),
            max_us: us(latencies_ns.max()),
            mean_us: latencies_ns.mean() / 1_000.0,
        }
    }
}

/// The figures of one operation, or of all together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// `get`, `set`, `incr`, `hset`, or `all`.
    pub op: String,
    /// Requests answered successfully.
    pub ops: u64,
    /// Successful requests per second of the run.
    pub ops_per_s: f64,
    /// Requests that failed (not in the latency figures).
    pub errors: u64,
    /// Gets that found no value.
    pub misses: u64,
    /// Latency of the successful requests.
    pub latency: Latency,
}

/// One kind of error, counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The kind (`timeout`, `connect`, `quorum not reached`...).
    pub kind: String,
    /// How many requests failed so.
    pub count: u64,
    /// The first such error's message.
    pub example: String,
}

/// The keys written before the run so that gets find values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preload {
    /// Keys written.
    pub keys: u64,
    /// How long it took, in seconds.
    pub elapsed_s: f64,
    /// Writes that failed.
    pub errors: u64,
    /// Why the last failed write failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Everything a benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What ran against what.
    pub setup: Setup,
    /// The preload, when the mix has gets.
    pub preload: Option<Preload>,
    /// Wall time of the run, from the first request to the last answer.
    pub elapsed_s: f64,
    /// Per operation, in the order get, set, incr, hset.
    pub per_op: Vec<OpReport>,
    /// All operations together.
    pub total: OpReport,
    /// Errors by kind, most frequent first.
    pub errors: Vec<ErrorCount>,
    /// Requests the SDK sent again during the run, to another replica after
    /// a connection error or timeout, or to the same node for an answer it
    /// held back ([`crate::client::Client::failovers`]): a request that
    /// succeeded that way is no error, but its latency shows the wait.
    pub failovers: u64,
}

impl Report {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

/// A latency in microseconds, in the unit that suits it, with 3 significant
/// digits: `87.3 µs`, `412 µs`, `1.25 ms`, `2.00 s`.
pub fn format_us(us: f64) -> String {
    let (value, unit) = if us < 1_000.0 {
        (us, "µs")
    } else if us < 1_000_000.0 {
        (us / 1_000.0, "ms")
    } else {
        (us / 1_000_000.0, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    out.push_str(&digits[..head]);
    let mut rest = &digits[head..];
    while !rest.is_empty() {
        out.push(',');
        out.push_str(&rest[..3]);
        rest = &rest[3..];
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.setup;
        writeln!(
            f,
            "cluster {}, region {}: {}, N = {}, W = {}, R = {}",
            s.cluster,
            s.region,
            plural(s.nodes, "node", "nodes"),
            s.replication_factor,
            s.write,
            s.read
        )?;
        writeln!(
            f,
            "ops {} over {} keys, {}-byte values, {} in flight on {}, {:.2} s{}",
            s.mix,
            format_count(s.keys),
            s.value_bytes,
            s.concurrency,
            plural(s.connections, "connection", "connections"),
            self.elapsed_s,
            if s.busy_poll_us == 0 {
                String::new()
            } else {
                format!(", busy polling {} µs where it pays", s.busy_poll_us)
            }
        )?;
        let homes = match s.homes.as_slice() {
            [] => String::new(),
            [one] => format!(", home {one}"),
            many => format!(", homes {}", many.join(", ")),
        };
        let overflow = match s.home_writes_max {
            Some(max) => format!(" (writes home while fewer than {max} are there)"),
            None => String::new(),
        };
        writeln!(f, "route {}{overflow}{homes}", s.route)?;
        if let Some(preload) = &self.preload {
            writeln!(
                f,
                "preloaded {} keys in {:.2} s ({} errors)",
                format_count(preload.keys),
                preload.elapsed_s,
                format_count(preload.errors)
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<5} {:>10} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "op", "ops/s", "ops", "errors", "p50", "p99", "p99.9", "max"
        )?;
        let rows = self.per_op.iter().chain(std::iter::once(&self.total));
        for row in rows {
            // No successful request, no latency to show.
            let us = |us: f64| {
                if row.ops == 0 {
                    "-".to_owned()
                } else {
                    format_us(us)
                }
            };
            writeln!(
                f,
                "{:<5} {:>10} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9}",
                row.op,
                format_count(row.ops_per_s.round() as u64),
                format_count(row.ops),
                format_count(row.errors),
                us(row.latency.p50_us),
                us(row.latency.p99_us),
                us(row.latency.p999_us),
                us(row.latency.max_us),
            )?;
        }
        for row in &self.per_op {
            if row.misses > 0 {
                writeln!(f, "{}: {} found no value", row.op, format_count(row.misses))?;
            }
        }
        if self.failovers > 0 {
            writeln!(
                f,
                "failovers: {} requests sent again (to another replica after a timeout or a lost connection, or for an answer held back)",
                format_count(self.failovers)
            )?;
        }
        if !self.errors.is_empty() {
            writeln!(f)?;
            writeln!(f, "errors:")?;
            for error in &self.errors {
                writeln!(
                    f,
                    "  {:>9} {} (first: {})",
                    format_count(error.count),
                    error.kind,
                    error.example
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_print_in_a_fitting_unit_with_three_digits() {
        assert_eq!(format_us(8.734), "8.73 µs");
        assert_eq!(format_us(87.34), "87.3 µs");
        assert_eq!(format_us(412.0), "412 µs");
        assert_eq!(format_us(1_254.0), "1.25 ms");
        assert_eq!(format_us(2_000_000.0), "2.00 s");
    }

    #[test]
    fn counts_print_with_thousands_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }
}
