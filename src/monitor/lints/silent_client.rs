//! `silent-client`: connected, and no byte received for T (10 s).

use super::{Check, Condition, ConnHistory};

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    if !h.is_open() || c.now < h.last_rx_at {
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
}
