//! `reconnect-storm`: more than N connects a second from one host, for T.

use super::{Check, Condition, HostHistory};
use std::net::IpAddr;

pub fn check(ip: IpAddr, host: &HostHistory, c: &Check) -> Option<Condition> {
    let per_sec = c.settings.storm_per_sec;
    let now_sec = c.now / 1_000_000;
    // The run of busy seconds that ends with the latest full second (or
    // the current one), newest first.
    let mut since = None;
    let mut expect = None;
    let mut peak = 0;
    for &(sec, n) in host.seconds.iter().rev() {
        if sec + 1 < now_sec && since.is_none() {
            return None;
        }
        if expect.is_some_and(|e| sec != e) || n <= per_sec {
            if sec == now_sec && since.is_none() {
                // The current second is not over yet.
                expect = Some(sec.saturating_sub(1));
                continue;
            }
            break;
        }
        since = Some(sec * 1_000_000);
        peak = peak.max(n);
        expect = Some(sec.saturating_sub(1));
    }
    Some(Condition {
        since: since?,
        message: format!("{ip} connects {peak} times a second: back off between reconnects"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::*;

    #[test]
    fn fifty_connects_a_second_for_two_seconds_fire_and_a_few_do_not() {
        let mut l = lints();
        for i in 0..150u64 {
            accept(&mut l, i + 1, 1_000_000 + i * 20_000);
        }
        // 50 a second from 1 s to 4 s.
        assert!(l.evaluate(2_500_000).is_empty(), "not two seconds yet");
        let fired: Vec<_> = l
            .evaluate(3_100_000)
            .into_iter()
            .filter(|f| f.lint == Lint::ReconnectStorm)
            .collect();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "127.0.0.1 connects 50 times a second: back off between reconnects"
        );

        let mut calm = lints();
        for i in 0..30u64 {
            accept(&mut calm, i + 1, 1_000_000 + i * 100_000);
        }
        assert!(
            calm.evaluate(4_000_000)
                .iter()
                .all(|f| f.lint != Lint::ReconnectStorm)
        );
    }
}
