//! Mutual TLS between real quinn endpoints on loopback: who gets in, who is
//! refused, and what each side learns about the other.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use meridian::tls::{
    client_config, peer_identity, seed_client_config, server_config, tls_alert, Admit, ClusterCa,
    Identity, PeerIdentity, Role, TlsError, TransportLimits, Validity, ALPN,
};
use quinn::{ConnectionError, Endpoint};
use rustls::AlertDescription;
use time::OffsetDateTime;
use tokio::sync::mpsc;

const REPLY_LEN_MAX: usize = 64 * 1024;
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

fn new_ca() -> ClusterCa {
    ClusterCa::generate(Validity::days_from_now(30)).unwrap()
}

fn node(ca: &ClusterCa, id: &str) -> Identity {
    ca.issue(
        &PeerIdentity::node(id).unwrap(),
        Validity::default_for(Role::Node),
    )
    .unwrap()
}

fn client(ca: &ClusterCa, name: &str) -> Identity {
    ca.issue(
        &PeerIdentity::client(name).unwrap(),
        Validity::default_for(Role::Client),
    )
    .unwrap()
}

fn expired() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::days(1),
    }
}

/// What the server saw of one incoming connection.
type Accepted = Result<PeerIdentity, String>;

/// A server endpoint that echoes every bidirectional stream back, and
/// reports each connection's peer identity (or handshake failure).
fn echo_server(
    identity: &Identity,
    ca: &ClusterCa,
    admit: Admit,
) -> (Endpoint, mpsc::UnboundedReceiver<Accepted>) {
    let config = server_config(
        identity,
        ca.certificate(),
        admit,
        &TransportLimits::default(),
    )
    .unwrap();
    let endpoint = Endpoint::server(config, loopback()).unwrap();
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    let server = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let accepted_tx = accepted_tx.clone();
            tokio::spawn(async move {
                let connection = match incoming.await {
                    Ok(connection) => connection,
                    Err(e) => {
                        let _ = accepted_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = accepted_tx.send(peer_identity(&connection).map_err(|e| e.to_string()));
                while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                    tokio::spawn(async move {
                        if let Ok(request) = recv.read_to_end(REPLY_LEN_MAX).await {
                            let _ = send.write_all(&request).await;
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
    (endpoint, accepted_rx)
}

fn client_endpoint(config: quinn::ClientConfig) -> Endpoint {
    let mut endpoint = Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

fn dialer(identity: &Identity, ca: &ClusterCa) -> Endpoint {
    client_endpoint(client_config(identity, ca.certificate(), &TransportLimits::default()).unwrap())
}

/// Connects, sends `request` on a new bidirectional stream and reads the
/// reply. In TLS 1.3 a refused client certificate may only show up after
/// `connect` has returned, on the stream, so every step's failure is
/// reduced to the connection error behind it.
async fn request(
    endpoint: &Endpoint,
    server: SocketAddr,
    server_name: &str,
    request: &[u8],
) -> Result<(quinn::Connection, Vec<u8>), ConnectionError> {
    let attempt = async {
        let connection = endpoint.connect(server, server_name).unwrap().await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        let lost = |connection: &quinn::Connection| {
            connection
                .close_reason()
                .expect("a stream failed only because the connection was lost")
        };
        if send.write_all(request).await.is_err() || send.finish().is_err() {
            return Err(lost(&connection));
        }
        match recv.read_to_end(REPLY_LEN_MAX).await {
            Ok(reply) => Ok((connection, reply)),
            Err(_) => Err(lost(&connection)),
        }
    };
    tokio::time::timeout(TEST_TIMEOUT, attempt)
        .await
        .expect("the request neither completed nor failed in time")
}

async fn next_accepted(accepted: &mut mpsc::UnboundedReceiver<Accepted>) -> Accepted {
    tokio::time::timeout(TEST_TIMEOUT, accepted.recv())
        .await
        .expect("the server saw no connection in time")
        .expect("the server is running")
}

#[tokio::test]
async fn node_signed_by_cluster_ca_connects_and_round_trips_a_bidi_stream() {
    let ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::Nodes);
    let dialer = dialer(&node(&ca, "eu-2"), &ca);

    let (connection, reply) = request(
        &dialer,
        server.local_addr().unwrap(),
        "eu-1.node.meridian",
        b"ping from eu-2",
    )
    .await
    .unwrap();

    assert_eq!(reply, b"ping from eu-2");
    assert_eq!(
        connection
            .handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol
            .as_deref(),
        Some(ALPN)
    );
    assert_eq!(
        next_accepted(&mut accepted).await,
        Ok(PeerIdentity::Node("eu-2".into()))
    );
}

#[tokio::test]
async fn each_side_reads_the_other_nodes_id_from_its_certificate() {
    let ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "us-7"), &ca, Admit::Nodes);
    let dialer = dialer(&node(&ca, "ap-3"), &ca);

    let (connection, _) = request(
        &dialer,
        server.local_addr().unwrap(),
        "us-7.node.meridian",
        b"x",
    )
    .await
    .unwrap();

    let server_seen_by_client = peer_identity(&connection).unwrap();
    assert_eq!(server_seen_by_client.node_id(), Some("us-7"));
    let client_seen_by_server = next_accepted(&mut accepted).await.unwrap();
    assert_eq!(client_seen_by_server.node_id(), Some("ap-3"));
}

#[tokio::test]
async fn client_facing_endpoint_admits_a_client_certificate_and_reads_its_name() {
    let ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::NodesAndClients);
    let sdk = dialer(&client(&ca, "alice"), &ca);

    let (_, reply) = request(&sdk, server.local_addr().unwrap(), "localhost", b"get k")
        .await
        .unwrap();

    assert_eq!(reply, b"get k");
    let peer = next_accepted(&mut accepted).await.unwrap();
    assert_eq!(peer, PeerIdentity::Client("alice".into()));
    assert_eq!(peer.role(), Role::Client);
    assert_eq!(peer.node_id(), None);
}

#[tokio::test]
async fn client_certificate_cannot_pose_as_a_node_on_the_node_to_node_endpoint() {
    let ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::Nodes);
    let sdk = dialer(&client(&ca, "mallory"), &ca);

    let error = request(
        &sdk,
        server.local_addr().unwrap(),
        "eu-1.node.meridian",
        b"x",
    )
    .await
    .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::AccessDenied),
        "{error}"
    );
    assert!(next_accepted(&mut accepted).await.is_err());
}

#[tokio::test]
async fn client_certificate_signed_by_another_ca_is_refused() {
    let ca = new_ca();
    let other_ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::NodesAndClients);
    // The intruder trusts the real CA, so only its own certificate is wrong.
    let foreign = client(&other_ca, "alice");
    let intruder = client_endpoint(
        client_config(&foreign, ca.certificate(), &TransportLimits::default()).unwrap(),
    );

    let error = request(&intruder, server.local_addr().unwrap(), "localhost", b"x")
        .await
        .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::UnknownCA),
        "{error}"
    );
    assert!(next_accepted(&mut accepted).await.is_err());
}

