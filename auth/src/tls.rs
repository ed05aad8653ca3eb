//! TLS for the HTTP and Postgres ports: a certificate chain and its key
//! from PEM files, read again when either changes (a renewed certificate
//! is used by the next handshake, without a restart).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::KeyError;
use crate::watch::Watched;

/// Where the certificate chain and its private key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, KeyError> {
    let bad = |path: &PathBuf, reason: String| KeyError::Corrupt {
        path: path.clone(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "no certificate in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, e.to_string()))?;
    let certified = CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        bad(
            &files.key,
            format!(
                "the key does not go with the certificate {}: {e}",
                files.cert.display()
            ),
        )
    })?;
    Ok(Arc::new(certified))
}

struct Resolver(Watched<Arc<CertifiedKey>>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Resolver").field(&self.0).finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.current()))
    }
}

/// A server configuration over `files` (an error when they cannot be read
/// or do not match), offering `alpn` protocols.
pub fn server_config(
    files: TlsFiles,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, KeyError> {
    let provider = provider();
    let p = Arc::clone(&provider);
    let f = files.clone();
    let watched = Watched::open_all(vec![files.cert.clone(), files.key.clone()], move || {
        load(&f, &p)
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KeyError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(watched)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn certificates_load_and_mismatches_are_refused() {
        let ok = TlsFiles {
            cert: fixture("server.pem"),
            key: fixture("server.key"),
        };
        assert!(server_config(ok, &[b"http/1.1"]).is_ok());
        let mismatch = TlsFiles {
            cert: fixture("server.pem"),
            key: fixture("server2.key"),
        };
        let err = server_config(mismatch, &[]).unwrap_err();
        assert!(err.to_string().contains("does not go with"), "{err}");
        let missing = TlsFiles {
            cert: fixture("nope.pem"),
            key: fixture("server.key"),
        };
        assert!(server_config(missing, &[]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let junk = TlsFiles {
            cert: empty,
            key: fixture("server.key"),
        };
        assert!(server_config(junk, &[]).is_err());
    }
}
