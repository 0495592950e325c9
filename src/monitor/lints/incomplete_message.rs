//! `incomplete-message`: under a scenario's framing, a message has stayed
//! incomplete for T. Says what was read and how much is missing.

use super::{Check, Condition, ConnHistory};

pub fn check(h: &ConnHistory, _c: &Check) -> Option<Condition> {
    let p = h.counters.pending.as_ref()?;
    if !h.is_open() {
        return None;
    }
    let head = crate::payload::spaced_hex(&p.head);
    let more = if (p.head.len() as u64) < p.len {
        " …"
    } else {
        ""
    };
    let message = match p.expected {
        Some(total) => format!(
            "{} sent {} of a {total}-byte message and stopped ({} missing); it begins {head}{more}",
            h.id,
            crate::format::bytes(p.len),
            crate::format::bytes(total.saturating_sub(p.len))
        ),
        None => format!(
            "{} sent {} of a message with no end (no delimiter yet); it begins {head}{more}",
            h.id,
            crate::format::bytes(p.len)
        ),
    };
    Some(Condition {
        since: p.since,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use crate::protocol::PendingMessage;

    #[test]
    fn a_message_left_short_fires_with_what_is_missing() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        c.pending = Some(Box::new(PendingMessage {
            since: 1_000_000,
            len: 5,
            expected: Some(12),
            head: vec![0, 10, b'h', b'e', b'l'],
        }));
        observe_counters(&mut l, c);
        assert!(l.evaluate(2_900_000).is_empty());
        let fired = l.evaluate(3_000_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            fired[0].message,
            "#1 sent 5 B of a 12-byte message and stopped (7 B missing); it begins 00 0a 68 65 6c"
        );
    }
}
