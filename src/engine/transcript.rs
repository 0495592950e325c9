//! The recent conversation of one client, both directions, bounded.
//!
//! Nothing is allocated until a client first sends or receives a byte, so
//! idle connections cost nothing here. Each direction keeps its last `limit`
//! bytes in a ring; a shared index of segments remembers when each run of
//! bytes moved and in which direction, so a snapshot interleaves them in the
//! order they happened.

use crate::protocol::{Direction, Micros, TranscriptChunk};
use std::collections::VecDeque;

/// Held bytes per index entry, at least: the index is bounded by the bytes
/// it indexes (an entry is 24 bytes, so it stays under the size of the
/// rings), however small the reads and writes are.
const BYTES_PER_SEGMENT: usize = 32;
/// Entries every transcript may keep, however small its limit.
const MIN_SEGMENTS: usize = 16;

/// The last `limit` bytes of one direction. The buffer grows with use up
/// to `limit` and then overwrites its oldest bytes in place: two `memcpy`s
/// per record at most, and no reallocation once a busy client is warm.
#[derive(Debug, Default)]
struct DirRing {
    buf: Vec<u8>,
    /// Index of the oldest byte once the buffer is full (0 until then).
    start: usize,
    /// Bytes ever recorded in this direction; the ring holds the tail.
    total: u64,
}

