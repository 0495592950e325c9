//! `retransmits`: the share of segments to the client that were
//! retransmitted has been over a threshold (e.g. under `tc netem`).

use super::{Check, Condition, ConnHistory};
use crate::protocol::Micros;

pub const HOLD: Micros = 3_000_000;
/// The rate is measured over this much of the sample history.
const WINDOW: Micros = 5_000_000;
/// Fewer retransmits than this in the window is noise.
const MIN_RETRANS: u32 = 3;

pub fn check(h: &ConnHistory, c: &Check) -> Option<Condition> {
    let samples = h.samples.samples();
    let newest = samples.back()?;
    let oldest = samples
        .iter()
        .find(|s| s.at + WINDOW >= newest.at)
        .filter(|s| s.at < newest.at)?;
    let retrans = newest.total_retrans.saturating_sub(oldest.total_retrans);
    let segs = newest.segs_out.saturating_sub(oldest.segs_out).max(1);
    let percent = u64::from(retrans) * 100 / u64::from(segs);
    if retrans < MIN_RETRANS || percent < u64::from(c.settings.retransmit_percent) {
        return None;
    }
    // Held since the start of the window that shows it.
    Some(Condition {
        since: oldest.at,
        message: format!(
            "{}: {retrans} of {segs} segments sent to it were retransmitted ({percent}%); RTT {} ms",
            h.id,
            newest.rtt_us / 1000
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;

    #[test]
    fn a_lossy_path_fires_and_a_clean_one_does_not() {
        let mut l = lints();
        let mut c = open_row(1, 0);
        for (i, retrans) in [0u32, 2, 5, 9, 14].into_iter().enumerate() {
            let mut s = sample(1_000_000 * (i as u64 + 1), Some(65_535));
            s.total_retrans = retrans;
            s.segs_out = 100 * (i as u32 + 1);
            c.tcp = Some(Box::new(s));
            observe_counters(&mut l, c.clone());
        }
        let fired = l.evaluate(5_000_000);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "#1: 14 of 400 segments sent to it were retransmitted (3%); RTT 20 ms"
        );

        let mut clean = lints();
        let mut c = open_row(1, 0);
        for i in 0..5u64 {
            let mut s = sample(1_000_000 * (i + 1), Some(65_535));
            s.segs_out = 100 * (i as u32 + 1);
            c.tcp = Some(Box::new(s));
            observe_counters(&mut clean, c.clone());
        }
        assert!(clean.evaluate(5_000_000).is_empty());
    }
}
