//! Where the viewer's data comes from and its commands go: an engine in this
//! process, or a headless muxscope over a WebSocket. Panes never know which.

#[cfg(not(target_arch = "wasm32"))]
mod local;

#[cfg(not(target_arch = "wasm32"))]
pub use local::LocalBackend;

mod remote;
pub use remote::{RemoteBackend, ws_url_for_page};

pub mod replay;
pub use replay::{ReplayBackend, Timeline};

use crate::monitor::Monitor;
use crate::protocol::{Batch, Command};
use std::time::Duration;
use web_time::Instant;

/// How the viewer is attached, for the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendStatus {
    InProcess,
    Connecting {
        url: String,
    },
    Connected {
        url: String,
    },
    Disconnected {
        url: String,
        error: String,
    },
    /// A recording, played back.
    Replay {
        name: String,
    },
}

impl BackendStatus {
    pub fn describe(&self) -> String {
        match self {
            BackendStatus::InProcess => "in-process engine".to_owned(),
            BackendStatus::Connecting { url } => format!("connecting to {url}…"),
            BackendStatus::Connected { url } => format!("attached to {url}"),
            BackendStatus::Disconnected { url, error } => format!("lost {url}: {error}"),
            BackendStatus::Replay { name } => {
                format!("recording {name} (played back: kicks, injects and faults do nothing)")
            }
        }
    }
}

pub trait Backend {
    /// Fold waiting batches into `monitor` for at most `budget`. Returns
    /// true if more may be waiting, so the caller schedules another frame.
    fn drain_into(&mut self, monitor: &mut Monitor, budget: Duration) -> bool;

    fn send(&mut self, cmd: Command);

    fn status(&self) -> BackendStatus;

    /// The playback controls, for a backend that plays a recording.
    fn timeline(&mut self) -> Option<&mut Timeline> {
        None
    }
}

/// The shared drain loop: absorb batches from `next` until it runs dry or
/// the time budget is spent, so a flood can never stall a frame.
pub fn drain_with(
    monitor: &mut Monitor,
    budget: Duration,
    mut next: impl FnMut() -> Option<Batch>,
) -> bool {
    let start = Instant::now();
    while let Some(batch) = next() {
        monitor.absorb(batch);
        if start.elapsed() >= budget {
            return true;
        }
    }
    false
}
