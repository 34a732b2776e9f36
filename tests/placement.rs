//! Placement: how evenly keys spread over a region's nodes, how few move
//! when membership changes, and that every process computes the same
//! preference lists.

use crdt_types::ReplicaId;
use meridian::placement::{Placement, PlacementError, Ring};
use meridian::topology::{derived_replica_id, Node, Topology};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

const KEYS: u32 = 1_000_000;

fn local() -> Topology {
    Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml")).unwrap()
}

/// One region `bench` of `nodes` nodes `node-1`, `node-2`... with N = 3.
fn bench_topology(nodes: u32) -> Topology {
    let mut text = String::from(
        "[cluster]\nname = \"bench\"\nreplication_factor = 3\n\n[[region]]\nname = \"bench\"\n",
    );
    for i in 1..=nodes {
        write!(
            text,
            "\n[[region.node]]\nid = \"node-{i}\"\nclient_addr = \"127.0.0.1:{}\"\n\
             peer_addr = \"127.0.0.1:{}\"\n",
            10_000 + i,
            20_000 + i
        )
        .unwrap();
    }
    Topology::parse(&text, "bench.toml").unwrap()
}

fn bench_node(i: u32) -> Node {
    Node::new(
        format!("node-{i}"),
        format!("127.0.0.1:{}", 10_000 + i).parse().unwrap(),
        format!("127.0.0.1:{}", 20_000 + i).parse().unwrap(),
    )
}

/// Calls `visit` with keys `user:0`, `user:1`... up to `count`, reusing one
/// buffer.
fn for_each_key(count: u32, mut visit: impl FnMut(&[u8])) {
    let mut key = String::with_capacity(16);
    for i in 0..count {
        key.clear();
        write!(key, "user:{i}").unwrap();
        visit(key.as_bytes());
    }
}

/// Figures measured once over [`KEYS`] keys, shared by the tests below.
struct Spread {
    /// Keys owned (coordinated) by each of 5 nodes.
    owned: Vec<u32>,
    /// Keys whose owner changed when a 6th node joined.
    moved: u32,
    /// Of those, keys that moved to a node other than the 6th.
    moved_elsewhere: u32,
}

fn spread() -> &'static Spread {
    static SPREAD: OnceLock<Spread> = OnceLock::new();
    SPREAD.get_or_init(|| {
        let five = Placement::new(&bench_topology(5));
        let mut six = five.clone();
        let newcomer = bench_node(6);
        let newcomer_replica = newcomer.replica;
        six.add_node("bench", newcomer).unwrap();
        let (five, six) = (five.ring("bench").unwrap(), six.ring("bench").unwrap());

        let nodes = five.nodes().to_vec();
        let mut spread = Spread {
            owned: vec![0; nodes.len()],
            moved: 0,
            moved_elsewhere: 0,
        };
        let started = Instant::now();
        for_each_key(KEYS, |key| {
            let before = five.coordinator(key).unwrap();
            let after = six.coordinator(key).unwrap();
            let slot = nodes.iter().position(|&n| n == before).unwrap();
            spread.owned[slot] += 1;
            if before != after {
                spread.moved += 1;
                if after != newcomer_replica {
                    spread.moved_elsewhere += 1;
                }
            }
        });
        println!(
            "{KEYS} keys, two rings: {:?} ({:.0} ns per key)",
            started.elapsed(),
            started.elapsed().as_nanos() as f64 / f64::from(KEYS)
        );
        spread
    })
}

#[test]
fn five_nodes_share_a_million_keys_with_max_over_mean_at_most_1_10() {
    let spread = spread();
    let mean = f64::from(KEYS) / spread.owned.len() as f64;
    let max = f64::from(*spread.owned.iter().max().unwrap());
    let min = f64::from(*spread.owned.iter().min().unwrap());
    println!(
        "keys per node {:?}: max/mean {:.4}, min/mean {:.4}",
        spread.owned,
        max / mean,
        min / mean
    );
    assert_eq!(spread.owned.iter().sum::<u32>(), KEYS);
    assert!(max / mean <= 1.10, "max/mean {:.4}", max / mean);
}

#[test]
fn a_sixth_node_takes_at_most_1_1_sixths_of_the_keys_and_keys_move_only_to_it() {
    let spread = spread();
    let moved = f64::from(spread.moved) / f64::from(KEYS);
    println!(
        "moved when the 6th node joined: {moved:.4} of the keys (ideal {:.4}, bound {:.4})",
        1.0 / 6.0,
        1.1 / 6.0
    );
    assert!(moved <= 1.1 / 6.0, "moved {moved:.4}");
    assert!(moved > 0.0);
    assert_eq!(spread.moved_elsewhere, 0, "keys moved between old nodes");
}

