//! The faults acting on one connection, as state: when its queued bytes
//! may go out and how many at a time, what they become on the way, how
//! fast it may be read, and when it must close.
//!
//! A shaper never sleeps and owns no thread. It answers "how much may go
//! now" and "when should the loop come back" ([`Shaper::next_wake`]); the
//! loop keeps that deadline in its heap. This matters under edge-triggered
//! readiness: a socket held back by a fault raises no new edge when the
//! hold ends, so only the timer brings the bytes out.
//!
//! Only connections with faults have a shaper (boxed, so an idle client
//! without faults pays one pointer).

use super::rng::Rng;
use crate::faults::{Faults, Limit};
use crate::protocol::Micros;

/// The most a bandwidth bucket holds: 20 ms of the rate (at least one
/// byte), so bursts stay short and the rate holds over any second.
const BURST_MICROS: u64 = 20_000;

/// Bytes per second → bytes per microsecond.
fn per_micro(rate: u64) -> f64 {
    rate as f64 / 1e6
}

/// A token bucket: bytes that may move now, refilled at a rate.
#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    at: Micros,
    started: bool,
}

impl Bucket {
    fn burst(rate: u64) -> f64 {
        (rate as f64 * BURST_MICROS as f64 / 1e6).max(1.0)
    }

    /// Whole bytes available at `now`.
    fn available(&mut self, rate: u64, now: Micros) -> u64 {
        if !self.started {
            // The first burst is allowed at once.
            self.started = true;
            self.tokens = Bucket::burst(rate);
        } else {
            let dt = now.saturating_sub(self.at) as f64;
            self.tokens = (self.tokens + dt * per_micro(rate)).min(Bucket::burst(rate));
        }
        self.at = now;
        self.tokens.max(0.0) as u64
    }

    fn spend(&mut self, n: u64) {
        self.tokens -= n as f64;
    }

    /// When `want` bytes (at most a burst) will be available.
    fn ready_at(&self, rate: u64, want: u64) -> Micros {
        let want = (want as f64).min(Bucket::burst(rate));
        let missing = (want - self.tokens).max(0.0);
        self.at + (missing / per_micro(rate)).ceil() as Micros
    }
}

/// How much one flush may write.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WriteBudget {
    pub bytes: usize,
    /// Stop after one `write` call: a slice must be its own segment.
    pub one_write: bool,
}

#[derive(Debug)]
pub struct Shaper {
    pub faults: Faults,
    /// Under toxicity, this connection was drawn to get the faults.
    pub chosen: bool,
    rng: Rng,
    send: Bucket,
    recv: Bucket,
    /// Bytes left in the slice being written (0: draw the next one).
    slice_left: u32,
    /// The next slice may not start before this.
    next_slice_at: Micros,
    /// Nothing is served before this (`accept=delay`).
    pub hold_until: Micros,
    /// Release time of the last bytes queued under latency; later bytes
    /// never go out before earlier ones.
    last_release: Micros,
    /// The closing fault fired: a reset waits for the sent bytes to leave,
    /// a close for the peer's FIN.
    pub closing: Option<Limit>,
    pub closing_reset: bool,
    /// A closing fault gives up waiting (and resets) at this time.
    pub give_up_at: Option<Micros>,
    /// A reset fault looks again whether its bytes left.
    pub poll_at: Option<Micros>,
    /// When a slow close may finally send its FIN.
    pub close_at: Option<Micros>,
    /// The wake-up already in the loop's timer heap, so a busy connection
    /// does not push one entry per write.
    pub armed: Option<Micros>,
    /// The engine time of the last step that looked at this connection,
    /// for reports made between steps.
    pub observed_at: Micros,
}

impl Shaper {
    pub fn new(faults: Faults, seed: u64, now: Micros) -> Shaper {
        Shaper {
            faults,
            chosen: true,
            rng: Rng::new(seed),
            send: Bucket::default(),
            recv: Bucket::default(),
            slice_left: 0,
            next_slice_at: now,
            hold_until: 0,
            last_release: 0,
            closing: None,
            closing_reset: false,
            give_up_at: None,
            poll_at: None,
            close_at: None,
            armed: None,
            observed_at: now,
        }
    }

    /// A uniform draw in 0..1,000,000.
    pub fn draw(&mut self) -> u32 {
        self.rng.draw()
    }

    fn draw_between(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        let span = u64::from(hi - lo) + 1;
        lo + (u64::from(self.draw()) * span / 1_000_000) as u32
    }

