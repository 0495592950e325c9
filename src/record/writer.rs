//! The recording's writer thread. The engine hands it what it reported and
//! the bytes that moved through a bounded channel it never waits on (see
//! `engine::record_tap`); this thread encodes, frames and appends them, and
//! snapshots keyframes, so the engine thread pays only for a copy.

use super::frame::{self, Kind, MAGIC};
use super::parts::part_path;
use super::state::SessionState;
use super::{DataChunk, FORMAT_VERSION, Header, Loss, Record, Trailer};
use crate::protocol::{Batch, Micros};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages the writer may fall behind by before the engine counts losses
/// instead of queueing more (each holds one flush: ~15 ms of traffic).
pub const CHANNEL_CAPACITY: usize = 1024;
/// A records frame is written once it holds this much…
const FRAME_BYTES: usize = 256 * 1024;
/// …or its oldest record is this old, so a crash loses little.
const FRAME_AGE: Duration = Duration::from_millis(200);
/// A keyframe follows once this much was written since the last one and
/// something happened: a seek decodes at most about this much.
const KEYFRAME_BYTES: u64 = 4 << 20;
const KEYFRAME_AGE: Micros = 2_000_000;

/// What to do at the size cap.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AtCap {
    /// Close the file and stop recording, saying so.
    Stop,
    /// Close the file and go on in a new part (`NAME.2.muxrec`, …), each
    /// part readable on its own.
    Rotate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingConfig {
    pub path: PathBuf,
    /// Bytes per file at most.
    pub max_bytes: Option<u64>,
    pub at_cap: AtCap,
}

/// One flush of the engine's.
#[derive(Debug)]
pub enum TapMsg {
    Flush {
        batch: Option<Box<Batch>>,
        data: Vec<DataChunk>,
        loss: Option<Loss>,
    },
    /// Close the file: the engine stops recording (or stops).
    Stop { at: Micros, reason: String },
}

/// What the writer has done, read by the engine for its stats.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes written, over all parts.
    pub bytes: AtomicU64,
    pub lost_events: AtomicU64,
    pub lost_bytes: AtomicU64,
    pub part: AtomicU64,
    /// Set once the writer stopped on its own, with why.
    pub ended: Mutex<Option<String>>,
    /// The file written now (it changes when rotating).
    pub path: Mutex<PathBuf>,
}

impl Progress {
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().map(|e| e.clone()).unwrap_or(None)
    }
}

/// A started recording: where to send, and what it did.
#[derive(Debug)]
pub struct Recording {
    pub tx: Sender<TapMsg>,
    pub progress: Arc<Progress>,
    pub thread: JoinHandle<()>,
}

