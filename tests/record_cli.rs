//! `--record` as a user runs it, and what a crash leaves behind.

mod control_support;

use control_support::{HeadlessChild, TempDir};
use muxscope::protocol::Direction;
use muxscope::record::Record;
use muxscope::record::reader::Reader;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// After `kill -9` the file reads up to its last complete frame: every
/// byte that was written to it more than a frame's age before the kill is
/// there, and nothing after is misread.
#[test]
fn a_recording_survives_kill_9_up_to_its_last_complete_frame() {
    let dir = TempDir::new("record-kill");
    let path = dir.path().join("crash.muxrec");
    let h = HeadlessChild::spawn(&["--record", path.to_str().unwrap()]);
    let addr = h.echo_addr();
    let (line, _) = h.line_starting("muxscope recording to ");
    assert!(line.ends_with("crash.muxrec"), "{line}");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = Vec::new();
    for i in 0..20 {
        let msg = format!("before the crash {i}\n");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).unwrap();
        sent.extend_from_slice(msg.as_bytes());
    }
    // Frames are written at least every 200 ms.
    std::thread::sleep(Duration::from_millis(800));
    h.kill_9();

    let mut r = Reader::open(std::fs::File::open(&path).unwrap()).expect("the header survived");
    let mut rx = Vec::new();
    r.for_each_record(|rec| {
        if let Record::Data(d) = rec
            && d.dir == Direction::Rx
        {
            rx.extend_from_slice(&d.bytes);
        }
    })
    .unwrap();
    assert!(
        r.index.trailer.is_none(),
        "a killed writer wrote no trailer"
    );
    assert_eq!(rx, sent, "every byte from before the crash");
}
