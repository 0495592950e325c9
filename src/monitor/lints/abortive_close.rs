//! `abortive-close`: the client reset the connection instead of closing it
//! (it closed with unread data, or with `SO_LINGER` 0).

use super::{Check, Condition, ConnHistory};
use crate::protocol::{CloseReason, ConnState};

pub fn check(h: &ConnHistory, _c: &Check) -> Option<Condition> {
    let ConnState::Closed(CloseReason::PeerReset) = h.counters.state else {
        return None;
    };
    Some(Condition {
        since: h.closed_at.unwrap_or(h.last_seen),
        message: format!(
            "{} reset the connection (RST) instead of closing it: unread data at close, or SO_LINGER 0",
            h.id
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use crate::protocol::{CloseReason, ConnState};

    #[test]
    fn a_peer_reset_fires_at_once_and_a_fin_does_not() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        c.state = ConnState::Closed(CloseReason::PeerClosed);
        observe_counters(&mut l, c.clone());
        let mut d = open_row(2, 0);
        d.state = ConnState::Closed(CloseReason::PeerReset);
        d.last_activity = 500_000;
        observe_counters(&mut l, d);
        let fired = l.evaluate(500_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].conn, Some(crate::protocol::ConnId(2)));
        assert!(fired[0].message.starts_with("#2 reset the connection"));
    }
}
