//! The topology format: the shipped files load, and every mistake is
//! reported with the file, the line and a typed problem.

use crdt_types::ReplicaId;
use meridian::topology::{
    derived_replica_id, Limits, Problem, ReadConsistency, Topology, TopologyError, WriteConsistency,
};
use std::net::SocketAddr;

fn regions_file(name: &str) -> String {
    format!("{}/regions/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The 1-based line of the `nth` (0-based) line containing `needle`.
fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
        .0
        + 1
}

fn parse_error(text: &str) -> TopologyError {
    let error = Topology::parse(text, "bad.toml").expect_err("the topology should be refused");
    println!("{error}");
    error
}

/// Checks that the error names `bad.toml` and `line`, in its accessors and
/// in its message.
fn assert_located(error: &TopologyError, line: usize) {
    assert_eq!(error.origin(), "bad.toml");
    assert_eq!(error.line(), Some(line), "{error}");
    assert!(
        error.to_string().starts_with(&format!("bad.toml:{line}: ")),
        "{error}"
    );
}

/// Two regions `a` and `b` of two nodes each, N = 2, a link between them.
const TWO_REGIONS: &str = r#"
[cluster]
name = "test"
replication_factor = 2

[[region]]
name = "a"

[[region.node]]
id = "a-1"
client_addr = "127.0.0.1:9101"
peer_addr = "127.0.0.1:9111"

[[region.node]]
id = "a-2"
client_addr = "127.0.0.1:9102"
peer_addr = "127.0.0.1:9112"

[[region]]
name = "b"

[[region.node]]
id = "b-1"
client_addr = "127.0.0.1:9201"
peer_addr = "127.0.0.1:9211"

[[region.node]]
id = "b-2"
client_addr = "127.0.0.1:9202"
peer_addr = "127.0.0.1:9212"

[[link]]
regions = ["a", "b"]
rtt_ms = 40
"#;

#[test]
fn local_topology_is_three_regions_of_three_nodes_with_wan_links() {
    let topology = Topology::load(regions_file("local.toml")).unwrap();
    assert_eq!(topology.cluster(), "local");
    assert_eq!(topology.replication_factor(), 3);
    assert_eq!(topology.write_consistency(), WriteConsistency::Quorum);
    assert_eq!(topology.read_consistency(), ReadConsistency::One);
    assert_eq!(*topology.limits(), Limits::default());

    let names: Vec<&str> = topology.regions().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south"]);
    for (digit, region) in (1..).zip(topology.regions()) {
        let ids: Vec<&str> = region.nodes.iter().map(|n| n.id.as_str()).collect();
        let expected: Vec<String> = (1..=3).map(|i| format!("{}-{i}", region.name)).collect();
        assert_eq!(ids, expected);
        for (i, node) in (1..).zip(&region.nodes) {
            assert_eq!(node.client_addr, addr(&format!("127.0.0.1:7{digit}0{i}")));
            assert_eq!(node.peer_addr, addr(&format!("127.0.0.1:7{digit}1{i}")));
            assert_eq!(node.replica, derived_replica_id(&node.id));
        }
    }

    let rtt = |a, b| topology.link(a, b).map(|link| link.rtt_ms);
    assert_eq!(rtt("us-east", "eu-west"), Some(80));
    assert_eq!(rtt("eu-west", "us-east"), Some(80));
    assert_eq!(rtt("us-east", "ap-south"), Some(200));
    assert_eq!(rtt("eu-west", "ap-south"), Some(150));
    for link in topology.links() {
        assert!(link.jitter_ms > 0 && link.jitter_ms <= 5, "{link:?}");
        assert_eq!(link.loss, 0.0);
    }
}

#[test]
fn single_topology_is_one_region_of_one_node_with_n_of_1() {
    let topology = Topology::load(regions_file("single.toml")).unwrap();
    assert_eq!(topology.replication_factor(), 1);
    assert_eq!(topology.regions().len(), 1);
    assert_eq!(topology.nodes().count(), 1);
    assert!(topology.links().is_empty());
}

#[test]
fn nodes_are_found_by_id_by_replica_id_and_by_region() {
    let topology = Topology::parse(TWO_REGIONS, "two.toml").unwrap();
    let node = topology.node("b-2").unwrap();
    assert_eq!(node.client_addr, addr("127.0.0.1:9202"));
    assert_eq!(topology.node_by_replica(node.replica), Some(node));
    assert_eq!(topology.region_of("b-2").unwrap().name, "b");
    let ids: Vec<&str> = topology
        .nodes_in("a")
        .unwrap()
        .iter()
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(ids, ["a-1", "a-2"]);
    assert!(topology.node("c-1").is_none());
    assert!(topology.region_of("c-1").is_none());
    assert!(topology.nodes_in("c").is_none());
    assert!(topology.link("a", "c").is_none());
}

#[test]
fn optional_settings_take_their_defaults() {
    let topology = Topology::parse(TWO_REGIONS, "two.toml").unwrap();
    assert_eq!(topology.write_consistency(), WriteConsistency::Quorum);
    assert_eq!(topology.read_consistency(), ReadConsistency::One);
    assert_eq!(*topology.limits(), Limits::default());
    let link = topology.link("b", "a").unwrap();
    assert_eq!((link.rtt_ms, link.jitter_ms, link.loss), (40, 0, 0.0));
}

#[test]
fn consistency_and_limits_are_read_when_given() {
    let text = TWO_REGIONS.replace(
        "replication_factor = 2\n",
        "replication_factor = 2\nwrite_consistency = \"all\"\nread_consistency = \"quorum\"\n\n\
         [limits]\nkey_bytes_max = 200\nvalue_bytes_max = 4096\nframe_bytes_max = 8192\n\
         streams_per_connection_max = 64\n",
    );
    let topology = Topology::parse(&text, "two.toml").unwrap();
    assert_eq!(topology.write_consistency(), WriteConsistency::All);
    assert_eq!(topology.read_consistency(), ReadConsistency::Quorum);
    assert_eq!(
        *topology.limits(),
        Limits {
            key_bytes_max: 200,
            value_bytes_max: 4096,
            frame_bytes_max: 8192,
            streams_per_connection_max: 64,
        }
    );
}

#[test]
fn explicit_replica_id_overrides_the_derived_one() {
    let text = TWO_REGIONS.replace("id = \"a-2\"\n", "id = \"a-2\"\nreplica_id = 7\n");
    let topology = Topology::parse(&text, "two.toml").unwrap();
    assert_eq!(topology.node("a-2").unwrap().replica, ReplicaId(7));
    assert_eq!(topology.node_by_replica(ReplicaId(7)).unwrap().id, "a-2");
    assert_eq!(
        topology.node("a-1").unwrap().replica,
        derived_replica_id("a-1")
    );
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let text = TWO_REGIONS.replace("rtt_ms = 40", "rtt_ms = = 40");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "rtt_ms", 0));
    assert!(matches!(error.problem(), Problem::Syntax(_)));
}

