//! How a big recording opens and seeks (issue 12: any point of a 1 GB
//! recording in under 1 s, from an index of keyframes, not a scan).
//!
//! Writes a synthetic recording through the real writer thread (1000
//! connections echoing 64-byte requests: readiness, read and wrote events,
//! both directions' bytes, counters every 100 ms and stats every 250 ms of
//! engine time, as the engine reports them), then opens it as the window
//! does, and seeks to random points with the replay backend, inspecting a
//! connection each time (its transcript is read back from the file).
//!
//! Knobs: `MUXSCOPE_BENCH_RECORDING_MB` (default 1024),
//! `MUXSCOPE_BENCH_SEEKS` (default 20), `MUXSCOPE_BENCH_DIR` (where the file
//! goes; default the system temp dir; the file is removed at the end
//! unless `MUXSCOPE_BENCH_KEEP` is set). Last, the whole file is exported
//! to pcapng by `muxscope export`, with its time and peak memory.

use muxscope::backend::{Backend, ReplayBackend};
use muxscope::monitor::Monitor;
use muxscope::protocol::{
    Batch, Command, ConnCounters, ConnId, Direction, EngineStats, Event, EventKind, ListenState,
    Readiness,
};
use muxscope::record::DataChunk;
use muxscope::record::writer::{self, AtCap, RecordingConfig, TapMsg};
use std::time::{Duration, Instant};

