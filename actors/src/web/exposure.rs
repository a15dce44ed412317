//! How the console is exposed: the listen address, TLS or not, and the HTTP→HTTPS redirect,
//! from the configuration and the backend. The device serves HTTPS on 443 with a redirect on
//! 80; the simulated target plain HTTP on loopback. Plain HTTP beyond loopback needs an
//! explicit `--insecure-http`.

use std::net::SocketAddr;

use crate::config::{TlsChoice, WebConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    pub listen: SocketAddr,
    pub tls: bool,
    pub redirect: Option<SocketAddr>,
}

impl Exposure {
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

pub fn plan(web: &WebConfig, listen: Option<SocketAddr>, device: bool) -> Result<Exposure, String> {
    let tls = match web.tls {
        TlsChoice::On => true,
        TlsChoice::Off => false,
        TlsChoice::Auto => device || web.tls_cert.is_some(),
    };
    let listen = listen.unwrap_or_else(|| match (device, tls) {
        (true, true) => SocketAddr::from(([0, 0, 0, 0], 443)),
        (true, false) => SocketAddr::from(([0, 0, 0, 0], 80)),
        (false, _) => SocketAddr::from(([127, 0, 0, 1], 8080)),
    });
    let redirect = match web.http_redirect {
        Some(r) => r,
        None if device && tls => Some(SocketAddr::from(([0, 0, 0, 0], 80))),
        None => None,
    };
    if redirect.is_some() && !tls {
        return Err("an HTTP redirect needs TLS on (it redirects to HTTPS)".into());
    }
    if !tls && !listen.ip().is_loopback() && !web.insecure_http {
        return Err(format!(
            "refusing plain HTTP on {listen}: passwords, the session cookie and the screen would \
             cross the network readable; turn TLS on (--tls on) or say --insecure-http"
        ));
    }
    Ok(Exposure {
        listen,
        tls,
        redirect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_device_serves_https_on_443_and_redirects_80() {
        let e = plan(&WebConfig::default(), None, true).unwrap();
        assert_eq!(
            e,
            Exposure {
                listen: addr("0.0.0.0:443"),
                tls: true,
                redirect: Some(addr("0.0.0.0:80"))
            }
        );
    }

    #[test]
    fn the_sim_serves_plain_http_on_loopback() {
        let e = plan(&WebConfig::default(), None, false).unwrap();
        assert_eq!(e.listen, addr("127.0.0.1:8080"));
        assert!(!e.tls);
        assert_eq!(e.redirect, None);
    }

    #[test]
    fn plain_http_beyond_loopback_needs_insecure_http() {
        let web = WebConfig::default();
        let e = plan(&web, Some(addr("0.0.0.0:8080")), false).unwrap_err();
        assert!(e.contains("--insecure-http"), "{e}");
        let insecure = WebConfig {
            insecure_http: true,
            ..WebConfig::default()
        };
        assert!(plan(&insecure, Some(addr("0.0.0.0:8080")), false).is_ok());
        let tls = WebConfig {
            tls: TlsChoice::On,
            ..WebConfig::default()
        };
        assert!(plan(&tls, Some(addr("0.0.0.0:8443")), false).unwrap().tls);
        let off_on_device = WebConfig {
            tls: TlsChoice::Off,
            ..WebConfig::default()
        };
        assert!(plan(&off_on_device, None, true).is_err());
    }
}
