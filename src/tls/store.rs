//! The cluster's certificates as PEM files in one directory.
//!
//! Layout (`<kind>` is `node` or `client`):
//!
//! | file | holds | mode |
//! |---|---|---|
//! | `ca.cert.pem` | cluster CA certificate | 0644 |
//! | `ca.key.pem` | cluster CA private key | 0600 |
//! | `<kind>-<name>.cert.pem` | node or client certificate | 0644 |
//! | `<kind>-<name>.key.pem` | its private key | 0600 |
//!
//! A node needs only `ca.cert.pem` and its own two files; the CA key is
//! needed only to issue. Files are written to a temporary name and renamed,
//! so a crash never leaves half a file. Everything read is checked (PEM,
//! X.509, key matches certificate, validity period, issuer, identity)
//! and every failure is a [`TlsError`] naming the file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use super::ca::{CaCertificate, ClusterCa, Validity, CA_VALIDITY_DAYS};
use super::error::TlsError;
use super::identity::Identity;
use super::peer::{PeerIdentity, Role};
use super::verify::{check_issued_by, check_validity, provider};

/// [`CertStore::ensure_cluster`] re-issues a certificate that expires
/// within this many hours.
pub const RENEW_BEFORE_HOURS: i64 = 24;

const CA_CERT_FILE: &str = "ca.cert.pem";
const CA_KEY_FILE: &str = "ca.key.pem";
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

/// A directory of cluster certificates.
///
/// ```
/// use meridian::tls::CertStore;
///
/// let dir = std::env::temp_dir().join(format!("meridian-doc-store-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let store = CertStore::new(&dir);
/// store.create_ca().unwrap();
/// store.issue_node("eu-1").unwrap();
/// let node = store.load_node_identity("eu-1").unwrap();
/// assert_eq!(node.peer().node_id(), Some("eu-1"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct CertStore {
    dir: PathBuf,
}

/// Everything a local cluster needs, as [`CertStore::ensure_cluster`]
/// leaves it.
#[derive(Clone, Debug)]
pub struct ClusterCertificates {
    /// The cluster CA certificate.
    pub ca: CaCertificate,
    /// One identity per node id, in the order asked for.
    pub nodes: Vec<Identity>,
    /// One identity per client name, in the order asked for.
    pub clients: Vec<Identity>,
}

