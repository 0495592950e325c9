//! `tiny-writes`: many reads far below a segment's size, at a high rate:
//! the client makes a system call (and likely a packet) per few bytes.

use super::{Check, Condition, ConnHistory};
use crate::protocol::Micros;

pub const MIN_RATE: usize = 100;
pub const MAX_MEAN: u64 = 32;
pub const HOLD: Micros = 2_000_000;
const WINDOW: Micros = 1_000_000;

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    // Too few reads, or none in the last second: no window can qualify.
    if h.reads.len() < MIN_RATE || h.reads.back().is_none_or(|r| r.at + WINDOW <= c.now) {
        return None;
    }
    // Every one-second window up to now must qualify, from `since` on:
    // look back one window at a time.
    let mut since = None;
    let mut end = c.now;
    loop {
        let window: Vec<_> = h
            .reads
            .iter()
            .filter(|r| r.at <= end && r.at + WINDOW > end)
            .collect();
        let bytes: u64 = window.iter().map(|r| u64::from(r.n)).sum();
        let qualifies = window.len() >= MIN_RATE && bytes <= MAX_MEAN * window.len() as u64;
        if !qualifies {
            break;
        }
        since = Some(end.saturating_sub(WINDOW));
        if end < WINDOW || end.saturating_sub(WINDOW) + HOLD < c.now {
            break;
        }
        end -= WINDOW;
    }
    let since = since?;
    let recent: Vec<_> = h.reads.iter().filter(|r| r.at + WINDOW > c.now).collect();
    let mean = recent.iter().map(|r| u64::from(r.n)).sum::<u64>() / recent.len().max(1) as u64;
    Some(Condition {
        since,
        message: format!(
            "{} sends {} tiny writes a second (about {mean} bytes each): buffer them",
            h.id,
            recent.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;

    #[test]
    fn two_seconds_of_byte_sized_reads_fire() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        for i in 0..600u64 {
            read(&mut l, 1, 1_000_000 + i * 5_000, 2);
        }
        // 200 reads a second from 1 s to 4 s.
        let fired = l.evaluate(3_990_000);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(
            fired[0]
                .message
                .contains("tiny writes a second (about 2 bytes each)"),
            "{}",
            fired[0].message
        );
    }

    #[test]
    fn big_reads_at_the_same_rate_do_not() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        for i in 0..600u64 {
            read(&mut l, 1, 1_000_000 + i * 5_000, 1000);
        }
        assert!(l.evaluate(3_990_000).is_empty());
    }
}