const CONNS: u64 = 1000;
/// 10k requests per second, flushed every 15 ms as the engine does.
const PER_FLUSH: u64 = 150;
const FLUSH_US: u64 = 15_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mb: u64 = env_or("MUXSCOPE_BENCH_RECORDING_MB", 1024);
    let seeks: usize = env_or("MUXSCOPE_BENCH_SEEKS", 20);
    let dir = std::env::var_os("MUXSCOPE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("muxscope-bench-seek-{}.muxrec", std::process::id()));

    let t0 = Instant::now();
    let end = write(&path, mb << 20);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let wrote = t0.elapsed();
    println!(
        "wrote {:.0} MB ({:.0} s of engine time at 10k req/s over {CONNS} connections) in {:.1} s: {:.0} MB/min of recording",
        size as f64 / 1e6,
        end as f64 / 1e6,
        wrote.as_secs_f64(),
        size as f64 / 1e6 / (end as f64 / 60e6)
    );

    let t0 = Instant::now();
    let mut replay = ReplayBackend::open_file(&path).expect("opens");
    replay.index_all();
    let opened = t0.elapsed();
    println!(
        "open + index (every checksum verified): {:.0} ms ({:.0} MB/s)",
        opened.as_secs_f64() * 1e3,
        size as f64 / 1e6 / opened.as_secs_f64()
    );

    let mut monitor = Monitor::default();
    let mut times = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..seeks {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let t = rng % end.max(1);
        let conn = ConnId(1 + rng % CONNS);
        let start = Instant::now();
        replay.timeline.seek = Some(t);
        replay.drain_into(&mut monitor, Duration::from_secs(30));
        replay.send(Command::Inspect { conn });
        replay.drain_into(&mut monitor, Duration::from_secs(30));
        let took = start.elapsed();
        let shown = monitor.detail(conn).map_or(0, |d| d.transcript.len());
        if i < 3 {
            println!(
                "  seek to {:.1} s + inspect {conn}: {:.1} ms ({} rows, {shown} transcript chunks)",
                t as f64 / 1e6,
                took.as_secs_f64() * 1e3,
                monitor.connections.len()
            );
        }
        times.push(took);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if !times.is_empty() {
        let max = *times.last().unwrap();
        println!(
            "seek + inspect over {} random points: min {:.1} ms, median {:.1} ms, max {:.1} ms (target < 1000 ms): {}",
            times.len(),
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(max),
            if max < Duration::from_secs(1) {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    export(&path, size);
    if std::env::var_os("MUXSCOPE_BENCH_KEEP").is_some() {
        println!("kept {}", path.display());
    } else {
        let _ = std::fs::remove_file(&path);
    }
}

/// `muxscope export FILE --format pcapng`, as a user runs it: its time and
/// its peak memory (VmHWM, read from /proc every 20 ms while it runs).
fn export(path: &std::path::Path, size: u64) {
    let out = path.with_extension("pcapng");
    let t0 = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_muxscope"))
        .arg("export")
        .arg(path)
        .args(["--format", "pcapng", "-o"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("muxscope export starts");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kb = kb;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let written = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "muxscope export failed: {status}");
    println!(
        "export --format pcapng of all {CONNS} connections: {:.1} s, pcapng {:.0} MB, peak memory {:.0} MB ({:.2}x the recording)",
        took.as_secs_f64(),
        written as f64 / 1e6,
        peak_kb as f64 / 1e3,
        peak_kb as f64 * 1e3 / size.max(1) as f64
    );
}

/// Write a recording of about `bytes`; returns its engine-time length.
fn write(path: &std::path::Path, bytes: u64) -> u64 {
    let rec = writer::start(
        RecordingConfig {
            path: path.to_owned(),
            max_bytes: None,
            at_cap: AtCap::Stop,
        },
        0,
        0,
    )
    .expect("the recording can be written");
    let peer =
        |id: u64| -> std::net::SocketAddr { format!("127.0.0.1:{}", 20_000 + id).parse().unwrap() };
    let mut counters: Vec<ConnCounters> = (1..=CONNS)
        .map(|id| ConnCounters::opened(ConnId(id), peer(id), 0))
        .collect();
    let accepted = Batch {
        events: (1..=CONNS)
            .map(|id| Event {
                at: 0,
                conn: Some(ConnId(id)),
                kind: EventKind::Accepted { peer: peer(id) },
            })
            .collect(),
        counters: counters.clone(),
        ..Batch::default()
    };
    rec.tx
        .send(TapMsg::Flush {
            batch: Some(Box::new(accepted)),
            data: Vec::new(),
            loss: None,
        })
        .unwrap();
    let mut now = 0u64;
    let mut next_req = 0u64;
    let mut total = (0u64, 0u64);
    let payload: Vec<u8> = (0..64u8).collect();
    let mut flushes = 0u64;
    while rec
        .progress
        .bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        < bytes
    {
        now += FLUSH_US;
        flushes += 1;
        let mut events = Vec::with_capacity(PER_FLUSH as usize * 3);
        let mut data = Vec::with_capacity(PER_FLUSH as usize * 2);
        for _ in 0..PER_FLUSH {
            let id = 1 + next_req % CONNS;
            next_req += 1;
            let conn = Some(ConnId(id));
            for kind in [
                EventKind::Readiness(Readiness(Readiness::READABLE)),
                EventKind::Read { n: 64 },
                EventKind::Wrote { n: 64 },
            ] {
                events.push(Event {
                    at: now,
                    conn,
                    kind,
                });
            }
            for dir in [Direction::Rx, Direction::Tx] {
                data.push(DataChunk {
                    at: now,
                    conn: ConnId(id),
                    dir,
                    bytes: payload.clone(),
                });
            }
            let c = &mut counters[(id - 1) as usize];
            c.rx_bytes += 64;
            c.tx_bytes += 64;
            c.last_activity = now;
            total.0 += 64;
            total.1 += 64;
        }
        let mut batch = Batch {
            events,
            ..Batch::default()
        };
        if flushes.is_multiple_of(7) {
            batch.counters = counters.clone();
        }
        if flushes.is_multiple_of(17) {
            batch.stats = Some(EngineStats {
                at: now,
                listen: ListenState::Listening("127.0.0.1:8800".parse().unwrap()),
                connections: CONNS as u32,
                accepted_total: CONNS,
                rx_bytes: total.0,
                tx_bytes: total.1,
                events_per_sec: 30_000.0,
                ..EngineStats::default()
            });
        }
        rec.tx
            .send(TapMsg::Flush {
                batch: Some(Box::new(batch)),
                data,
                loss: None,
            })
            .unwrap();
    }
    rec.tx
        .send(TapMsg::Stop {
            at: now,
            reason: "bench done".into(),
        })
        .unwrap();
    rec.thread.join().unwrap();
    now
}
