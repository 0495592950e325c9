//! The fan-out thread: engine batches in, one encoded frame per batch out to
//! every viewer's bounded queue, never waiting on any of them.
//!
//! Each batch is encoded once and the same bytes (`Arc`) go to every viewer
//! that kept up. A viewer whose queue is full gets the publisher's treatment
//! (see `engine::publish`): the batch's events are dropped and counted for
//! it, its latest-value data (counters, stats, inspector snapshots) is kept
//! and merged with later batches, and it is sent all of that, plus the new
//! events, once its queue has room. Its frames then carry `dropped_events`
//! raised by what it alone missed, so its window shows the gap.
//!
//! What a viewer is owed is bounded: past [`Limits::owed_counters`]
//! connections it stops collecting counters and is owed a *resync*
//! instead: the snapshot below, sent once it has room. A closed
//! connection's final counters are therefore never dropped silently: either
//! they reach the viewer, or a resync's `open_conns` tells it the
//! connection is gone (it shows it closed, reason `Missed`).
//!
//! A viewer that attaches late first gets that snapshot too: the counters of
//! every live connection (and of recently closed ones), the list of live
//! ids, and the latest stats, since the engine only reports connections
//! when they change.
//!
//! Each viewer's queue is bounded in frames and in bytes (`queued`, which
//! the io thread lowers as it takes frames).

use super::wire::encode_batch;
use crate::protocol::{Batch, ConnCounters, ConnDetail, ConnId, ConnState, EngineStats};
use crossbeam_channel::{Receiver, Sender, TrySendError, select};
use mio::Waker;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// One encoded batch, shared by every viewer it goes to.
pub type Frame = Arc<[u8]>;

/// How often a viewer that fell behind is offered what it is owed when no
/// new batch comes along.
const RETRY: Duration = Duration::from_millis(25);
/// Closed connections a late viewer still sees in its snapshot.
const RECENTLY_CLOSED: usize = 256;
/// Inspector snapshots owed to one viewer (the UI keeps as many).
const MAX_OWED_DETAILS: usize = 32;

/// How much a viewer may have queued, and be owed.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of frames queued for one viewer (one frame always fits).
    pub queue_bytes: usize,
    /// Connections whose counters one viewer may be owed before it is
    /// owed a resync instead.
    pub owed_counters: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_bytes: 4 << 20,
            owed_counters: 4096,
        }
    }
}

/// What the io thread tells the fan-out thread.
pub enum ToFanout {
    /// A new viewer; its frames go to `frames`, and `queued` counts their
    /// bytes until the io thread takes them. It is forgotten once `gone`
    /// is set or the receiving end is dropped.
    Attach {
        frames: Sender<Frame>,
        queued: Arc<AtomicUsize>,
        gone: Arc<AtomicBool>,
    },
}

/// Latest-value data a viewer has not been sent yet.
#[derive(Default)]
struct Owed {
    counters: HashMap<ConnId, ConnCounters>,
    stats: Option<EngineStats>,
    details: HashMap<ConnId, ConnDetail>,
    /// The latest answer to a scenario try-out, if one is owed.
    tried: Option<Result<crate::scenario::TryReport, String>>,
    /// Too much was owed (or the engine resynchronised): the viewer gets
    /// the whole present instead of `counters`.
    resync: bool,
}

impl Owed {
    fn absorb(&mut self, batch: &Batch, limits: &Limits) {
        if batch.open_conns.is_some() {
            self.resync = true;
        }
        if !self.resync {
            for c in &batch.counters {
                self.counters.insert(c.id, c.clone());
            }
            if self.counters.len() > limits.owed_counters {
                self.counters = HashMap::new();
                self.resync = true;
            }
        } else if !self.counters.is_empty() {
            self.counters = HashMap::new();
        }
        if let Some(s) = &batch.stats {
            self.stats = Some(s.clone());
        }
        for d in &batch.details {
            if self.details.len() >= MAX_OWED_DETAILS && !self.details.contains_key(&d.counters.id)
            {
                self.details.clear();
            }
            self.details.insert(d.counters.id, d.clone());
        }
        if let Some(answer) = batch.tries.last() {
            self.tried = Some(answer.clone());
        }
    }