impl CertStore {
    /// The store in `dir`; nothing is read or created yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CertStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the CA certificate is kept.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// Where the CA private key is kept.
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join(CA_KEY_FILE)
    }

    /// Where the certificate of `peer` is kept.
    pub fn cert_path(&self, peer: &PeerIdentity) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cert.pem", peer.role(), peer.name()))
    }

    /// Where the private key of `peer` is kept.
    pub fn key_path(&self, peer: &PeerIdentity) -> PathBuf {
        self.dir
            .join(format!("{}-{}.key.pem", peer.role(), peer.name()))
    }

    /// Creates a new cluster CA (valid [`CA_VALIDITY_DAYS`]) and writes it,
    /// creating the directory if needed. Refuses with
    /// [`TlsError::CaExists`] if either CA file is already there.
    pub fn create_ca(&self) -> Result<ClusterCa, TlsError> {
        self.create_ca_with(Validity::days_from_now(CA_VALIDITY_DAYS))
    }

    /// [`create_ca`](Self::create_ca) with a chosen validity period.
    pub fn create_ca_with(&self, validity: Validity) -> Result<ClusterCa, TlsError> {
        for path in [self.ca_cert_path(), self.ca_key_path()] {
            if path.exists() {
                return Err(TlsError::CaExists { path });
            }
        }
        let ca = ClusterCa::generate(validity)?;
        self.create_dir()?;
        write_file(&self.ca_key_path(), ca.key_pem().as_bytes(), KEY_MODE)?;
        write_file(
            &self.ca_cert_path(),
            ca.certificate().pem().as_bytes(),
            CERT_MODE,
        )?;
        Ok(ca)
    }

    /// Loads the CA with its key, to issue certificates.
    pub fn load_ca(&self) -> Result<ClusterCa, TlsError> {
        let certificate = self.load_ca_certificate()?;
        let key_path = self.ca_key_path();
        let key = read_key(&key_path)?;
        check_key_matches(
            vec![certificate.der().clone()],
            &key,
            &self.ca_cert_path(),
            &key_path,
        )?;
        ClusterCa::from_parts(certificate, &key).map_err(|e| TlsError::CorruptKey {
            path: key_path,
            reason: e.to_string(),
        })
    }

    /// Loads the CA certificate, to verify peers. Fails if it is corrupt,
    /// not a CA, or outside its validity period.
    pub fn load_ca_certificate(&self) -> Result<CaCertificate, TlsError> {
        let path = self.ca_cert_path();
        let (chain, pem) = read_certs(&path)?;
        let der = chain
            .into_iter()
            .next()
            .expect("read_certs returns at least one");
        let validity = read_validity(&der, &path)?;
        check_validity(validity, &path)?;
        let certificate = CaCertificate::from_parts(der, pem, validity);
        certificate
            .root_store()
            .map_err(|e| TlsError::CorruptCertificate {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(certificate)
    }

    /// Issues a node certificate for `node_id` (valid
    /// [`NODE_VALIDITY_DAYS`](super::NODE_VALIDITY_DAYS)) with the CA in
    /// this directory, and writes it, replacing any earlier one.
    pub fn issue_node(&self, node_id: &str) -> Result<Identity, TlsError> {
        let peer = PeerIdentity::node(node_id)?;
        self.issue(&peer, Validity::default_for(Role::Node))
    }

    /// Issues a client certificate for `name` (valid
    /// [`CLIENT_VALIDITY_DAYS`](super::CLIENT_VALIDITY_DAYS)) with the CA in
    /// this directory, and writes it, replacing any earlier one.
    pub fn issue_client(&self, name: &str) -> Result<Identity, TlsError> {
        let peer = PeerIdentity::client(name)?;
        self.issue(&peer, Validity::default_for(Role::Client))
    }

    /// Issues a certificate for `peer` with a chosen validity period, and
    /// writes it.
    pub fn issue(&self, peer: &PeerIdentity, validity: Validity) -> Result<Identity, TlsError> {
        let ca = self.load_ca()?;
        self.issue_with(&ca, peer, validity)
    }

    fn issue_with(
        &self,
        ca: &ClusterCa,
        peer: &PeerIdentity,
        validity: Validity,
    ) -> Result<Identity, TlsError> {
        let identity = ca.issue(peer, validity)?;
        self.create_dir()?;
        write_file(
            &self.key_path(peer),
            identity.key_pem().as_bytes(),
            KEY_MODE,
        )?;
        write_file(
            &self.cert_path(peer),
            identity.cert_pem().as_bytes(),
            CERT_MODE,
        )?;
        Ok(identity)
    }

    /// Loads and checks the identity of node `node_id` against the CA
    /// certificate in this directory.
    pub fn load_node_identity(&self, node_id: &str) -> Result<Identity, TlsError> {
        self.load_identity(&PeerIdentity::node(node_id)?)
    }

    /// Loads and checks the identity of client `name` against the CA
    /// certificate in this directory.
    pub fn load_client_identity(&self, name: &str) -> Result<Identity, TlsError> {
        self.load_identity(&PeerIdentity::client(name)?)
    }

    /// Loads the identity of `peer` and checks that peers will accept it:
    /// the key matches the certificate, the certificate names `peer`, is
    /// within its validity period and was issued by the CA in this
    /// directory.
    pub fn load_identity(&self, peer: &PeerIdentity) -> Result<Identity, TlsError> {
        let ca = self.load_ca_certificate()?;
        self.load_identity_with(peer, &ca)
    }

    fn load_identity_with(
        &self,
        peer: &PeerIdentity,
        ca: &CaCertificate,
    ) -> Result<Identity, TlsError> {
        let cert_path = self.cert_path(peer);
        let key_path = self.key_path(peer);
        let (chain, cert_pem) = read_certs(&cert_path)?;
        let validity = read_validity(&chain[0], &cert_path)?;
        match PeerIdentity::from_certificate(&chain[0]) {
            Ok(found) if found == *peer => {}
            Ok(found) => {
                return Err(TlsError::IdentityMismatch {
                    path: cert_path,
                    expected: peer.clone(),
                    found: found.to_string(),
                })
            }
            Err(_) => {
                return Err(TlsError::IdentityMismatch {
                    path: cert_path,
                    expected: peer.clone(),
                    found: "no Meridian identity".to_owned(),
                })
            }
        }
        let key_pem = read_text(&key_path)?;
        let key = parse_key(&key_pem, &key_path)?;
        check_key_matches(chain.clone(), &key, &cert_path, &key_path)?;
        let identity = Identity::new(peer.clone(), chain, cert_pem, key, key_pem, validity);
        check_issued_by(&identity, ca, &cert_path, &self.ca_cert_path())?;
        Ok(identity)
    }

    /// Makes sure the directory holds a CA and a valid certificate for
    /// every node id and client name, and returns them all. Idempotent:
    /// what exists and is valid is reused. A CA is created only if neither
    /// CA file exists. A node or client certificate is (re-)issued if it is
    /// missing, expires within [`RENEW_BEFORE_HOURS`], is not yet valid, or
    /// was issued by another CA. A corrupt file is an error, never
    /// silently replaced.
    ///
    /// This is what `meridian cluster up` runs on its state directory.
    pub fn ensure_cluster(
        &self,
        node_ids: &[&str],
        client_names: &[&str],
    ) -> Result<ClusterCertificates, TlsError> {
        let peers_nodes = node_ids
            .iter()
            .map(|id| PeerIdentity::node(id))
            .collect::<Result<Vec<_>, _>>()?;
        let peers_clients = client_names
            .iter()
            .map(|name| PeerIdentity::client(name))
            .collect::<Result<Vec<_>, _>>()?;

        let ca = if self.ca_cert_path().exists() || self.ca_key_path().exists() {
            self.load_ca()?
        } else {
            self.create_ca()?
        };
        let renew_after = OffsetDateTime::now_utc() + Duration::hours(RENEW_BEFORE_HOURS);
        let mut ensure = |peer: &PeerIdentity| -> Result<Identity, TlsError> {
            match self.load_identity_with(peer, ca.certificate()) {
                Ok(identity) if identity.validity().not_after > renew_after => Ok(identity),
                Ok(_)
                | Err(TlsError::Missing { .. })
                | Err(TlsError::Expired { .. })
                | Err(TlsError::NotYetValid { .. })
                | Err(TlsError::WrongCa { .. }) => {
                    tracing::info!(%peer, dir = %self.dir.display(), "issuing certificate");
                    self.issue_with(&ca, peer, Validity::default_for(peer.role()))
                }
                Err(other) => Err(other),
            }
        };
        let nodes = peers_nodes
            .iter()
            .map(&mut ensure)
            .collect::<Result<Vec<_>, _>>()?;
        let clients = peers_clients
            .iter()
            .map(&mut ensure)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClusterCertificates {
            ca: ca.certificate().clone(),
            nodes,
            clients,
        })
    }

    fn create_dir(&self) -> Result<(), TlsError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        builder.create(&self.dir).map_err(|source| TlsError::Write {
            path: self.dir.clone(),
            source,
        })
    }
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => TlsError::Missing {
            path: path.to_owned(),
        },
        _ => TlsError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    String::from_utf8(bytes).map_err(|_| TlsError::CorruptPem {
        path: path.to_owned(),
        expected: "file",
        reason: "it is not text".to_owned(),
    })
}

