//! What sampling `TCP_INFO` costs the engine: 10,000 idle connections on a
//! real in-process engine, its thread's CPU time (from
//! `/proc/self/task/*/schedstat`, nanoseconds) over a few seconds, first
//! with no viewer watching, then with 300 watched rows.
//!
//! ```sh
//! cargo run --example tcp_sample_cost            # 10,000 connections
//! MUXSCOPE_CONNS=2000 cargo run --example tcp_sample_cost
//! ```
//!
//! Idle, the engine does nothing but its 4 Hz stats tick and the sampler,
//! so its CPU share is (within the tick's few microseconds) the sampler's.
//! A dev build is slower than a release build, so the figure is an upper
//! bound; most of it is the `getsockopt` system call itself.

#[cfg(target_os = "linux")]
fn main() {
    use muxscope::engine::{EngineConfig, EngineHandle};
    use muxscope::protocol::{Command, ConnId};
    use std::time::{Duration, Instant};

    let conns: usize = std::env::var("MUXSCOPE_CONNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let need = conns as u64 + 256;
    let (_, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
    assert!(
        hard >= need,
        "need {need} descriptors, the hard limit is {hard}"
    );
    rlimit::Resource::NOFILE.set(hard, hard).expect("setrlimit");
    // The clients live in a child process (this program again), so each
    // process needs only one descriptor per connection.
    if let Ok(addr) = std::env::var("MUXSCOPE_CLIENTS_OF") {
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            clients.push(std::net::TcpStream::connect(&addr).expect("connect"));
        }
        println!("connected");
        // Until the parent closes our stdin.
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0]);
        return;
    }

    let engine = EngineHandle::spawn(EngineConfig {
        listen: Some("127.0.0.1:0".into()),
        ..EngineConfig::default()
    })
    .expect("engine starts");
    let addr = engine.local_addr().expect("listening");
    let batches = engine.batches().clone();
    std::thread::spawn(move || while batches.recv().is_ok() {});

    let mut clients = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("MUXSCOPE_CLIENTS_OF", addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("client process");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(clients.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("client process reports");
    assert_eq!(line.trim(), "connected");
    eprintln!("{conns} clients connected; letting the first samples go out");
    std::thread::sleep(Duration::from_secs(3));

    let engine_cpu = || -> u64 {
        for task in std::fs::read_dir("/proc/self/task").expect("/proc") {
            let dir = task.expect("task").path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() == "muxscope-engine" {
                let s = std::fs::read_to_string(dir.join("schedstat")).expect("schedstat");
                return s.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("no engine thread");
    };
    let measure = |what: &str| {
        let (cpu0, t0) = (engine_cpu(), Instant::now());
        std::thread::sleep(Duration::from_secs(5));
        let (cpu, wall) = (engine_cpu() - cpu0, t0.elapsed());
        let share = cpu as f64 / wall.as_nanos() as f64 * 100.0;
        println!(
            "{what}: engine CPU {share:.2} % of one core ({:.1} us per connection-second)",
            cpu as f64 / 1_000.0 / wall.as_secs_f64() / conns as f64
        );
    };
    measure(&format!("{conns} idle connections, none watched"));
    engine.send(Command::Watch {
        viewer: muxscope::protocol::LOCAL_VIEWER,
        conns: (1..=300).map(ConnId).collect(),
    });
    measure(&format!("{conns} idle connections, 300 watched"));
    drop(clients.stdin.take());
    let _ = clients.wait();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("TCP_INFO is sampled on Linux only");
}