    fn into_batch(self, seq: u64, present: &Present) -> Batch {
        let details = self.details.into_values().collect();
        let tries: Vec<_> = self.tried.into_iter().collect();
        if self.resync {
            return Batch {
                seq,
                details,
                tries,
                ..present.snapshot()
            };
        }
        let mut counters: Vec<ConnCounters> = self.counters.into_values().collect();
        counters.sort_by_key(|c| c.id);
        Batch {
            seq,
            events: Vec::new(),
            counters,
            stats: self.stats,
            details,
            dropped_events: 0,
            open_conns: None,
            tries,
        }
    }
}

struct Viewer {
    frames: Sender<Frame>,
    /// Bytes of frames queued and not yet taken by the io thread.
    queued: Arc<AtomicUsize>,
    gone: Arc<AtomicBool>,
    /// Events this viewer missed because its queue was full (cumulative).
    dropped: u64,
    owed: Option<Owed>,
}

impl Viewer {
    fn has_room(&self, limits: &Limits) -> bool {
        !self.frames.is_full() && self.queued.load(Ordering::Relaxed) < limits.queue_bytes
    }

    /// Queue `frame`; `Err(true)` if the viewer is gone.
    fn send(&self, frame: Frame) -> Result<(), bool> {
        let len = frame.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        match self.frames.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                Err(matches!(e, TrySendError::Disconnected(_)))
            }
        }
    }

    fn fell_behind(&mut self, batch: &Batch, limits: &Limits) {
        self.dropped += batch.events.len() as u64;
        self.owed
            .get_or_insert_with(Owed::default)
            .absorb(batch, limits);
    }
}

/// What a late viewer needs to see the present.
#[derive(Default)]
struct Present {
    live: HashMap<ConnId, ConnCounters>,
    closed: VecDeque<ConnCounters>,
    stats: Option<EngineStats>,
    seq: u64,
    engine_dropped: u64,
}

impl Present {
    fn absorb(&mut self, batch: &Batch) {
        self.seq = batch.seq;
        self.engine_dropped = batch.dropped_events;
        if let Some(open) = &batch.open_conns {
            // The engine resynchronised us: what it does not list is gone.
            let open: std::collections::HashSet<ConnId> = open.iter().copied().collect();
            self.live.retain(|id, _| open.contains(id));
        }
        for c in &batch.counters {
            if matches!(c.state, ConnState::Closed(_)) {
                self.live.remove(&c.id);
                if self.closed.len() >= RECENTLY_CLOSED {
                    self.closed.pop_front();
                }
                self.closed.push_back(c.clone());
            } else {
                self.live.insert(c.id, c.clone());
            }
        }
        if let Some(s) = &batch.stats {
            self.stats = Some(s.clone());
        }
    }

    fn snapshot(&self) -> Batch {
        let mut counters: Vec<ConnCounters> = self.closed.iter().cloned().collect();
        let mut live: Vec<ConnCounters> = self.live.values().cloned().collect();
        live.sort_by_key(|c| c.id);
        let open = live.iter().map(|c| c.id).collect();
        counters.extend(live);
        Batch {
            seq: self.seq,
            events: Vec::new(),
            counters,
            stats: self.stats.clone(),
            details: Vec::new(),
            dropped_events: self.engine_dropped,
            open_conns: Some(open),
            tries: Vec::new(),
        }
    }

    /// The engine's clock as of the newest data.
    fn clock(batch: &Batch) -> Option<u64> {
        let event = batch.events.last().map(|e| e.at);
        let stats = batch.stats.as_ref().map(|s| s.at);
        event.max(stats)
    }
}

#[derive(Default)]
pub struct Fanout {
    viewers: Vec<Viewer>,
    present: Present,
    limits: Limits,
    /// The engine's clock as of the newest batch, for notices the io
    /// thread writes to one viewer.
    clock: Arc<AtomicU64>,
}

impl Fanout {
    pub fn new(limits: Limits, clock: Arc<AtomicU64>) -> Self {
        Fanout {
            limits,
            clock,
            ..Fanout::default()
        }
    }

    pub fn attach(
        &mut self,
        frames: Sender<Frame>,
        queued: Arc<AtomicUsize>,
        gone: Arc<AtomicBool>,
    ) {
        let viewer = Viewer {
            frames,
            queued,
            gone,
            dropped: 0,
            owed: None,
        };
        // A fresh queue has room, unless it was made with none.
        if viewer
            .send(encode_batch(&self.present.snapshot()).into())
            .is_ok()
        {
            self.viewers.push(viewer);
        }
    }