    /// New faults replace the old; what they hold is re-judged at once.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.slice_left = 0;
        if self.faults.latency.is_none() {
            self.last_release = 0;
        }
    }

    /// Whether bytes must be queued (and never written straight from the
    /// read buffer).
    pub fn shapes_writes(&self, now: Micros) -> bool {
        self.faults.shapes_writes() || self.hold_until > now || self.closing.is_some()
    }

    /// When bytes queued at `now` may go out: after the latency (with its
    /// jitter), and never before bytes queued earlier.
    pub fn release_at(&mut self, now: Micros) -> Micros {
        let Some(l) = self.faults.latency else {
            return 0;
        };
        let jitter = self.draw_between(0, 2 * l.jitter) as i64 - i64::from(l.jitter);
        let delay = (i64::from(l.delay) + jitter).max(0) as u64 * 1000;
        self.last_release = self.last_release.max(now + delay);
        self.last_release
    }

    /// How much may be written now, given `tx` bytes sent so far.
    pub fn write_budget(&mut self, now: Micros, tx: u64) -> WriteBudget {
        let mut budget = WriteBudget {
            bytes: usize::MAX,
            one_write: false,
        };
        if self.faults.stall_writes
            || self.hold_until > now
            || self.close_at.is_some()
            || self.closing.is_some()
        {
            budget.bytes = 0;
            return budget;
        }
        for limit in [self.faults.close_after, self.faults.reset_after]
            .into_iter()
            .flatten()
        {
            if let Limit::Bytes(n) = limit {
                budget.bytes = budget.bytes.min(n.saturating_sub(tx) as usize);
            }
        }
        if let Some(rate) = self.faults.bandwidth {
            budget.bytes = budget.bytes.min(self.send.available(rate, now) as usize);
        }
        if let Some(s) = self.faults.slice {
            if now < self.next_slice_at {
                budget.bytes = 0;
            } else {
                if self.slice_left == 0 {
                    self.slice_left = self.draw_between(s.min, s.max);
                }
                budget.bytes = budget.bytes.min(self.slice_left as usize);
                budget.one_write = true;
            }
        }
        budget
    }

    /// Whether a write within `budget` sends the queued bytes unchanged and
    /// unlimited (a latency or accept hold only): then released messages
    /// go out by `writev` from the queue, with no gathering copy.
    pub fn passes_through(&self, budget: WriteBudget) -> bool {
        budget.bytes == usize::MAX && !budget.one_write && self.faults.corrupt.is_none()
    }

    /// `n` bytes went out at `now`.
    pub fn wrote(&mut self, n: usize, now: Micros) {
        if self.faults.bandwidth.is_some() {
            self.send.spend(n as u64);
        }
        if let Some(s) = self.faults.slice {
            self.slice_left = self.slice_left.saturating_sub(n as u32);
            if self.slice_left == 0 {
                self.next_slice_at = now + u64::from(s.delay) * 1000;
            }
        }
    }

    /// Alter each byte with the corrupt fault's chance (to a different
    /// value, so an altered byte is always visible).
    pub fn corrupt(&mut self, bytes: &mut [u8]) {
        let Some(chance) = self.faults.corrupt else {
            return;
        };
        for b in bytes {
            if chance.admits(self.draw()) {
                *b ^= 1 + (self.draw() % 255) as u8;
            }
        }
    }

    /// How much may be read now (0: stop reading until [`Shaper::next_wake`]).
    pub fn read_budget(&mut self, now: Micros, buf: usize) -> usize {
        if self.hold_until > now {
            return 0;
        }
        match self.faults.read_bandwidth {
            Some(rate) => (self.recv.available(rate, now) as usize).min(buf),
            None => buf,
        }
    }

    pub fn read(&mut self, n: usize) {
        if self.faults.read_bandwidth.is_some() {
            self.recv.spend(n as u64);
        }
    }

    /// The closing fault due now, if any: bytes sent reached its size, or
    /// its time since accept passed.
    pub fn close_due(&self, tx: u64, opened_at: Micros, now: Micros) -> Option<(Limit, bool)> {
        let due = |l: Limit| match l {
            Limit::Bytes(n) => tx >= n,
            Limit::After(ms) => now >= opened_at + u64::from(ms) * 1000,
        };
        if let Some(l) = self.faults.reset_after.filter(|l| due(*l)) {
            return Some((l, true));
        }
        self.faults
            .close_after
            .filter(|l| due(*l))
            .map(|l| (l, false))
    }

    /// When the loop must come back for this connection: the earliest of
    /// the held bytes' release, the next slice, the bandwidth refill, the
    /// end of an accept delay, a timed closing fault, and a slow close.
    /// `head_release` is when the queue's first bytes may go (if queued),
    /// `read_held` whether reading waits for the read bucket.
    pub fn next_wake(
        &self,
        now: Micros,
        head_release: Option<Micros>,
        queued: u64,
        read_held: bool,
        opened_at: Micros,
    ) -> Option<Micros> {
        let mut wake: Option<Micros> = None;
        let mut at = |t: Micros| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.hold_until > now {
            at(self.hold_until);
        }
        for t in [self.close_at, self.give_up_at, self.poll_at]
            .into_iter()
            .flatten()
        {
            at(t);
        }
        for limit in [self.faults.close_after, self.faults.reset_after]
            .into_iter()
            .flatten()
        {
            if let Limit::After(ms) = limit {
                at(opened_at + u64::from(ms) * 1000);
            }
        }
        if queued > 0 && !self.faults.stall_writes {
            if let Some(t) = head_release.filter(|t| *t > now) {
                at(t);
            }
            if self.faults.slice.is_some() && self.next_slice_at > now {
                at(self.next_slice_at);
            }
            if let Some(rate) = self.faults.bandwidth
                && self.send.tokens < 1.0
            {
                at(self.send.ready_at(rate, queued));
            }
        }
        if read_held {
            // Reading resumes when the hold is over and the read bucket has
            // bytes again; already due, the loop comes back at once (an
            // event that came after the hold ended must not leave it shut).
            let bucket = match self.faults.read_bandwidth {
                Some(rate) => self.recv.ready_at(rate, u64::MAX),
                None => 0,
            };
            at(bucket.max(self.hold_until).max(now));
        }
        wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Chance, Latency, Slice};

    fn shaper(faults: Faults) -> Shaper {
        Shaper::new(faults, 7, 0)
    }

    #[test]
    fn latency_releases_in_order_and_never_early() {
        let mut s = shaper(Faults {
            latency: Some(Latency {
                delay: 100,
                jitter: 50,
            }),
            ..Faults::default()
        });
        let mut last = 0;
        for i in 0..1000u64 {
            let now = i * 1000;
            let r = s.release_at(now);
            assert!(r >= now + 50_000, "{r} < {now} + 50 ms");
            assert!(r >= last, "released before earlier bytes");
            last = r;
        }
    }

    #[test]
    fn bandwidth_holds_its_rate_over_a_second() {
        let mut s = shaper(Faults {
            bandwidth: Some(10_000),
            ..Faults::default()
        });
        let mut sent = 0u64;
        let mut now = 0;
        while now <= 1_000_000 {
            let b = s.write_budget(now, sent);
            s.wrote(b.bytes, now);
            sent += b.bytes as u64;
            now = s
                .next_wake(now, None, 1 << 20, false, 0)
                .expect("held bytes wake the loop")
                .max(now + 1);
        }
        assert!((9_500..=10_500).contains(&sent), "{sent} B in 1 s");
    }

    #[test]
    fn slices_are_one_write_each_and_spaced() {
        let mut s = shaper(Faults {
            slice: Some(Slice {
                min: 4,
                max: 8,
                delay: 5,
            }),
            ..Faults::default()
        });
        let b = s.write_budget(0, 0);
        assert!(b.one_write && (4..=8).contains(&b.bytes), "{b:?}");
        s.wrote(b.bytes, 0);
        assert_eq!(s.write_budget(1000, 0).bytes, 0, "the next slice waits");
        assert_eq!(s.next_wake(1000, Some(0), 10, false, 0), Some(5000));
        assert!(s.write_budget(5000, 0).bytes >= 4);
    }

    #[test]
    fn closing_faults_stop_at_their_size_or_time() {
        let s = shaper(Faults {
            reset_after: Some(Limit::Bytes(512)),
            close_after: Some(Limit::After(2000)),
            ..Faults::default()
        });
        assert_eq!(s.close_due(511, 0, 0), None);
        assert_eq!(s.close_due(512, 0, 0), Some((Limit::Bytes(512), true)));
        assert_eq!(
            s.close_due(0, 1_000_000, 3_000_000),
            Some((Limit::After(2000), false))
        );
        let mut s = s;
        assert_eq!(s.write_budget(0, 500).bytes, 12, "at most up to the size");
    }

    #[test]
    fn corrupting_always_changes_a_chosen_byte() {
        let mut s = shaper(Faults {
            corrupt: Some(Chance::ALWAYS),
            ..Faults::default()
        });
        let mut bytes = [0u8; 4096];
        s.corrupt(&mut bytes);
        assert!(bytes.iter().all(|&b| b != 0));
        let mut never = shaper(Faults {
            corrupt: Some(Chance(0)),
            ..Faults::default()
        });
        let mut bytes = [0u8; 4096];
        never.corrupt(&mut bytes);
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
