//! How long a region takes to suspect a crashed node, in the deterministic
//! simulator (1–5 ms links): for 100 seeds, crash one node of three at a
//! random moment and time until each survivor's phi-accrual detector
//! suspects it. Prints min / median / p99 / max in milliseconds.
//!
//! `cargo run --release --example detection_time`

use meridian::node::NodeConfig;
use meridian::sim::{NetConfig, Sim, REGION_OF_THREE};
use meridian::topology::Topology;

fn main() {
    let start = 1_800_000_000_000;
    let mut times = Vec::new();
    for seed in 0..100u64 {
        let topology =
            Topology::parse(REGION_OF_THREE, "sim.toml").expect("the built-in topology parses");
        let mut sim = Sim::new(
            topology,
            NodeConfig::default(),
            NetConfig::default(),
            seed,
            start,
        );
        let ids = sim.node_ids();
        let warmup = start + 5_000 + sim.rng().below(1_000);
        sim.run_until(warmup);
        let victim = ids[(seed % 3) as usize];
        sim.crash(victim);
        let crashed_at = sim.now_ms();
        let mut pending: Vec<_> = ids.iter().copied().filter(|id| *id != victim).collect();
        while !pending.is_empty() && sim.now_ms() < crashed_at + 10_000 {
            let until = sim.now_ms() + 1;
            sim.run_until(until);
            pending.retain(|id| {
                let suspected = !sim.node(*id).is_alive(victim);
                if suspected {
                    times.push(sim.now_ms() - crashed_at);
                }
                !suspected
            });
        }
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!("detections  {}", times.len());
    println!("min         {} ms", times[0]);
    println!("median      {} ms", pct(0.5));
    println!("p99         {} ms", pct(0.99));
    println!("max         {} ms", times[times.len() - 1]);
}