    /// Connections whose counters viewers are owed, in all.
    #[cfg(test)]
    fn owed_counters(&self) -> usize {
        self.viewers
            .iter()
            .filter_map(|v| v.owed.as_ref())
            .map(|o| o.counters.len())
            .sum()
    }

    #[cfg(test)]
    fn viewers(&self) -> usize {
        self.viewers.len()
    }

    fn any_owed(&self) -> bool {
        self.viewers.iter().any(|v| v.owed.is_some())
    }

    /// Offer `batch` to every viewer. Returns it (for a local consumer) and
    /// whether any frame was queued.
    pub fn broadcast(&mut self, batch: Batch) -> (Batch, bool) {
        let mut batch = batch;
        self.present.absorb(&batch);
        if let Some(at) = Present::clock(&batch) {
            self.clock.fetch_max(at, Ordering::Relaxed);
        }
        let engine_dropped = batch.dropped_events;
        let limits = self.limits;
        let present = &self.present;
        // Frames by the `dropped_events` they carry: nearly always just one.
        let mut encoded: Vec<(u64, Frame)> = Vec::new();
        let mut sent = false;
        self.viewers.retain_mut(|v| {
            if v.gone.load(Ordering::Relaxed) {
                return false;
            }
            if !v.has_room(&limits) {
                v.fell_behind(&batch, &limits);
                return true;
            }
            // Only this thread sends, so a queue with room takes the next
            // frame.
            let frame = match v.owed.take() {
                None => {
                    let dropped = engine_dropped + v.dropped;
                    match encoded.iter().find(|(d, _)| *d == dropped) {
                        Some((_, f)) => f.clone(),
                        None => {
                            batch.dropped_events = dropped;
                            let f: Frame = encode_batch(&batch).into();
                            encoded.push((dropped, f.clone()));
                            f
                        }
                    }
                }
                Some(mut owed) => {
                    // Catching up: what it is owed, updated, plus these events.
                    owed.absorb(&batch, &limits);
                    let mut merged = owed.into_batch(batch.seq, present);
                    merged.events = batch.events.clone();
                    merged.dropped_events = engine_dropped + v.dropped;
                    encode_batch(&merged).into()
                }
            };
            match v.send(frame) {
                Ok(()) => {
                    sent = true;
                    true
                }
                Err(false) => {
                    // Full after all: it is owed a resync (what it was owed
                    // went into the frame that did not fit).
                    v.fell_behind(&batch, &limits);
                    v.owed.get_or_insert_with(Owed::default).resync = true;
                    true
                }
                Err(true) => false,
            }
        });
        batch.dropped_events = engine_dropped;
        (batch, sent)
    }

    /// Deliver what viewers that fell behind are owed, where there is room.
    /// Returns whether any frame was queued.
    pub fn retry_owed(&mut self) -> bool {
        let seq = self.present.seq;
        let engine_dropped = self.present.engine_dropped;
        let limits = self.limits;
        let present = &self.present;
        let mut sent = false;
        self.viewers.retain_mut(|v| {
            if v.gone.load(Ordering::Relaxed) {
                return false;
            }
            if v.owed.is_none() || !v.has_room(&limits) {
                return true;
            }
            let owed = v.owed.take().unwrap_or_default();
            let mut batch = owed.into_batch(seq, present);
            batch.dropped_events = engine_dropped + v.dropped;
            match v.send(encode_batch(&batch).into()) {
                Ok(()) => {
                    sent = true;
                    true
                }
                Err(false) => {
                    v.owed = Some(Owed {
                        resync: true,
                        ..Owed::default()
                    });
                    true
                }
                Err(true) => false,
            }
        });
        sent
    }
}

