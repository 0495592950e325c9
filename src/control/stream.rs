//! A control connection's byte stream: plain TCP, or TLS over it
//! (`--tls-cert`/`--tls-key`), both non-blocking and both `Read + Write`,
//! so HTTP and tungstenite run over either unchanged.
//!
//! TLS uses `rustls::StreamOwned`: its reads and writes drive the
//! handshake and the record layer and report `WouldBlock` from the socket,
//! so the io loop treats both kinds alike.

use super::TlsFiles;
use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// A freshly accepted connection, wrapped in TLS if configured.
    pub fn accept(tcp: TcpStream, tls: Option<&Arc<ServerConfig>>) -> io::Result<Stream> {
        Ok(match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
                Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        })
    }

    /// The socket, to (de)register it.
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &mut s.sock,
        }
    }

    /// End our side after a response: TLS says `close_notify` first (best
    /// effort: the response itself was flushed already).
    pub fn shutdown_write(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            while s.conn.wants_write() {
                if s.conn.write_tls(&mut s.sock).is_err() {
                    break;
                }
            }
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The TLS server setup from PEM files, with errors that name the file.
pub fn load_tls(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let cert_err = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read the TLS certificate {}: {e} (expected PEM: -----BEGIN CERTIFICATE-----)",
            files.cert.display()
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_err(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(&e))?;
    if certs.is_empty() {
        return Err(cert_err(&"no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read the TLS key {}: {e} (expected a PEM private key: -----BEGIN PRIVATE KEY-----)",
            files.key.display()
        )
    })?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "cannot use the TLS key {} with the certificate {}: {e}",
                    files.key.display(),
                    files.cert.display()
                )
            })?;
    Ok(Arc::new(config))
}
