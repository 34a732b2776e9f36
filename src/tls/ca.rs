//! The cluster's own certificate authority: a key and a self-signed
//! certificate that issue every node and client certificate.
//!
//! [`ClusterCa`] holds the CA key and can issue; [`CaCertificate`] is only
//! the public certificate, which is all a node or client needs to verify
//! its peers. This module works in memory; `store.rs` puts it in files.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;
use time::{Duration, OffsetDateTime};

use super::error::TlsError;
use super::identity::Identity;
use super::peer::{PeerIdentity, Role};

/// How long a new cluster CA is valid: 10 years.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// How long a new node certificate is valid: 1 year.
pub const NODE_VALIDITY_DAYS: u32 = 365;
/// How long a new client certificate is valid: 1 year.
pub const CLIENT_VALIDITY_DAYS: u32 = 365;
/// How far back a new certificate's validity starts, so that a peer whose
/// clock lags a little still accepts it.
pub const BACKDATE_MINUTES: i64 = 5;

const ORGANIZATION: &str = "Meridian";
const CA_COMMON_NAME: &str = "Meridian cluster CA";

/// The period in which a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First instant of validity.
    pub not_before: OffsetDateTime,
    /// Last instant of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from [`BACKDATE_MINUTES`] ago until `days` days from now.
    pub fn days_from_now(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::minutes(BACKDATE_MINUTES),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    /// The default validity of a new certificate of this role.
    pub fn default_for(role: Role) -> Self {
        match role {
            Role::Node => Self::days_from_now(NODE_VALIDITY_DAYS),
            Role::Client => Self::days_from_now(CLIENT_VALIDITY_DAYS),
        }
    }

    /// The period as a certificate records it (whole seconds), if it is
    /// not empty.
    fn check(self) -> Result<Self, TlsError> {
        let whole_seconds =
            |t: OffsetDateTime| t - Duration::nanoseconds(i64::from(t.nanosecond()));
        let validity = Validity {
            not_before: whole_seconds(self.not_before),
            not_after: whole_seconds(self.not_after),
        };
        if validity.not_before < validity.not_after {
            Ok(validity)
        } else {
            Err(TlsError::InvalidValidity {
                not_before: self.not_before,
                not_after: self.not_after,
            })
        }
    }
}

/// The cluster CA's certificate: the trust anchor every endpoint checks its
/// peers against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificate {
    der: CertificateDer<'static>,
    pem: String,
    validity: Validity,
}

impl CaCertificate {
    /// The certificate in DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate in PEM, as written to `ca.cert.pem`.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// When the CA is valid; no certificate it issues outlives it.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// A root store holding only this CA.
    pub fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone())?;
        Ok(roots)
    }

    pub(crate) fn from_parts(
        der: CertificateDer<'static>,
        pem: String,
        validity: Validity,
    ) -> Self {
        CaCertificate { der, pem, validity }
    }
}

/// The cluster CA with its private key: it issues node and client
/// certificates.
///
/// ```
/// use meridian::tls::{ClusterCa, PeerIdentity, Role, Validity};
///
/// let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
/// let node = ca
///     .issue(&PeerIdentity::node("eu-1").unwrap(), Validity::default_for(Role::Node))
///     .unwrap();
/// assert_eq!(node.peer().node_id(), Some("eu-1"));
/// ```
pub struct ClusterCa {
    certificate: CaCertificate,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("certificate", &self.certificate)
            .field("key", &"[elided]")
            .finish()
    }
}

