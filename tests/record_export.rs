//! Exports of a recording a real engine made with real clients: the pcapng
//! read back by tshark (where installed), the JSON parsed, the raw files
//! compared, and the command line run as a user would.

mod temp_dir;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use muxscope::engine::{EngineConfig, EngineHandle};
use muxscope::protocol::{
    Batch, CloseReason, Command, ConnId, Direction, EventKind, KickMode, Targets,
};
use muxscope::record::Record;
use muxscope::record::export::{self, Format};
use muxscope::record::reader::Reader;
use muxscope::record::writer::{AtCap, RecordingConfig};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

/// Bytes per (connection, client-to-server?), as the file has them.
type Bytes = BTreeMap<(u64, bool), Vec<u8>>;

/// What the recorded session was, as the test made it.
struct Session {
    _dir: temp_dir::TempDir,
    dir: std::path::PathBuf,
    file: std::path::PathBuf,
    /// Client addresses by connection id.
    peers: BTreeMap<u64, SocketAddr>,
    bytes: Bytes,
}

fn big_message() -> Vec<u8> {
    (0..100 * 1024u32).map(|i| (i * 31 % 256) as u8).collect()
}

const BINARY: &[u8] = b"\x00\x01\x02\xff\xfe\r\n\x80binary\x00";
const INJECTED: &[u8] = b"injected by the test\n";

fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Wait (bounded) until the engine reports these connections closed.
fn wait_closed(engine: &EngineHandle, ids: &[u64]) -> BTreeMap<u64, CloseReason> {
    let mut closed = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed.len() < ids.len() && Instant::now() < deadline {
        if let Ok(Batch { events, .. }) = engine.batches().recv_timeout(Duration::from_millis(50)) {
            for e in events {
                if let (Some(c), EventKind::Closed { reason }) = (e.conn, e.kind)
                    && ids.contains(&c.0)
                {
                    closed.insert(c.0, reason);
                }
            }
        }
    }
    assert_eq!(closed.len(), ids.len(), "closed in time: {closed:?}");
    closed
}

/// Three clients: #1 sends text and binary bytes and closes with FIN, #2
/// sends 100 KiB and is sent an inject, then closes, #3 is kicked with a
/// reset.
fn record_session(tag: &str) -> Session {
    let dir = temp_dir::TempDir::new(tag);
    let file = dir.path().join("session.muxrec");
    let engine = EngineHandle::spawn(EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        record: Some(RecordingConfig {
            path: file.clone(),
            max_bytes: None,
            at_cap: AtCap::Stop,
        }),
        ..EngineConfig::default()
    })
    .unwrap();
    let addr = engine.local_addr().unwrap();
    let timeout = Some(Duration::from_secs(5));
    let mut peers = BTreeMap::new();

    let mut a = TcpStream::connect(addr).unwrap();
    a.set_read_timeout(timeout).unwrap();
    peers.insert(1, a.local_addr().unwrap());
    echo(&mut a, b"hello\n");
    echo(&mut a, BINARY);
    a.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    wait_closed(&engine, &[1]);

    let mut b = TcpStream::connect(addr).unwrap();
    b.set_read_timeout(timeout).unwrap();
    peers.insert(2, b.local_addr().unwrap());
    echo(&mut b, &big_message());
    engine.send(Command::Inject {
        targets: Targets::one(ConnId(2)),
        bytes: INJECTED.to_vec(),
    });
    let mut injected = vec![0; INJECTED.len()];
    b.read_exact(&mut injected).unwrap();
    assert_eq!(injected, INJECTED);

    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(timeout).unwrap();
    peers.insert(3, c.local_addr().unwrap());
    echo(&mut c, b"kick me");
    engine.send(Command::Kick {
        targets: Targets::one(ConnId(3)),
        mode: KickMode::Reset,
    });
    let mut buf = [0u8; 16];
    assert!(
        matches!(c.read(&mut buf), Ok(0) | Err(_)),
        "the kick ends it"
    );
    drop(b);
    let closed = wait_closed(&engine, &[2, 3]);
    assert_eq!(closed[&2], CloseReason::PeerClosed);
    assert_eq!(closed[&3], CloseReason::Kicked(KickMode::Reset));
    engine.shutdown();

    let bytes = bytes_in(&file);
    let mut first = b"hello\n".to_vec();
    first.extend_from_slice(BINARY);
    assert_eq!(bytes[&(1, true)], first);
    assert_eq!(bytes[&(1, false)], first);
    assert_eq!(bytes[&(2, true)], big_message());
    assert_eq!(
        bytes[&(2, false)],
        [big_message(), INJECTED.to_vec()].concat()
    );
    assert_eq!(bytes[&(3, true)], b"kick me");
    let dir_path = dir.path().to_owned();
    Session {
        _dir: dir,
        dir: dir_path,
        file,
        peers,
        bytes,
    }
}

