//! Recording from the window and playing a recording back on its timeline,
//! driven through the accessibility tree like a user would.

mod temp_dir;
mod ui_support;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use muxscope::backend::BackendStatus;
use muxscope::protocol::{ConnId, ConnState};
use muxscope::ui::MuxscopeApp;
use muxscope::ui::app::AppFiles;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use temp_dir::TempDir;
use ui_support::{click, listening, step_until};

fn position(h: &mut Harness<'static, MuxscopeApp>) -> u64 {
    h.state_mut()
        .timeline()
        .expect("a recording is shown")
        .position
}

#[test]
fn record_from_the_window_then_play_it_back_seek_and_jump() {
    let dir = TempDir::new("recording-ui");
    let files = AppFiles {
        recordings_dir: Some(dir.to_path_buf()),
        ..AppFiles::default()
    };
    let mut h = ui_support::app(&[], files);
    let addr = listening(&mut h);

    click(&mut h, "⏺ Record");
    step_until(&mut h, "the recording to start", |a| {
        a.monitor
            .stats
            .as_ref()
            .and_then(|s| s.recording.as_ref())
            .is_some_and(|r| r.ended.is_none())
    });
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for line in ["hello\n", "world\n", "again\n"] {
        client.write_all(line.as_bytes()).unwrap();
        let mut back = [0u8; 6];
        client.read_exact(&mut back).unwrap();
        // Gaps, so the timeline has distinct events to jump between.
        // (long enough that playback at 2× is still going when paused,
        // however slowly a loaded machine draws frames)
        std::thread::sleep(Duration::from_millis(1000));
        h.run_steps(2);
    }
    drop(client);
    step_until(&mut h, "the client to close", |a| {
        a.monitor
            .connections
            .get(ConnId(1))
            .is_some_and(|c| matches!(c.state, ConnState::Closed(_)))
    });
    click(&mut h, "Stop recording");
    step_until(&mut h, "the recording to end", |a| {
        a.monitor
            .stats
            .as_ref()
            .and_then(|s| s.recording.as_ref())
            .is_some_and(|r| r.ended.is_some())
    });
    let files = muxscope::ui::file_dialog::list_files(dir.path(), ".muxrec");
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("session-"), "{name}");

    // Open it: the same window, on the recording.
    click(&mut h, "File");
    click(&mut h, "Open recording…");
    click(&mut h, &name);
    click(&mut h, "Open");
    assert!(matches!(
        h.state().backend_status(),
        BackendStatus::Replay { .. }
    ));
    h.run_steps(3);
    assert!(
        h.state().monitor.connections.get(ConnId(1)).is_none(),
        "at the start nobody is connected yet"
    );

    // Play at 2×: the client appears and its bytes arrive.
    h.state_mut().timeline().unwrap().speed = 2.0;
    click(&mut h, "▶ Play");
    step_until(&mut h, "the client's row to play back", |a| {
        a.monitor
            .connections
            .get(ConnId(1))
            .is_some_and(|c| c.rx_bytes >= 6)
    });
    click(&mut h, "⏸ Pause playback");
    let paused_at = position(&mut h);
    h.run_steps(3);
    std::thread::sleep(Duration::from_millis(100));
    h.run_steps(3);
    assert_eq!(position(&mut h), paused_at, "paused means paused");

    // Seek to the end: the row is closed with all 18 bytes each way.
    let end = h.state_mut().timeline().unwrap().end;
    h.state_mut().timeline().unwrap().seek = Some(end);
    step_until(&mut h, "the end of the recording", |a| {
        a.monitor.connections.get(ConnId(1)).is_some_and(|c| {
            matches!(c.state, ConnState::Closed(_)) && c.rx_bytes == 18 && c.tx_bytes == 18
        })
    });

    // Select the row; jump back through its events, then forward.
    h.state_mut().selection.primary = Some(ConnId(1));
    h.state_mut().selection.conns = [ConnId(1)].into();
    h.run_steps(2);
    let at_end = position(&mut h);
    click(&mut h, "⏴ Prev event");
    h.run_steps(2);
    let prev = position(&mut h);
    assert!(prev < at_end, "previous event {prev} before {at_end}");
    click(&mut h, "⏴ Prev event");
    h.run_steps(2);
    let prev2 = position(&mut h);
    assert!(prev2 < prev, "{prev2} before {prev}");
    click(&mut h, "Next event ⏵");
    h.run_steps(2);
    assert_eq!(position(&mut h), prev, "next goes back to where prev was");

    // The inspector reads the transcript back from the file.
    h.run_steps(3);
    let detail = h
        .state()
        .monitor
        .detail(ConnId(1))
        .cloned()
        .expect("inspected");
    let rx: Vec<u8> = detail
        .transcript
        .iter()
        .filter(|c| c.dir == muxscope::protocol::Direction::Rx)
        .flat_map(|c| c.bytes.clone())
        .collect();
    assert!(
        b"hello\nworld\nagain\n".starts_with(&rx) && !rx.is_empty(),
        "{rx:?}"
    );

    // Export what is shown, from the menu, beside the recording.
    click(&mut h, "File");
    click(&mut h, "Export recording");
    click(&mut h, "pcapng (Wireshark): the selection");
    let pcap = files[0].with_file_name(format!(
        "{}-conn-1.pcapng",
        name.trim_end_matches(".muxrec")
    ));
    let bytes = std::fs::read(&pcap).expect("the export was written");
    assert_eq!(
        &bytes[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a pcapng section header"
    );
    let notice = h
        .state()
        .notices
        .last()
        .map(|n| n.text.clone())
        .unwrap_or_default();
    assert!(notice.contains("Exported 1 connection to"), "{notice}");

    // Back to the live engine, which kept running.
    click(&mut h, "File");
    click(&mut h, "Close recording");
    assert_eq!(h.state().backend_status(), BackendStatus::InProcess);
}