#[test]
fn lookups_cost_well_under_a_microsecond() {
    let placement = Placement::new(&local());
    let ring = placement.ring("us-east").unwrap();
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("user:{i}").into_bytes())
        .collect();
    let started = Instant::now();
    let mut checksum = 0u64;
    for key in &keys {
        checksum += u64::from(ring.preference_list(key)[0].0);
    }
    let ns_per_lookup = started.elapsed().as_nanos() as f64 / keys.len() as f64;
    println!(
        "preference_list: {ns_per_lookup:.0} ns per lookup ({} build, checksum {checksum})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    // A generous bound that holds even for unoptimised builds on a busy
    // machine. Measured on a 2-core machine: about 300 ns in debug builds,
    // about 50 ns in release builds.
    assert!(ns_per_lookup < 20_000.0, "{ns_per_lookup:.0} ns per lookup");
}

#[test]
fn every_preference_list_holds_n_distinct_nodes_of_its_region() {
    let topology = local();
    let placement = Placement::new(&topology);
    for region in topology.regions() {
        let members: HashSet<ReplicaId> = region.nodes.iter().map(|n| n.replica).collect();
        let mut coordinators = HashSet::new();
        for_each_key(10_000, |key| {
            let list = placement.preference_list(&region.name, key).unwrap();
            assert_eq!(list.len(), 3);
            let distinct: HashSet<ReplicaId> = list.iter().copied().collect();
            assert_eq!(distinct.len(), 3, "{list:?}");
            assert!(distinct.is_subset(&members), "{list:?}");
            assert_eq!(
                placement.ring(&region.name).unwrap().coordinator(key),
                Some(list[0])
            );
            coordinators.insert(list[0]);
        });
        assert_eq!(coordinators, members, "every node coordinates some keys");
    }
}

#[test]
fn preference_lists_are_pinned_so_every_process_and_version_agrees() {
    // These lists depend only on the hashing, the ring construction and
    // regions/local.toml. If this test fails, placement changed: clients and
    // nodes of different builds would disagree on where keys live.
    let placement = Placement::new(&local());
    let ids = |region: &str, key: &str| -> Vec<String> {
        placement
            .owners_in_region(region, key.as_bytes())
            .unwrap()
            .map(|node| node.id.clone())
            .collect()
    };
    let pinned: [(&str, &str, [&str; 3]); 6] = [
        ("us-east", "", ["us-east-2", "us-east-3", "us-east-1"]),
        (
            "us-east",
            "user:42",
            ["us-east-2", "us-east-3", "us-east-1"],
        ),
        (
            "eu-west",
            "user:42",
            ["eu-west-2", "eu-west-1", "eu-west-3"],
        ),
        (
            "ap-south",
            "user:42",
            ["ap-south-3", "ap-south-1", "ap-south-2"],
        ),
        (
            "eu-west",
            "cart:9f3c",
            ["eu-west-1", "eu-west-2", "eu-west-3"],
        ),
        (
            "ap-south",
            "session/abc",
            ["ap-south-2", "ap-south-3", "ap-south-1"],
        ),
    ];
    for (region, key, expected) in pinned {
        assert_eq!(ids(region, key), expected, "{region} {key:?}");
    }
    // XXH3-64 (seed 0) of the key's bytes.
    assert_eq!(Ring::position(b""), 0x2d06_8005_38d3_94c2);
    assert_eq!(Ring::position(b"user:42"), 0x9fc1_e605_fa71_74aa);

    // In a region of five nodes the lists are also a pinned choice of three.
    let bench = Placement::new(&bench_topology(5));
    for (key, expected) in [
        ("user:42", ["node-1", "node-2", "node-4"]),
        ("user:7", ["node-4", "node-3", "node-5"]),
    ] {
        let ids: Vec<String> = bench
            .owners_in_region("bench", key.as_bytes())
            .unwrap()
            .map(|node| node.id.clone())
            .collect();
        assert_eq!(ids, expected, "{key:?}");
    }
}

