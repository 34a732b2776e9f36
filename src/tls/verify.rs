//! Certificate checks: the one a server runs on every client certificate
//! during the handshake, and the same check run ahead of time on files.
//!
//! Both go through rustls' WebPKI verifiers, so a certificate that passes
//! `check_issued_by` at load time is one that peers will accept.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use time::OffsetDateTime;

use super::ca::{CaCertificate, Validity};
use super::error::TlsError;
use super::identity::Identity;
use super::peer::{PeerIdentity, Role};

/// The only crypto provider Meridian uses: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which certificate holders a server endpoint lets in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Admit {
    /// The node-to-node endpoint: node certificates only, so a client
    /// cannot pose as a node.
    Nodes,
    /// The client-facing endpoint: client and node certificates.
    NodesAndClients,
}

impl Admit {
    /// Whether a certificate holder of `role` may connect.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Admit::Nodes => role == Role::Node,
            Admit::NodesAndClients => true,
        }
    }
}

/// A client certificate verifier: the cluster CA's WebPKI check, then the
/// role check of [`Admit`]. A certificate with no Meridian identity is
/// refused even if the CA signed it.
#[derive(Debug)]
pub(crate) struct RoleVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    admit: Admit,
}

impl RoleVerifier {
    pub(crate) fn new(ca: &CaCertificate, admit: Admit) -> Result<Self, TlsError> {
        let webpki =
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.root_store()?), provider())
                .build()?;
        Ok(RoleVerifier { webpki, admit })
    }
}

impl ClientCertVerifier for RoleVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        match PeerIdentity::from_certificate(end_entity) {
            Ok(peer) if self.admit.admits(peer.role()) => Ok(verified),
            Ok(peer) => {
                tracing::debug!(%peer, admit = ?self.admit, "refused a peer of a role this endpoint does not admit");
                Err(CertificateError::ApplicationVerificationFailure.into())
            }
            Err(error) => {
                tracing::debug!(%error, "refused a certificate without a Meridian identity");
                Err(CertificateError::ApplicationVerificationFailure.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A server certificate verifier for dialling a node whose id the client
/// does not know yet (a seed address): the cluster CA's WebPKI check for
/// the node identity the certificate itself names. Any node of the cluster
/// passes; a client certificate, or one of another CA, does not.
#[derive(Debug)]
pub(crate) struct AnyNodeVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl AnyNodeVerifier {
    pub(crate) fn new(ca: &CaCertificate) -> Result<Self, TlsError> {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(ca.root_store()?), provider())
                .build()?;
        Ok(AnyNodeVerifier { webpki })
    }
}

impl ServerCertVerifier for AnyNodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let peer = match PeerIdentity::from_certificate(end_entity) {
            Ok(peer) if peer.role() == Role::Node => peer,
            Ok(peer) => {
                tracing::debug!(%peer, "a seed presented a certificate that is not a node's");
                return Err(CertificateError::ApplicationVerificationFailure.into());
            }
            Err(error) => {
                tracing::debug!(%error, "a seed presented a certificate without a Meridian identity");
                return Err(CertificateError::ApplicationVerificationFailure.into());
            }
        };
        let name = ServerName::try_from(peer.dns_name())
            .map_err(|_| rustls::Error::from(CertificateError::BadEncoding))?;
        self.webpki
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Checks that now is within `validity`, the validity period of the
/// certificate in `path`.
pub(crate) fn check_validity(validity: Validity, path: &Path) -> Result<(), TlsError> {
    let now = OffsetDateTime::now_utc();
    if now > validity.not_after {
        return Err(TlsError::Expired {
            path: path.to_owned(),
            not_after: validity.not_after,
        });
    }
    if now < validity.not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_owned(),
            not_before: validity.not_before,
        });
    }
    Ok(())
}

/// Checks ahead of time that peers will accept `identity`: it is within its
/// validity period, was issued by `ca`, and fits its role (client
/// authentication for everyone; server authentication under its node name
/// for nodes). Errors name `cert_path` and `ca_path`.
pub(crate) fn check_issued_by(
    identity: &Identity,
    ca: &CaCertificate,
    cert_path: &Path,
    ca_path: &Path,
) -> Result<(), TlsError> {
    let validity = identity.validity();
    check_validity(validity, cert_path)?;

    let (end_entity, intermediates) = identity
        .cert_chain()
        .split_first()
        .expect("an identity has a certificate");
    let roots = Arc::new(ca.root_store()?);
    let now = UnixTime::now();
    let map_err = |error: rustls::Error| match error {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => TlsError::WrongCa {
            path: cert_path.to_owned(),
            ca_path: ca_path.to_owned(),
        },
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => TlsError::Expired {
            path: cert_path.to_owned(),
            not_after: validity.not_after,
        },
        other => TlsError::Unacceptable {
            path: cert_path.to_owned(),
            reason: other.to_string(),
        },
    };

    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()?
        .verify_client_cert(end_entity, intermediates, now)
        .map_err(map_err)?;

    if identity.peer().role() == Role::Node {
        let server_name = ServerName::try_from(identity.peer().dns_name()).map_err(|e| {
            TlsError::Unacceptable {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()?
            .verify_server_cert(end_entity, intermediates, &server_name, &[], now)
            .map_err(map_err)?;
    }
    Ok(())
}
