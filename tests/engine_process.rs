//! The headless binary under resource pressure: running out of descriptors,
//! ten thousand clients, and a port that is already taken.

mod common;

use common::*;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Which of `clients` echo `probe`: those the server has accepted. Every
/// client is sent the probe once; replies are collected until `expected`
/// clients answered (plus a grace period that would reveal extra answers),
/// or for at most [`STEP`].
fn echoing_clients(clients: &mut [TcpStream], probe: &[u8], expected: usize) -> Vec<bool> {
    for c in clients.iter_mut() {
        c.write_all(probe).expect("probe write");
        c.set_nonblocking(true).unwrap();
    }
    let mut got = vec![0usize; clients.len()];
    let mut deadline = Instant::now() + STEP;
    let mut grace_started = false;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        let answered = got.iter().filter(|&&n| n == probe.len()).count();
        if answered >= expected && !grace_started {
            grace_started = true;
            deadline = Instant::now() + Duration::from_millis(200);
        }
        for (i, c) in clients.iter_mut().enumerate() {
            if got[i] >= probe.len() {
                continue;
            }
            match c.read(&mut buf[..probe.len() - got[i]]) {
                Ok(0) => panic!("client {i}: unexpected EOF"),
                Ok(n) => {
                    assert_eq!(&buf[..n], &probe[got[i]..got[i] + n], "client {i} echo");
                    got[i] += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client {i}: {e}"),
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    for c in clients.iter_mut() {
        c.set_nonblocking(false).unwrap();
    }
    got.iter().map(|&n| n == probe.len()).collect()
}

#[test]
fn out_of_descriptors_backs_off_without_spinning_and_recovers() {
    const CLIENTS: usize = 80;
    const LIMIT: u32 = 40;
    let mut server = Server::start(&[], Some(LIMIT));
    // Descriptors inherited from the environment may lie above the limit;
    // every new one must come from 0..LIMIT.
    let below_limit = |s: &Server| s.fds().iter().filter(|&&fd| fd < LIMIT).count();
    let baseline = server.fd_count();
    assert!(
        below_limit(&server) < LIMIT as usize,
        "baseline {baseline} descriptors"
    );

    // More clients than descriptors: the kernel completes every handshake,
    // the rest wait in the backlog.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| client(server.addr)).collect();
    let saturated = poll_until(STEP, || {
        (below_limit(&server) == LIMIT as usize).then_some(())
    });
    assert!(
        saturated.is_some(),
        "server never used all its {LIMIT} descriptors"
    );
    let held = server.fd_count() - baseline;
    let accepted = echoing_clients(&mut clients, b"probe", held);
    let n_accepted = accepted.iter().filter(|&&a| a).count();
    assert_eq!(
        n_accepted, held,
        "every descriptor beyond the baseline is an echoing client"
    );
    assert!(
        (20..CLIENTS).contains(&n_accepted),
        "{n_accepted} clients accepted under ulimit -n {LIMIT}"
    );

    // Saturated: it must idle, not retry accept in a tight loop.
    let cpu_before = server.cpu_ticks();
    let t = Instant::now();
    thread::sleep(Duration::from_millis(1500));
    let cpu = server.cpu_ticks() - cpu_before;
    let wall = t.elapsed();
    eprintln!(
        "{n_accepted} of {CLIENTS} clients accepted at {} descriptors; \
         {cpu} ticks of CPU in {wall:?} while saturated",
        server.fd_count()
    );
    assert!(server.is_running(), "server died when out of descriptors");
    assert!(
        cpu < 50,
        "server burned {cpu} ticks (1/100 s) of CPU in {wall:?} while saturated"
    );
    let lines = server.output_lines();
    assert!(
        lines.iter().any(|l| l.contains("ACCEPT PAUSED")),
        "the summary shows the pause: {lines:#?}"
    );

    // Free most descriptors: close every accepted client and enough waiting
    // ones that the rest fit.
    let waiting: Vec<usize> = (0..CLIENTS).filter(|&i| !accepted[i]).collect();
    let keep: Vec<usize> = waiting.iter().copied().take(n_accepted - 4).collect();
    let mut kept: Vec<TcpStream> = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        if keep.contains(&i) {
            kept.push(c);
        }
    }
    // The waiting clients' probes were buffered by the kernel; once
    // accepted, they are echoed.
    for (k, c) in kept.iter_mut().enumerate() {
        assert_eq!(
            read_n(c, 5, &format!("waiting client {k} after descriptors freed")),
            b"probe"
        );
        assert_echo(c, format!("now accepted {k}").as_bytes());
    }
    assert!(server.is_running());
    drop(kept);
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn ten_thousand_clients_then_mass_reset() {
    const CLIENTS: usize = 10_000;
    const BATCH: usize = 1000;
    // This process holds the clients, the server (which inherits the
    // limit) their connections: each needs CLIENTS descriptors and some.
    if let Err(why) = raise_fd_limit(CLIENTS as u64 + 256) {
        eprintln!("SKIPPED ten_thousand_clients_then_mass_reset: {why}");
        return;
    }
    let server = Server::start(&[], None);
    let baseline = server.fd_count();
    let started = Instant::now();

    let mut clients: Vec<TcpStream> = Vec::with_capacity(CLIENTS);
    while clients.len() < CLIENTS {
        for _ in 0..BATCH {
            // No timeouts needed: these clients never read.
            let s = TcpStream::connect_timeout(&server.addr, STEP).expect("client connects");
            clients.push(s);
        }
        // Keep the backlog short: wait until this batch is accepted.
        let want = baseline + clients.len();
        let reached = poll_until(STEP, || (server.fd_count() >= want).then_some(()));
        assert!(
            reached.is_some(),
            "server holds {} descriptors, expected {want}",
            server.fd_count()
        );
    }
    eprintln!("{CLIENTS} clients connected in {:?}", started.elapsed());
    assert_eq!(server.fd_count(), baseline + CLIENTS);

    // A sample of the held clients is served.
    for i in (0..CLIENTS).step_by(997) {
        let c = &mut clients[i];
        c.set_read_timeout(Some(STEP)).unwrap();
        assert_echo(c, format!("client {i} of {CLIENTS}").as_bytes());
    }

    // Everyone resets at once.
    let t = Instant::now();
    for c in &clients {
        socket2::SockRef::from(c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(clients);
    let back = poll_until(Duration::from_secs(5), || {
        (server.fd_count() == baseline).then_some(())
    });
    assert!(
        back.is_some(),
        "after the resets the server still holds {} descriptors (baseline {baseline})",
        server.fd_count()
    );
    eprintln!(
        "descriptors back to baseline {:?} after the resets",
        t.elapsed()
    );

    let mut c = client(server.addr);
    assert_echo(&mut c, b"life after ten thousand resets");
    drop(c);
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn headless_exits_nonzero_when_the_port_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) = run_headless_to_exit(&["--headless", "--listen", &addr]);
    assert!(!status.success(), "exit status {status}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    assert!(lines[0].contains("already in use"), "{stderr:?}");
    assert!(
        lines[0].contains(&addr),
        "the message names the address: {stderr:?}"
    );
    assert!(
        !stdout.contains("listening on"),
        "it never claims to listen: {stdout:?}"
    );
    // The port's owner is unaffected.
    let _c = TcpStream::connect(&addr).expect("the original listener still accepts");
    drop(taken);
}

#[test]
fn headless_serves_and_stops_on_sigterm() {
    let mut server = Server::start(&["--mode", "echo", "--queue-limit", "65536"], None);
    let mut c = client(server.addr);
    assert_echo(&mut c, b"hello headless");
    // A summary line appears each second and counts the client.
    let line = poll_until(Duration::from_secs(3), || {
        server
            .output_lines()
            .into_iter()
            .find(|l| l.starts_with("1 conns"))
    });
    assert!(
        line.is_some(),
        "no summary line with the client: {:#?}",
        server.output_lines()
    );
    assert!(server.is_running());
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // Its clients are closed as it stops.
    assert!(read_to_eof(&mut c, "client of a stopped server").is_empty());
}
