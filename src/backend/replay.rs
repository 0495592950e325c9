//! A recording (`*.muxrec`) as a backend: it feeds the monitor what the
//! engine reported, as of a playback position that plays, pauses, changes
//! speed and seeks. Panes do not know the difference, except that commands
//! that would steer an engine do nothing (the status says so).
//!
//! Seeking goes to the nearest keyframe at or before the target (the
//! writer puts one every few megabytes) and applies the records from there:
//! bounded work, whatever the size of the file. The inspector's transcript
//! is read back from the recorded bytes on demand, then followed as
//! playback goes on.

use super::{Backend, BackendStatus};
use crate::monitor::Monitor;
use crate::protocol::{Batch, Command, ConnDetail, ConnId, Direction, Micros, TranscriptChunk};
use crate::record::frame::Kind;
use crate::record::parts;
use crate::record::reader::{Damage, Reader, Source};
use crate::record::state::SessionState;
use crate::record::{Loss, Record, Trailer};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;
use web_time::Instant;

/// Bytes indexed per frame while a file is being opened.
const INDEX_BUDGET: u64 = 32 << 20;
/// Transcript bytes per direction the inspector gets (the engine's
/// default ring).
const TRANSCRIPT_LIMIT: u64 = 16 * 1024;
/// A transcript read back from the file stops after this much of the file
/// (older bytes count as not kept, as in the engine's rings): on a busy
/// recording one connection's 16 KiB may be spread over far more.
const TRANSCRIPT_SCAN: u64 = 16 << 20;
/// A jump to a connection's previous/next event searches this far.
const JUMP_SCAN: u64 = 256 << 20;
/// The plot's history, as the live plot keeps it.
const PLOT_HISTORY: Micros = 300_000_000;
pub const MIN_SPEED: f64 = 0.1;
pub const MAX_SPEED: f64 = 100.0;

/// Which way a jump goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Jump {
    Previous,
    Next,
}

/// The playback controls and what the timeline bar shows. The bar edits
/// it; the backend acts on it at the next drain.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub name: String,
    /// The file, when it was opened from one (not on the web).
    pub path: Option<std::path::PathBuf>,
    /// Engine times of the recording's first and last frame (the end
    /// grows while a big file is indexed).
    pub start: Micros,
    pub end: Micros,
    pub position: Micros,
    pub playing: bool,
    /// 0.1× to 100×.
    pub speed: f64,
    /// Set by the bar: go there.
    pub seek: Option<Micros>,
    /// Set by the bar: go to this connection's previous or next event.
    pub jump: Option<(ConnId, Jump)>,
    /// Share of the file indexed, while opening.
    pub indexed: f32,
    pub damage: Option<Damage>,
    /// What the recording lost (its writer fell behind), where.
    pub losses: Vec<Loss>,
    /// Wall-clock time of the engine's start, to show times of day.
    pub engine_started_unix_ms: u64,
    /// The last jump found nothing (shown until the next one).
    pub jump_missed: bool,
    /// Why the file became unreadable while playing, if it did.
    pub error: Option<String>,
    /// How the file ended, once indexing reached its last frame: `None`
    /// for one still being written, cut off, or damaged.
    pub trailer: Option<Trailer>,
    /// Which part of a rotated recording this file is (1: the first).
    pub part: u32,
    /// The rotated recording's parts before and after this one, as files
    /// next to it (only for a file opened from disk).
    pub previous_part: Option<PathBuf>,
    pub next_part: Option<PathBuf>,
    /// Set by the bar (or by playing past the end): open this part in
    /// place of this one, and play it if `true`. The app acts on it.
    pub open_part: Option<(PathBuf, bool)>,
}

