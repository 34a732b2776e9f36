//! Who is on the other end of a connection: a node (by id) or a client (by
//! name).
//!
//! The role and name travel inside the certificate as one DNS subject
//! alternative name, `<id>.node.meridian` or `<name>.client.meridian`, so
//! the ordinary hostname check of TLS also checks "is this node `eu-1`?".
//! This module encodes and decodes that name; it never decides whether a
//! certificate is trusted (the verifiers do that before anything here runs).

use std::fmt;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use super::error::TlsError;

/// The DNS suffix under which node certificates are named.
pub const NODE_DOMAIN: &str = "node.meridian";
/// The DNS suffix under which client certificates are named.
pub const CLIENT_DOMAIN: &str = "client.meridian";

/// The longest node id or client name: one DNS label.
pub const NAME_LEN_MAX: usize = 63;

/// What a certificate's holder may do in a Meridian cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A replica: serves clients and talks to other nodes.
    Node,
    /// An SDK or CLI client: may only talk to the client-facing endpoint.
    Client,
}

impl Role {
    /// The DNS suffix that marks this role.
    pub fn domain(self) -> &'static str {
        match self {
            Role::Node => NODE_DOMAIN,
            Role::Client => CLIENT_DOMAIN,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Client => "client",
        })
    }
}

/// The verified identity of a certificate holder.
///
/// ```
/// use meridian::tls::{PeerIdentity, Role};
///
/// let node = PeerIdentity::node("eu-1").unwrap();
/// assert_eq!(node.dns_name(), "eu-1.node.meridian");
/// assert_eq!(PeerIdentity::from_dns_name("alice.client.meridian"),
///            Some(PeerIdentity::client("alice").unwrap()));
/// assert_eq!(node.role(), Role::Node);
/// assert!(PeerIdentity::node("Not A Label").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// A node, by node id.
    Node(String),
    /// A client, by client name.
    Client(String),
}

impl PeerIdentity {
    /// A node identity; the id must be a valid DNS label (see [`validate_name`]).
    pub fn node(id: &str) -> Result<Self, TlsError> {
        validate_name(Role::Node, id)?;
        Ok(PeerIdentity::Node(id.to_owned()))
    }

    /// A client identity; the name must be a valid DNS label (see [`validate_name`]).
    pub fn client(name: &str) -> Result<Self, TlsError> {
        validate_name(Role::Client, name)?;
        Ok(PeerIdentity::Client(name.to_owned()))
    }

    /// An identity of the given role.
    pub fn new(role: Role, name: &str) -> Result<Self, TlsError> {
        match role {
            Role::Node => Self::node(name),
            Role::Client => Self::client(name),
        }
    }

    /// Node or client.
    pub fn role(&self) -> Role {
        match self {
            PeerIdentity::Node(_) => Role::Node,
            PeerIdentity::Client(_) => Role::Client,
        }
    }

    /// The node id or client name.
    pub fn name(&self) -> &str {
        match self {
            PeerIdentity::Node(name) | PeerIdentity::Client(name) => name,
        }
    }

    /// The node id, if this is a node.
    pub fn node_id(&self) -> Option<&str> {
        match self {
            PeerIdentity::Node(id) => Some(id),
            PeerIdentity::Client(_) => None,
        }
    }

    /// The DNS name that carries this identity in a certificate, and the
    /// server name a client passes to `Endpoint::connect` to reach that node.
    pub fn dns_name(&self) -> String {
        format!("{}.{}", self.name(), self.role().domain())
    }

    /// Reads an identity back from a DNS name; `None` if the name is not a
    /// Meridian identity.
    pub fn from_dns_name(dns_name: &str) -> Option<Self> {
        let (label, domain) = dns_name.split_once('.')?;
        let role = [Role::Node, Role::Client]
            .into_iter()
            .find(|role| role.domain() == domain)?;
        PeerIdentity::new(role, label).ok()
    }

    /// Reads the identity from a DER certificate: exactly one of its DNS
    /// subject alternative names must be a Meridian identity.
    ///
    /// This does not check that the certificate is trusted; call it on
    /// certificates a verifier has accepted.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<Self, TlsError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| TlsError::PeerCertificateCorrupt(e.to_string()))?;
        let dns_names: Vec<String> = match parsed.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(TlsError::PeerCertificateCorrupt(e.to_string())),
        };
        let mut found = dns_names.iter().filter_map(|n| Self::from_dns_name(n));
        match (found.next(), found.next()) {
            (Some(identity), None) => Ok(identity),
            _ => Err(TlsError::UnrecognisedRole { dns_names }),
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role(), self.name())
    }
}

