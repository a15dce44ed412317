//! How the harness authenticates: every daemon it starts gets a fresh data directory with a
//! user and an API token made through the real CLI, registered here under the daemon's
//! address, so that every request helper and `WsClient` can send the token by default.
//! `Auth::None` makes an unauthenticated request for the auth tests.
//!
//! With `NANOKVM_E2E_TLS=1` the daemons serve HTTPS with their generated certificate, and the
//! helpers speak TLS, trusting exactly that certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_rustls::rustls;

/// The user every provisioned daemon has.
pub const E2E_USER: &str = "e2e";
pub const E2E_PASSWORD: &str = "e2e password 1";
pub const E2E_TOKEN_NAME: &str = "e2e-tools";

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The token of the daemon at that address (none for a daemon the harness did not
    /// provision).
    Default,
    /// No credentials at all.
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Cookie: VALUE` (`nanokvm_session=...`).
    Cookie(String),
}

impl Auth {
    /// The header to send for this auth at `addr`, if any.
    pub fn header(&self, addr: SocketAddr) -> Option<(&'static str, String)> {
        match self {
            Auth::Default => for_addr(addr)
                .and_then(|c| c.token)
                .map(|t| ("Authorization", format!("Bearer {t}"))),
            Auth::None => None,
            Auth::Bearer(t) => Some(("Authorization", format!("Bearer {t}"))),
            Auth::Cookie(c) => Some(("Cookie", c.clone())),
        }
    }
}

/// What the harness knows about a daemon it started.
#[derive(Clone)]
pub struct Credentials {
    pub data_dir: PathBuf,
    pub user: Option<(String, String)>,
    pub token: Option<String>,
    /// Set when the daemon serves HTTPS: trusts its certificate only.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

static REGISTRY: Mutex<Vec<(SocketAddr, Credentials)>> = Mutex::new(Vec::new());

pub fn register(addr: SocketAddr, c: Credentials) {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|(a, _)| *a != addr);
    r.push((addr, c));
}

pub fn unregister(addr: SocketAddr) {
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(a, _)| *a != addr);
}

pub fn for_addr(addr: SocketAddr) -> Option<Credentials> {
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, c)| c.clone())
}

/// The TLS client config for `addr`, when its daemon serves HTTPS.
pub fn tls_for(addr: SocketAddr) -> Option<Arc<rustls::ClientConfig>> {
    for_addr(addr).and_then(|c| c.tls)
}

/// True when the suite runs over HTTPS (`NANOKVM_E2E_TLS=1`).
pub fn e2e_tls() -> bool {
    std::env::var("NANOKVM_E2E_TLS").is_ok_and(|v| v == "1")
}

/// A client config that trusts exactly the certificate in `cert_pem`.
pub fn trust_only(cert_pem: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem)
        .unwrap_or_else(|e| panic!("{}: {e}", cert_pem.display()))
    {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("add the daemon's certificate as a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The TLS server name for an address (the generated certificate names 127.0.0.1 and ::1).
pub fn server_name(addr: SocketAddr) -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::IpAddress(addr.ip().into())
}
