//! Lints on real clients doing the wrong thing, as `muxscope --headless`
//! reports them (`lint: #1 client-not-reading: …`), each within its time;
//! and a well-behaved client that fires none.

mod control_support;

use control_support::HeadlessChild;
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a lint may take beyond its condition's time, on a loaded
/// 2-core machine.
const SLACK: Duration = Duration::from_secs(4);

fn lint_line(h: &HeadlessChild, name: &str, within: Duration) -> String {
    let prefix = "lint: ";
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.line_within(prefix, left) {
            Ok((line, _)) if line.contains(&format!(" {name}: ")) => return line,
            Ok(_) => continue,
            Err(seen) => panic!("no {name} lint within {within:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn a_client_that_never_reads_fires_client_not_reading() {
    let h = HeadlessChild::spawn(&["--queue-limit", "65536"]);
    let addr = h.echo_addr();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    // Send and never read: the echo fills our receive buffer, then the
    // server's queue reaches its bound.
    let chunk = vec![b'x'; 64 * 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    let line = lint_line(&h, "client-not-reading", Duration::from_secs(3) + SLACK);
    assert!(
        line.starts_with("lint: #1 client-not-reading: has not read for"),
        "{line}"
    );
}

#[test]
fn a_client_closing_with_linger_zero_fires_abortive_close() {
    let h = HeadlessChild::spawn(&[]);
    let addr = h.echo_addr();
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.connect(&addr.into()).unwrap();
    s.send(b"bye").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    let line = lint_line(&h, "abortive-close", SLACK);
    assert!(
        line.starts_with("lint: #1 abortive-close: reset the connection (RST)"),
        "{line}"
    );
}

#[test]
fn fifty_reconnects_a_second_fire_reconnect_storm() {
    let h = HeadlessChild::spawn(&[]);
    let addr = h.echo_addr();
    let storm = std::thread::spawn(move || {
        let started = Instant::now();
        let mut n = 0u32;
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(c) = TcpStream::connect(addr) {
                drop(c);
            }
            n += 1;
            // 50 a second.
            let due = started + Duration::from_millis(20) * n;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    });
    let line = lint_line(&h, "reconnect-storm", Duration::from_secs(2) + SLACK);
    assert!(
        line.starts_with("lint: 127.0.0.1 reconnect-storm: connects"),
        "{line}"
    );
    storm.join().unwrap();
}

/// A message in three writes, Nagle on, to a server that answers only
/// whole lines: each write after the first waits for the server's delayed
/// ACK.
#[test]
fn a_message_in_three_writes_with_nagle_on_fires_nagle_delay() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/line-protocol.muxscope-scenario.ron"
    );
    let h = HeadlessChild::spawn(&["--scenario", scenario]);
    let addr = h.echo_addr();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut greeting = [0u8; 20];
    c.read_exact(&mut greeting).unwrap();
    let writer = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            for piece in [&b"PI"[..], b"N", b"G\n"] {
                if c.write_all(piece).is_err() {
                    return;
                }
            }
            let mut pong = [0u8; 7];
            if c.read_exact(&mut pong).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let line = lint_line(&h, "nagle-delay", Duration::from_secs(6));
    assert!(
        line.starts_with("lint: #1 nagle-delay: sends messages in pieces"),
        "{line}"
    );
    writer.join().unwrap();
}

/// A well-behaved echo client (whole requests, reads every reply, closes
/// cleanly) for 60 s fires no lint at all.
#[test]
fn a_well_behaved_client_for_a_minute_fires_nothing() {
    let h = HeadlessChild::spawn(&[]);
    let addr: SocketAddr = h.echo_addr();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        let msg = format!("request {i}\n");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    drop(c);
    if let Ok((line, _)) = h.line_within("lint: ", Duration::from_secs(2)) {
        panic!("a well-behaved client fired {line}");
    }
    assert!(h.stop());
}
