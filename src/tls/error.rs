//! Every way that Meridian's certificate handling and TLS setup can fail.
//!
//! Errors about files name the file, so an operator can act on the message
//! alone. Nothing in this module panics on bad input: a missing, corrupt,
//! expired or foreign certificate is a value of [`TlsError`].

use std::io;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::peer::{PeerIdentity, Role};

/// A failure of certificate management, TLS configuration or peer
/// identification.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that should exist does not.
    #[error("{path} does not exist")]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// A file does not hold the PEM block expected in it.
    #[error("{path} is not a PEM {expected}: {reason}")]
    CorruptPem {
        /// The file.
        path: PathBuf,
        /// What the file should hold ("certificate" or "private key").
        expected: &'static str,
        /// What went wrong while decoding it.
        reason: String,
    },

    /// A PEM certificate decodes, but its content is not a usable X.509
    /// certificate.
    #[error("{path} does not hold a valid X.509 certificate: {reason}")]
    CorruptCertificate {
        /// The file.
        path: PathBuf,
        /// What went wrong while parsing it.
        reason: String,
    },

    /// A PEM private key decodes, but its content is not a usable key.
    #[error("{path} does not hold a usable private key: {reason}")]
    CorruptKey {
        /// The file.
        path: PathBuf,
        /// What went wrong while parsing it.
        reason: String,
    },

    /// A key file and a certificate file do not belong together.
    #[error("the private key in {key_path} does not match the certificate in {cert_path}")]
    KeyMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
    },

    /// A certificate's validity period has ended.
    #[error("the certificate in {path} expired at {not_after}")]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// The end of its validity period.
        not_after: OffsetDateTime,
    },

    /// A certificate's validity period has not begun.
    #[error("the certificate in {path} is not valid before {not_before}")]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// The start of its validity period.
        not_before: OffsetDateTime,
    },

    /// A certificate was not signed by the cluster CA it is checked against.
    #[error("the certificate in {path} was not issued by the cluster CA in {ca_path}")]
    WrongCa {
        /// The certificate file.
        path: PathBuf,
        /// The cluster CA certificate file.
        ca_path: PathBuf,
    },

    /// A certificate is signed by the cluster CA but unfit for its use
    /// (wrong key usage, wrong name, ...).
    #[error("the certificate in {path} is not acceptable: {reason}")]
    Unacceptable {
        /// The certificate file.
        path: PathBuf,
        /// Why the TLS verifier refused it.
        reason: String,
    },

    /// A certificate file holds the identity of another role or name than
    /// the one asked for.
    #[error("the certificate in {path} is not for {expected} (it names {found})")]
    IdentityMismatch {
        /// The certificate file.
        path: PathBuf,
        /// The identity asked for.
        expected: PeerIdentity,
        /// What the certificate names instead.
        found: String,
    },

    /// Creating a CA where one already exists would orphan every certificate
    /// it issued, so it is refused.
    #[error("a cluster CA already exists at {path}; refusing to overwrite it")]
    CaExists {
        /// The existing CA file.
        path: PathBuf,
    },

    /// A node id or client name cannot be encoded in a certificate.
    #[error("invalid {role} name {name:?}: {reason}")]
    InvalidName {
        /// The role the name was meant for.
        role: Role,
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A server endpoint was given an identity that is not a node's.
    #[error("only a node identity can serve a Meridian endpoint, not {found}")]
    ServerIdentityNotNode {
        /// The identity that was given.
        found: PeerIdentity,
    },

    /// A validity period that ends before it begins.
    #[error("invalid validity period: {not_before} is not before {not_after}")]
    InvalidValidity {
        /// Requested start.
        not_before: OffsetDateTime,
        /// Requested end.
        not_after: OffsetDateTime,
    },

    /// Transport limits that cannot work together.
    #[error("invalid transport limits: {0}")]
    InvalidLimits(&'static str),

    /// The connection carries no verified peer certificate.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,

    /// The peer's certificate could not be parsed.
    #[error("the peer's certificate cannot be parsed: {0}")]
    PeerCertificateCorrupt(String),

    /// A certificate names no Meridian role (`<id>.node.meridian` or
    /// `<name>.client.meridian`), or names more than one.
    #[error("the certificate names no single Meridian role (DNS names: {dns_names:?})")]
    UnrecognisedRole {
        /// The certificate's DNS subject alternative names.
        dns_names: Vec<String>,
    },

    /// rcgen could not generate a key or certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),

    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),

    /// A client certificate verifier could not be built from the CA.
    #[error("cannot build a certificate verifier from the cluster CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),

    /// quinn cannot run QUIC with the TLS configuration.
    #[error("QUIC cannot use the TLS configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}