fn bytes_in(path: &Path) -> Bytes {
    let mut r = Reader::open(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Bytes::new();
    r.for_each_record(|rec| {
        if let Record::Data(d) = rec {
            out.entry((d.conn.0, d.dir == Direction::Rx))
                .or_default()
                .extend_from_slice(&d.bytes);
        }
    })
    .unwrap();
    assert!(r.index.damage.is_none(), "{:?}", r.index.damage);
    out
}

fn tshark(args: &[&str]) -> Option<String> {
    let out = match Process::new("tshark").args(args).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("tshark is not installed ({e}): the Wireshark check is skipped");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// `follow,tcp,raw` output: the two nodes, and each one's bytes (lines
/// of node 1 start with a tab).
fn parse_follow(text: &str) -> (SocketAddr, Vec<u8>, Vec<u8>) {
    let mut node0 = None;
    let (mut from0, mut from1) = (Vec::new(), Vec::new());
    let mut body = false;
    for line in text.lines() {
        if let Some(addr) = line.strip_prefix("Node 0: ") {
            node0 = Some(addr.trim().parse().unwrap());
        } else if line.starts_with("Node 1: ") {
            body = true;
        } else if line.starts_with("=====") {
            body = false;
        } else if body {
            let (to, hex) = match line.strip_prefix('\t') {
                Some(hex) => (&mut from1, hex),
                None => (&mut from0, line),
            };
            to.extend(HEXLOWER_PERMISSIVE.decode(hex.trim().as_bytes()).unwrap());
        }
    }
    (node0.expect("a Node 0 line"), from0, from1)
}

#[test]
fn pcapng_follows_every_stream_exactly_and_has_no_analysis_warnings() {
    let s = record_session("export-pcapng");
    let out = s.dir.join("session.pcapng");
    let done = export::export(&s.file, Format::Pcapng, &[], &out).unwrap();
    assert_eq!(done.connections, 3);
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    let path = out.to_str().unwrap();
    let Some(_) = tshark(&["--version"]) else {
        return;
    };
    for k in 0..3 {
        let text = tshark(&["-r", path, "-q", "-z", &format!("follow,tcp,raw,{k}")]).unwrap();
        let (node0, from0, from1) = parse_follow(&text);
        let (&id, _) = s
            .peers
            .iter()
            .find(|(_, p)| **p == node0)
            .unwrap_or_else(|| panic!("stream {k}: node 0 {node0} is no client\n{text}"));
        assert_eq!(
            from0,
            s.bytes[&(id, true)],
            "stream {k} (#{id}): client to server"
        );
        assert_eq!(
            from1,
            s.bytes.get(&(id, false)).cloned().unwrap_or_default(),
            "stream {k} (#{id}): server to client"
        );
    }
    // Nothing to flag: no retransmissions, lost segments, window or ACK
    // problems. (A reused port would be flagged, as it should be; the
    // clients here have distinct ports.)
    let flagged = tshark(&["-r", path, "-Y", "tcp.analysis.flags"]).unwrap();
    assert_eq!(flagged.trim(), "", "TCP analysis flags packets");
    // Checksums verify.
    let bad = tshark(&[
        "-r",
        path,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        "tcp.checksum.status != 1 || ip.checksum.status != 1",
    ])
    .unwrap();
    assert_eq!(bad.trim(), "", "bad checksums");
    // Handshakes, FINs and the kick's reset.
    let count = |filter: &str| tshark(&["-r", path, "-Y", filter]).unwrap().lines().count();
    assert_eq!(count("tcp.flags.syn == 1 && tcp.flags.ack == 0"), 3);
    assert_eq!(count("tcp.flags.reset == 1"), 1);
    let reset_from = tshark(&[
        "-r",
        path,
        "-Y",
        "tcp.flags.reset == 1",
        "-T",
        "fields",
        "-e",
        "tcp.dstport",
    ])
    .unwrap();
    assert_eq!(
        reset_from.trim(),
        s.peers[&3].port().to_string(),
        "the server reset #3"
    );
    assert_eq!(count("tcp.flags.fin == 1"), 4, "both ways on #1 and #2");
    // muxscope's events are packet comments.
    let comments = tshark(&[
        "-r",
        path,
        "-Y",
        "frame.comment",
        "-T",
        "fields",
        "-e",
        "frame.comment",
    ])
    .unwrap();
    for expected in [
        "peer half-closed (FIN)",
        "closed: peer closed",
        "injected 21 B",
        "kicked (reset)",
        "closed: kicked (reset)",
    ] {
        assert!(comments.contains(expected), "{expected:?} in\n{comments}");
    }
}

#[test]
fn json_has_every_message_from_the_clients_view() {
    let s = record_session("export-json");
    let out = s.dir.join("session.json");
    export::export(&s.file, Format::Json, &[], &out).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["perspective"], "client");
    assert!(doc["engine_started"].as_str().unwrap().ends_with('Z'));
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 3);
    for c in conns {
        let id = c["id"].as_u64().unwrap();
        assert_eq!(c["peer"], s.peers[&id].to_string());
        assert!(c["opened"]["time"].as_str().unwrap().contains('T'));
        assert!(
            c["closed"]["engine_us"].as_u64().unwrap()
                >= c["opened"]["engine_us"].as_u64().unwrap()
        );
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for m in c["messages"].as_array().unwrap() {
            let data = BASE64
                .decode(m["data"].as_str().unwrap().as_bytes())
                .unwrap();
            assert_eq!(m["length"].as_u64().unwrap() as usize, data.len());
            match &m["hex"] {
                serde_json::Value::String(hex) => {
                    assert!(data.len() <= 64);
                    assert_eq!(HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).unwrap(), data);
                }
                serde_json::Value::Null => assert!(data.len() > 64, "hex for short ones"),
                other => panic!("hex is {other}"),
            }
            match m["type"].as_str().unwrap() {
                "send" => sent.extend(data),
                "receive" => received.extend(data),
                other => panic!("type {other}"),
            }
        }
        assert_eq!(sent, s.bytes[&(id, true)], "#{id} sent");
        assert_eq!(received, s.bytes[&(id, false)], "#{id} received");
        assert_eq!(c["bytes_sent"].as_u64().unwrap() as usize, sent.len());
    }
    assert_eq!(conns[0]["close_reason"], "peer closed");
    assert_eq!(conns[2]["close_reason"], "kicked (reset)");
    let events = conns[1]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "injected"), "{events:?}");
}