/// The thread body. Ends when the engine stops (its batch channel closes)
/// or the io thread is gone.
pub fn run(
    batches: Receiver<Batch>,
    control: Receiver<ToFanout>,
    relay: Sender<Batch>,
    wake: Arc<Waker>,
    mut fanout: Fanout,
) {
    loop {
        let timeout = if fanout.any_owed() {
            RETRY
        } else {
            Duration::from_secs(1)
        };
        let sent = select! {
            recv(batches) -> batch => match batch {
                Ok(batch) => {
                    // A viewer attached before this batch came (it is
                    // counted as attached once it asked) gets it.
                    while let Ok(ToFanout::Attach { frames, queued, gone }) = control.try_recv() {
                        fanout.attach(frames, queued, gone);
                    }
                    let (batch, sent) = fanout.broadcast(batch);
                    // The local consumer (headless summary) is best-effort.
                    let _ = relay.try_send(batch);
                    sent
                }
                Err(_) => break,
            },
            recv(control) -> msg => match msg {
                Ok(ToFanout::Attach { frames, queued, gone }) => {
                    fanout.attach(frames, queued, gone);
                    true
                }
                Err(_) => break,
            },
            default(timeout) => fanout.retry_owed(),
        };
        if sent {
            let _ = wake.wake();
        }
    }
    // Dropping the viewers' queues tells the io thread the stream ended.
    drop(fanout);
    let _ = wake.wake();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::wire::decode_batch;
    use crate::protocol::{CloseReason, Event, EventKind, Mode};

    fn counters(id: u64, rx: u64, state: ConnState) -> ConnCounters {
        ConnCounters {
            state,
            rx_bytes: rx,
            ..ConnCounters::opened(ConnId(id), "127.0.0.1:4000".parse().unwrap(), 0)
        }
    }

    fn batch(seq: u64, events: usize, conn: Option<ConnCounters>) -> Batch {
        Batch {
            seq,
            events: (0..events)
                .map(|i| Event {
                    at: i as u64,
                    conn: None,
                    kind: EventKind::ModeChanged { mode: Mode::Echo },
                })
                .collect(),
            counters: conn.into_iter().collect(),
            ..Batch::default()
        }
    }

    fn recv(rx: &Receiver<Frame>) -> Batch {
        decode_batch(&rx.try_recv().expect("a frame")).unwrap()
    }

    #[test]
    fn slow_viewer_loses_events_not_counters_and_fast_viewer_loses_nothing() {
        let mut f = Fanout::default();
        let (fast_tx, fast) = crossbeam_channel::bounded(100);
        let (slow_tx, slow) = crossbeam_channel::bounded(2);
        f.attach(fast_tx, Default::default(), Default::default());
        f.attach(slow_tx, Default::default(), Default::default());
        assert_eq!(
            recv(&fast),
            Batch {
                open_conns: Some(vec![]),
                ..Batch::default()
            },
            "empty snapshot"
        );
        // `slow` keeps its snapshot queued: one slot left.
        f.broadcast(batch(1, 3, Some(counters(1, 10, ConnState::Open))));
        f.broadcast(batch(2, 4, Some(counters(1, 20, ConnState::Open))));
        f.broadcast(batch(3, 5, Some(counters(2, 5, ConnState::Open))));
        for seq in 1..=3 {
            let b = recv(&fast);
            assert_eq!((b.seq, b.dropped_events), (seq, 0));
        }
        let _snapshot = recv(&slow);
        let b1 = recv(&slow);
        assert_eq!(b1.events.len(), 3);
        assert!(slow.try_recv().is_err(), "batches 2 and 3 did not fit");
        // Room again: the next batch carries the owed counters, its own
        // events and the count of what was dropped.
        let (_, sent) = f.broadcast(batch(4, 1, None));
        assert!(sent);
        let b = recv(&slow);
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.dropped_events, 9);
        let rx: Vec<_> = b.counters.iter().map(|c| (c.id.0, c.rx_bytes)).collect();
        assert_eq!(rx, vec![(1, 20), (2, 5)]);
        assert_eq!(
            recv(&fast).dropped_events,
            0,
            "the fast viewer is unaffected"
        );
    }

    #[test]
    fn owed_data_is_retried_without_new_batches() {
        let mut f = Fanout::default();
        let (tx, rx) = crossbeam_channel::bounded(1);
        f.attach(tx, Default::default(), Default::default());
        f.broadcast(batch(1, 2, Some(counters(7, 1, ConnState::Open))));
        assert!(f.any_owed());
        assert!(!f.retry_owed(), "still full");
        let _snapshot = recv(&rx);
        assert!(f.retry_owed());
        let b = recv(&rx);
        assert_eq!((b.events.len(), b.dropped_events), (0, 2));
        assert_eq!(b.counters[0].rx_bytes, 1);
    }

    #[test]
    fn late_viewer_sees_live_connections_and_stats() {
        let mut f = Fanout::default();
        f.broadcast(batch(1, 0, Some(counters(1, 1, ConnState::Open))));
        f.broadcast(batch(2, 0, Some(counters(2, 1, ConnState::Open))));
        f.broadcast(batch(
            3,
            0,
            Some(counters(
                1,
                1,
                ConnState::Closed(crate::protocol::CloseReason::PeerClosed),
            )),
        ));
        let (tx, rx) = crossbeam_channel::bounded(4);
        f.attach(tx, Default::default(), Default::default());
        let snap = recv(&rx);
        let ids: Vec<_> = snap
            .counters
            .iter()
            .map(|c| (c.id.0, c.state.clone()))
            .collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], (2, ConnState::Open), "closed rows first, then live");
        assert_eq!(snap.open_conns, Some(vec![ConnId(2)]));
    }

    /// A stalled viewer is owed at most `owed_counters` connections; past
    /// that it is owed a resync, which lists the live connections and holds
    /// their counters and the recently closed ones.
    #[test]
    fn what_a_stalled_viewer_is_owed_is_bounded_and_ends_in_a_resync() {
        let limits = Limits {
            owed_counters: 100,
            ..Limits::default()
        };
        let mut f = Fanout::new(limits, Default::default());
        let (tx, rx) = crossbeam_channel::bounded(1);
        f.attach(tx, Default::default(), Default::default());
        f.broadcast(batch(1, 0, Some(counters(1, 5, ConnState::Open))));
        for id in 2..10_000 {
            f.broadcast(batch(id, 1, Some(counters(id, 1, ConnState::Open))));
            f.broadcast(batch(
                id,
                1,
                Some(counters(id, 1, ConnState::Closed(CloseReason::PeerClosed))),
            ));
            assert!(f.owed_counters() <= 101, "{}", f.owed_counters());
        }
        f.broadcast(batch(20_000, 0, Some(counters(20_000, 9, ConnState::Open))));
        let _snapshot = recv(&rx);
        assert!(f.retry_owed());
        let b = recv(&rx);
        assert_eq!(b.open_conns, Some(vec![ConnId(1), ConnId(20_000)]));
        assert_eq!(b.dropped_events, 2 * 9998);
        let live: Vec<_> = b
            .counters
            .iter()
            .filter(|c| c.state == ConnState::Open)
            .map(|c| (c.id.0, c.rx_bytes))
            .collect();
        assert_eq!(live, vec![(1, 5), (20_000, 9)]);
        let closed = b.counters.len() - live.len();
        assert_eq!(closed, RECENTLY_CLOSED, "the most recent closes come along");
        assert_eq!(f.owed_counters(), 0);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let limits = Limits {
            queue_bytes: 1000,
            ..Limits::default()
        };
        let mut f = Fanout::new(limits, Default::default());
        let (tx, rx) = crossbeam_channel::bounded(1000);
        let queued = Arc::new(AtomicUsize::new(0));
        f.attach(tx, queued.clone(), Default::default());
        for seq in 1..=100 {
            f.broadcast(batch(seq, 50, None));
        }
        let held = queued.load(Ordering::Relaxed);
        let frames = rx.len();
        assert!(frames < 20, "{frames} frames held");
        assert!(held < 1000 + 1000, "{held} bytes held");
        let total: usize = rx.try_iter().map(|f| f.len()).sum();
        assert_eq!(total, held, "queued counts the bytes in the queue");
    }

    #[test]
    fn gone_viewers_are_forgotten() {
        let mut f = Fanout::default();
        let (tx, rx) = crossbeam_channel::bounded(4);
        f.attach(tx, Default::default(), Default::default());
        drop(rx);
        f.broadcast(batch(1, 1, None));
        assert_eq!(f.viewers(), 0, "receiver dropped");
        // Marked gone while its queue is full: forgotten all the same.
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let gone = Arc::new(AtomicBool::new(false));
        f.attach(tx, Default::default(), gone.clone());
        f.broadcast(batch(2, 1, None));
        assert_eq!(f.viewers(), 1);
        gone.store(true, Ordering::Relaxed);
        f.broadcast(batch(3, 1, None));
        assert_eq!(f.viewers(), 0, "gone");
    }
}
