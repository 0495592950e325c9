//! The control endpoint over real sockets: static files (and nothing
//! outside the web root), WebSocket viewers that see the engine and steer
//! it, and hostile input that closes only the offender.

mod control_support;

use control_support::*;
use muxscope::control::wire::MAX_VIEWER_MESSAGE;
use muxscope::protocol::{CloseReason, Command, ConnState, KickMode, Targets};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::Message;

#[test]
fn serves_the_viewer_with_the_right_content_types() {
    let s = Setup::start(None);
    let a = s.control_addr;
    let (status, head, body) = get(a, "/");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert_eq!(body, INDEX.as_bytes());
    let (status, head, _) = get(a, "/muxscope_bg.wasm");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/wasm"), "{head}");
    let (status, head, _) = get(a, "/muxscope.js?v=1");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    assert_eq!(get(a, "/sub/").0, 200, "a directory serves its index.html");
    assert_eq!(get(a, "/missing.js").0, 404);

    let (status, head, body) = http_raw(a, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains(&format!("Content-Length: {}", INDEX.len())));
    assert!(body.is_empty());
    let (status, ..) = http_raw(
        a,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
}

#[test]
fn never_serves_a_file_outside_the_web_root() {
    let s = Setup::start(None);
    let a = s.control_addr;
    let www = s.dir.path().join("www");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(s.dir.path().join("secret.txt"), www.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(s.dir.path(), www.join("up")).unwrap();
    }
    for target in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/%00/etc/passwd",
        "/link.txt",
        "/up/secret.txt",
        "/up/Cargo.toml",
        "http://127.0.0.1/../secret.txt",
        "../secret.txt",
        "*",
    ] {
        let (status, text, body) = get(a, target);
        assert!(
            [400, 403, 404].contains(&status),
            "{target}: status {status}: {text}"
        );
        assert!(
            !String::from_utf8_lossy(&body).contains(SECRET),
            "{target} leaked a file"
        );
    }
    // Hidden files in the root are not served either.
    std::fs::write(www.join(".env"), SECRET).unwrap();
    assert_eq!(get(a, "/.env").0, 403);
}

#[test]
fn bad_http_is_answered_and_closed() {
    let s = Setup::start(None);
    let a = s.control_addr;
    let (status, ..) = http_raw(a, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert_eq!(status, 400);
    let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    let (status, ..) = http_raw(a, &huge);
    assert_eq!(status, 431);
    let (status, ..) = get(a, "/ws");
    assert_eq!(status, 400, "a plain GET of /ws is not an upgrade");
}

/// The main flow: a TCP client is served, a viewer attaches afterwards and
/// still sees its row, kicks it, and the client's socket is closed.
#[test]
fn viewer_sees_a_client_and_kicks_it() {
    let s = Setup::start(None);
    let mut c = client(s.echo_addr);
    assert_echo(&mut c, b"hello, muxscope\n");
    let peer = c.local_addr().unwrap();
    // Let the engine publish and go idle, so only the snapshot can tell a
    // late viewer about this client.
    std::thread::sleep(Duration::from_millis(100));

    let mut v = Viewer::attach(&s.ws_url(""));
    let row = v.wait_for("the client's row", |v| v.counters.get(&peer).cloned());
    assert_eq!(row.rx_bytes, 16);
    assert_eq!(row.state, ConnState::Open);
    assert!(v.wait_for("stats", |v| (v.batches > 0).then_some(true)));

    // Counters keep flowing while the client talks.
    assert_echo(&mut c, b"more");
    v.wait_for("updated counters", |v| {
        (v.counters.get(&peer)?.rx_bytes == 20).then_some(())
    });

    v.send(&Command::Kick {
        targets: Targets::one(row.id),
        mode: KickMode::Reset,
    });
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the kick to close the client, got {other:?}"),
    }
    let state = v.wait_for("the closed row", |v| {
        let c = v.counters.get(&peer)?;
        matches!(c.state, ConnState::Closed(_)).then(|| c.state.clone())
    });
    assert_eq!(
        state,
        ConnState::Closed(CloseReason::Kicked(KickMode::Reset))
    );
}

