//! `silent-client`: connected, and no byte received for T (10 s).

use super::{Check, Condition, ConnHistory};

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    // Not while muxscope itself does not read it (the queue's bound, a
    // pause): the silence is then the server's.
    if !h.is_open()
        || c.now.saturating_sub(h.last_rx_at) < c.settings.silent_after
        || h.counters.backpressure
        || h.counters.read_paused
    {
        // (Checked here, not only by the caller's hold: lints run over every
        // connection ten times a second, and most are not silent that long,
        // so no message is made for them.)
        return None;
    }
    let what = if h.counters.rx_bytes == 0 {
        "has sent nothing since it connected"
    } else {
        "has sent nothing"
    };
    Some(Condition {
        since: h.last_rx_at,
        message: format!(
            "{} {what} for {}",
            h.id,
            crate::format::duration_micros(c.now - h.last_rx_at)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::*;

    #[test]
    fn fires_after_the_silence_and_a_byte_ends_it() {
        let mut l = lints();
        accept(&mut l, 1, 0);
        assert!(l.evaluate(9_000_000).is_empty());
        let fired = l.evaluate(10_000_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            fired[0].message,
            "#1 has sent nothing since it connected for 10.0s"
        );
        read(&mut l, 1, 10_500_000, 5);
        assert!(l.evaluate(11_000_000).is_empty());
        assert_eq!(l.count(Lint::SilentClient).active, 0);
    }

    #[test]
    fn a_client_the_server_does_not_read_is_not_silent() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        c.backpressure = true;
        observe_counters(&mut l, c);
        let fired = l.evaluate(20_000_000);
        assert!(
            fired.iter().all(|f| f.lint != Lint::SilentClient),
            "{fired:?}"
        );
        assert!(fired.iter().any(|f| f.lint == Lint::ClientNotReading));
    }
}
