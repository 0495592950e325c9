//! `client-not-reading`: the client's receive window has been zero, or its
//! queue at the bound, for 3 s.

use super::{Check, Condition, ConnHistory};
use crate::protocol::Micros;

pub const HOLD: Micros = 3_000_000;

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    let since = h.not_reading_since?;
    let how = match h.counters.tcp.as_ref().and_then(|t| t.peer_window) {
        Some(0) => "its receive window is 0",
        _ => "its queue is at the bound",
    };
    Some(Condition {
        since,
        message: format!(
            "{} has not read for {} ({how}; {} queued for it)",
            h.id,
            crate::format::duration_micros(c.now.saturating_sub(since)),
            crate::format::bytes(h.counters.queued_bytes)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::*;

    #[test]
    fn fires_after_three_seconds_of_a_zero_window_and_not_before() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        c.tcp = Some(Box::new(sample(1_000_000, Some(0))));
        c.queued_bytes = 4096;
        observe_counters(&mut l, c.clone());
        assert!(l.evaluate(3_900_000).is_empty(), "2.9 s is not enough");
        c.tcp = Some(Box::new(sample(4_100_000, Some(0))));
        observe_counters(&mut l, c.clone());
        let fired = l.evaluate(4_100_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].lint, Lint::ClientNotReading);
        assert!(
            fired[0]
                .message
                .starts_with("#1 has not read for 3.1s (its receive window is 0"),
            "{}",
            fired[0].message
        );
        assert!(l.evaluate(4_200_000).is_empty(), "an episode fires once");
        c.tcp = Some(Box::new(sample(4_300_000, Some(65_536))));
        observe_counters(&mut l, c);
        l.evaluate(4_300_000);
        assert_eq!(
            l.count(Lint::ClientNotReading),
            LintCount {
                active: 0,
                fired: 1
            }
        );
    }
}