#[test]
fn wrong_value_type_names_file_and_line() {
    let text = TWO_REGIONS.replace("replication_factor = 2", "replication_factor = \"two\"");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "replication_factor", 0));
    assert!(matches!(error.problem(), Problem::Syntax(_)));
}

#[test]
fn unknown_field_names_file_and_line() {
    let text = TWO_REGIONS.replace("rtt_ms = 40", "rtt_ms = 40\nlatency = 3");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "latency", 0));
    assert!(error.to_string().contains("latency"), "{error}");
}

#[test]
fn missing_cluster_section_is_refused() {
    let text = TWO_REGIONS.replace("[cluster]", "[clusters]");
    let error = parse_error(&text);
    assert!(matches!(error.problem(), Problem::Syntax(_)));
    assert!(error.to_string().contains("clusters"), "{error}");
}

#[test]
fn duplicate_node_id_names_file_and_line_of_the_second_definition() {
    let text = TWO_REGIONS.replace("id = \"b-2\"", "id = \"a-1\"");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "id = \"a-1\"", 1));
    match error.problem() {
        Problem::DuplicateNodeId { id, first_line } => {
            assert_eq!(id, "a-1");
            assert_eq!(*first_line, line_of(&text, "id = \"a-1\"", 0));
        }
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn duplicate_replica_id_names_file_and_line() {
    let derived = derived_replica_id("a-1").0;
    let text = TWO_REGIONS.replace(
        "id = \"b-1\"\n",
        &format!("id = \"b-1\"\nreplica_id = {derived}\n"),
    );
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "replica_id", 0));
    match error.problem() {
        Problem::DuplicateReplicaId { id, other, .. } => {
            assert_eq!((id.as_str(), other.as_str()), ("b-1", "a-1"));
        }
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn duplicate_region_names_file_and_line() {
    let text = TWO_REGIONS
        .replace("name = \"b\"", "name = \"a\"")
        .replace("regions = [\"a\", \"b\"]", "regions = [\"a\", \"a\"]");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "name = \"a\"", 1));
    assert!(matches!(error.problem(), Problem::DuplicateRegion { .. }));
}

