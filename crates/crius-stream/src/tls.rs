//! TLS for a streaming server on a non-loopback address: rustls (ring) with the PEM certificate
//! chain and key the configuration names.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::error::ServerError;
use crate::server::TlsFiles;

pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    let read_err = |path: &std::path::Path, e: rustls_pki_types::pem::Error| ServerError::TlsFile {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| read_err(&files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(&files.cert, e))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!("{} holds no certificate", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_err(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
