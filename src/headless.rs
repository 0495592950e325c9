//! `muxscope --headless`: the engine without a window. The event stream is
//! consumed for real (folded into a summary), and one line per second says
//! what the server is doing.

use crate::engine::{EngineConfig, EngineHandle};
use crate::format;
use crate::protocol::{Batch, EngineStats, ListenState};
use crossbeam_channel::{Receiver, select};
use std::io::Write;
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
    let signal = match termination_signal() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("muxscope: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match EngineHandle::spawn(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("muxscope: cannot start the engine: {e}");
            return ExitCode::FAILURE;
        }
    };
    match engine.initial_listen() {
        ListenState::Listening(addr) => println!("muxscope listening on {addr}"),
        ListenState::Failed { error, .. } => {
            eprintln!("muxscope: {error}");
            return ExitCode::FAILURE;
        }
        ListenState::Stopped => println!("muxscope running without a listener"),
    }
    let _ = std::io::stdout().flush();

    let mut summary = Summary::default();
    let mut last_line = Instant::now();
    let (mut prev_rx, mut prev_tx) = (0, 0);
    loop {
        let wait = Duration::from_secs(1).saturating_sub(last_line.elapsed());
        select! {
            recv(engine.batches()) -> batch => match batch {
                Ok(batch) => summary.absorb(batch),
                Err(_) => break,
            },
            recv(signal) -> _ => break,
            default(wait) => {}
        }
        if last_line.elapsed() >= Duration::from_secs(1) {
            let secs = last_line.elapsed().as_secs_f64();
            println!("{}", summary.line(prev_rx, prev_tx, secs));
            let _ = std::io::stdout().flush();
            if let Some(s) = &summary.stats {
                (prev_rx, prev_tx) = (s.rx_bytes, s.tx_bytes);
            }
            last_line = Instant::now();
        }
    }
    engine.shutdown();
    println!("muxscope stopped");
    ExitCode::SUCCESS
}