#[test]
fn a_rotated_recording_opens_part_by_part_and_plays_on_into_the_next() {
    let dir = TempDir::new("recording-parts");
    let first = dir.path().join("session.muxrec");
    let second = dir.path().join("session.2.muxrec");
    let third = dir.path().join("session.3.muxrec");
    let files = AppFiles {
        recordings_dir: Some(dir.to_path_buf()),
        ..AppFiles::default()
    };
    let record = first.to_str().unwrap();
    let args = [
        "--record",
        record,
        "--record-max",
        "64KiB",
        "--record-rotate",
    ];
    let mut h = ui_support::app(&args, files);
    let addr = listening(&mut h);
    // 100 KB per client recorded (both ways): parts of 64 KiB each. The
    // clients stay connected, so every later part opens with them.
    let chunk = vec![b'x'; 50_000];
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.write_all(&chunk).unwrap();
        let mut back = vec![0u8; chunk.len()];
        client.read_exact(&mut back).unwrap();
        clients.push(client);
        std::thread::sleep(Duration::from_millis(300));
        h.run_steps(2);
    }
    // A third part means the second was closed with its trailer.
    step_until(&mut h, "three parts on disk", |_| third.exists());
    drop(clients);

    let shows = |path: &std::path::Path| {
        let path = path.to_owned();
        move |a: &mut MuxscopeApp| {
            a.timeline().is_some_and(|t| {
                t.path.as_deref() == Some(path.as_path()) && t.indexed >= 1.0 && t.trailer.is_some()
            })
        }
    };
    h.state_mut().open_recording(&first);
    step_until(&mut h, "part 1 indexed to its trailer", shows(&first));
    h.run_steps(2);
    h.get_by_label("Part 1 of a rotated recording");
    assert!(h.query_by_label("⏴ Previous part").is_none());
    click(&mut h, "Next part ⏵");
    step_until(&mut h, "part 2 shown", shows(&second));
    h.run_steps(2);
    h.get_by_label("Part 2 of a rotated recording");
    click(&mut h, "⏴ Previous part");
    step_until(&mut h, "part 1 shown again", shows(&first));

    // Playing past the end of part 1 plays on in part 2, at the same speed.
    {
        let t = h.state_mut().timeline().unwrap();
        t.seek = Some(t.end.saturating_sub(1_000));
        t.speed = 10.0;
    }
    h.run_steps(2);
    click(&mut h, "▶ Play");
    step_until(&mut h, "playback to carry on into part 2", |a| {
        a.timeline().is_some_and(|t| {
            t.path.as_deref() == Some(second.as_path()) && t.playing && t.speed == 10.0
        })
    });

    click(&mut h, "File");
    click(&mut h, "Close recording");
    assert_eq!(h.state().backend_status(), BackendStatus::InProcess);
}
