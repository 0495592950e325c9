//! The recent conversation of one client, both directions, bounded.
//!
//! Nothing is allocated until a client first sends or receives a byte, so
//! idle connections cost nothing here. Each direction keeps its last `limit`
//! bytes in a ring; a shared index of segments remembers when each run of
//! bytes moved and in which direction, so a snapshot interleaves them in the
//! order they happened.

use crate::protocol::{Direction, Micros, TranscriptChunk};
use std::collections::VecDeque;

/// Bounds the index, whose entries are tiny but would otherwise grow with
/// one-byte exchanges.
const MAX_SEGMENTS: usize = 8192;

#[derive(Debug, Default)]
struct DirRing {
    bytes: VecDeque<u8>,
    /// Bytes ever recorded in this direction; the ring holds the tail.
    total: u64,
}

impl DirRing {
    fn push(&mut self, data: &[u8], limit: usize) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(limit)..];
        let overflow = (self.bytes.len() + data.len()).saturating_sub(limit);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    /// Offset (in `total` terms) of the oldest byte still held.
    fn oldest(&self) -> u64 {
        self.total - self.bytes.len() as u64
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    at: Micros,
    dir: Direction,
    /// Offset just past this segment's bytes in its direction.
    end: u64,
    len: u32,
}

#[derive(Debug)]
struct Rings {
    rx: DirRing,
    tx: DirRing,
    segments: VecDeque<Segment>,
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
        let rings = self.rings.get_or_insert_with(|| {
            Box::new(Rings {
                rx: DirRing::default(),
                tx: DirRing::default(),
                segments: VecDeque::new(),
            })
        });
        let ring = match dir {
            Direction::Rx => &mut rings.rx,
            Direction::Tx => &mut rings.tx,
        };
        ring.push(data, limit);
        let end = ring.total;
        // Forget index entries whose bytes have all fallen out of their
        // ring; otherwise the index, not the bytes, dominates memory.
        while let Some(front) = rings.segments.front() {
            let oldest = match front.dir {
                Direction::Rx => rings.rx.oldest(),
                Direction::Tx => rings.tx.oldest(),
            };
            if front.end > oldest {
                break;
            }
            rings.segments.pop_front();
        }
        // Consecutive moves in one direction within one poll iteration read
        // best as one chunk.
        if let Some(last) = rings.segments.back_mut()
            && last.dir == dir
            && last.at == at
            && last.len as usize + data.len() <= u32::MAX as usize
        {
            last.end = end;
            last.len += data.len() as u32;
            return;
        }
        if rings.segments.len() == MAX_SEGMENTS {
            rings.segments.pop_front();
        }
        rings.segments.push_back(Segment {
            at,
            dir,
            end,
            len: data.len() as u32,
        });
    }

    /// Bytes that fell out of the rings, per direction (rx, tx).
    pub fn dropped(&self) -> (u64, u64) {
        match &self.rings {
            None => (0, 0),
            Some(r) => {
                let held = |ring: &DirRing, dir| {
                    r.segments
                        .iter()
                        .filter(|s| s.dir == dir)
                        .map(|s| s.end.min(ring.total) - (s.end - s.len as u64).max(ring.oldest()))
                        .sum::<u64>()
                };
                (
                    r.rx.total - held(&r.rx, Direction::Rx).min(r.rx.total),
                    r.tx.total - held(&r.tx, Direction::Tx).min(r.tx.total),
                )
            }
        }
    }

    pub fn snapshot(&self) -> Vec<TranscriptChunk> {
        let Some(r) = &self.rings else {
            return Vec::new();
        };
        r.segments
            .iter()
            .filter_map(|s| {
                let ring = match s.dir {
                    Direction::Rx => &r.rx,
                    Direction::Tx => &r.tx,
                };
                let start = (s.end - s.len as u64).max(ring.oldest());
                if start >= s.end {
                    return None;
                }
                let from = (start - ring.oldest()) as usize;
                let to = (s.end - ring.oldest()) as usize;
                Some(TranscriptChunk {
                    at: s.at,
                    dir: s.dir,
                    bytes: ring.bytes.range(from..to).copied().collect(),
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
    fn idle_transcript_allocates_nothing() {
        let t = Transcript::default();
        assert!(t.rings.is_none());
        assert!(t.snapshot().is_empty());
    }
}
