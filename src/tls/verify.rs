//! Certificate checks run ahead of time on files.
//!
//! They go through rustls' WebPKI verifiers, so a certificate that passes
//! `check_issued_by` at load time is one that peers will accept.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::CertificateError;
use time::OffsetDateTime;

use super::ca::{CaCertificate, Validity};
use super::error::TlsError;
use super::identity::Identity;
use super::peer::Role;

/// The only crypto provider Meridian uses: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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
