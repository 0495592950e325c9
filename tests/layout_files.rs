//! Session layout files: migration, bad files, and the binary opened with a
//! layout path (as a double-click on a `.muxscope.ron` file does).

mod temp_dir;
use clap::Parser;
use muxscope::cli::Cli;
use muxscope::layout::{self, LAYOUT_VERSION, SessionLayout, Theme};
use muxscope::protocol::Mode;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use temp_dir::TempDir;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn version_0_layout_is_migrated() {
    let layout = layout::load(&fixture("layout-v0.muxscope.ron")).unwrap();
    assert_eq!(layout.version, LAYOUT_VERSION);
    assert_eq!(layout.listen, "127.0.0.1:9911");
    assert_eq!(layout.mode, Mode::Manual);
    assert_eq!(layout.theme, Theme::Light);
    assert_eq!(layout.connections.filter, "127.0.0.1");
    let favs: Vec<&str> = layout
        .inject
        .favourites
        .iter()
        .map(|f| f.text.as_str())
        .collect();
    assert_eq!(favs, [r"PING\r\n", r"QUIT\r\n"]);
    assert_eq!(layout.inject.favourites[0].bytes().unwrap(), b"PING\r\n");
    // The rest is the current default, so the file opens into a usable window.
    assert_eq!(layout.tree, SessionLayout::default().tree);
}

#[test]
fn saved_layout_reads_back_identically() {
    let dir = TempDir::new("roundtrip");
    let path = dir.join("mine.muxscope.ron");
    let mut layout = SessionLayout {
        listen: "127.0.0.1:7000".into(),
        mode: Mode::Discard,
        zoom: 1.5,
        ..SessionLayout::default()
    };
    layout
        .inject
        .history
        .push(muxscope::ui::inject::SavedMessage {
            text: "48 69".into(),
            format: muxscope::payload::InputFormat::Hex,
            ending: muxscope::payload::LineEnding::CrLf,
            sent: Some(muxscope::ui::inject::Sent {
                to: "#3, #5".into(),
                at_unix_ms: 1_700_000_000_000,
            }),
        });
    layout::save(&path, &layout).unwrap();
    assert_eq!(layout::load(&path).unwrap(), layout);
    assert!(
        !dir.join("mine.muxscope.ron.tmp").exists(),
        "temp file renamed away"
    );
}

/// A bad layout given on the command line: the problem names the file and
/// where it went wrong, startup continues with defaults, and the file keeps
/// every byte.
fn assert_bad_layout_reported(contents: &[u8], expect: &str) {
    let dir = TempDir::new(&format!("bad-{}-{}", contents.len(), contents[0]));
    let path = dir.join("bad.muxscope.ron");
    std::fs::write(&path, contents).unwrap();
    let cli = Cli::parse_from(["muxscope", path.to_str().unwrap()]);
    let start = muxscope::desktop::startup(&cli, None);
    assert_eq!(start.problems.len(), 1, "{:?}", start.problems);
    let problem = &start.problems[0];
    assert!(problem.contains(path.to_str().unwrap()), "{problem}");
    assert!(problem.contains(expect), "{problem}");
    assert!(
        start.layout_path.is_none(),
        "a bad file must not become the save target"
    );
    assert_eq!(start.layout, SessionLayout::default());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        contents,
        "file left byte-for-byte"
    );
}

#[test]
fn truncated_layout_is_reported_and_left_alone() {
    let full = layout::to_ron(&SessionLayout::default());
    let cut = &full.as_bytes()[..full.len() / 2];
    assert_bad_layout_reported(cut, "line ");
}

#[test]
fn garbage_layout_is_reported_and_left_alone() {
    assert_bad_layout_reported(b"not a layout at all {{{", "line 1");
    assert_bad_layout_reported(b"\x00\xff\xfe binary", "not a text file");
}

#[test]
fn future_layout_is_reported_and_left_alone() {
    assert_bad_layout_reported(b"(version: 7, listen: \"127.0.0.1:1\")", "newer muxscope");
}

#[test]
fn unreadable_last_session_is_moved_aside_not_overwritten() {
    let dir = TempDir::new("autosave");
    let auto = dir.join("last-session.muxscope.ron");
    std::fs::write(&auto, b"(version: 1, zoom: oops").unwrap();
    let cli = Cli::parse_from(["muxscope"]);
    let start = muxscope::desktop::startup(&cli, Some(&auto));
    assert_eq!(start.problems.len(), 1);
    let aside = auto.with_extension("ron.unreadable");
    assert_eq!(std::fs::read(&aside).unwrap(), b"(version: 1, zoom: oops");
    assert!(!auto.exists());
}

/// The binary opened with a layout path takes the layout's listen address
/// and mode (headless, so no display is needed).
#[test]
fn binary_opens_a_layout_path() {
    let dir = TempDir::new("binary");
    let path = dir.join("manual.muxscope.ron");
    let layout = SessionLayout {
        listen: "127.0.0.1:0".into(),
        mode: Mode::Manual,
        ..SessionLayout::default()
    };
    layout::save(&path, &layout).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_muxscope"))
        .arg("--headless")
        .arg(&path)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("muxscope listening on ")
        .unwrap_or_else(|| panic!("{first}"));
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    client.write_all(b"are you echoing?").unwrap();
    let mut buf = [0u8; 64];
    let got = client.read(&mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "manual mode from the layout must not echo, got {got:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn binary_refuses_a_broken_layout_with_its_position() {
    let dir = TempDir::new("binary-bad");
    let path = dir.join("broken.muxscope.ron");
    let contents = b"(\n  version: 1,\n  listen: 42,\n)";
    std::fs::write(&path, contents).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_muxscope"))
        .arg("--headless")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.muxscope.ron"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), contents);
}