#[tokio::test]
async fn node_certificate_signed_by_another_ca_is_refused_on_the_node_to_node_endpoint() {
    let ca = new_ca();
    let other_ca = new_ca();
    let (server, _accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::Nodes);
    let foreign = node(&other_ca, "eu-2");
    let intruder = client_endpoint(
        client_config(&foreign, ca.certificate(), &TransportLimits::default()).unwrap(),
    );

    let error = request(
        &intruder,
        server.local_addr().unwrap(),
        "eu-1.node.meridian",
        b"x",
    )
    .await
    .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::UnknownCA),
        "{error}"
    );
}

#[tokio::test]
async fn connection_without_a_client_certificate_is_refused() {
    let ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::NodesAndClients);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(ca.certificate().root_store().unwrap())
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let anonymous = client_endpoint(quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    )));

    let error = request(&anonymous, server.local_addr().unwrap(), "localhost", b"x")
        .await
        .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::CertificateRequired),
        "{error}"
    );
    assert!(next_accepted(&mut accepted).await.is_err());
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let ca = new_ca();
    let (server, mut accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::Nodes);
    let stale = ca
        .issue(&PeerIdentity::node("eu-2").unwrap(), expired())
        .unwrap();
    let dialer = dialer(&stale, &ca);

    let error = request(
        &dialer,
        server.local_addr().unwrap(),
        "eu-1.node.meridian",
        b"x",
    )
    .await
    .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::CertificateExpired),
        "{error}"
    );
    assert!(next_accepted(&mut accepted).await.is_err());
}

#[tokio::test]
async fn expired_server_certificate_is_refused_by_the_dialling_node() {
    let ca = new_ca();
    let stale = ca
        .issue(&PeerIdentity::node("eu-1").unwrap(), expired())
        .unwrap();
    let (server, _accepted) = echo_server(&stale, &ca, Admit::Nodes);
    let dialer = dialer(&node(&ca, "eu-2"), &ca);

    let error = request(
        &dialer,
        server.local_addr().unwrap(),
        "eu-1.node.meridian",
        b"x",
    )
    .await
    .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::CertificateExpired),
        "{error}"
    );
}