#[test]
fn several_viewers_see_the_same_engine() {
    let s = Setup::start(None);
    let mut viewers: Vec<Viewer> = (0..3).map(|_| Viewer::attach(&s.ws_url(""))).collect();
    let mut c = client(s.echo_addr);
    assert_echo(&mut c, b"x");
    let peer = c.local_addr().unwrap();
    for v in &mut viewers {
        v.wait_for("the client's row", |v| v.counters.get(&peer).cloned());
    }
    let deadline = Instant::now() + STEP;
    while s.server().viewers() != 3 {
        assert!(Instant::now() < deadline, "viewer count");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(viewers);
    while s.server().viewers() != 0 {
        assert!(Instant::now() < deadline, "viewers are forgotten");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn token_is_required_when_set() {
    let s = Setup::start(Some("s3cret"));
    for query in ["", "?token=", "?token=wrong", "?token=s3cre", "?tok=s3cret"] {
        match connect_ws(&s.ws_url(query)) {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401, "{query}"),
            other => panic!("{query}: expected 401, got {:?}", other.map(|_| ())),
        }
    }
    let mut v = Viewer::attach(&s.ws_url("?token=s3cret"));
    v.wait_for("a batch", |v| (v.batches > 0).then_some(()));
    // The page itself is public: it holds no data.
    assert_eq!(get(s.control_addr, "/").0, 200);
}

#[test]
fn cross_site_pages_cannot_attach_without_a_token() {
    let s = Setup::start(None);
    let a = s.control_addr;
    let upgrade = |host: &str, origin: &str| {
        http_raw(
            a,
            format!(
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .0
    };
    assert_eq!(upgrade(&a.to_string(), "https://evil.example"), 403);
    assert_eq!(
        upgrade(
            &format!("evil.example:{}", a.port()),
            &format!("http://evil.example:{}", a.port())
        ),
        403
    );
    // The page the endpoint served itself may (checked without reading on).
    let mut s2 = client(a);
    s2.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {a}\r\nOrigin: http://{a}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = [0u8; 12];
    s2.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
}

/// Every kind of bad viewer is closed on its own, nothing reaches the
/// engine, and the engine, its clients and a well-behaved viewer carry on.
#[test]
fn hostile_viewers_are_closed_and_nothing_else_is_disturbed() {
    let s = Setup::start(None);
    let url = s.ws_url("");
    let mut good = Viewer::attach(&url);
    let mut c = client(s.echo_addr);
    assert_echo(&mut c, b"before");
    let peer = c.local_addr().unwrap();
    good.wait_for("the client's row", |v| v.counters.get(&peer).cloned());

    // Garbage after the handshake: not WebSocket frames at all.
    let mut ws = connect_ws(&url).unwrap();
    raw(&mut ws).write_all(&[0xff; 64]).unwrap();
    expect_closed(&mut ws, "garbage");

    // A frame a client must never send: unmasked.
    let mut ws = connect_ws(&url).unwrap();
    raw(&mut ws).write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    expect_closed(&mut ws, "unmasked frame");

    // An oversized frame: the header alone announces 2 MiB.
    let mut ws = connect_ws(&url).unwrap();
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(2u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw(&mut ws).write_all(&header).unwrap();
    let code = expect_closed(&mut ws, "oversized frame header");
    assert!(matches!(code, None | Some(1009)), "{code:?}");

    // An oversized message, really sent.
    let mut ws = connect_ws(&url).unwrap();
    let big = "K".repeat(MAX_VIEWER_MESSAGE + 1);
    let _ = ws.send(Message::Text(big));
    expect_closed(&mut ws, "oversized message");

    // Text that is not a command; deep nesting; a binary frame; bad UTF-8.
    for (what, msg) in [
        ("not a command", Message::Text("hello".into())),
        (
            "deep nesting",
            Message::Text(format!("Kick(targets:{}", "[".repeat(100_000))),
        ),
        (
            "kick with the wrong shape",
            Message::Text("Kick(targets: Everyone, mode: Reset)".into()),
        ),
        ("binary", Message::Binary(vec![1, 0, 0, 0])),
    ] {
        let mut ws = connect_ws(&url).unwrap();
        ws.send(msg).unwrap();
        let code = expect_closed(&mut ws, what);
        assert!(
            code.is_none_or(|c| c == 1007 || c == 1003),
            "{what}: {code:?}"
        );
    }
    let mut ws = connect_ws(&url).unwrap();
    // A masked text frame holding invalid UTF-8.
    raw(&mut ws)
        .write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28])
        .unwrap();
    expect_closed(&mut ws, "bad UTF-8");

    // The client was not kicked and is still echoed; the good viewer is
    // still attached and sees it; new clients are served.
    assert_echo(&mut c, b"after");
    let mut c2 = client(s.echo_addr);
    assert_echo(&mut c2, b"new client");
    good.wait_for("the client's counters after the attacks", |v| {
        let row = v.counters.get(&peer)?;
        (row.rx_bytes == 11 && row.state == ConnState::Open).then_some(())
    });
    let deadline = Instant::now() + STEP;
    while s.server().viewers() != 1 {
        assert!(Instant::now() < deadline, "only the good viewer is left");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn raw(ws: &mut Ws) -> &mut TcpStream {
    match ws.get_mut() {
        tungstenite::stream::MaybeTlsStream::Plain(s) => s,
        _ => unreachable!("plain ws://"),
    }
}

#[test]
fn too_many_viewers_are_turned_away() {
    let s = Setup::start_with(None, |o| o.max_viewers = 2);
    let _a = Viewer::attach(&s.ws_url(""));
    let _b = Viewer::attach(&s.ws_url(""));
    match connect_ws(&s.ws_url("")) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
}

/// No other site may frame the viewer (clickjacking): every response says
/// so, and the page's own inline script is allowed by its hash only.
#[test]
fn every_response_forbids_framing_and_foreign_scripts() {
    let s = Setup::start(None);
    let a = s.control_addr;
    let www = s.dir.path().join("www");
    std::fs::write(
        www.join("inline.html"),
        "<!doctype html><script>console.log(\"hi\")</script>\
         <script src=\"/muxscope.js\"></script>",
    )
    .unwrap();
    let responses = [
        get(a, "/"),
        get(a, "/muxscope_bg.wasm"),
        get(a, "/missing.js"),
        get(a, "/../secret.txt"),
        get(a, "/ws"),
        get(a, "/inline.html"),
        http_raw(a, b"\x16\x03\x01garbage\r\n\r\n"),
    ];
    for (status, head, _) in &responses {
        let csp = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
            .unwrap_or_else(|| panic!("{status}: no CSP in {head}"));
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{csp}"
        );
        assert!(!csp.contains("'unsafe-inline'") || !csp.contains("script-src 'unsafe"));
        assert!(head.contains("\r\nX-Frame-Options: DENY\r\n"), "{head}");
    }
    let (_, inline, _) = &responses[5];
    assert!(
        inline.contains("'sha256-TMFma7PHrBUjZEUKY/MwBLuX3/HrQe2+A1FmjMS7ppA='"),
        "the inline script's hash is allowed: {inline}"
    );
}

/// A request head trickled in byte by byte still has to be complete within
/// the head deadline counted from accept.
#[test]
fn a_trickled_head_is_cut_off_counting_from_accept() {
    let s = Setup::start_with(None, |o| o.head_timeout = Duration::from_millis(800));
    let mut c = client(s.control_addr);
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for b in head.iter().cycle().take(200) {
        if c.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut probe = [0u8; 1];
        c.set_nonblocking(true).unwrap();
        let r = c.read(&mut probe);
        c.set_nonblocking(false).unwrap();
        match r {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let after = closed_after.expect("the trickling client was cut off");
    assert!(
        after < Duration::from_secs(4),
        "cut off after {after:?}, deadline 800 ms"
    );
}

/// A viewer that stops reading (so never answers a ping) loses its slot
/// within the deadline; one that reads stays.
#[test]
fn a_viewer_that_never_answers_pings_is_dropped() {
    let s = Setup::start_with(None, |o| {
        o.ping_interval = Duration::from_millis(100);
        o.viewer_timeout = Duration::from_millis(1500);
    });
    let mut alive = Viewer::attach(&s.ws_url(""));
    let _dead = connect_ws(&s.ws_url("")).unwrap();
    let deadline = Instant::now() + STEP;
    while s.server().viewers() != 2 {
        assert!(Instant::now() < deadline);
        let _ = alive.read_once();
    }
    let attached = Instant::now();
    while s.server().viewers() != 1 {
        assert!(
            attached.elapsed() < Duration::from_secs(6),
            "the dead viewer still holds its slot"
        );
        let _ = alive.read_once();
    }
    // The one that reads answers pings and stays past several deadlines.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        alive
            .read_once()
            .expect("the reading viewer stays attached");
    }
    assert_eq!(s.server().viewers(), 1);
}

/// A big file arrives intact, also to a reader that takes its time.
#[test]
fn a_big_file_is_served_intact() {
    let s = Setup::start(None);
    let www = s.dir.path().join("www");
    let body: Vec<u8> = (0..6_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(www.join("big.wasm"), &body).unwrap();
    let mut c = client(s.control_addr);
    c.write_all(b"GET /big.wasm HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..start]);
    assert!(head.contains("Content-Length: 6000000"), "{head}");
    assert!(out[start..] == body[..], "body differs");
}
