//! Hands what the engine observed to its consumer without ever waiting on it.
//!
//! Observations are batched and sent at most once per flush interval, which
//! turns hundreds of thousands of events per second into a few hundred
//! channel sends. The channel is bounded. When it is full the batch's events
//! are dropped and counted, and the count travels in every later batch, so a
//! slow consumer learns exactly how much it missed. Counters, stats and
//! inspector snapshots are latest-value data: they are kept (coalesced) and
//! retried, so tables stay exact even when the event log has gaps.
//!
//! Convergence is a property, not a best effort: after anything was lost,
//! the next batch that gets through *resynchronises* the consumer. It
//! carries the counters of every open connection and their ids
//! (`Batch::open_conns`), so a connection whose final counters had to be
//! let go (more closed than [`MAX_HELD_FINALS`] while the consumer was
//! stalled) still ends as closed in every view.

use super::record_tap::RecordTap;
use crate::protocol::{Batch, ConnCounters, ConnDetail, ConnId, EngineStats, Event};
use crossbeam_channel::{Sender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A callback the engine runs after handing over a batch, e.g. to wake a UI.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Beyond this many events a batch is sent at once rather than at the next
/// interval, which bounds the memory of one batch.
pub const MAX_BATCH_EVENTS: usize = 8192;
/// Final counters of closed connections kept while the consumer is behind;
/// beyond it the oldest are let go and a resync covers them.
pub const MAX_HELD_FINALS: usize = 4096;
/// A live view at 30 Hz reads as smooth; waking a UI more often only costs
/// frames (input still repaints at once).
const NOTIFY_INTERVAL: Duration = Duration::from_millis(33);

pub struct Publisher {
    tx: Sender<Batch>,
    notify: Option<Notify>,
    flush_interval: Duration,
    pending: Batch,
    seq: u64,
    dropped_events: u64,
    last_flush: Instant,
    last_notify: Instant,
    notify_owed: bool,
    disconnected: bool,
    /// The pending stats are only a heartbeat.
    heartbeat_only: bool,
    /// Something was lost since the consumer was last resynchronised.
    resync_owed: bool,
    events_total: u64,
    /// The recording, while one is on: it gets a copy of every batch and
    /// the events of those the consumer could not take.
    pub tap: Option<RecordTap>,
}

/// The counters a flush sends, built only when the consumer has room.
#[derive(Debug, Default)]
pub struct CountersOut {
    pub counters: Vec<ConnCounters>,
    /// For a resync: the ids of every open connection.
    pub open_conns: Option<Vec<ConnId>>,
}

impl Publisher {
    pub fn new(tx: Sender<Batch>, notify: Option<Notify>, flush_interval: Duration) -> Self {
        let now = Instant::now();
        Publisher {
            tx,
            notify,
            flush_interval,
            pending: Batch::default(),
            seq: 0,
            dropped_events: 0,
            last_flush: now,
            last_notify: now,
            notify_owed: false,
            disconnected: false,
            heartbeat_only: false,
            // The first batch tells the consumer what is open.
            resync_owed: true,
            events_total: 0,
            tap: None,
        }
    }

    #[inline]
    pub fn event(&mut self, event: Event) {
        self.events_total += 1;
        self.pending.events.push(event);
    }

    /// Every event reported so far, delivered or not.
    pub fn events_total(&self) -> u64 {
        self.events_total
    }

    /// Whether the next batch must resynchronise the consumer; until then
    /// per-connection change tracking is moot.
    pub fn resync_owed(&self) -> bool {
        self.resync_owed
    }

    /// Final counters of a connection that is gone; kept until delivered.
    pub fn final_counters(&mut self, counters: ConnCounters) {
        if self.pending.counters.len() >= MAX_HELD_FINALS {
            // Let the oldest half go at once (shifting the vector per close
            // would cost a copy of it each time); the resync owed now tells
            // the consumer they are closed.
            self.pending.counters.drain(..MAX_HELD_FINALS / 2);
            self.resync_owed = true;
        }
        self.pending.counters.push(counters);
    }

    /// Latest engine stats. A `heartbeat` repeats the last ones (idle
    /// engine): it is delivered, but does not wake the consumer, so an idle
    /// window does not repaint for it.
    pub fn stats(&mut self, stats: EngineStats, heartbeat: bool) {
        self.heartbeat_only = heartbeat && (self.pending.stats.is_none() || self.heartbeat_only);
        self.pending.stats = Some(stats);
    }

    pub fn detail(&mut self, detail: ConnDetail) {
        self.pending
            .details
            .retain(|d| d.counters.id != detail.counters.id);
        self.pending.details.push(detail);
    }

    /// The answer to a `TryScenario`.
    pub fn tried(&mut self, answer: Result<crate::scenario::TryReport, String>) {
        self.pending.tries.push(answer);
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Whether a flush is due at `now`, given that `dirty` connections have
    /// counters to report.
    pub fn due(&self, now: Instant, dirty: bool) -> bool {
        let has_data = dirty || self.resync_owed || !self.pending.is_empty() || self.tap_pending();
        (has_data && now.duration_since(self.last_flush) >= self.flush_interval)
            || self.pending.events.len() >= MAX_BATCH_EVENTS
    }

    /// When the loop must wake up next for the publisher's sake.
    pub fn deadline(&self, dirty: bool) -> Option<Instant> {
        let has_data = dirty || self.resync_owed || !self.pending.is_empty() || self.tap_pending();
        let flush = has_data.then(|| self.last_flush + self.flush_interval);
        let notify = self.notify_owed.then(|| self.last_notify + NOTIFY_INTERVAL);
        match (flush, notify) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Send what is pending, with the counters `build` makes (told whether
    /// to resynchronise). `build` runs only if the consumer has room, so a
    /// stalled consumer costs no counter building. Returns whether the
    /// batch was handed over (or nobody listens any more).
    pub fn flush(&mut self, now: Instant, build: impl FnOnce(bool) -> CountersOut) -> bool {
        self.last_flush = now;
        if self.disconnected {
            self.record_events_only();
            self.pending.events.clear();
            self.pending.counters.clear();
            return true;
        }
        if self.tx.is_full() {
            // The engine thread is the only sender: with room now, the
            // send below cannot fail for lack of it.
            self.record_events_only();
            self.dropped_events += self.pending.events.len() as u64;
            self.pending.events.clear();
            self.resync_owed = true;
            return false;
        }
        let resync = self.resync_owed;
        let out = build(resync);
        let mut batch = std::mem::take(&mut self.pending);
        batch.counters.extend(out.counters);
        batch.open_conns = out.open_conns;
        if batch.is_empty() {
            self.pending = batch;
            if let Some(tap) = &mut self.tap {
                tap.send(None);
            }
            return true;
        }
        self.seq += 1;
        batch.seq = self.seq;
        batch.dropped_events = self.dropped_events;
        if let Some(tap) = &mut self.tap {
            // What the consumer is told, less the inspector's snapshots
            // (the recording has every byte) and try-out answers.
            tap.send(Some(Batch {
                seq: batch.seq,
                events: batch.events.clone(),
                counters: batch.counters.clone(),
                stats: batch.stats.clone(),
                details: Vec::new(),
                dropped_events: batch.dropped_events,
                open_conns: batch.open_conns.clone(),
                tries: Vec::new(),
            }));
        }
        let sent_events = batch.events.len();
        let wake = !(self.heartbeat_only
            && batch.events.is_empty()
            && batch.counters.is_empty()
            && batch.details.is_empty()
            && batch.tries.is_empty());
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.heartbeat_only = false;
                self.resync_owed &= !resync;
                // The next batch will likely be as big: allocate once (but
                // do not pin a burst's worth of memory while idle).
                self.pending.events = Vec::with_capacity(sent_events.min(1024));
                if wake {
                    self.owe_notify(now);
                }
                true
            }
            Err(TrySendError::Full(batch)) => {
                // Unreachable while this thread is the only sender; if it
                // ever happens, lose the events and resynchronise.
                self.dropped_events += batch.events.len() as u64;
                self.pending.stats = batch.stats;
                self.pending.details = batch.details;
                self.pending.tries = batch.tries;
                self.resync_owed = true;
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.disconnected = true;
                true
            }
        }
    }

    /// Make the next batch resynchronise its consumer (and so start a
    /// recording with every open connection's counters).
    pub fn owe_resync(&mut self) {
        self.resync_owed = true;
    }

    fn tap_pending(&self) -> bool {
        self.tap.as_ref().is_some_and(|t| t.has_pending())
    }

    /// The consumer cannot take this flush: the recording still gets its
    /// events (counters and stats are latest values, and reach it with the
    /// next batch that goes out).
    fn record_events_only(&mut self) {
        if let Some(tap) = &mut self.tap {
            let batch = (!self.pending.events.is_empty()).then(|| Batch {
                events: self.pending.events.clone(),
                ..Batch::default()
            });
            tap.send(batch);
        }
    }

    /// Bytes that moved on a connection, for the recording (if one is on).
    #[inline]
    pub fn record_bytes(
        &mut self,
        at: crate::protocol::Micros,
        conn: ConnId,
        dir: crate::protocol::Direction,
        bytes: &[u8],
    ) {
        if let Some(tap) = &mut self.tap {
            tap.bytes(at, conn, dir, bytes);
        }
    }

    /// Run the notify callback if it is owed and not too soon after the last.
    pub fn poll_notify(&mut self, now: Instant) {
        if self.notify_owed && now.duration_since(self.last_notify) >= NOTIFY_INTERVAL {
            self.owe_notify(now);
        }
    }

    fn owe_notify(&mut self, now: Instant) {
        let Some(notify) = &self.notify else { return };
        if now.duration_since(self.last_notify) >= NOTIFY_INTERVAL {
            notify();
            self.last_notify = now;
            self.notify_owed = false;
        } else {
            self.notify_owed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EngineStats, EventKind, Mode};

    fn none(_resync: bool) -> CountersOut {
        CountersOut::default()
    }

    fn ev(at: u64) -> Event {
        Event {
            at,
            conn: None,
            kind: EventKind::ModeChanged { mode: Mode::Echo },
        }
    }

    #[test]
    fn full_channel_drops_and_counts_events_but_never_blocks() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut p = Publisher::new(tx, None, Duration::ZERO);
        let now = Instant::now();
        p.event(ev(1));
        assert!(p.flush(now, none));
        p.event(ev(2));
        p.event(ev(3));
        assert!(!p.flush(now, none), "channel is full");
        assert_eq!(p.dropped_events(), 2);
        let first = rx.try_recv().unwrap();
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.dropped_events, 0);
        p.event(ev(4));
        assert!(p.flush(now, none));
        let second = rx.try_recv().unwrap();
        assert_eq!(second.events, vec![ev(4)]);
        assert_eq!(
            second.dropped_events, 2,
            "the drop count reaches the consumer"
        );
    }

    #[test]
    fn after_a_loss_the_next_batch_resynchronises_and_held_finals_are_bounded() {
        use crate::protocol::{CloseReason, ConnState};
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut p = Publisher::new(tx, None, Duration::ZERO);
        let now = Instant::now();
        let resyncs = std::cell::Cell::new(0);
        let build = |resync: bool| {
            resyncs.set(resyncs.get() + resync as u32);
            CountersOut {
                counters: Vec::new(),
                open_conns: resync.then(Vec::new),
            }
        };
        assert!(p.flush(now, build), "the first batch goes out");
        assert_eq!(resyncs.get(), 1, "and resynchronises");
        assert!(rx.try_recv().unwrap().open_conns.is_some());

        // The consumer stalls with a batch in hand while clients close.
        p.event(ev(1));
        assert!(p.flush(now, build));
        let peer = "127.0.0.1:1".parse().unwrap();
        for id in 0..(MAX_HELD_FINALS as u64 * 3) {
            let mut last = ConnCounters::opened(crate::protocol::ConnId(id), peer, 0);
            last.state = ConnState::Closed(CloseReason::PeerClosed);
            p.final_counters(last);
        }
        p.event(ev(2));
        assert!(!p.flush(now, build), "channel full");
        assert_eq!(resyncs.get(), 1, "no counters are built for a full channel");
        assert!(
            p.pending.counters.len() <= MAX_HELD_FINALS,
            "held finals are bounded"
        );

        rx.try_recv().unwrap();
        assert!(p.flush(now, build));
        assert_eq!(resyncs.get(), 2, "the batch after the loss resynchronises");
        let batch = rx.try_recv().unwrap();
        assert!(batch.open_conns.is_some());
        assert_eq!(batch.dropped_events, 1);
        assert!(!p.resync_owed());
    }

    fn stats() -> EngineStats {
        EngineStats::default()
    }

    #[test]
    fn heartbeats_are_delivered_without_waking_the_consumer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = woken.clone();
        let notify: Notify = Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let (tx, rx) = crossbeam_channel::bounded(8);
        let mut p = Publisher::new(tx, Some(notify), Duration::ZERO);
        let later = |ms| Instant::now() + Duration::from_millis(ms);

        p.stats(stats(), true);
        assert!(p.flush(later(100), none));
        assert!(
            rx.try_recv().unwrap().stats.is_some(),
            "heartbeat delivered"
        );
        assert_eq!(woken.load(Ordering::Relaxed), 0, "but nobody woken");

        p.stats(stats(), false);
        assert!(p.flush(later(200), none));
        assert_eq!(woken.load(Ordering::Relaxed), 1, "real news wakes");

        p.stats(stats(), true);
        p.event(ev(1));
        assert!(p.flush(later(300), none));
        assert_eq!(
            woken.load(Ordering::Relaxed),
            2,
            "a heartbeat with events wakes"
        );
    }
}
