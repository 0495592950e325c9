//! `muxscope --headless`: the engine without a window. The event stream is
//! consumed for real (folded into a summary), and one line per second says
//! what the server is doing.
//!
//! An engine that dies (panics) ends the run with its message as an error,
//! so the process exits non-zero, and viewers are closed with code 1011.
//! Everything printed that a viewer could have typed (a failed listen
//! address) goes through [`terminal_safe`].

/// A summary line's free text (a listen error) is cut to this many bytes.
const MAX_LINE_TEXT: usize = 300;
/// How long to wait for a dead engine's thread to finish, for its message.
const FAILURE_WAIT: Duration = Duration::from_secs(5);

use crate::control::{self, ControlOptions, ControlServer};
use crate::engine::{EngineConfig, EngineHandle};
use crate::faults::spec::FaultPlan;
use crate::format;
use crate::logging::terminal_safe;
use crate::protocol::{Batch, EngineStats, ListenState};
use crossbeam_channel::{Receiver, select};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What the headless consumer folds the stream into.
#[derive(Debug, Default)]
pub struct Summary {
    pub batches: u64,
    pub events: u64,
    pub dropped_events: u64,
    pub stats: Option<EngineStats>,
    clock: crate::monitor::clock::EngineClock,
}

/// Lints run this often (each run looks at every connection).
const LINT_EVERY: Duration = Duration::from_millis(200);

/// `lint: #12 client-not-reading: has not read for 3.0s (…)`.
pub fn lint_line(f: &crate::monitor::lints::Finding) -> String {
    let subject = match (f.conn, f.host) {
        (Some(id), _) => id.to_string(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => "server".to_owned(),
    };
    let message = f
        .message
        .strip_prefix(&subject)
        .map(str::trim_start)
        .unwrap_or(&f.message);
    format!("lint: {subject} {}: {message}", f.lint.name())
}

impl Summary {
    /// The engine's time now: its newest report, and the time since.
    pub fn engine_now(&self) -> crate::protocol::Micros {
        self.clock.now()
    }

    pub fn absorb(&mut self, batch: Batch) {
        self.clock.observe(&batch);
        self.batches += 1;
        self.events += batch.events.len() as u64;
        self.dropped_events = batch.dropped_events;
        if let Some(stats) = batch.stats {
            self.stats = Some(stats);
        }
    }

    /// One status line; `prev` is the summary a second ago, for rates.
    pub fn line(&self, prev_rx: u64, prev_tx: u64, secs: f64) -> String {
        let Some(s) = &self.stats else {
            return "muxscope: starting".to_owned();
        };
        let mut line = format!(
            "{} conns | rx {} ({}) | tx {} ({}) | {} events/s | dropped {}",
            s.connections,
            format::bytes(s.rx_bytes),
            format::rate(s.rx_bytes.saturating_sub(prev_rx) as f64 / secs),
            format::bytes(s.tx_bytes),
            format::rate(s.tx_bytes.saturating_sub(prev_tx) as f64 / secs),
            format::count(s.events_per_sec),
            self.dropped_events.max(s.dropped_events),
        );
        if s.accept_paused {
            line.push_str(" | ACCEPT PAUSED (out of descriptors)");
        }
        if let ListenState::Failed { error, .. } = &s.listen {
            line.push_str(" | ");
            line.push_str(&terminal_safe(error, MAX_LINE_TEXT));
        }
        if let Some(r) = &s.recording {
            match &r.ended {
                None => line.push_str(&format!(" | rec {}", format::bytes(r.bytes))),
                Some(why) => {
                    line.push_str(" | recording stopped: ");
                    line.push_str(&terminal_safe(why, MAX_LINE_TEXT));
                }
            }
            if r.lost_events > 0 || r.lost_bytes > 0 {
                line.push_str(&format!(
                    " (LOST {} events, {})",
                    r.lost_events,
                    format::bytes(r.lost_bytes)
                ));
            }
        }
        line
    }
}

/// Ctrl-C and SIGTERM arrive here as a message.
fn termination_signal() -> Result<Receiver<()>, String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(rx)
}

pub fn run(config: EngineConfig) -> ExitCode {
    run_with_control(config, None, Default::default())
}

