//! HTTPS: the certificate (a user-supplied one, or a self-signed one generated on first start
//! and kept in the data directory), the rustls acceptor (ring provider, TLS 1.3), and the
//! connection type that is either plain TCP or TLS over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::ServerConfig;
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use futures_util::future::Either;
use smol::net::TcpStream;

use super::write_deadline::WriteDeadline;
use crate::auth::store::{self, TLS_CERT_FILE, TLS_KEY_FILE};

#[derive(Debug)]
pub enum TlsError {
    Read(PathBuf, String),
    Generate(String),
    Store(store::StoreError),
    Config(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Read(p, e) => write!(f, "TLS: {}: {e}", p.display()),
            TlsError::Generate(e) => write!(f, "TLS: generating a certificate: {e}"),
            TlsError::Store(e) => write!(f, "TLS: {e}"),
            TlsError::Config(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Where the certificate came from, for the start-up log.
pub enum CertSource {
    Configured(PathBuf),
    Generated(PathBuf),
    Kept(PathBuf),
}

/// Names the generated certificate is valid for. Browsers will still ask the user to trust
/// it (it is self-signed); these make it at least match the usual ways of reaching the board.
fn generated_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "nanokvm.local".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_string());
            names.push(format!("{h}.local"));
        }
    }
    names
}

/// Writes a new self-signed certificate and its key (mode 0600) to the data directory.
fn generate(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let generated = rcgen::generate_simple_self_signed(generated_names())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    // The key first: a certificate without its key would be useless on the next start.
    store::write_atomic(key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(TlsError::Store)?;
    store::write_atomic(cert, generated.cert.pem().as_bytes()).map_err(TlsError::Store)
}

fn load(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Read(cert.into(), e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(cert.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Read(
            cert.into(),
            "no certificate in the file".into(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read(key.into(), e.to_string()))?;
    Ok((certs, key))
}

/// The acceptor for the configured certificate, or for the one in `data_dir` (generated now
/// when there is none yet).
pub fn acceptor(
    configured: Option<(&Path, &Path)>,
    data_dir: &Path,
) -> Result<(TlsAcceptor, CertSource), TlsError> {
    let (cert, key, source) = match configured {
        Some((c, k)) => (
            c.to_path_buf(),
            k.to_path_buf(),
            CertSource::Configured(c.into()),
        ),
        None => {
            store::ensure_dir(data_dir).map_err(TlsError::Store)?;
            let (c, k) = (data_dir.join(TLS_CERT_FILE), data_dir.join(TLS_KEY_FILE));
            if c.exists() && k.exists() {
                (c.clone(), k, CertSource::Kept(c))
            } else {
                generate(&c, &k)?;
                (c.clone(), k, CertSource::Generated(c))
            }
        }
    };
    let (chain, key) = load(&cert, &key)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("{}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), source))
}

/// A served connection: plain TCP (`Left`), or TLS over it (`Right`). Both keep the write
/// deadline.
pub type Conn = Either<WriteDeadline<TcpStream>, Box<TlsStream<WriteDeadline<TcpStream>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("nanokvmd-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (_, first) = acceptor(None, &dir).unwrap();
        assert!(matches!(first, CertSource::Generated(_)));
        let pem = std::fs::read(dir.join(TLS_CERT_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(TLS_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, second) = acceptor(None, &dir).unwrap();
        assert!(matches!(second, CertSource::Kept(_)));
        assert_eq!(std::fs::read(dir.join(TLS_CERT_FILE)).unwrap(), pem);
        // A configured pair is used as given; a broken one is refused with its path.
        let (c, k) = (dir.join(TLS_CERT_FILE), dir.join(TLS_KEY_FILE));
        assert!(matches!(
            acceptor(Some((&c, &k)), &dir).unwrap().1,
            CertSource::Configured(_)
        ));
        let e = acceptor(Some((&k, &k)), &dir).err().unwrap().to_string();
        assert!(e.contains(TLS_KEY_FILE), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