#[test]
fn joining_node_only_enters_preference_lists_and_pushes_out_their_last_node() {
    let before = Placement::new(&bench_topology(5));
    let mut after = before.clone();
    let newcomer = bench_node(6).replica;
    after.add_node("bench", bench_node(6)).unwrap();
    let mut changed = 0;
    for_each_key(20_000, |key| {
        let old = before.preference_list("bench", key).unwrap();
        let new = after.preference_list("bench", key).unwrap();
        if old == new {
            return;
        }
        changed += 1;
        // The new list is the old one with the newcomer inserted, cut to N.
        let slot = new
            .iter()
            .position(|&n| n == newcomer)
            .expect("newcomer in list");
        let mut expected = old.to_vec();
        expected.insert(slot, newcomer);
        expected.truncate(3);
        assert_eq!(
            new,
            expected.as_slice(),
            "key {:?}",
            String::from_utf8_lossy(key)
        );
    });
    // The newcomer joins about N/6 of the lists.
    let changed_fraction = f64::from(changed) / 20_000.0;
    println!("preference lists changed by the 6th node: {changed_fraction:.3}");
    assert!((0.4..0.6).contains(&changed_fraction), "{changed_fraction}");
}

#[test]
fn removing_a_node_moves_only_its_keys_and_adding_it_back_restores_placement() {
    let original = Placement::new(&bench_topology(5));
    let mut placement = original.clone();
    let leaving = derived_replica_id("node-3");
    let node = placement.remove_node(leaving).unwrap();
    assert_eq!(node.id, "node-3");
    assert!(placement.node(leaving).is_none());
    for_each_key(20_000, |key| {
        let old = original.preference_list("bench", key).unwrap();
        let new = placement.preference_list("bench", key).unwrap();
        assert!(!new.contains(&leaving));
        if !old.contains(&leaving) {
            assert_eq!(old, new);
        }
    });
    placement.add_node("bench", node).unwrap();
    for_each_key(20_000, |key| {
        assert_eq!(
            original.preference_list("bench", key).unwrap(),
            placement.preference_list("bench", key).unwrap()
        );
    });
}

#[test]
fn region_with_fewer_nodes_than_n_gives_all_of_them_and_an_empty_ring_none() {
    let mut ring = Ring::with_nodes(3, 64, [ReplicaId(1), ReplicaId(2)]);
    let list = ring.preference_list(b"k");
    assert_eq!(list.len(), 2);
    assert_ne!(list[0], list[1]);
    ring.remove(ReplicaId(1));
    assert_eq!(ring.preference_list(b"k"), [ReplicaId(2)]);
    ring.remove(ReplicaId(2));
    assert!(ring.is_empty());
    assert_eq!(ring.preference_list(b"k"), []);
    assert_eq!(ring.coordinator(b"k"), None);
}

#[test]
fn segments_tile_the_ring_and_agree_with_lookups() {
    let ring = Ring::with_nodes(3, 128, (1..=4).map(ReplicaId));
    let segments: Vec<_> = ring.segments().collect();
    assert_eq!(segments.len(), 4 * 128);
    for pair in segments.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
        assert!(pair[0].end <= pair[1].end);
    }
    assert_eq!(segments[0].start, segments.last().unwrap().end);
    for_each_key(2_000, |key| {
        let position = Ring::position(key);
        let segment = segments
            .iter()
            .find(|s| s.start < position && position <= s.end)
            .unwrap_or(&segments[0]);
        assert_eq!(segment.replicas, ring.preference_list(key));
    });
}

#[test]
fn owners_gives_the_key_replicas_in_every_region() {
    let topology = local();
    let placement = Placement::new(&topology);
    let owners: Vec<(&str, &[ReplicaId])> = placement.owners(b"user:42").collect();
    assert_eq!(owners.len(), 3);
    for (region, replicas) in owners {
        assert_eq!(
            replicas,
            placement.preference_list(region, b"user:42").unwrap()
        );
        for &replica in replicas {
            assert_eq!(placement.region_of(replica), Some(region));
            assert_eq!(
                placement.node(replica),
                topology.node_by_replica(replica),
                "placement and topology agree on the node"
            );
        }
    }
}

#[test]
fn unknown_regions_nodes_and_duplicate_nodes_are_errors() {
    let mut placement = Placement::new(&local());
    assert_eq!(
        placement.preference_list("mars", b"k"),
        Err(PlacementError::UnknownRegion("mars".into()))
    );
    assert!(placement.owners_in_region("mars", b"k").is_err());
    assert_eq!(
        placement.remove_node(ReplicaId(1)),
        Err(PlacementError::UnknownNode(ReplicaId(1)))
    );
    let existing = local().node("eu-west-2").unwrap().clone();
    assert!(matches!(
        placement.add_node("us-east", existing),
        Err(PlacementError::DuplicateNode { .. })
    ));
    assert!(matches!(
        placement.add_node("mars", bench_node(1)),
        Err(PlacementError::UnknownRegion(_))
    ));
    placement.add_node("us-east", bench_node(1)).unwrap();
    assert_eq!(placement.region_of(bench_node(1).replica), Some("us-east"));
    assert_eq!(placement.ring("us-east").unwrap().len(), 4);
}