pub struct ReplayBackend {
    reader: Reader<Box<dyn Source>>,
    pub timeline: Timeline,
    /// The monitor shows the session as of this time.
    applied: Micros,
    /// The next frame to apply, and what is left of the current one.
    cursor: usize,
    pending: VecDeque<Record>,
    state: SessionState,
    /// The monitor must be rebuilt from a keyframe.
    reset: bool,
    last_tick: Option<Instant>,
    /// The inspected connection's transcript, followed as playback goes.
    inspected: Option<Followed>,
    /// Details to hand to the monitor at the next drain.
    details: Vec<ConnDetail>,
    /// The inspected connection and position of the last detail made, so
    /// a paused playback does not remake it every frame.
    last_detail: Option<(ConnId, Micros)>,
}

/// One connection's recent bytes, both directions in order.
struct Followed {
    conn: ConnId,
    chunks: VecDeque<TranscriptChunk>,
    held: [u64; 2],
    /// Not followed since the position jumped: read back before use.
    stale: bool,
}

impl Followed {
    fn new(conn: ConnId) -> Self {
        Followed {
            conn,
            chunks: VecDeque::new(),
            held: [0; 2],
            stale: false,
        }
    }

    fn stale(conn: ConnId) -> Self {
        Followed {
            stale: true,
            ..Followed::new(conn)
        }
    }

    fn push(&mut self, chunk: TranscriptChunk) {
        let d = dir_slot(chunk.dir);
        self.held[d] += chunk.bytes.len() as u64;
        self.chunks.push_back(chunk);
        // Drop the oldest chunks of a direction beyond its limit.
        while self.held[d] > TRANSCRIPT_LIMIT {
            let Some(i) = self.chunks.iter().position(|c| dir_slot(c.dir) == d) else {
                break;
            };
            let c = self.chunks.remove(i).expect("found above");
            self.held[d] -= c.bytes.len() as u64;
        }
    }
}

fn dir_slot(dir: Direction) -> usize {
    match dir {
        Direction::Rx => 0,
        Direction::Tx => 1,
    }
}

impl std::fmt::Debug for ReplayBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayBackend")
            .field("timeline", &self.timeline)
            .finish_non_exhaustive()
    }
}

