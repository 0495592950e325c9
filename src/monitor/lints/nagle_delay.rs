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
/// Messages seen split this way before it fires.
const TIMES: usize = 2;
/// The pattern counts while this recent.
const RECENT: Micros = 10_000_000;

/// The signature of one message held back by Nagle: a small read, a
/// delayed-ACK gap with nothing sent back, the rest of the message, and
/// then the server's reply (the message was whole only then). A client that
/// merely sends small messages on a timer gets no reply in between and
/// does not match.
pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    // Most connections read nothing lately: no list made for them.
    if h.reads.len() < 2 * TIMES || h.reads.back().is_none_or(|r| r.at + RECENT < c.now) {
        return None;
    }
    let reads: Vec<_> = h.reads.iter().filter(|r| r.at + RECENT >= c.now).collect();
    let mut hits = Vec::new();
    for (i, pair) in reads.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        let gap = b.at.saturating_sub(a.at);
        let replied_after_b = match reads.get(i + 2) {
            Some(next) => next.after_write,
            None => h.wrote_since_read,
        };
        if a.n <= SMALL && !b.after_write && GAP.contains(&gap) && replied_after_b {
            hits.push((a.at, gap));
        }
    }
    if hits.len() < TIMES {
        return None;
    }
    let mean = hits.iter().map(|h| h.1).sum::<Micros>() / hits.len() as Micros;
    Some(Condition {
        since: hits[0].0,
        message: format!(
            "{} sends messages in pieces that wait about {} ms each for our ACK ({} messages): Nagle's algorithm; write a message at once or set TCP_NODELAY",
            h.id,
            mean / 1000,
            hits.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;

    /// One message: a piece, the rest after `gap`, then the reply.
    fn message(l: &mut super::super::Lints, at: u64, gap: u64) {
        read(l, 1, at, 2);
        read(l, 1, at + gap, 3);
        wrote(l, 1, at + gap + 500, 7);
    }

    #[test]
    fn messages_held_40ms_for_our_ack_fire_and_prompt_ones_do_not() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        message(&mut l, 100_000, 1_000);
        message(&mut l, 200_000, 1_000);
        assert!(l.evaluate(300_000).is_empty(), "back to back is fine");
        message(&mut l, 1_000_000, 41_000);
        assert!(l.evaluate(1_100_000).is_empty(), "once may be chance");
        message(&mut l, 1_200_000, 43_000);
        let fired = l.evaluate(1_300_000);
        assert_eq!(fired.len(), 1);
        assert!(
            fired[0]
                .message
                .contains("about 42 ms each for our ACK (2 messages)"),
            "{}",
            fired[0].message
        );
    }

    #[test]
    fn small_messages_on_a_timer_without_replies_are_not_nagle() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        for i in 0..20 {
            read(&mut l, 1, 1_000_000 + i * 50_000, 10);
        }
        assert!(l.evaluate(2_000_000).is_empty());
    }
}