/// Reads a PEM certificate chain; returns at least one certificate, each
/// a parseable X.509 certificate.
fn read_certs(path: &Path) -> Result<(Vec<CertificateDer<'static>>, String), TlsError> {
    let pem = read_text(path)?;
    let corrupt_pem = |reason: String| TlsError::CorruptPem {
        path: path.to_owned(),
        expected: "certificate",
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt_pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(corrupt_pem("no CERTIFICATE block found".to_owned()));
    }
    for der in &chain {
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::CorruptCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok((chain, pem))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_key(&read_text(path)?, path)
}

fn parse_key(pem: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::CorruptPem {
        path: path.to_owned(),
        expected: "private key",
        reason: e.to_string(),
    })
}

fn read_validity(der: &CertificateDer<'_>, path: &Path) -> Result<Validity, TlsError> {
    let corrupt = |reason: String| TlsError::CorruptCertificate {
        path: path.to_owned(),
        reason,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| corrupt(e.to_string()))?;
    let validity = cert.validity();
    Ok(Validity {
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
    })
}

fn check_key_matches(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), TlsError> {
    match rustls::sign::CertifiedKey::from_der(chain, key.clone_key(), &provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        }),
        Err(other) => Err(TlsError::CorruptKey {
            path: key_path.to_owned(),
            reason: other.to_string(),
        }),
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, with
/// permission bits `mode` (on Unix).
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    #[cfg(not(unix))]
    let _ = mode;
    result.map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_store() -> (tempfile::TempDir, CertStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path().join("certs"));
        (dir, store)
    }

    fn expired() -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(10),
            not_after: now - Duration::days(1),
        }
    }

    fn node(id: &str) -> PeerIdentity {
        PeerIdentity::node(id).unwrap()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    #[cfg(unix)]
    fn private_keys_are_written_readable_by_the_owner_only() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        store.issue_node("eu-1").unwrap();
        store.issue_client("alice").unwrap();

        assert_eq!(mode(&store.ca_key_path()), 0o600);
        assert_eq!(mode(&store.key_path(&node("eu-1"))), 0o600);
        assert_eq!(
            mode(&store.key_path(&PeerIdentity::client("alice").unwrap())),
            0o600
        );
        assert_eq!(mode(&store.ca_cert_path()), 0o644);
        assert_eq!(mode(&store.cert_path(&node("eu-1"))), 0o644);
        assert_eq!(mode(store.dir()), 0o700);
    }

    #[test]
    fn issued_certificates_load_back_with_their_identity() {
        let (_tmp, store) = new_store();
        let ca = store.create_ca().unwrap();
        let issued = store.issue_node("eu-1").unwrap();
        store.issue_client("alice").unwrap();

        let loaded = store.load_node_identity("eu-1").unwrap();
        assert_eq!(loaded.peer(), &node("eu-1"));
        assert_eq!(loaded.cert_chain(), issued.cert_chain());
        assert_eq!(loaded.validity(), issued.validity());
        assert_eq!(
            store.load_client_identity("alice").unwrap().peer(),
            &PeerIdentity::client("alice").unwrap()
        );
        assert_eq!(store.load_ca_certificate().unwrap(), *ca.certificate());
        assert_eq!(store.load_ca().unwrap().certificate(), ca.certificate());
    }

    #[test]
    fn creating_a_ca_where_one_exists_is_refused_and_keeps_the_old_one() {
        let (_tmp, store) = new_store();
        let first = store.create_ca().unwrap();

        let err = store.create_ca().unwrap_err();

        assert!(matches!(err, TlsError::CaExists { ref path } if path == &store.ca_cert_path()));
        assert_eq!(store.load_ca_certificate().unwrap(), *first.certificate());
    }

    #[test]
    fn issuing_without_a_ca_names_the_missing_ca_file() {
        let (_tmp, store) = new_store();

        let err = store.issue_node("eu-1").unwrap_err();

        assert!(matches!(err, TlsError::Missing { ref path } if path == &store.ca_cert_path()));
    }

    #[test]
    fn missing_node_certificate_names_the_missing_file() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();

        let err = store.load_node_identity("eu-9").unwrap_err();

        assert!(
            matches!(err, TlsError::Missing { ref path } if path == &store.cert_path(&node("eu-9")))
        );
        assert!(err.to_string().contains("node-eu-9.cert.pem"), "{err}");
    }

    #[test]
    fn corrupt_certificate_pem_is_a_typed_error_naming_the_file() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        store.issue_node("eu-1").unwrap();
        let cert_path = store.cert_path(&node("eu-1"));
        fs::write(&cert_path, "this is not a certificate\n").unwrap();

        let err = store.load_node_identity("eu-1").unwrap_err();

        assert!(
            matches!(err, TlsError::CorruptPem { ref path, expected: "certificate", .. } if path == &cert_path),
            "{err:?}"
        );
        assert!(err.to_string().contains(&cert_path.display().to_string()));
    }

    #[test]
    fn certificate_pem_with_garbage_inside_is_a_typed_error_naming_the_file() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        let cert_path = store.ca_cert_path();
        fs::write(
            &cert_path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();

        let err = store.load_ca_certificate().unwrap_err();

        assert!(
            matches!(err, TlsError::CorruptCertificate { ref path, .. } if path == &cert_path),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_certificate_pem_is_a_typed_error_naming_the_file() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        store.issue_node("eu-1").unwrap();
        let cert_path = store.cert_path(&node("eu-1"));
        let pem = fs::read_to_string(&cert_path).unwrap();
        fs::write(&cert_path, &pem[..pem.len() / 2]).unwrap();

        let err = store.load_node_identity("eu-1").unwrap_err();

        assert!(
            matches!(err, TlsError::CorruptPem { ref path, .. } if path == &cert_path),
            "{err:?}"
        );
    }

    #[test]
    fn corrupt_private_key_is_a_typed_error_naming_the_file() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        store.issue_node("eu-1").unwrap();
        let key_path = store.key_path(&node("eu-1"));
        fs::write(&key_path, [0xff, 0xfe, 0x00]).unwrap();

        let err = store.load_node_identity("eu-1").unwrap_err();

        assert!(
            matches!(err, TlsError::CorruptPem { ref path, expected: "file", .. } if path == &key_path),
            "{err:?}"
        );
        fs::write(
            &key_path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = store.load_node_identity("eu-1").unwrap_err();
        assert!(
            matches!(err, TlsError::CorruptKey { ref path, .. } if path == &key_path),
            "{err:?}"
        );
    }

    #[test]
    fn key_of_another_certificate_is_a_key_mismatch() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        store.issue_node("eu-1").unwrap();
        store.issue_node("eu-2").unwrap();
        fs::copy(store.key_path(&node("eu-2")), store.key_path(&node("eu-1"))).unwrap();

        let err = store.load_node_identity("eu-1").unwrap_err();

        assert!(
            matches!(err, TlsError::KeyMismatch { ref cert_path, ref key_path }
                if cert_path == &store.cert_path(&node("eu-1")) && key_path == &store.key_path(&node("eu-1"))),
            "{err:?}"
        );
    }

    #[test]
    fn expired_certificate_on_disk_is_refused_with_its_expiry() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        let validity = expired();
        store.issue(&node("eu-1"), validity).unwrap();

        let err = store.load_node_identity("eu-1").unwrap_err();

        match err {
            TlsError::Expired { path, not_after } => {
                assert_eq!(path, store.cert_path(&node("eu-1")));
                // X.509 keeps whole seconds.
                assert_eq!(
                    not_after.unix_timestamp(),
                    validity.not_after.unix_timestamp()
                );
            }
            other => panic!("expected Expired, got {other:?}"),
        }
    }

    #[test]
    fn expired_ca_is_refused() {
        let (_tmp, store) = new_store();
        store.create_ca_with(expired()).unwrap();

        let err = store.load_ca_certificate().unwrap_err();

        assert!(
            matches!(err, TlsError::Expired { ref path, .. } if path == &store.ca_cert_path()),
            "{err:?}"
        );
    }

    #[test]
    fn certificate_issued_by_another_ca_is_refused_as_wrong_ca() {
        let (_tmp, store) = new_store();
        let (_tmp_other, other) = new_store();
        store.create_ca().unwrap();
        other.create_ca().unwrap();
        other.issue_node("eu-1").unwrap();
        fs::copy(
            other.cert_path(&node("eu-1")),
            store.cert_path(&node("eu-1")),
        )
        .unwrap();
        fs::copy(other.key_path(&node("eu-1")), store.key_path(&node("eu-1"))).unwrap();

        let err = store.load_node_identity("eu-1").unwrap_err();

        assert!(
            matches!(err, TlsError::WrongCa { ref path, ref ca_path }
                if path == &store.cert_path(&node("eu-1")) && ca_path == &store.ca_cert_path()),
            "{err:?}"
        );
    }

    #[test]
    fn certificate_of_another_node_is_refused_as_an_identity_mismatch() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        store.issue_node("eu-1").unwrap();
        fs::copy(
            store.cert_path(&node("eu-1")),
            store.cert_path(&node("eu-2")),
        )
        .unwrap();
        fs::copy(store.key_path(&node("eu-1")), store.key_path(&node("eu-2"))).unwrap();

        let err = store.load_node_identity("eu-2").unwrap_err();

        assert!(
            matches!(err, TlsError::IdentityMismatch { ref expected, ref found, .. }
                if expected == &node("eu-2") && found == "node eu-1"),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_node_id_is_refused_before_anything_is_written() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();

        let err = store.issue_node("../etc").unwrap_err();

        assert!(
            matches!(
                err,
                TlsError::InvalidName {
                    role: Role::Node,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 2);
    }

    #[test]
    fn ensure_cluster_creates_everything_then_reuses_it() {
        let (_tmp, store) = new_store();

        let first = store.ensure_cluster(&["eu-1", "eu-2"], &["cli"]).unwrap();
        let second = store.ensure_cluster(&["eu-1", "eu-2"], &["cli"]).unwrap();

        assert_eq!(first.ca, second.ca);
        assert_eq!(
            first
                .nodes
                .iter()
                .map(|n| n.peer().clone())
                .collect::<Vec<_>>(),
            vec![node("eu-1"), node("eu-2")]
        );
        for (a, b) in first.nodes.iter().zip(&second.nodes) {
            assert_eq!(a.cert_chain(), b.cert_chain());
        }
        assert_eq!(
            first.clients[0].cert_chain(),
            second.clients[0].cert_chain()
        );
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 2 + 2 * 3);
    }

    #[test]
    fn ensure_cluster_adds_a_new_node_and_keeps_the_others() {
        let (_tmp, store) = new_store();
        let first = store.ensure_cluster(&["eu-1"], &[]).unwrap();

        let second = store.ensure_cluster(&["eu-1", "eu-2"], &[]).unwrap();

        assert_eq!(first.nodes[0].cert_chain(), second.nodes[0].cert_chain());
        assert_eq!(second.nodes[1].peer(), &node("eu-2"));
    }

    #[test]
    fn ensure_cluster_reissues_an_expired_certificate() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        let stale = store.issue(&node("eu-1"), expired()).unwrap();

        let certs = store.ensure_cluster(&["eu-1"], &[]).unwrap();

        assert_ne!(certs.nodes[0].cert_chain(), stale.cert_chain());
        assert!(certs.nodes[0].validity().not_after > OffsetDateTime::now_utc());
        store.load_node_identity("eu-1").unwrap();
    }

    #[test]
    fn ensure_cluster_refuses_a_corrupt_file_instead_of_replacing_it() {
        let (_tmp, store) = new_store();
        store.ensure_cluster(&["eu-1"], &[]).unwrap();
        let cert_path = store.cert_path(&node("eu-1"));
        fs::write(&cert_path, "garbage").unwrap();

        let err = store.ensure_cluster(&["eu-1"], &[]).unwrap_err();

        assert!(
            matches!(err, TlsError::CorruptPem { ref path, .. } if path == &cert_path),
            "{err:?}"
        );
        assert_eq!(fs::read_to_string(&cert_path).unwrap(), "garbage");
    }

    #[test]
    fn ensure_cluster_with_only_half_a_ca_names_the_missing_file() {
        let (_tmp, store) = new_store();
        store.create_ca().unwrap();
        fs::remove_file(store.ca_key_path()).unwrap();

        let err = store.ensure_cluster(&["eu-1"], &[]).unwrap_err();

        assert!(
            matches!(err, TlsError::Missing { ref path } if path == &store.ca_key_path()),
            "{err:?}"
        );
    }
}