impl ReplayBackend {
    /// Open a recording; indexing goes on over the next drains.
    pub fn open(source: Box<dyn Source>, name: impl Into<String>) -> Result<Self, String> {
        let reader = Reader::open(source).map_err(|e| e.to_string())?;
        let start = reader.index.start;
        let timeline = Timeline {
            name: name.into(),
            path: None,
            start,
            end: start,
            position: start,
            playing: false,
            speed: 1.0,
            seek: None,
            jump: None,
            indexed: 0.0,
            damage: None,
            losses: Vec::new(),
            engine_started_unix_ms: reader.header.engine_started_unix_ms,
            jump_missed: false,
            error: None,
            trailer: None,
            part: reader.header.part,
            previous_part: None,
            next_part: None,
            open_part: None,
        };
        Ok(ReplayBackend {
            reader,
            timeline,
            applied: start,
            cursor: 0,
            pending: VecDeque::new(),
            state: SessionState::default(),
            reset: true,
            last_tick: None,
            inspected: None,
            details: Vec::new(),
            last_detail: None,
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_file(path: &std::path::Path) -> Result<Self, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open the recording {}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let mut replay = Self::open(Box::new(std::io::BufReader::new(file)), name)
            .map_err(|e| format!("cannot open the recording {}: {e}", path.display()))?;
        replay.timeline.previous_part = parts::previous_part(path, replay.timeline.part);
        replay.timeline.path = Some(path.to_owned());
        Ok(replay)
    }

    /// Open a recording held in memory (the web viewer's file input).
    pub fn open_bytes(bytes: Vec<u8>, name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        Self::open(Box::new(std::io::Cursor::new(bytes)), name.clone())
            .map_err(|e| format!("cannot open the recording {name}: {e}"))
    }

    /// Index until done (tests and exports; a window indexes per frame).
    pub fn index_all(&mut self) {
        self.reader.index_all();
        self.sync_index();
    }

    fn sync_index(&mut self) {
        let index = &self.reader.index;
        self.timeline.end = index.end;
        self.timeline.damage = index.damage.clone();
        if self.timeline.trailer.is_none()
            && let Some(trailer) = &index.trailer
        {
            self.timeline.next_part = match (&self.timeline.path, &trailer.next_part) {
                (Some(path), Some(name)) => parts::next_part(path, self.timeline.part, name),
                _ => None,
            };
            self.timeline.trailer = Some(trailer.clone());
        }
        self.timeline.indexed = if index.done || index.file_len == 0 {
            1.0
        } else {
            index.verified as f32 / index.file_len as f32
        };
    }

    /// Advance the playback clock by the real time since the last drain.
    fn tick(&mut self) {
        let now = Instant::now();
        if !self.timeline.playing {
            // Playing starts from the next drain, not from the last one
            // before it (which may be long ago in an idle window).
            self.last_tick = None;
            return;
        }
        let elapsed = self.last_tick.map(|t| now - t).unwrap_or_default();
        self.last_tick = Some(now);
        let step = (elapsed.as_secs_f64() * self.timeline.speed * 1e6) as Micros;
        self.timeline.position = (self.timeline.position + step).min(self.timeline.end);
        if self.timeline.position >= self.timeline.end && self.reader.index.done {
            self.timeline.playing = false;
            // A rotated recording plays on into its next part, when that
            // file is there.
            if let Some(next) = self.timeline.next_part.as_ref().filter(|p| p.exists()) {
                self.timeline.open_part = Some((next.clone(), true));
            }
        }
    }

    /// Rebuild the monitor as of `t`: the keyframe at or before it, the
    /// plot's history from the stats index, then the records up to `t`.
    fn rebuild(&mut self, monitor: &mut Monitor, t: Micros) -> Result<(), String> {
        *monitor = monitor.fresh();
        self.pending.clear();
        self.state = SessionState::default();
        let Some(k) = self.reader.index.keyframe_for(t) else {
            self.cursor = 0;
            self.applied = self.timeline.start;
            return Ok(());
        };
        let keyframe = self.reader.keyframe(k)?;
        let history: Vec<_> = self
            .reader
            .index
            .stats
            .iter()
            .filter(|s| s.at <= keyframe.at && s.at + PLOT_HISTORY >= keyframe.at)
            .cloned()
            .collect();
        for s in history {
            monitor.absorb(Batch {
                stats: Some(s),
                ..Batch::default()
            });
        }
        let mut batch = SessionState::keyframe_batch(&keyframe);
        batch.stats = None;
        monitor.absorb(batch);
        self.state = SessionState::from_keyframe(&keyframe);
        self.cursor = k + 1;
        self.applied = keyframe.at;
        self.timeline.losses.retain(|l| l.to <= keyframe.at);
        if let Some(f) = &mut self.inspected {
            // Read back at the next inspect.
            *f = Followed::stale(f.conn);
        }
        Ok(())
    }

    /// Apply records up to `t`; false if the budget ran out first.
    fn advance(
        &mut self,
        monitor: &mut Monitor,
        t: Micros,
        deadline: Instant,
    ) -> Result<bool, String> {
        loop {
            while let Some(r) = self.pending.front() {
                if r.at().is_some_and(|at| at > t) {
                    self.applied = t;
                    return Ok(true);
                }
                let r = self.pending.pop_front().expect("front exists");
                self.apply(monitor, r);
            }
            let Some(entry) = self.reader.index.frames.get(self.cursor).copied() else {
                self.applied = t;
                return Ok(true);
            };
            if entry.at > t {
                self.applied = t;
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            match entry.kind {
                Kind::Records => self.pending.extend(self.reader.records(self.cursor)?),
                Kind::Stats => {
                    let stats = self.reader.stats(self.cursor)?;
                    self.state.absorb_stats(&stats);
                    monitor.absorb(Batch {
                        stats: Some(stats),
                        ..Batch::default()
                    });
                }
                Kind::Header | Kind::Keyframe | Kind::Trailer => {}
            }
            self.cursor += 1;
        }
    }

    fn apply(&mut self, monitor: &mut Monitor, record: Record) {
        self.state.absorb(&record);
        match record {
            Record::Batch(b) => monitor.absorb(*b),
            Record::Data(d) => {
                if let Some(f) = &mut self.inspected
                    && f.conn == d.conn
                    && !f.stale
                {
                    f.push(TranscriptChunk {
                        at: d.at,
                        dir: d.dir,
                        bytes: d.bytes,
                    });
                }
            }
            Record::Lost(l) => {
                if !self.timeline.losses.contains(&l) {
                    self.timeline.losses.push(l);
                }
            }
        }
    }

    /// The inspector's snapshot of `conn` as of the applied position.
    fn detail(&mut self, conn: ConnId) -> Result<Option<ConnDetail>, String> {
        let Some(counters) = self.state.counters.get(&conn).cloned() else {
            return Ok(None);
        };
        let followed = matches!(&self.inspected, Some(f) if f.conn == conn && !f.stale);
        if !followed {
            self.inspected = Some(self.read_back(conn, counters.opened_at)?);
        }
        let f = self.inspected.as_ref().expect("set above");
        let (rx, tx) = self.state.totals.get(&conn).copied().unwrap_or_default();
        Ok(Some(ConnDetail {
            queue: self.state.queue(conn),
            transcript: f.chunks.iter().cloned().collect(),
            transcript_dropped_rx: rx.saturating_sub(f.held[0]),
            transcript_dropped_tx: tx.saturating_sub(f.held[1]),
            faults: Default::default(),
            script: None,
            replay: None,
            counters,
        }))
    }

    /// Read `conn`'s latest bytes before the applied position back from
    /// the file, newest frames first.
    fn read_back(&mut self, conn: ConnId, opened_at: Micros) -> Result<Followed, String> {
        let mut found: Vec<TranscriptChunk> = Vec::new();
        let mut held = [0u64; 2];
        // Records of the current frame already applied are those not
        // pending; the frame itself is `cursor - 1` if pending is non-empty.
        let applied_in_current = self.pending.len();
        let mut scanned = 0u64;
        let mut i = self.cursor;
        while i > 0 && scanned < TRANSCRIPT_SCAN && held.iter().any(|&h| h < TRANSCRIPT_LIMIT) {
            i -= 1;
            let entry = self.reader.index.frames[i];
            if entry.kind != Kind::Records {
                continue;
            }
            scanned += u64::from(entry.len);
            let mut records = self.reader.records(i)?;
            if i + 1 == self.cursor {
                records.truncate(records.len() - applied_in_current.min(records.len()));
            }
            for r in records.into_iter().rev() {
                if let Record::Data(d) = r
                    && d.conn == conn
                    && d.at <= self.applied
                {
                    let slot = dir_slot(d.dir);
                    if held[slot] >= TRANSCRIPT_LIMIT {
                        continue;
                    }
                    held[slot] += d.bytes.len() as u64;
                    found.push(TranscriptChunk {
                        at: d.at,
                        dir: d.dir,
                        bytes: d.bytes,
                    });
                }
            }
            if entry.at < opened_at {
                break;
            }
        }
        let mut f = Followed::new(conn);
        for chunk in found.into_iter().rev() {
            f.push(chunk);
        }
        Ok(f)
    }

    /// Find `conn`'s nearest event or bytes before or after the position.
    fn find_jump(&mut self, conn: ConnId, way: Jump) -> Result<Option<Micros>, String> {
        let from = self.timeline.position;
        let touches = |r: &Record| match r {
            Record::Batch(b) => b
                .events
                .iter()
                .filter(|e| e.conn == Some(conn))
                .map(|e| e.at)
                .collect::<Vec<_>>(),
            Record::Data(d) if d.conn == conn => vec![d.at],
            _ => Vec::new(),
        };
        let frames = &self.reader.index.frames;
        let here = frames.partition_point(|f| f.at <= from);
        // Forward from the frame holding `from` (it may hold later records
        // too), or backward from it; records frames only.
        let order: Vec<usize> = match way {
            Jump::Next => (here.saturating_sub(1)..frames.len()).collect(),
            Jump::Previous => (0..here).rev().collect(),
        };
        let order: Vec<(usize, u32)> = order
            .into_iter()
            .filter(|&i| frames[i].kind == Kind::Records)
            .map(|i| (i, frames[i].len))
            .collect();
        let mut scanned = 0u64;
        for (i, len) in order {
            scanned += u64::from(len);
            if scanned > JUMP_SCAN {
                break;
            }
            let times = self
                .reader
                .records(i)?
                .iter()
                .flat_map(touches)
                .collect::<Vec<_>>();
            let hit = match way {
                Jump::Next => times.into_iter().filter(|&at| at > from).min(),
                Jump::Previous => times.into_iter().filter(|&at| at < from).max(),
            };
            if hit.is_some() {
                return Ok(hit);
            }
        }
        Ok(None)
    }

    fn step(&mut self, monitor: &mut Monitor, budget: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + budget;
        if !self.reader.index.done {
            self.reader.index_step(INDEX_BUDGET);
            self.sync_index();
        }
        if let Some((conn, way)) = self.timeline.jump.take() {
            let target = self.find_jump(conn, way)?;
            self.timeline.jump_missed = target.is_none();
            if let Some(t) = target {
                self.timeline.seek = Some(t);
                self.timeline.playing = false;
            }
        }
        self.tick();
        if let Some(t) = self.timeline.seek.take() {
            self.timeline.position = t.clamp(self.timeline.start, self.timeline.end);
            if self.timeline.position < self.applied || self.seek_is_far(self.timeline.position) {
                self.reset = true;
            }
        }
        let t = self.timeline.position;
        if self.reset {
            self.reset = false;
            self.rebuild(monitor, t)?;
        }
        let caught_up = self.advance(monitor, t, deadline)?;
        monitor.set_fixed_clock(self.applied);
        let inspected = self.inspected.as_ref().map(|f| f.conn);
        if let Some(conn) = inspected
            && self.last_detail != Some((conn, self.applied))
            && let Some(d) = self.detail(conn)?
        {
            self.last_detail = Some((conn, self.applied));
            self.details.push(d);
        }
        if !self.details.is_empty() {
            monitor.absorb(Batch {
                details: std::mem::take(&mut self.details),
                ..Batch::default()
            });
        }
        Ok(!caught_up || self.timeline.playing || !self.reader.index.done)
    }

    /// Whether going forward to `t` is cheaper from a keyframe than by
    /// applying everything in between.
    fn seek_is_far(&self, t: Micros) -> bool {
        let index = &self.reader.index;
        match index.keyframe_for(t) {
            Some(k) => k >= self.cursor,
            None => false,
        }
    }
}

impl Backend for ReplayBackend {
    fn drain_into(&mut self, monitor: &mut Monitor, budget: Duration) -> bool {
        match self.step(monitor, budget) {
            Ok(more) => more,
            Err(e) => {
                log::error!("playback of {} stopped: {e}", self.timeline.name);
                self.timeline.playing = false;
                self.timeline.error = Some(e);
                false
            }
        }
    }

    fn send(&mut self, cmd: Command) {
        // Only looking is possible: nothing is there to kick or inject.
        if let Command::Inspect { conn } = cmd {
            if self.inspected.as_ref().is_none_or(|f| f.conn != conn) {
                self.inspected = Some(Followed::stale(conn));
            }
            match self.detail(conn) {
                Ok(Some(d)) => self.details.push(d),
                Ok(None) => {}
                Err(e) => self.timeline.error = Some(e),
            }
        }
    }

    fn status(&self) -> BackendStatus {
        BackendStatus::Replay {
            name: self.timeline.name.clone(),
        }
    }

    fn timeline(&mut self) -> Option<&mut Timeline> {
        Some(&mut self.timeline)
    }
}
