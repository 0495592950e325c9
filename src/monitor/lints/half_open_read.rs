//! `half-open-read`: muxscope sent FIN, and the client has neither closed
//! nor read since, for T: its socket sits in CLOSE_WAIT.

use super::{Check, Condition, ConnHistory};

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    let since = h.fin_unanswered_since?;
    if !h.is_open() {
        return None;
    }
    Some(Condition {
        since,
        message: format!(
            "{} has not closed or read for {} since muxscope sent FIN (CLOSE_WAIT on its side): handle EOF",
            h.id,
            crate::format::duration_micros(c.now.saturating_sub(since))
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::*;
    use crate::protocol::ConnState;

    #[test]
    fn a_fin_left_unanswered_fires_and_the_close_ends_it() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        c.state = ConnState::Closing {
            deadline: 9_000_000,
        };
        c.last_activity = 1_000_000;
        observe_counters(&mut l, c.clone());
        assert!(l.evaluate(1_500_000).is_empty());
        let fired = l.evaluate(2_000_000);
        assert_eq!(fired.len(), 1);
        assert!(
            fired[0].message.contains("since muxscope sent FIN"),
            "{}",
            fired[0].message
        );
        c.state = ConnState::Closed(crate::protocol::CloseReason::PeerClosed);
        observe_counters(&mut l, c);
        assert!(l.evaluate(2_100_000).is_empty());
        assert_eq!(l.count(Lint::HalfOpenRead).active, 0);
    }

    #[test]
    fn a_fin_still_waiting_behind_queued_bytes_is_not_out() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        c.state = ConnState::Closing {
            deadline: 9_000_000,
        };
        c.queued_bytes = 10;
        observe_counters(&mut l, c);
        assert!(l.evaluate(5_000_000).is_empty());
    }
}