impl ClusterCa {
    /// A new CA: a fresh ECDSA P-256 key and a self-signed certificate that
    /// may sign end-entity certificates only (path length 0).
    pub fn generate(validity: Validity) -> Result<Self, TlsError> {
        let validity = validity.check()?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        // A random suffix makes each cluster's CA name unique, so a
        // certificate from another Meridian cluster is refused as issued by
        // an unknown CA rather than as a bad signature.
        let common_name = format!("{CA_COMMON_NAME} {:08x}", rand::random::<u32>());
        params.distinguished_name = distinguished_name(&common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let certificate = CaCertificate::from_parts(cert.der().clone(), cert.pem(), validity);
        Ok(ClusterCa {
            certificate,
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA from its certificate and its key (PKCS#8, SEC1 or PKCS#1 DER).
    /// The caller has checked that the key belongs to the certificate.
    pub(crate) fn from_parts(
        certificate: CaCertificate,
        key: &PrivateKeyDer<'_>,
    ) -> Result<Self, rcgen::Error> {
        let key = KeyPair::try_from(key)?;
        let issuer = Issuer::from_ca_cert_der(certificate.der(), key)?;
        Ok(ClusterCa {
            certificate,
            issuer,
        })
    }

    /// The CA certificate, for verifying peers.
    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// The CA private key in PKCS#8 PEM, as written to `ca.key.pem`.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `peer` with a fresh key. Its validity ends
    /// no later than the CA's.
    ///
    /// A node certificate serves both ends of TLS (server and client
    /// authentication) and names `<id>.node.meridian`, `localhost`,
    /// `127.0.0.1` and `::1`. A client certificate authenticates clients
    /// only and names `<name>.client.meridian`.
    pub fn issue(&self, peer: &PeerIdentity, validity: Validity) -> Result<Identity, TlsError> {
        let validity = Validity {
            not_before: validity.not_before,
            not_after: validity
                .not_after
                .min(self.certificate.validity().not_after),
        }
        .check()?;
        let key = KeyPair::generate()?;
        let dns_name = peer.dns_name();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&dns_name);
        params.subject_alt_names = vec![SanType::DnsName(dns_name.try_into()?)];
        match peer.role() {
            Role::Node => {
                params
                    .subject_alt_names
                    .push(SanType::DnsName("localhost".try_into()?));
                params
                    .subject_alt_names
                    .push(SanType::IpAddress([127, 0, 0, 1].into()));
                params
                    .subject_alt_names
                    .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
            }
            Role::Client => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_pem = key.serialize_pem();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        Ok(Identity::new(
            peer.clone(),
            vec![cert.der().clone()],
            cert.pem(),
            key_der,
            key_pem,
            validity,
        ))
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// A random positive 128-bit serial number (RFC 5280 allows up to 20 bytes).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte, so the length is stable
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::X509Certificate;

    fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    fn san_strings(cert: &X509Certificate<'_>) -> Vec<String> {
        cert.subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn node_certificate_serves_both_ends_and_names_its_id_and_loopback() {
        let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
        let node = ca
            .issue(
                &PeerIdentity::node("eu-1").unwrap(),
                Validity::default_for(Role::Node),
            )
            .unwrap();

        let cert = parse(&node.cert_chain()[0]);
        assert_eq!(
            san_strings(&cert),
            vec![
                "eu-1.node.meridian".to_owned(),
                "localhost".to_owned(),
                "ip:[127, 0, 0, 1]".to_owned(),
                format!("ip:{:?}", std::net::Ipv6Addr::LOCALHOST.octets()),
            ]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());
    }

    #[test]
    fn client_certificate_authenticates_clients_only() {
        let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
        let client = ca
            .issue(
                &PeerIdentity::client("alice").unwrap(),
                Validity::default_for(Role::Client),
            )
            .unwrap();

        let cert = parse(&client.cert_chain()[0]);
        assert_eq!(san_strings(&cert), vec!["alice.client.meridian".to_owned()]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
    }

    #[test]
    fn ca_may_sign_end_entity_certificates_only() {
        let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();

        let cert = parse(ca.certificate().der());
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
    }

    #[test]
    fn two_cas_have_different_names() {
        let a = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
        let b = ClusterCa::generate(Validity::days_from_now(30)).unwrap();

        assert_ne!(
            parse(a.certificate().der()).subject().to_string(),
            parse(b.certificate().der()).subject().to_string()
        );
    }

    #[test]
    fn issued_certificate_never_outlives_its_ca() {
        let ca_validity = Validity::days_from_now(30);
        let ca = ClusterCa::generate(ca_validity).unwrap();

        let node = ca
            .issue(
                &PeerIdentity::node("eu-1").unwrap(),
                Validity::days_from_now(365),
            )
            .unwrap();

        assert_eq!(
            node.validity().not_after.unix_timestamp(),
            ca_validity.not_after.unix_timestamp()
        );
        let cert = parse(&node.cert_chain()[0]);
        assert_eq!(
            cert.validity().not_after.timestamp(),
            ca_validity.not_after.unix_timestamp()
        );
    }

    #[test]
    fn validity_that_ends_before_it_begins_is_refused() {
        let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
        let now = OffsetDateTime::now_utc();
        let backwards = Validity {
            not_before: now,
            not_after: now - Duration::days(1),
        };

        let err = ca
            .issue(&PeerIdentity::node("eu-1").unwrap(), backwards)
            .unwrap_err();

        assert!(matches!(err, TlsError::InvalidValidity { .. }), "{err:?}");
    }
}