/// Create the file and start the writer. The file is created here, not on
/// the thread, so a path that cannot be written is an error at once.
pub fn start(
    config: RecordingConfig,
    engine_started_unix_ms: u64,
    now: Micros,
) -> Result<Recording, String> {
    let part = Part::create(&config.path, engine_started_unix_ms, now, 1)?;
    let progress = Arc::new(Progress::default());
    *progress.path.lock().expect("fresh mutex") = config.path.clone();
    progress.part.store(1, Ordering::Relaxed);
    progress.bytes.store(part.written, Ordering::Relaxed);
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let writer = Writer {
        config,
        engine_started_unix_ms,
        part,
        progress: progress.clone(),
        state: SessionState::default(),
        body: Vec::with_capacity(FRAME_BYTES + 64 * 1024),
        count: 0,
        first_at: None,
        started: None,
        since_keyframe: 0,
        keyframe_at: now,
        out: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name("muxscope-recorder".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| format!("cannot start the recorder thread: {e}"))?;
    Ok(Recording {
        tx,
        progress,
        thread,
    })
}

/// One open file.
struct Part {
    file: File,
    path: PathBuf,
    number: u32,
    written: u64,
}

impl Part {
    fn create(
        path: &Path,
        engine_started_unix_ms: u64,
        now: Micros,
        number: u32,
    ) -> Result<Part, String> {
        let file = File::create(path).map_err(|e| {
            format!(
                "cannot create the recording {}: {e}; choose a file in a folder you can write to",
                path.display()
            )
        })?;
        let mut part = Part {
            file,
            path: path.to_owned(),
            number,
            written: 0,
        };
        let mut out = MAGIC.to_vec();
        let header = Header {
            format_version: FORMAT_VERSION,
            writer: env!("CARGO_PKG_VERSION").to_owned(),
            engine_started_unix_ms,
            started_at: now,
            part: number,
        };
        frame::encode(Kind::Header, now, &header, &mut out);
        part.append(&out)
            .map_err(|e| format!("cannot write the recording {}: {e}", path.display()))?;
        Ok(part)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

struct Writer {
    config: RecordingConfig,
    engine_started_unix_ms: u64,
    part: Part,
    progress: Arc<Progress>,
    state: SessionState,
    /// Records encoded one by one, not yet framed; `count` of them.
    body: Vec<u8>,
    count: usize,
    first_at: Option<Micros>,
    /// When the oldest unframed record arrived.
    started: Option<Instant>,
    since_keyframe: u64,
    keyframe_at: Micros,
    out: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: Receiver<TapMsg>) {
        let result = self.serve(&rx);
        let why = match result {
            Ok(None) => return,
            Ok(Some(why)) | Err(why) => why,
        };
        log::warn!("recording stopped: {why}");
        if let Ok(mut ended) = self.progress.ended.lock() {
            *ended = Some(why);
        }
        // Dropping `rx` tells the engine's tap to stop sending.
    }

    /// Write until told to stop (`Ok(None)`), the cap stops it (`Ok(Some)`)
    /// or the disk fails (`Err`).
    fn serve(&mut self, rx: &Receiver<TapMsg>) -> Result<Option<String>, String> {
        // The file starts with a keyframe, so a seek always finds one.
        self.keyframe()?;
        loop {
            let wait = match self.started {
                Some(t) => FRAME_AGE.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(TapMsg::Flush { batch, data, loss }) => {
                    if let Some(loss) = loss {
                        self.progress
                            .lost_events
                            .fetch_add(loss.events, Ordering::Relaxed);
                        self.progress
                            .lost_bytes
                            .fetch_add(loss.bytes(), Ordering::Relaxed);
                        self.push(Record::Lost(loss));
                    }
                    for d in data {
                        self.push(Record::Data(d));
                    }
                    if let Some(mut batch) = batch {
                        let stats = batch.stats.take();
                        if !batch.is_empty() {
                            self.push(Record::Batch(batch));
                        }
                        if let Some(stats) = stats {
                            self.frame_records()?;
                            self.state.absorb_stats(&stats);
                            self.out.clear();
                            frame::encode(Kind::Stats, stats.at, &stats, &mut self.out);
                            self.write_out()?;
                            if self.since_keyframe >= KEYFRAME_BYTES
                                || self.state.at >= self.keyframe_at + KEYFRAME_AGE
                                    && self.since_keyframe > 0
                            {
                                self.keyframe()?;
                            }
                        }
                    }
                    if self.body.len() >= FRAME_BYTES {
                        self.frame_records()?;
                    }
                }
                Ok(TapMsg::Stop { at, reason }) => {
                    self.finish(at, reason, None)?;
                    return Ok(None);
                }
                Err(RecvTimeoutError::Timeout) => self.frame_records()?,
                Err(RecvTimeoutError::Disconnected) => {
                    let at = self.state.at;
                    self.finish(at, "the engine stopped".into(), None)?;
                    return Ok(None);
                }
            }
            if let Some(why) = self.capped()? {
                return Ok(Some(why));
            }
        }
    }

    fn push(&mut self, record: Record) {
        self.state.absorb(&record);
        if self.count == 0 {
            self.first_at = record.at().or(Some(self.state.at));
            self.started = Some(Instant::now());
        }
        match postcard::to_extend(&record, std::mem::take(&mut self.body)) {
            Ok(body) => self.body = body,
            Err(e) => log::error!("a record could not be encoded: {e}"),
        }
        self.count += 1;
    }

    /// Frame the records gathered so far.
    fn frame_records(&mut self) -> Result<(), String> {
        if self.count == 0 {
            return Ok(());
        }
        let mut prefix = Vec::with_capacity(10);
        frame::seq_len(self.count, &mut prefix);
        self.out.clear();
        let at = self.first_at.unwrap_or(self.state.at);
        frame::write(Kind::Records, at, &[&prefix, &self.body], &mut self.out);
        self.body.clear();
        self.count = 0;
        self.started = None;
        self.write_out()
    }

    fn keyframe(&mut self) -> Result<(), String> {
        self.frame_records()?;
        let k = self.state.keyframe();
        self.out.clear();
        frame::encode(Kind::Keyframe, k.at, &k, &mut self.out);
        self.since_keyframe = 0;
        self.keyframe_at = k.at;
        self.write_out()
    }

    fn write_out(&mut self) -> Result<(), String> {
        self.part.append(&self.out).map_err(|e| {
            format!(
                "writing {} failed: {e} (is the disk full?); the recording up to here is kept",
                self.part.path.display()
            )
        })?;
        self.since_keyframe += self.out.len() as u64;
        self.progress
            .bytes
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn finish(
        &mut self,
        at: Micros,
        reason: String,
        next_part: Option<String>,
    ) -> Result<(), String> {
        self.frame_records()?;
        self.out.clear();
        let trailer = Trailer {
            at: at.max(self.state.at),
            reason,
            next_part,
        };
        frame::encode(Kind::Trailer, trailer.at, &trailer, &mut self.out);
        self.write_out()?;
        self.part
            .file
            .sync_data()
            .map_err(|e| format!("cannot save {}: {e}", self.part.path.display()))
    }

    /// At the size cap, stop or go on in a new part.
    fn capped(&mut self) -> Result<Option<String>, String> {
        let Some(max) = self.config.max_bytes else {
            return Ok(None);
        };
        if self.part.written < max {
            return Ok(None);
        }
        let at = self.state.at;
        match self.config.at_cap {
            AtCap::Stop => {
                let why = format!(
                    "the recording reached its size cap of {} and stopped",
                    crate::format::bytes(max)
                );
                self.finish(at, why.clone(), None)?;
                Ok(Some(why))
            }
            AtCap::Rotate => {
                let number = self.part.number + 1;
                let path = part_path(&self.config.path, number);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                self.finish(
                    at,
                    "size cap reached: continued in the next part".into(),
                    name,
                )?;
                self.part = Part::create(&path, self.engine_started_unix_ms, at, number)?;
                self.progress
                    .bytes
                    .fetch_add(self.part.written, Ordering::Relaxed);
                self.progress
                    .part
                    .store(u64::from(number), Ordering::Relaxed);
                if let Ok(mut p) = self.progress.path.lock() {
                    *p = path;
                }
                self.keyframe()?;
                Ok(None)
            }
        }
    }
}
