//! `meridian certs create-ca | node ID | client NAME`: the cluster CA and
//! the certificates of nodes and clients, as PEM files in one directory
//! (see [`CertStore`] for the layout). `cluster up` does all of this by
//! itself; these commands are for clusters run by hand.

use super::args::CertsAction;
use crate::tls::{CertStore, PeerIdentity, TlsError};
use std::path::PathBuf;

/// The files one `certs` command wrote: certificate first, then key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// What was created, in words (`cluster CA`, `node eu-1`).
    pub what: String,
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

/// Runs `action` on the certificate directory of `store`. Creating a CA
/// where one exists fails with [`TlsError::CaExists`]; issuing needs the
/// CA and replaces an earlier certificate of the same node or client.
///
/// ```
/// use meridian::cli::args::CertsAction;
/// use meridian::cli::certs::execute;
/// use meridian::tls::CertStore;
///
/// let dir = std::env::temp_dir().join(format!("meridian-doc-certs-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let store = CertStore::new(&dir);
/// execute(&store, &CertsAction::CreateCa).unwrap();
/// let written = execute(&store, &CertsAction::Node { id: "eu-1".into() }).unwrap();
/// assert!(written.cert.ends_with("node-eu-1.cert.pem"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn execute(store: &CertStore, action: &CertsAction) -> Result<Written, TlsError> {
    Ok(match action {
        CertsAction::CreateCa => {
            store.create_ca()?;
            Written {
                what: "cluster CA".to_owned(),
                cert: store.ca_cert_path(),
                key: store.ca_key_path(),
            }
        }
        CertsAction::Node { id } => {
            store.issue_node(id)?;
            let peer = PeerIdentity::node(id)?;
            Written {
                what: format!("node {id}"),
                cert: store.cert_path(&peer),
                key: store.key_path(&peer),
            }
        }
        CertsAction::Client { name } => {
            store.issue_client(name)?;
            let peer = PeerIdentity::client(name)?;
            Written {
                what: format!("client {name}"),
                cert: store.cert_path(&peer),
                key: store.key_path(&peer),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_ca_then_issue_writes_loadable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let ca = execute(&store, &CertsAction::CreateCa).unwrap();
        assert_eq!(ca.cert, dir.path().join("ca.cert.pem"));
        assert!(ca.key.exists());

        let node = execute(&store, &CertsAction::Node { id: "eu-1".into() }).unwrap();
        assert_eq!(node.cert, dir.path().join("node-eu-1.cert.pem"));
        assert_eq!(node.key, dir.path().join("node-eu-1.key.pem"));
        store.load_node_identity("eu-1").unwrap();

        let client = execute(&store, &CertsAction::Client { name: "cli".into() }).unwrap();
        assert_eq!(client.what, "client cli");
        assert_eq!(client.cert, dir.path().join("client-cli.cert.pem"));
        store.load_client_identity("cli").unwrap();
    }

    #[test]
    fn a_second_ca_is_refused_and_issuing_needs_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let e = execute(&store, &CertsAction::Node { id: "eu-1".into() }).unwrap_err();
        assert!(matches!(e, TlsError::Missing { .. }), "{e}");
        execute(&store, &CertsAction::CreateCa).unwrap();
        let e = execute(&store, &CertsAction::CreateCa).unwrap_err();
        assert!(matches!(e, TlsError::CaExists { .. }), "{e}");
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        execute(&store, &CertsAction::CreateCa).unwrap();
        assert!(execute(
            &store,
            &CertsAction::Client {
                name: "no/slash".into()
            }
        )
        .is_err());
    }
}
