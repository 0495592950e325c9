//! The engine's clock as a viewer knows it: the newest time it reported,
//! and how long ago that arrived. Viewers (the window, headless) use it to
//! say how long ago something happened while nothing new arrives.

use crate::protocol::{Batch, Micros};
use web_time::Instant;

#[derive(Clone, Copy, Debug, Default)]
pub struct EngineClock {
    seen: Option<(Micros, Instant)>,
}

impl EngineClock {
    /// Note the newest time `batch` speaks of (its last event, its stats).
    pub fn observe(&mut self, batch: &Batch) {
        let newest = batch
            .events
            .last()
            .map(|e| e.at)
            .into_iter()
            .chain(batch.stats.as_ref().map(|s| s.at))
            .max();
        if let Some(at) = newest
            && self.seen.is_none_or(|(t, _)| at >= t)
        {
            self.seen = Some((at, Instant::now()));
        }
    }

    /// The engine's time now, estimated; 0 before anything arrived.
    pub fn now(&self) -> Micros {
        match self.seen {
            Some((at, when)) => at + when.elapsed().as_micros() as Micros,
            None => 0,
        }
    }
}
