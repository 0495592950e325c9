//! Engine-wide numbers: per-second rates over a sliding window, when to
//! send them (on change, else as a one-second heartbeat), and when a burst
//! has calmed down enough to hand its memory back.

use crate::protocol::EngineStats;
use std::time::{Duration, Instant};

/// How often stats are computed.
pub const TICK: Duration = Duration::from_millis(250);
/// Stats are re-sent this often even when nothing changed, as a heartbeat.
const STATS_HEARTBEAT: Duration = Duration::from_secs(1);
/// A burst of this many events, once it has calmed down, is worth handing
/// its buffers' memory back to the OS.
const TRIM_AFTER_EVENTS: u64 = 10_000;
/// "Calmed down": fewer events per second than this.
const QUIET_EVENTS_PER_SEC: f64 = 1_000.0;

/// One sample per tick, for per-second rates over a sliding window.
#[derive(Clone, Copy)]
struct RateSample {
    at: Instant,
    events: u64,
    polls: u64,
}

pub struct StatsTicker {
    window: Vec<RateSample>,
    pub next_tick: Instant,
    last_sent: Option<(Instant, EngineStats)>,
    /// `events_total` when memory was last handed back.
    events_at_trim: u64,
}

/// What a tick decided.
pub struct Tick {
    pub events_per_sec: f64,
    pub polls_per_sec: f64,
    /// Freed memory is worth handing back now.
    pub trim: bool,
}

impl StatsTicker {
    pub fn new(start: Instant) -> Self {
        StatsTicker {
            window: Vec::with_capacity(8),
            next_tick: start,
            last_sent: None,
            events_at_trim: 0,
        }
    }

    /// Send stats at the next iteration, changed or not.
    pub fn force(&mut self) {
        self.last_sent = None;
        self.next_tick = Instant::now();
    }

    /// Take a sample; rates are over about the last second.
    pub fn sample(&mut self, clock: Instant, events: u64, polls: u64) -> Tick {
        self.next_tick = clock + TICK;
        self.window.push(RateSample {
            at: clock,
            events,
            polls,
        });
        if self.window.len() > 5 {
            self.window.remove(0);
        }
        let first = self.window[0];
        let span = clock.duration_since(first.at).as_secs_f64();
        let rate = |now: u64, then: u64| {
            if span > 0.0 {
                (now - then) as f64 / span
            } else {
                0.0
            }
        };
        // Quiet over the last tick alone: the one-second rate would still
        // remember the burst.
        let last_tick_events = match self.window.as_slice() {
            [.., prev, now] => now.events - prev.events,
            _ => 0,
        };
        let trim = events - self.events_at_trim >= TRIM_AFTER_EVENTS
            && (last_tick_events as f64) < QUIET_EVENTS_PER_SEC * TICK.as_secs_f64();
        if trim {
            self.events_at_trim = events;
        }
        Tick {
            events_per_sec: rate(events, first.events),
            polls_per_sec: rate(polls, first.polls),
            trim,
        }
    }

    /// Whether `stats` should go out: `Some(heartbeat)` if so, where a
    /// heartbeat repeats the last stats but for the clock.
    pub fn should_send(&mut self, clock: Instant, stats: &EngineStats) -> Option<bool> {
        let (changed, heartbeat_due) = match &self.last_sent {
            None => (true, false),
            Some((sent_at, last)) => (
                !same_apart_from_time(last, stats),
                clock.duration_since(*sent_at) >= STATS_HEARTBEAT,
            ),
        };
        if !(changed || heartbeat_due) {
            return None;
        }
        self.last_sent = Some((clock, stats.clone()));
        Some(!changed)
    }
}

/// An idle tick repeats the last stats but for the clock and the poll rate
/// (the tick itself polls); such repeats are only sent as a heartbeat.
fn same_apart_from_time(last: &EngineStats, new: &EngineStats) -> bool {
    let mut new = new.clone();
    new.at = last.at;
    new.polls_per_sec = last.polls_per_sec;
    *last == new && new.events_per_sec == 0.0
}