#[test]
fn replication_factor_above_a_region_node_count_names_the_region() {
    let text = TWO_REGIONS.replace("replication_factor = 2", "replication_factor = 3");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "name = \"a\"", 0));
    match error.problem() {
        Problem::ReplicationFactorTooLarge {
            n,
            n_line,
            region,
            nodes,
        } => {
            assert_eq!((*n, region.as_str(), *nodes), (3, "a", 2));
            assert_eq!(*n_line, line_of(&text, "replication_factor", 0));
        }
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn replication_factor_of_zero_is_refused() {
    let text = TWO_REGIONS.replace("replication_factor = 2", "replication_factor = 0");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "replication_factor", 0));
    assert!(matches!(
        error.problem(),
        Problem::ReplicationFactorOutOfRange { n: 0, .. }
    ));
}

#[test]
fn unparseable_address_names_the_field_file_and_line() {
    let text = TWO_REGIONS.replace("127.0.0.1:9212", "127.0.0.1:99999");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "99999", 0));
    match error.problem() {
        Problem::BadAddress { field, value, .. } => {
            assert_eq!((*field, value.as_str()), ("peer_addr", "127.0.0.1:99999"));
        }
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn address_without_a_port_is_refused() {
    let text = TWO_REGIONS.replace("127.0.0.1:9101", "localhost");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "localhost", 0));
    assert!(matches!(
        error.problem(),
        Problem::BadAddress {
            field: "client_addr",
            ..
        }
    ));
}

#[test]
fn addresses_that_cannot_be_dialled_are_refused() {
    for bad in ["0.0.0.0:9101", "127.0.0.1:0", "[::]:9101"] {
        let text = TWO_REGIONS.replace("127.0.0.1:9101", bad);
        let error = parse_error(&text);
        assert_located(&error, line_of(&text, bad, 0));
        assert!(
            matches!(error.problem(), Problem::BadAddress { .. }),
            "{bad}"
        );
    }
}

#[test]
fn duplicate_address_names_file_and_line_of_the_second_use() {
    let text = TWO_REGIONS.replace("127.0.0.1:9211", "127.0.0.1:9101");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "127.0.0.1:9101", 1));
    match error.problem() {
        Problem::DuplicateAddress {
            addr: a,
            first_line,
        } => {
            assert_eq!(*a, addr("127.0.0.1:9101"));
            assert_eq!(*first_line, line_of(&text, "127.0.0.1:9101", 0));
        }
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn client_and_peer_address_of_one_node_must_differ() {
    let text = TWO_REGIONS.replace("127.0.0.1:9111", "127.0.0.1:9101");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "peer_addr = \"127.0.0.1:9101\"", 0));
    assert!(matches!(error.problem(), Problem::DuplicateAddress { .. }));
}

#[test]
fn bad_node_id_names_file_and_line() {
    let text = TWO_REGIONS.replace("id = \"a-2\"", "id = \"a 2\"");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "id = \"a 2\"", 0));
    assert!(matches!(
        error.problem(),
        Problem::BadName {
            what: "node id",
            ..
        }
    ));
}