impl DirRing {
    fn push(&mut self, data: &[u8], limit: usize) {
        self.total += data.len() as u64;
        let mut data = &data[data.len().saturating_sub(limit)..];
        let room = limit - self.buf.len();
        if room > 0 {
            let n = room.min(data.len());
            if self.buf.capacity() < self.buf.len() + n {
                let want = (self.buf.capacity() * 2).max(self.buf.len() + n).max(256);
                self.buf.reserve_exact(want.min(limit) - self.buf.len());
            }
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        while !data.is_empty() {
            let n = (self.buf.len() - self.start).min(data.len());
            self.buf[self.start..self.start + n].copy_from_slice(&data[..n]);
            self.start = (self.start + n) % self.buf.len();
            data = &data[n..];
        }
    }

    /// Offset (in `total` terms) of the oldest byte still held.
    fn oldest(&self) -> u64 {
        self.total - self.buf.len() as u64
    }

    /// Append the held bytes at offsets `from..to` to `out`.
    fn copy_range(&self, from: u64, to: u64, out: &mut Vec<u8>) {
        let len = self.buf.len();
        let first = (self.start + (from - self.oldest()) as usize) % len.max(1);
        let n = (to - from) as usize;
        let head = n.min(len - first);
        out.extend_from_slice(&self.buf[first..first + head]);
        out.extend_from_slice(&self.buf[..n - head]);
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    at: Micros,
    /// Which way the bytes moved.
    dir: Direction,
    /// Which ring holds them: an echo written straight from the read
    /// buffer is stored once, in the rx ring, and only referenced here.
    src: Direction,
    /// Offset just past this segment's bytes in the `src` ring.
    end: u64,
    len: u32,
}

impl Segment {
    fn start(&self) -> u64 {
        self.end - self.len as u64
    }
}

#[derive(Debug, Default)]
struct Rings {
    rx: DirRing,
    tx: DirRing,
    /// Bytes ever moved each way (tx counts echoes stored in the rx ring).
    moved_rx: u64,
    moved_tx: u64,
    segments: VecDeque<Segment>,
}

impl Rings {
    fn ring(&self, src: Direction) -> &DirRing {
        match src {
            Direction::Rx => &self.rx,
            Direction::Tx => &self.tx,
        }
    }

    /// Add a segment, merging it into the last one when it continues it
    /// (same direction, same ring, same poll iteration, contiguous).
    fn index(&mut self, seg: Segment, limit: usize) {
        // Forget entries whose bytes have all fallen out of their ring;
        // otherwise the index, not the bytes, dominates memory.
        while let Some(front) = self.segments.front() {
            if front.end > self.ring(front.src).oldest() {
                break;
            }
            self.segments.pop_front();
        }
        if let Some(last) = self.segments.back_mut()
            && (last.dir, last.src, last.at, last.end) == (seg.dir, seg.src, seg.at, seg.start())
            && last.len as u64 + seg.len as u64 <= u32::MAX as u64
        {
            last.end = seg.end;
            last.len += seg.len;
            return;
        }
        // Both directions hold up to `limit` bytes each.
        let max_segments = (2 * limit / BYTES_PER_SEGMENT).max(MIN_SEGMENTS);
        while self.segments.len() >= max_segments {
            self.segments.pop_front();
        }
        self.segments.push_back(seg);
    }
}

/// One pointer while idle; the limit comes from the engine's config with
/// each call rather than being stored in every connection.
#[derive(Debug, Default)]
pub struct Transcript {
    rings: Option<Box<Rings>>,
}

impl Transcript {
    /// Record `data` moving in `dir`, keeping at most `limit` bytes per
    /// direction.
    pub fn record(&mut self, limit: usize, at: Micros, dir: Direction, data: &[u8]) {
        if limit == 0 || data.is_empty() {
            return;
        }
        let rings = self.rings.get_or_insert_with(Box::default);
        let ring = match dir {
            Direction::Rx => {
                rings.moved_rx += data.len() as u64;
                &mut rings.rx
            }
            Direction::Tx => {
                rings.moved_tx += data.len() as u64;
                &mut rings.tx
            }
        };
        ring.push(data, limit);
        let end = ring.total;
        rings.index(
            Segment {
                at,
                dir,
                src: dir,
                end,
                len: data.len() as u32,
            },
            limit,
        );
    }

    /// Record `len` bytes sent that are received bytes just recorded (an
    /// echo straight from the read buffer), without copying them a second
    /// time: they end `unsent` bytes before the end of the latest received
    /// ones.
    pub fn record_echo(&mut self, limit: usize, at: Micros, unsent: usize, len: usize) {
        if limit == 0 || len == 0 {
            return;
        }
        let Some(rings) = &mut self.rings else {
            return;
        };
        // The bytes were recorded as received just before, so `unsent`
        // is within what the rx ring counted.
        let Some(end) = rings.rx.total.checked_sub(unsent as u64) else {
            return;
        };
        rings.moved_tx += len as u64;
        rings.index(
            Segment {
                at,
                dir: Direction::Tx,
                src: Direction::Rx,
                end,
                len: len as u32,
            },
            limit,
        );
    }

    /// Bytes that fell out of the rings, per direction (rx, tx).
    pub fn dropped(&self) -> (u64, u64) {
        let Some(r) = &self.rings else {
            return (0, 0);
        };
        let held = |dir| {
            r.segments
                .iter()
                .filter(|s| s.dir == dir)
                .map(|s| {
                    let ring = r.ring(s.src);
                    s.end
                        .min(ring.total)
                        .saturating_sub(s.start().max(ring.oldest()))
                })
                .sum::<u64>()
        };
        (
            r.moved_rx.saturating_sub(held(Direction::Rx)),
            r.moved_tx.saturating_sub(held(Direction::Tx)),
        )
    }

    pub fn snapshot(&self) -> Vec<TranscriptChunk> {
        let Some(r) = &self.rings else {
            return Vec::new();
        };
        r.segments
            .iter()
            .filter_map(|s| {
                let ring = r.ring(s.src);
                let start = s.start().max(ring.oldest());
                if start >= s.end {
                    return None;
                }
                let mut bytes = Vec::with_capacity((s.end - start) as usize);
                ring.copy_range(start, s.end, &mut bytes);
                Some(TranscriptChunk {
                    at: s.at,
                    dir: s.dir,
                    bytes,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunks: &[TranscriptChunk]) -> Vec<(Direction, String)> {
        chunks
            .iter()
            .map(|c| (c.dir, String::from_utf8_lossy(&c.bytes).into_owned()))
            .collect()
    }

    #[test]
    fn interleaves_directions_in_order() {
        let mut t = Transcript::default();
        t.record(64, 1, Direction::Rx, b"ping");
        t.record(64, 1, Direction::Tx, b"pi");
        t.record(64, 1, Direction::Tx, b"ng");
        t.record(64, 2, Direction::Rx, b"bye");
        assert_eq!(
            text(&t.snapshot()),
            vec![
                (Direction::Rx, "ping".into()),
                (Direction::Tx, "ping".into()),
                (Direction::Rx, "bye".into()),
            ]
        );
        assert_eq!(t.dropped(), (0, 0));
    }

    #[test]
    fn keeps_only_the_last_limit_bytes_per_direction() {
        let mut t = Transcript::default();
        t.record(8, 1, Direction::Rx, b"0123456");
        t.record(8, 2, Direction::Rx, b"789ab");
        t.record(8, 3, Direction::Tx, b"xyz");
        let snap = t.snapshot();
        assert_eq!(
            text(&snap),
            vec![
                (Direction::Rx, "456".into()),
                (Direction::Rx, "789ab".into()),
                (Direction::Tx, "xyz".into()),
            ]
        );
        assert_eq!(t.dropped(), (4, 0));
        // A single write larger than the limit keeps its tail.
        t.record(8, 4, Direction::Tx, b"abcdefghijkl");
        assert_eq!(text(&t.snapshot()).last().unwrap().1, "efghijkl");
    }

    #[test]
    fn ring_wraps_in_place_and_reads_back_in_order() {
        let mut t = Transcript::default();
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..(i % 7 + 1)).map(|j| (i * 7 + j) as u8).collect();
            t.record(50, i as u64, Direction::Tx, &chunk);
            expected.extend_from_slice(&chunk);
        }
        let got: Vec<u8> = t.snapshot().iter().flat_map(|c| c.bytes.clone()).collect();
        assert_eq!(got, expected[expected.len() - 50..]);
        let ring = &t.rings.as_ref().unwrap().tx;
        assert_eq!(ring.buf.capacity(), 50, "never allocates past the limit");
    }

    #[test]
    fn echoes_are_referenced_not_copied() {
        let mut t = Transcript::default();
        t.record(64, 1, Direction::Rx, b"hello world");
        // The socket took the first 5 bytes, then the rest.
        t.record_echo(64, 1, 6, 5);
        t.record_echo(64, 1, 0, 6);
        assert_eq!(
            text(&t.snapshot()),
            vec![
                (Direction::Rx, "hello world".into()),
                (Direction::Tx, "hello world".into()),
            ]
        );
        assert!(
            t.rings.as_ref().unwrap().tx.buf.is_empty(),
            "no second copy"
        );
        assert_eq!(t.dropped(), (0, 0));
        // When the received bytes fall out, so does their echo.
        t.record(64, 2, Direction::Rx, &[b'x'; 64]);
        assert_eq!(t.dropped(), (11, 11));
    }

    #[test]
    fn index_forgets_segments_whose_bytes_fell_out() {
        let mut t = Transcript::default();
        for i in 0..1000 {
            t.record(16, i, Direction::Rx, b"abcd");
        }
        let held = t.rings.as_ref().unwrap().segments.len();
        assert!(held <= 5, "{held} segments kept for 16 bytes");
        assert_eq!(text(&t.snapshot()).concat_text(), "abcdabcdabcdabcd");
    }

    trait ConcatText {
        fn concat_text(&self) -> String;
    }

    impl ConcatText for Vec<(Direction, String)> {
        fn concat_text(&self) -> String {
            self.iter().map(|(_, s)| s.as_str()).collect()
        }
    }

    #[test]
    fn index_is_bounded_by_the_bytes_it_indexes() {
        let mut t = Transcript::default();
        let limit = 1024;
        for i in 0..100_000u64 {
            // One-byte exchanges in alternating directions never merge.
            let dir = if i % 2 == 0 {
                Direction::Rx
            } else {
                Direction::Tx
            };
            t.record(limit, i, dir, b"x");
        }
        let segments = t.rings.as_ref().unwrap().segments.len();
        let index_bytes = segments * std::mem::size_of::<Segment>();
        assert!(
            index_bytes <= 2 * limit,
            "{segments} segments ({index_bytes} B) index at most {} B",
            2 * limit
        );
    }

    #[test]
    fn disabled_transcript_ignores_echoes() {
        let mut t = Transcript::default();
        t.record(0, 1, Direction::Rx, b"abc");
        t.record_echo(0, 1, 2, 1);
        assert!(t.snapshot().is_empty());
    }

    #[test]
    fn idle_transcript_allocates_nothing() {
        let t = Transcript::default();
        assert!(t.rings.is_none());
        assert!(t.snapshot().is_empty());
    }
}