/// Like [`run`], and with `control`, also serve viewers (see
/// [`crate::control`]); the summary line then counts them.
pub fn run_with_control(
    config: EngineConfig,
    control: Option<ControlOptions>,
    lints: crate::monitor::lints::LintSettings,
) -> ExitCode {
    let signal = match termination_signal() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("muxscope: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = Headless::start(config, control).and_then(|h| h.with_lints(lints).run(signal));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muxscope: {}", terminal_safe(&e, 4096));
            ExitCode::FAILURE
        }
    }
}

/// A running headless muxscope: the engine, and its control endpoint if
/// one was asked for.
pub struct Headless {
    engine: EngineHandle,
    server: Option<ControlServer>,
    batches: Receiver<Batch>,
    lints: crate::monitor::lints::Lints,
}

impl std::fmt::Debug for Headless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headless").finish_non_exhaustive()
    }
}

impl Headless {
    /// Start the engine and the control endpoint, and print where they
    /// are. Fails before binding anything if the control setup is unsafe.
    pub fn start(
        config: EngineConfig,
        mut control: Option<ControlOptions>,
    ) -> Result<Headless, String> {
        if let Some(opts) = &mut control {
            opts.make_auto_token()?;
        }
        // Refuse an unsafe control address before anything is bound.
        if let Some(opts) = &control {
            control::resolve_addr(&opts.addr)
                .and_then(|addr| control::check_exposure(addr, opts.token.as_deref()))?;
        }
        let faults = faults_line(&config);
        let scenario = config.scenario.as_ref().map(|s| scenario_line(s));
        let recording = config.record.as_ref().map(|r| {
            format!(
                "muxscope recording to {}",
                terminal_safe(&r.path.display().to_string(), 1024)
            )
        });
        let replay = config
            .replay
            .as_ref()
            .map(|r| terminal_safe(&r.summary_line(), 4096).into_owned());
        let engine =
            EngineHandle::spawn(config).map_err(|e| format!("cannot start the engine: {e}"))?;
        match engine.initial_listen() {
            ListenState::Listening(addr) => println!("muxscope listening on {addr}"),
            ListenState::Failed { error, .. } => return Err(error.clone()),
            ListenState::Stopped => println!("muxscope running without a listener"),
        }
        println!("{faults}");
        for line in scenario.into_iter().chain(replay).chain(recording) {
            println!("{line}");
        }
        let mut server = None;
        let mut batches = engine.batches().clone();
        if let Some(opts) = &control {
            let (s, relay) = ControlServer::attach(opts, &engine)?;
            println!("{}", viewer_line(&s, opts));
            match &opts.web_root {
                None => eprintln!(
                    "muxscope: no web viewer found next to the executable: build it with \
                     scripts/build-web.sh and pass --web-root path/to/dist"
                ),
                Some(root) if !root.join("index.html").is_file() => eprintln!(
                    "muxscope: no index.html in {}: build the viewer with scripts/build-web.sh",
                    terminal_safe(&root.display().to_string(), 1024)
                ),
                Some(_) => {}
            }
            batches = relay;
            server = Some(s);
        }
        let _ = std::io::stdout().flush();
        Ok(Headless {
            engine,
            server,
            batches,
            lints: Default::default(),
        })
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(ControlServer::local_addr)
    }

    pub fn echo_addr(&self) -> Option<SocketAddr> {
        self.engine.local_addr()
    }

    /// Run these lints on what the engine reports (all, by default).
    pub fn with_lints(mut self, settings: crate::monitor::lints::LintSettings) -> Self {
        self.lints.settings = settings;
        self
    }