#[test]
fn a_node_id_that_cannot_name_a_certificate_names_file_and_line() {
    for bad in ["A-2", "a_2", "a.2", "-a2"] {
        let text = TWO_REGIONS.replace("id = \"a-2\"", &format!("id = \"{bad}\""));
        let error = parse_error(&text);
        assert_located(&error, line_of(&text, &format!("id = \"{bad}\""), 0));
        assert!(
            matches!(error.problem(), Problem::BadName { what: "node id", name, .. } if name == bad),
            "{bad}: {error}"
        );
    }
}

#[test]
fn link_to_an_unknown_region_names_file_and_line() {
    let text = TWO_REGIONS.replace("regions = [\"a\", \"b\"]", "regions = [\"a\", \"c\"]");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "regions = ", 0));
    match error.problem() {
        Problem::UnknownRegion { name } => assert_eq!(name, "c"),
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn link_from_a_region_to_itself_is_refused() {
    let text = TWO_REGIONS.replace("regions = [\"a\", \"b\"]", "regions = [\"b\", \"b\"]");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "regions = ", 0));
    assert!(matches!(error.problem(), Problem::LinkToSelf { .. }));
}

#[test]
fn second_link_for_the_same_pair_is_refused() {
    let text = format!("{TWO_REGIONS}\n[[link]]\nregions = [\"b\", \"a\"]\nrtt_ms = 10\n");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "regions = ", 1));
    match error.problem() {
        Problem::DuplicateLink { first_line, .. } => {
            assert_eq!(*first_line, line_of(&text, "regions = ", 0));
        }
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn link_loss_must_be_a_fraction_and_jitter_at_most_half_the_rtt() {
    let text = TWO_REGIONS.replace("rtt_ms = 40", "rtt_ms = 40\nloss = 1.5");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "loss", 0));
    assert!(matches!(error.problem(), Problem::BadLink(_)));

    let text = TWO_REGIONS.replace("rtt_ms = 40", "rtt_ms = 40\njitter_ms = 21");
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "jitter_ms", 0));
    assert!(matches!(error.problem(), Problem::BadLink(_)));
}

#[test]
fn frame_limit_must_hold_a_maximal_key_and_value() {
    let text = TWO_REGIONS.replace(
        "[[region]]\nname = \"a\"",
        "[limits]\nvalue_bytes_max = 4194304\n\n[[region]]\nname = \"a\"",
    );
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "value_bytes_max", 0));
    assert!(matches!(
        error.problem(),
        Problem::BadLimit {
            name: "frame_bytes_max",
            ..
        }
    ));
}

#[test]
fn zero_limit_is_refused() {
    let text = TWO_REGIONS.replace(
        "[[region]]\nname = \"a\"",
        "[limits]\nstreams_per_connection_max = 0\n\n[[region]]\nname = \"a\"",
    );
    let error = parse_error(&text);
    assert_located(&error, line_of(&text, "streams_per_connection_max", 0));
    assert!(matches!(
        error.problem(),
        Problem::BadLimit {
            name: "streams_per_connection_max",
            value: 0,
            ..
        }
    ));
}

#[test]
fn topology_without_regions_is_refused() {
    let text = "[cluster]\nname = \"empty\"\nreplication_factor = 1\n";
    let error = parse_error(text);
    assert!(matches!(error.problem(), Problem::NoRegions));
    assert_eq!(error.line(), None);
    assert!(error.to_string().starts_with("bad.toml: "), "{error}");
}

#[test]
fn missing_file_error_names_the_file() {
    let path = regions_file("no-such-topology.toml");
    let error = Topology::load(&path).unwrap_err();
    assert_eq!(error.origin(), path);
    assert!(matches!(error.problem(), Problem::Read(_)));
    assert!(error.to_string().starts_with(&path), "{error}");
}

#[test]
fn load_errors_name_the_file_path() {
    let path = std::env::temp_dir().join(format!("meridian-topology-{}.toml", std::process::id()));
    std::fs::write(&path, TWO_REGIONS.replace("id = \"b-2\"", "id = \"b-1\"")).unwrap();
    let error = Topology::load(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(error.origin(), path.display().to_string());
    assert_eq!(error.line(), Some(line_of(TWO_REGIONS, "id = \"b-2\"", 0)));
    assert!(matches!(error.problem(), Problem::DuplicateNodeId { .. }));
}