/// Checks that `name` can serve as a node id or client name: one DNS label
/// of 1 to [`NAME_LEN_MAX`] characters from `a-z`, `0-9` and `-`, not
/// starting or ending with `-`. Lower case only, so that the name read back
/// from a certificate is the name that was issued.
pub fn validate_name(role: Role, name: &str) -> Result<(), TlsError> {
    let invalid = |reason| TlsError::InvalidName {
        role,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > NAME_LEN_MAX {
        return Err(invalid("it is longer than 63 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("only a-z, 0-9 and '-' are allowed"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(invalid("it may not start or end with '-'"));
    }
    Ok(())
}

/// The verified identity of the peer of an established connection.
///
/// The certificate has already passed the endpoint's verifier (signed by the
/// cluster CA, in its validity period, and of a role the endpoint admits),
/// so this only reads the role and name it carries.
pub fn peer_identity(connection: &quinn::Connection) -> Result<PeerIdentity, TlsError> {
    let chain = connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoPeerCertificate)?;
    let end_entity = chain.first().ok_or(TlsError::NoPeerCertificate)?;
    PeerIdentity::from_certificate(end_entity)
}

/// The TLS alert that ended a connection, if a TLS failure ended it: for
/// example [`rustls::AlertDescription::UnknownCA`] when one side's
/// certificate was not issued by the other's cluster CA,
/// `CertificateRequired` when a client sent none, `CertificateExpired`, or
/// `AccessDenied` when a client certificate knocked on the node-to-node
/// endpoint.
pub fn tls_alert(error: &quinn::ConnectionError) -> Option<rustls::AlertDescription> {
    let code = match error {
        quinn::ConnectionError::TransportError(e) => e.code,
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
        _ => return None,
    };
    let code = u64::from(code);
    // QUIC carries TLS alerts as transport error codes 0x100 + alert (RFC 9001 §4.8).
    if (0x100..=0x1ff).contains(&code) {
        Some(rustls::AlertDescription::from((code - 0x100) as u8))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_dns_name() {
        for identity in [
            PeerIdentity::node("eu-1").unwrap(),
            PeerIdentity::client("alice").unwrap(),
            PeerIdentity::node("7").unwrap(),
        ] {
            assert_eq!(
                PeerIdentity::from_dns_name(&identity.dns_name()),
                Some(identity)
            );
        }
    }

    #[test]
    fn foreign_dns_names_are_no_identity() {
        for name in [
            "localhost",
            "eu-1.node.example",
            "a.b.node.meridian",
            ".node.meridian",
            "EU-1.node.meridian",
            "node.meridian",
        ] {
            assert_eq!(PeerIdentity::from_dns_name(name), None, "{name}");
        }
    }

    #[test]
    fn names_outside_one_lower_case_dns_label_are_refused() {
        for name in ["", "-a", "a-", "a.b", "A", "é", &"a".repeat(64)] {
            let err = validate_name(Role::Node, name).unwrap_err();
            assert!(
                matches!(
                    err,
                    TlsError::InvalidName {
                        role: Role::Node,
                        ..
                    }
                ),
                "{name}"
            );
        }
        validate_name(Role::Client, &"a".repeat(63)).unwrap();
    }

    #[test]
    fn certificate_without_a_meridian_name_has_no_recognisable_role() {
        let foreign = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();

        let err = PeerIdentity::from_certificate(foreign.cert.der()).unwrap_err();

        assert!(
            matches!(err, TlsError::UnrecognisedRole { ref dns_names } if dns_names == &["localhost"]),
            "{err:?}"
        );
    }

    #[test]
    fn certificate_naming_two_identities_has_no_recognisable_role() {
        let names = vec!["a.node.meridian".to_owned(), "b.client.meridian".to_owned()];
        let ambiguous = rcgen::generate_simple_self_signed(names).unwrap();

        let err = PeerIdentity::from_certificate(ambiguous.cert.der()).unwrap_err();

        assert!(matches!(err, TlsError::UnrecognisedRole { .. }), "{err:?}");
    }

    #[test]
    fn bytes_that_are_no_certificate_are_a_typed_error() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x02]);

        let err = PeerIdentity::from_certificate(&garbage).unwrap_err();

        assert!(
            matches!(err, TlsError::PeerCertificateCorrupt(_)),
            "{err:?}"
        );
    }
}