#[test]
fn raw_and_conn_filtering_keep_exactly_the_bytes_asked_for() {
    let s = record_session("export-raw");
    let out = s.dir.join("raw");
    let done = export::export(&s.file, Format::Raw, &[ConnId(2), ConnId(3)], &out).unwrap();
    assert_eq!(done.connections, 2);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "conn-2-client-to-server.bin",
            "conn-2-server-to-client.bin",
            "conn-3-client-to-server.bin",
            "conn-3-server-to-client.bin",
        ]
    );
    for id in [2, 3] {
        for (up, way) in [(true, "client-to-server"), (false, "server-to-client")] {
            let got = std::fs::read(out.join(format!("conn-{id}-{way}.bin"))).unwrap();
            assert_eq!(got, s.bytes[&(id, up)], "#{id} {way}");
        }
    }
    let err =
        export::export(&s.file, Format::Json, &[ConnId(9)], &s.dir.join("x.json")).unwrap_err();
    assert!(
        err.contains("no connection #9; its connections are #1, #2, #3"),
        "{err}"
    );
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_muxscope"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_command_line_exports_and_says_what_went_wrong() {
    let s = record_session("export-cli");
    let file = s.file.to_str().unwrap();
    let json = s.dir.join("one.json");
    let (code, stdout, stderr) = run(&[
        "export",
        file,
        "--format",
        "json",
        "--conn",
        "#1",
        "-o",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("exported 1 connection from"), "{stdout}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["connections"].as_array().unwrap().len(), 1);

    let (code, _, stderr) = run(&[
        "export",
        file,
        "--format",
        "pcapng",
        "--conn",
        "7",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no connection #7; its connections are #1, #2, #3"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (code, _, stderr) = run(&[
        "export",
        "/nonexistent/x.muxrec",
        "--format",
        "raw",
        "-o",
        "/tmp",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("muxscope: cannot read /nonexistent/x.muxrec:"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let not_one = s.dir.join("not.muxrec");
    std::fs::write(&not_one, b"hello").unwrap();
    let (code, _, stderr) = run(&[
        "export",
        not_one.to_str().unwrap(),
        "--format",
        "raw",
        "-o",
        "/tmp",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a muxscope recording"), "{stderr}");

    let (code, _, stderr) = run(&["export", file, "--format", "csv", "-o", "x"]);
    assert_eq!(code, 2, "{stderr}");

    // A file cut short exports what comes before the cut, and says where.
    let whole = std::fs::read(&s.file).unwrap();
    let cut = s.dir.join("cut.muxrec");
    std::fs::write(&cut, &whole[..whole.len() - 10]).unwrap();
    let raw = s.dir.join("cut-raw");
    let (code, _, stderr) = run(&[
        "export",
        cut.to_str().unwrap(),
        "--format",
        "raw",
        "-o",
        raw.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("damaged at byte"),
        "{stderr}"
    );
    assert!(raw.join("conn-1-client-to-server.bin").exists());
}
