//! What an accepted TCP connection becomes before HTTP is spoken on it: itself (plain HTTP) or
//! a TLS session (rustls with the ring provider, from PEM files).

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Turns an accepted connection into the byte stream HTTP runs over. The handshake runs in the
/// connection's own task, bounded by the header timeout, so a slow client never holds up
/// `accept`.
pub trait Acceptor: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn handshake(&self, stream: TcpStream)
        -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Stream = TcpStream;
    async fn handshake(&self, stream: TcpStream) -> io::Result<TcpStream> {
        Ok(stream)
    }
}

/// HTTPS: a TLS session over the TCP stream.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Acceptor for Tls {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;
    async fn handshake(&self, stream: TcpStream) -> io::Result<Self::Stream> {
        self.acceptor.accept(stream).await
    }
}

impl Tls {
    /// TLS with the certificate chain in `cert` and its private key in `key` (both PEM), for
    /// HTTP/1.1 only.
    pub fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Tls> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let unreadable = |what: &str, path: &Path, error: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot read the TLS {what} {}: {error}", path.display()),
            )
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| unreadable("certificate", cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable("certificate", cert, &e))?;
        if chain.is_empty() {
            return Err(unreadable(
                "certificate",
                cert,
                &"it holds no PEM certificate",
            ));
        }
        let private_key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable("key", key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the TLS key {} does not go with the certificate {}: {e}",
                        key.display(),
                        cert.display()
                    ),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}