    /// Print a summary line each second until `stop` fires (or its sender
    /// is dropped), and a `lint:` line for each lint that fires. An engine
    /// that dies ends it with an error saying why.
    pub fn run(self, stop: Receiver<()>) -> Result<(), String> {
        let Headless {
            mut engine,
            server,
            batches,
            mut lints,
        } = self;
        let mut summary = Summary::default();
        let mut linted = Instant::now();
        let mut last_line = Instant::now();
        let (mut prev_rx, mut prev_tx) = (0, 0);
        let stopped_by_request = loop {
            let wait = Duration::from_secs(1).saturating_sub(last_line.elapsed());
            select! {
                recv(batches) -> batch => match batch {
                    Ok(batch) => {
                        lints.observe(&batch);
                        summary.absorb(batch);
                    }
                    // Only the engine ends its stream, and it is not asked
                    // to before this loop ends.
                    Err(_) => break false,
                },
                recv(stop) -> _ => break true,
                default(wait) => {}
            }
            if linted.elapsed() >= LINT_EVERY {
                linted = Instant::now();
                for f in lints.evaluate(summary.engine_now()) {
                    println!("{}", terminal_safe(&lint_line(&f), 4096));
                }
            }
            if last_line.elapsed() >= Duration::from_secs(1) {
                let secs = last_line.elapsed().as_secs_f64();
                let mut line = summary.line(prev_rx, prev_tx, secs);
                if let Some(s) = &server {
                    line.push_str(&format!(" | {} viewers", s.viewers()));
                }
                println!("{line}");
                let _ = std::io::stdout().flush();
                if let Some(s) = &summary.stats {
                    (prev_rx, prev_tx) = (s.rx_bytes, s.tx_bytes);
                }
                last_line = Instant::now();
            }
        };
        if stopped_by_request {
            drop(server);
            engine.shutdown();
            println!("muxscope stopped");
            return Ok(());
        }
        let why = engine_failure(&mut engine);
        if let Some(s) = &server {
            s.engine_failed(&why);
        }
        drop(server);
        engine.shutdown();
        Err(why)
    }
}

/// The scenario as printed at start: `muxscope scenario: line protocol
/// (6 rules, framing Lines, otherwise Echo)`.
pub fn scenario_line(scenario: &crate::scenario::Scenario) -> String {
    let file = scenario.file();
    format!(
        "muxscope scenario: {} ({} rules, framing {:?}, otherwise {:?})",
        file.name.as_deref().unwrap_or("unnamed"),
        scenario.rule_count(),
        file.framing,
        file.otherwise
    )
}

/// The active faults as printed at start, in the `--fault` grammar:
/// `muxscope faults: latency=200ms~50ms, stall-writes`, or `… faults: none`.
pub fn faults_line(config: &EngineConfig) -> String {
    let plan = FaultPlan {
        faults: config.faults.clone(),
        accept: config.accept_fault,
    };
    format!("muxscope faults: {plan}")
}

/// Why the event stream ended: the engine's panic message once its thread
/// has finished.
fn engine_failure(engine: &mut EngineHandle) -> String {
    let deadline = Instant::now() + FAILURE_WAIT;
    loop {
        if let Some(why) = engine.failure() {
            return why;
        }
        if Instant::now() >= deadline {
            // Its thread is still running: what ended was the control
            // endpoint's relay of its stream (its error is printed above).
            return "the engine's event stream ended while the engine still runs \
                    (the control endpoint stopped; see above)"
                .to_owned();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where to open the viewer. A token made with `--token auto` is printed
/// once, here, in the URL; a token the user chose is not repeated.
fn viewer_line(server: &ControlServer, opts: &ControlOptions) -> String {
    let addr = server.local_addr();
    let (http, ws) = if server.is_tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    let query = match (&opts.token, opts.token_generated) {
        (Some(t), true) => format!("?token={t}"),
        (Some(_), false) => "?token=…".to_owned(),
        (None, _) => String::new(),
    };
    format!("muxscope viewer on {http}://{addr}/{query} (WebSocket {ws}://{addr}/ws{query})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(listen: ListenState) -> EngineStats {
        EngineStats {
            listen,
            ..EngineStats::default()
        }
    }

    #[test]
    fn the_faults_line_is_the_canonical_spec() {
        let mut config = EngineConfig::default();
        assert_eq!(faults_line(&config), "muxscope faults: none");
        let plan =
            crate::faults::spec::parse("stall-writes,accept=stall,latency=200ms~50ms").unwrap();
        config.faults = plan.faults;
        config.accept_fault = plan.accept;
        assert_eq!(
            faults_line(&config),
            "muxscope faults: latency=200ms~50ms, stall-writes, accept=stall"
        );
    }

    /// A listen error holds the address a viewer typed: the line shows it
    /// escaped and cut, never as terminal control sequences.
    #[test]
    fn the_summary_line_escapes_and_caps_what_viewers_typed() {
        let error = format!(
            "'\u{1b}[2J\u{1b}]0;pwned\u{7}{}' is not a listen address",
            "A".repeat(1 << 20)
        );
        let summary = Summary {
            stats: Some(stats(ListenState::Failed {
                addr: String::new(),
                error,
            })),
            ..Summary::default()
        };
        let line = summary.line(0, 0, 1.0);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}[2J"), "{line}");
        assert!(line.len() < 600, "{} bytes", line.len());
    }
}
