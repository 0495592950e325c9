//! The control endpoint over TLS (`--tls-cert`/`--tls-key`): the page and
//! the WebSocket are served over https/wss with a certificate made here,
//! checked by a real rustls client; plain text gets nothing; and unusable
//! certificate or key files are refused with a message that names them.

mod control_support;

use control_support::*;
use muxscope::control::wire::decode_batch;
use muxscope::control::{ControlOptions, ControlServer, TlsFiles};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

struct Cert {
    der: CertificateDer<'static>,
    files: TlsFiles,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM files.
fn make_cert(dir: &TempDir) -> Cert {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Cert {
        der: made.cert.der().clone(),
        files: TlsFiles { cert, key },
    }
}

fn tls_client(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
        .unwrap();
    let tcp = client(addr);
    StreamOwned::new(conn, tcp)
}

#[test]
fn serves_the_page_and_the_websocket_over_tls() {
    let certs = TempDir::new("tls-certs");
    let cert = make_cert(&certs);
    let files = cert.files.clone();
    let s = Setup::start_with(None, move |o| o.tls = Some(files));
    let a = s.control_addr;

    // https GET of the page.
    let mut tls = tls_client(a, &cert.der);
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", a.port()).as_bytes())
        .unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out)
        .expect("a clean TLS close after the response");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(INDEX), "{text}");

    // wss: the viewer sees a client's row.
    let mut c = client(s.echo_addr);
    assert_echo(&mut c, b"over tls");
    let peer = c.local_addr().unwrap();
    let stream = tls_client(a, &cert.der);
    stream
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut ws, resp) =
        tungstenite::client::client(format!("wss://localhost:{}/ws", a.port()), stream)
            .expect("wss handshake");
    assert_eq!(resp.status(), 101);
    let deadline = Instant::now() + STEP;
    'seen: loop {
        assert!(Instant::now() < deadline, "no row for the client over wss");
        match ws.read() {
            Ok(Message::Binary(f)) => {
                if decode_batch(&f)
                    .unwrap()
                    .counters
                    .iter()
                    .any(|c| c.peer == peer && c.rx_bytes == 8)
                {
                    break 'seen;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("wss viewer: {e}"),
        }
    }

    // Plain HTTP on the TLS port is not answered in clear.
    let mut plain = client(a);
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains(INDEX),
        "the page went out in clear"
    );
    // And the plain-text attempt did not disturb the wss viewer.
    assert!(ws.send(Message::Ping(vec![1])).is_ok());
}

fn start_err(tls: TlsFiles) -> String {
    let mut opts = ControlOptions::new("127.0.0.1:0");
    opts.tls = Some(tls);
    let (_tx, rx) = crossbeam_channel::bounded(1);
    match ControlServer::start(&opts, rx, Box::new(|_| Ok(()))) {
        Ok(_) => panic!("started with unusable TLS files"),
        Err(e) => e,
    }
}

#[test]
fn unusable_certificate_or_key_files_are_named_in_the_error() {
    let dir = TempDir::new("tls-bad");
    let good = make_cert(&dir).files;
    let missing = dir.path().join("nope.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").unwrap();

    let e = start_err(TlsFiles {
        cert: missing.clone(),
        key: good.key.clone(),
    });
    assert!(e.contains("cannot read the TLS certificate"), "{e}");
    assert!(e.contains("nope.pem"), "{e}");

    let e = start_err(TlsFiles {
        cert: good.cert.clone(),
        key: garbage.clone(),
    });
    assert!(e.contains("cannot read the TLS key"), "{e}");
    assert!(e.contains("garbage.pem"), "{e}");

    let e = start_err(TlsFiles {
        cert: garbage,
        key: good.key.clone(),
    });
    assert!(e.contains("TLS certificate"), "{e}");

    // A key that is not the certificate's.
    let other = TempDir::new("tls-other");
    let e = start_err(TlsFiles {
        cert: good.cert,
        key: make_cert(&other).files.key,
    });
    assert!(e.contains("key") && e.contains("certificate"), "{e}");
    let _: PathBuf = missing;
}
