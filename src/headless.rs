//! `muxscope --headless`: the engine without a window. The event stream is
//! consumed for real (folded into a summary), and one line per second says
//! what the server is doing.

use crate::control::{self, ControlOptions, ControlServer};
use crate::engine::{EngineConfig, EngineHandle};
use crate::format;
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
}

impl Summary {
    pub fn absorb(&mut self, batch: Batch) {
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
            line.push_str(error);
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
    run_with_control(config, None)
}

/// Like [`run`], and with `control`, also serve viewers (see
/// [`crate::control`]); the summary line then counts them.
pub fn run_with_control(config: EngineConfig, control: Option<ControlOptions>) -> ExitCode {
    let signal = match termination_signal() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("muxscope: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = Headless::start(config, control).and_then(|h| h.run(signal));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muxscope: {e}");
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
}

impl std::fmt::Debug for Headless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headless").finish_non_exhaustive()
    }
}

impl Headless {
    /// Start the engine and the control endpoint, and print where they
    /// are. Fails before binding anything if the control setup is unsafe.
    pub fn start(config: EngineConfig, control: Option<ControlOptions>) -> Result<Headless, String> {
        // Refuse an unsafe control address before anything is bound.
        if let Some(opts) = &control {
            control::resolve_addr(&opts.addr)
                .and_then(|addr| control::check_exposure(addr, opts.token.as_deref()))?;
        }
        let engine =
            EngineHandle::spawn(config).map_err(|e| format!("cannot start the engine: {e}"))?;
        match engine.initial_listen() {
            ListenState::Listening(addr) => println!("muxscope listening on {addr}"),
            ListenState::Failed { error, .. } => return Err(error.clone()),
            ListenState::Stopped => println!("muxscope running without a listener"),
        }
        let mut server = None;
        let mut batches = engine.batches().clone();
        if let Some(opts) = &control {
            let (s, relay) = ControlServer::attach(opts, &engine)?;
            let addr = s.local_addr();
            let token = if opts.token.is_some() {
                "?token=…"
            } else {
                ""
            };
            println!("muxscope viewer on http://{addr}/{token} (WebSocket ws://{addr}/ws)");
            if !opts
                .web_root
                .as_ref()
                .is_some_and(|r| r.join("index.html").is_file())
            {
                eprintln!("muxscope: no web viewer: run scripts/build-web.sh or pass --web-root");
            }
            batches = relay;
            server = Some(s);
        }
        let _ = std::io::stdout().flush();
        Ok(Headless {
            engine,
            server,
            batches,
        })
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(ControlServer::local_addr)
    }

    pub fn echo_addr(&self) -> Option<SocketAddr> {
        self.engine.local_addr()
    }

    /// Print a summary line each second until `stop` fires (or its sender
    /// is dropped).
    pub fn run(self, stop: Receiver<()>) -> Result<(), String> {
        let Headless {
            engine,
            server,
            batches,
        } = self;
        let mut summary = Summary::default();
        let mut last_line = Instant::now();
        let (mut prev_rx, mut prev_tx) = (0, 0);
        loop {
            let wait = Duration::from_secs(1).saturating_sub(last_line.elapsed());
            select! {
                recv(batches) -> batch => match batch {
                    Ok(batch) => summary.absorb(batch),
                    Err(_) => break,
                },
                recv(stop) -> _ => break,
                default(wait) => {}
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
        }
        drop(server);
        engine.shutdown();
        println!("muxscope stopped");
        Ok(())
    }
}
