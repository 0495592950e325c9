//! The engine's side of a recording: it copies the bytes each read and
//! write moved and each batch the publisher hands over, and passes them to
//! the writer thread (`record::writer`) once per flush. It never waits: when
//! the writer's channel is full, what could not go is counted per
//! connection and direction, and the count is written as soon as there is
//! room. Nothing here runs while no recording is on.

use crate::protocol::{Batch, ConnId, Direction, EventKind, Micros, RecordingStatus};
use crate::record::writer::{self, Progress, Recording, RecordingConfig, TapMsg};
use crate::record::{ConnLoss, DataChunk, Loss};

use crossbeam_channel::{Sender, TrySendError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// Bytes gathered between flushes beyond which they are handed over at
/// once, which bounds the tap's memory under a bulk transfer.
const EAGER_BYTES: usize = 4 << 20;

pub struct RecordTap {
    tx: Sender<TapMsg>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
    started_at: Micros,
    data: Vec<DataChunk>,
    data_bytes: usize,
    /// What could not be handed over since the last successful send.
    lost: Loss,
    lost_by_conn: HashMap<ConnId, (u64, u64)>,
    /// The writer is gone (it stopped on its own): nothing more is sent.
    gone: bool,
}

impl RecordTap {
    pub fn start(
        config: RecordingConfig,
        engine_started_unix_ms: u64,
        now: Micros,
    ) -> Result<RecordTap, String> {
        let Recording {
            tx,
            progress,
            thread,
        } = writer::start(config, engine_started_unix_ms, now)?;
        Ok(RecordTap::over(tx, progress, Some(thread), now))
    }

    fn over(
        tx: Sender<TapMsg>,
        progress: Arc<Progress>,
        thread: Option<JoinHandle<()>>,
        now: Micros,
    ) -> RecordTap {
        RecordTap {
            tx,
            progress,
            thread,
            started_at: now,
            data: Vec::new(),
            data_bytes: 0,
            lost: Loss::default(),
            lost_by_conn: HashMap::new(),
            gone: false,
        }
    }

    /// Bytes that moved on `conn`.
    #[inline]
    pub fn bytes(&mut self, at: Micros, conn: ConnId, dir: Direction, bytes: &[u8]) {
        if self.gone || bytes.is_empty() {
            return;
        }
        self.data_bytes += bytes.len();
        self.data.push(DataChunk {
            at,
            conn,
            dir,
            bytes: bytes.to_vec(),
        });
        if self.data_bytes >= EAGER_BYTES {
            self.send(None);
        }
    }

    /// Whether bytes wait for the next flush.
    pub fn has_pending(&self) -> bool {
        !self.data.is_empty()
    }

    /// Hand over one flush: the batch the consumer got (or the events it
    /// could not get), and the bytes gathered since the last.
    pub fn send(&mut self, batch: Option<Batch>) {
        if self.gone {
            return;
        }
        if batch.is_none() && self.data.is_empty() {
            return;
        }
        if self.tx.is_full() {
            self.count_lost(batch.as_ref());
            return;
        }
        let loss = self.has_loss().then(|| self.take_loss());
        let msg = TapMsg::Flush {
            batch: batch.map(Box::new),
            data: std::mem::take(&mut self.data),
            loss,
        };
        self.data_bytes = 0;
        match self.tx.try_send(msg) {
            Ok(()) => {}
            // This thread is the only sender, so it cannot be full now.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => self.gone = true,
        }
    }

    fn count_lost(&mut self, batch: Option<&Batch>) {
        let times = batch
            .into_iter()
            .flat_map(|b| b.events.iter().map(|e| e.at))
            .chain(self.data.iter().map(|d| d.at));
        let (from, to) = times.fold((Micros::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
        if !self.has_loss() {
            self.lost.from = from;
        }
        self.lost.to = self.lost.to.max(to);
        self.lost.events += batch.map_or(0, |b| b.events.len() as u64);
        for d in self.data.drain(..) {
            let entry = self.lost_by_conn.entry(d.conn).or_default();
            match d.dir {
                Direction::Rx => entry.0 += d.bytes.len() as u64,
                Direction::Tx => entry.1 += d.bytes.len() as u64,
            }
        }
        self.data_bytes = 0;
    }

    fn has_loss(&self) -> bool {
        self.lost.events > 0 || !self.lost_by_conn.is_empty()
    }

    fn take_loss(&mut self) -> Loss {
        let mut loss = std::mem::take(&mut self.lost);
        loss.conns = self
            .lost_by_conn
            .drain()
            .map(|(conn, (rx, tx))| ConnLoss { conn, rx, tx })
            .collect();
        loss.conns.sort_by_key(|c| c.conn);
        loss
    }

    /// What a viewer shows of this recording.
    pub fn status(&self) -> RecordingStatus {
        let p = &self.progress;
        let pending = self.lost_by_conn.values().map(|(r, t)| r + t).sum::<u64>();
        RecordingStatus {
            path: p
                .path
                .lock()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            started_at: self.started_at,
            bytes: p.bytes.load(Ordering::Relaxed),
            part: p.part.load(Ordering::Relaxed) as u32,
            lost_events: p.lost_events.load(Ordering::Relaxed) + self.lost.events,
            lost_bytes: p.lost_bytes.load(Ordering::Relaxed) + pending,
            ended: p.ended(),
        }
    }

    /// Whether the writer stopped on its own (cap, disk error).
    pub fn ended(&self) -> bool {
        self.gone || self.progress.ended().is_some()
    }

    /// Close the file with `reason` and wait for the writer to finish it.
    pub fn stop(mut self, now: Micros, reason: &str) -> RecordingStatus {
        self.send(None);
        // Blocking here is bounded: the writer drains what is queued (it
        // never waits on the engine), then closes the file.
        let _ = self.tx.send(TapMsg::Stop {
            at: now,
            reason: reason.to_owned(),
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut status = self.status();
        status.ended.get_or_insert_with(|| reason.to_owned());
        status
    }
}

impl super::event_loop::EventLoop {
    /// Start recording into `config.path`, closing a recording that is on.
    pub(super) fn start_recording(&mut self, config: RecordingConfig) {
        self.stop_recording("a new recording started");
        let path = config.path.display().to_string();
        match RecordTap::start(config, self.started_unix_ms, self.now) {
            Ok(tap) => {
                self.publisher.tap = Some(tap);
                // The recording starts from a full picture: every open
                // connection's counters go out with the next batch.
                self.publisher.owe_resync();
                self.emit(None, EventKind::RecordingStarted { path });
            }
            Err(why) => {
                self.emit(None, EventKind::RecordingStopped { why: why.clone() });
                self.last_recording = Some(RecordingStatus {
                    path,
                    started_at: self.now,
                    ended: Some(why),
                    ..RecordingStatus::default()
                });
            }
        }
    }

    /// Close the recording (if one is on), saying why in its file.
    pub(super) fn stop_recording(&mut self, reason: &str) {
        if self.publisher.tap.is_none() {
            return;
        }
        // The stop event goes into the file as its last event.
        self.emit(
            None,
            EventKind::RecordingStopped {
                why: reason.to_owned(),
            },
        );
        self.publish(std::time::Instant::now(), true);
        if let Some(tap) = self.publisher.tap.take() {
            self.last_recording = Some(tap.stop(self.now, reason));
        }
    }

    /// The recording's status for the stats; a writer that stopped on its
    /// own (size cap, disk error) is closed here and its reason reported.
    pub(super) fn recording_status(&mut self) -> Option<Box<RecordingStatus>> {
        if let Some(tap) = &self.publisher.tap
            && tap.ended()
        {
            let why = tap
                .status()
                .ended
                .unwrap_or_else(|| "the recorder stopped".to_owned());
            if let Some(tap) = self.publisher.tap.take() {
                self.last_recording = Some(tap.stop(self.now, &why));
            }
            self.emit(None, EventKind::RecordingStopped { why });
        }
        match &self.publisher.tap {
            Some(tap) => Some(Box::new(tap.status())),
            None => self.last_recording.clone().map(Box::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, EventKind};

    fn batch(at: Micros, events: usize) -> Batch {
        Batch {
            events: (0..events)
                .map(|_| Event {
                    at,
                    conn: Some(ConnId(1)),
                    kind: EventKind::Read { n: 1 },
                })
                .collect(),
            ..Batch::default()
        }
    }

    /// A writer that cannot keep up: what the tap could not hand over is
    /// counted per connection and direction, never waited for, and goes
    /// into the file with the next flush that fits.
    #[test]
    fn a_full_channel_counts_exactly_what_was_lost_and_says_so_next() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut tap = RecordTap::over(tx, Arc::new(Progress::default()), None, 0);
        tap.bytes(10, ConnId(1), Direction::Rx, b"first");
        tap.send(Some(batch(10, 2)));
        // The writer is stuck: the channel holds that one flush.
        tap.bytes(20, ConnId(1), Direction::Rx, b"abc");
        tap.bytes(21, ConnId(2), Direction::Tx, b"defgh");
        tap.send(Some(batch(22, 3)));
        tap.bytes(30, ConnId(1), Direction::Tx, b"ij");
        tap.send(None);
        let status = tap.status();
        assert_eq!((status.lost_events, status.lost_bytes), (3, 10));

        let TapMsg::Flush {
            loss: None, data, ..
        } = rx.try_recv().unwrap()
        else {
            panic!("the first flush had no loss");
        };
        assert_eq!(data.len(), 1);
        tap.bytes(40, ConnId(1), Direction::Rx, b"after");
        tap.send(None);
        let TapMsg::Flush {
            loss: Some(loss),
            data,
            ..
        } = rx.try_recv().unwrap()
        else {
            panic!("the next flush says what was lost");
        };
        assert_eq!((loss.from, loss.to, loss.events), (20, 30, 3));
        assert_eq!(
            loss.conns,
            vec![
                ConnLoss {
                    conn: ConnId(1),
                    rx: 3,
                    tx: 2
                },
                ConnLoss {
                    conn: ConnId(2),
                    rx: 0,
                    tx: 5
                },
            ]
        );
        assert_eq!(data[0].bytes, b"after");
    }
}
