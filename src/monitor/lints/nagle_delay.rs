//! `nagle-delay`: one message arrives as several small reads about 40 ms
//! apart, with nothing sent back in between: Nagle's algorithm holds each
//! small write until the previous one is acknowledged, and the server
//! delays its ACK (40 ms on Linux, up to 200 ms elsewhere).

use super::{Check, Condition, ConnHistory};
use crate::protocol::Micros;

/// Gaps a delayed ACK makes: Linux's 40 ms minimum, up to the 200 ms of
/// other stacks, with slack for a loaded machine.
const GAP: std::ops::RangeInclusive<Micros> = 30_000..=260_000;
/// Reads this small are pieces, not messages.
const SMALL: u32 = 1460;
/// Gaps in a row that make the pattern (a message in three writes).
const GAPS: usize = 2;
/// The pattern counts while this recent.
const RECENT: Micros = 10_000_000;

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    let reads: Vec<_> = h.reads.iter().filter(|r| r.at + RECENT >= c.now).collect();
    let (mut run, mut start) = (0, 0);
    for pair in reads.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let gap = b.at.saturating_sub(a.at);
        if a.n <= SMALL && b.n <= SMALL && !b.after_write && GAP.contains(&gap) {
            if run == 0 {
                start = a.at;
            }
            run += 1;
            if run >= GAPS {
                return Some(Condition {
                    since: start,
                    message: format!(
                        "{} sends a message in small pieces about {} ms apart ({} reads): Nagle's algorithm waits for the delayed ACK; write it at once or set TCP_NODELAY",
                        h.id,
                        gap / 1000,
                        run + 1
                    ),
                });
            }
        } else {
            run = 0;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;

    #[test]
    fn three_small_reads_40ms_apart_fire_and_prompt_ones_do_not() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        for (i, at) in [100_000, 101_000, 102_000].into_iter().enumerate() {
            read(&mut l, 1, at, 5 + i as u32);
        }
        assert!(l.evaluate(200_000).is_empty(), "back to back is fine");
        for at in [1_000_000, 1_041_000, 1_082_000] {
            read(&mut l, 1, at, 4);
        }
        let fired = l.evaluate(1_100_000);
        assert_eq!(fired.len(), 1);
        assert!(
            fired[0].message.contains("41 ms apart (3 reads)"),
            "{}",
            fired[0].message
        );
    }

    #[test]
    fn a_reply_between_the_pieces_is_a_conversation_not_nagle() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        for at in [1_000_000, 1_041_000, 1_082_000] {
            read(&mut l, 1, at, 4);
            wrote(&mut l, 1, at + 1000, 4);
        }
        assert!(l.evaluate(1_100_000).is_empty());
    }
}