#[tokio::test]
async fn dialling_a_node_by_id_refuses_a_server_that_is_another_node() {
    let ca = new_ca();
    let (server, _accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::Nodes);
    let dialer = dialer(&node(&ca, "eu-3"), &ca);

    let error = request(
        &dialer,
        server.local_addr().unwrap(),
        "eu-2.node.meridian",
        b"x",
    )
    .await
    .unwrap_err();

    assert_eq!(
        tls_alert(&error),
        Some(AlertDescription::BadCertificate),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_identity_cannot_serve_an_endpoint() {
    let ca = new_ca();
    let result = server_config(
        &client(&ca, "alice"),
        ca.certificate(),
        Admit::NodesAndClients,
        &TransportLimits::default(),
    );

    assert!(matches!(
        result,
        Err(TlsError::ServerIdentityNotNode { found: PeerIdentity::Client(name) }) if name == "alice"
    ));
}

#[tokio::test]
async fn more_than_quinns_default_100_streams_can_be_open_at_once() {
    const STREAMS_OPEN: usize = 300;
    let ca = new_ca();
    let (server, _accepted) = echo_server(&node(&ca, "eu-1"), &ca, Admit::Nodes);
    let dialer = dialer(&node(&ca, "eu-2"), &ca);
    let connection = dialer
        .connect(server.local_addr().unwrap(), "eu-1.node.meridian")
        .unwrap()
        .await
        .unwrap();

    // Open every stream before finishing any: with a limit of 100, the
    // 101st `open_bi` would wait for a stream to close and time out here.
    let mut streams = Vec::with_capacity(STREAMS_OPEN);
    for i in 0..STREAMS_OPEN {
        let (mut send, recv) = tokio::time::timeout(TEST_TIMEOUT, connection.open_bi())
            .await
            .unwrap_or_else(|_| panic!("stream {i} could not be opened"))
            .unwrap();
        send.write_all(&(i as u32).to_be_bytes()).await.unwrap();
        streams.push((send, recv));
    }
    for (i, (mut send, mut recv)) in streams.into_iter().enumerate() {
        send.finish().unwrap();
        let reply = recv.read_to_end(REPLY_LEN_MAX).await.unwrap();
        assert_eq!(reply, (i as u32).to_be_bytes());
    }
}

#[tokio::test]
async fn a_seed_dialler_accepts_any_node_of_its_ca_and_no_other_server() {
    let ca = new_ca();
    let seed_dialer = client_endpoint(
        seed_client_config(
            &client(&ca, "app"),
            ca.certificate(),
            &TransportLimits::default(),
        )
        .unwrap(),
    );
    // Any node of the cluster, whatever name is dialled.
    let (server, mut accepted) = echo_server(&node(&ca, "eu-7"), &ca, Admit::NodesAndClients);
    let addr = server.local_addr().unwrap();
    let (connection, reply) = request(&seed_dialer, addr, "seed.node.meridian", b"hi")
        .await
        .unwrap();
    assert_eq!(reply, b"hi");
    assert_eq!(
        peer_identity(&connection).unwrap(),
        PeerIdentity::node("eu-7").unwrap()
    );
    assert_eq!(
        next_accepted(&mut accepted).await.unwrap(),
        PeerIdentity::client("app").unwrap()
    );

    // A server that admits this cluster's clients but presents a node
    // certificate of another CA is refused by the dialler itself.
    let other = new_ca();
    let (impostor, _accepted) = echo_server(&node(&other, "eu-7"), &ca, Admit::NodesAndClients);
    let refused = request(
        &seed_dialer,
        impostor.local_addr().unwrap(),
        "seed.node.meridian",
        b"hi",
    )
    .await
    .expect_err("a server certificate of another CA");
    assert!(
        matches!(
            &refused,
            ConnectionError::TransportError(e) if e.to_string().contains("certificate")
        ),
        "{refused:?}"
    );

    // Nor an expired node certificate of the cluster's own CA.
    let stale = ca
        .issue(&PeerIdentity::node("eu-8").unwrap(), expired())
        .unwrap();
    let (stale_server, _accepted) = echo_server(&stale, &ca, Admit::NodesAndClients);
    let refused = request(
        &seed_dialer,
        stale_server.local_addr().unwrap(),
        "seed.node.meridian",
        b"hi",
    )
    .await
    .expect_err("an expired node certificate");
    assert!(refused.to_string().contains("expired"), "{refused}");

    // Nor a server presenting a client certificate of the cluster's CA.
    let posing = client(&ca, "mallory");
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(posing.cert_chain().to_vec(), posing.key())
    .unwrap();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let poser = Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(crypto)),
        loopback(),
    )
    .unwrap();
    let accepting = poser.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let _ = incoming.await;
        }
    });
    let refused = request(
        &seed_dialer,
        poser.local_addr().unwrap(),
        "seed.node.meridian",
        b"hi",
    )
    .await
    .expect_err("a client certificate posing as a node");
    assert!(refused.to_string().contains("certificate"), "{refused}");
}
