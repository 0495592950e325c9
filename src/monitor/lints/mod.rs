//! Lints: what the client does wrong, said in plain words.
//!
//! As in tokio-console, each lint is small and separate (one module each):
//! a plain function of one connection's recent history (or, for
//! `reconnect-storm`, one host's) that says whether its condition holds and
//! since when. [`Lints`] keeps the histories, fed by the batches a viewer
//! gets (events, counters and their `TCP_INFO` samples), and fires a lint
//! only once its condition has held for the lint's time, so a passing state
//! is not a warning. It lives on the viewer's side, so it works the same on
//! a live engine, a remote one and a recording, and headless runs it too.

mod abortive_close;
mod client_not_reading;
mod half_open_read;
pub mod history;
mod incomplete_message;
mod nagle_delay;
mod reconnect_storm;
mod retransmits;
mod silent_client;
mod tiny_writes;

pub use history::{ConnHistory, HostHistory};

use crate::protocol::{Batch, ConnId, ConnState, Micros};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// Every lint muxscope knows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lint {
    ClientNotReading,
    SilentClient,
    NagleDelay,
    TinyWrites,
    HalfOpenRead,
    AbortiveClose,
    ReconnectStorm,
    IncompleteMessage,
    Retransmits,
}

impl Lint {
    pub const ALL: [Lint; 9] = [
        Lint::ClientNotReading,
        Lint::SilentClient,
        Lint::NagleDelay,
        Lint::TinyWrites,
        Lint::HalfOpenRead,
        Lint::AbortiveClose,
        Lint::ReconnectStorm,
        Lint::IncompleteMessage,
        Lint::Retransmits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Lint::ClientNotReading => "client-not-reading",
            Lint::SilentClient => "silent-client",
            Lint::NagleDelay => "nagle-delay",
            Lint::TinyWrites => "tiny-writes",
            Lint::HalfOpenRead => "half-open-read",
            Lint::AbortiveClose => "abortive-close",
            Lint::ReconnectStorm => "reconnect-storm",
            Lint::IncompleteMessage => "incomplete-message",
            Lint::Retransmits => "retransmits",
        }
    }

    /// A lint by name, or an error listing the names.
    pub fn parse(name: &str) -> Result<Lint, String> {
        Lint::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Lint::ALL.iter().map(|l| l.name()).collect();
                format!("unknown lint '{name}': the lints are {}", names.join(", "))
            })
    }

    /// When it fires, in one line.
    pub fn condition(self, s: &LintSettings) -> String {
        match self {
            Lint::ClientNotReading => format!(
                "the client's receive window has been zero, or its queue at the bound, for {}",
                secs(client_not_reading::HOLD)
            ),
            Lint::SilentClient => format!(
                "connected, and no byte received for {}",
                secs(s.silent_after)
            ),
            Lint::NagleDelay => {
                "one message arrives as several small reads about 40 ms apart".to_owned()
            }
            Lint::TinyWrites => format!(
                "{}+ reads a second, averaging {} bytes or less, for {}",
                tiny_writes::MIN_RATE,
                tiny_writes::MAX_MEAN,
                secs(tiny_writes::HOLD)
            ),
            Lint::HalfOpenRead => format!(
                "muxscope sent FIN and the client neither closed nor read for {}",
                secs(s.half_open_after)
            ),
            Lint::AbortiveClose => {
                "the client reset the connection instead of closing it".to_owned()
            }
            Lint::ReconnectStorm => format!(
                "more than {} connects a second from one host for {}",
                s.storm_per_sec,
                secs(s.storm_for)
            ),
            Lint::IncompleteMessage => format!(
                "a message (under the scenario's framing) has stayed incomplete for {}",
                secs(s.incomplete_after)
            ),
            Lint::Retransmits => format!(
                "over {}% of the segments sent to the client were retransmitted, for {}",
                s.retransmit_percent,
                secs(retransmits::HOLD)
            ),
        }
    }

    /// Why it matters, and what to fix in the client.
    pub fn advice(self) -> &'static str {
        match self {
            Lint::ClientNotReading => {
                "The client stopped reading its socket: its receive buffer is full, so the server's writes pile up (here, in muxscope's queue; in a real server, in memory or a blocked thread). Read continuously, or apply back-pressure on purpose and document it; check for a reader that blocks on something else."
            }
            Lint::SilentClient => {
                "The client connected and says nothing. If it waits for the server to speak first, check the protocol; if it is a pool of idle connections, make sure it sends keepalives, or servers and middleboxes will drop them."
            }
            Lint::NagleDelay => {
                "The client writes one message in several small write() calls. With Nagle's algorithm on, each small write after the first waits for the ACK of the previous one, and the server delays that ACK (about 40 ms): every message pays 40 ms or more. Build the message in a buffer and write it once (or use writev), or set TCP_NODELAY."
            }
            Lint::TinyWrites => {
                "The client sends many tiny writes: each is a system call and, without Nagle, a packet with 40+ bytes of headers. Buffer writes (BufWriter, a write queue flushed once per message or per event-loop turn)."
            }
            Lint::HalfOpenRead => {
                "The server closed (FIN) and the client has not noticed: its socket sits in CLOSE_WAIT, holding a descriptor. Handle read() returning 0 (EOF) by closing the socket, and watch for it even while idle."
            }
            Lint::AbortiveClose => {
                "The client ended with a reset (RST) instead of FIN: it closed with unread data in its receive buffer, or with SO_LINGER set to 0. Bytes in flight to it are lost and the server sees an error. Read until EOF (or shutdown(SHUT_WR) and drain) before close(), and do not set SO_LINGER 0 unless you mean to abort."
            }
            Lint::ReconnectStorm => {
                "One host connects again and again. Retrying without delay multiplies load exactly when a server is in trouble. Back off exponentially with jitter, cap the rate, and reuse connections."
            }
            Lint::IncompleteMessage => {
                "The client began a message and stopped partway: a length prefix that counts more bytes than it sends, a missing delimiter or newline, or a write that was not flushed. Check the length arithmetic, the terminator, and that the client flushes its buffer."
            }
            Lint::Retransmits => {
                "Segments to the client are being retransmitted: packets are lost or reordered on the way (or tc netem is doing it). Expect latency spikes; make the client's timeouts tolerate them, and check the network path."
            }
        }
    }
}

fn secs(us: Micros) -> String {
    crate::format::duration_micros(us)
}

/// Which lints run, and their times. Saved in layouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LintSettings {
    /// Lints turned off (`--allow`, or unticked in View → Lints).
    pub allowed: BTreeSet<Lint>,
    pub silent_after: Micros,
    pub half_open_after: Micros,
    pub incomplete_after: Micros,
    pub storm_per_sec: u32,
    pub storm_for: Micros,
    pub retransmit_percent: u32,
}

impl Default for LintSettings {
    fn default() -> Self {
        LintSettings {
            allowed: BTreeSet::new(),
            silent_after: 10_000_000,
            half_open_after: 1_000_000,
            incomplete_after: 2_000_000,
            storm_per_sec: 20,
            storm_for: 2_000_000,
            retransmit_percent: 2,
        }
    }
}

impl LintSettings {
    pub fn enabled(&self, lint: Lint) -> bool {
        !self.allowed.contains(&lint)
    }
}

/// A lint's condition holds, since `since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub since: Micros,
    pub message: String,
}

/// What a lint's check may use.
pub struct Check<'a> {
    pub now: Micros,
    pub settings: &'a LintSettings,
}

/// A lint that fired: on a connection, or on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub lint: Lint,
    pub conn: Option<ConnId>,
    pub host: Option<IpAddr>,
    pub since: Micros,
    pub fired_at: Micros,
    /// One line that names the connection (or host).
    pub message: String,
}

impl Finding {
    /// `#12 client-not-reading: …`, as headless prints it.
    pub fn line(&self) -> String {
        format!("{} {}", self.lint.name(), self.message)
    }
}

/// Where a finding sits: a connection or a host.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Conn(ConnId),
    Host(IpAddr),
}

/// Every connection's and host's history, and the lints firing on them.
#[derive(Debug, Default)]
pub struct Lints {
    pub settings: LintSettings,
    conns: HashMap<ConnId, ConnHistory>,
    hosts: HashMap<IpAddr, HostHistory>,
    /// The episodes firing now (a condition that stops ends its episode).
    active: HashMap<(Lint, Subject), Finding>,
    /// Episodes fired so far, per lint.
    fired: HashMap<Lint, u64>,
}

/// How often one lint fired, and how many fire now.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LintCount {
    pub active: usize,
    pub fired: u64,
}

/// Closed connections' histories are kept this long, as their rows are.
const CLOSED_KEPT: Micros = 60_000_000;

impl Lints {
    pub fn observe(&mut self, batch: &Batch) {
        for e in &batch.events {
            if let (Some(id), crate::protocol::EventKind::Accepted { peer }) = (e.conn, &e.kind) {
                self.hosts.entry(peer.ip()).or_default().accepted(e.at);
                self.conns
                    .entry(id)
                    .or_insert_with(|| ConnHistory::new(id, *peer, e.at));
            }
            if let Some(id) = e.conn
                && let Some(h) = self.conns.get_mut(&id)
            {
                h.event(e);
            }
        }
        for c in &batch.counters {
            self.conns
                .entry(c.id)
                .or_insert_with(|| ConnHistory::new(c.id, c.peer, c.opened_at))
                .counters(c);
        }
    }

    /// Run every enabled lint at `now`; returns the findings that fired
    /// just now (each episode once).
    pub fn evaluate(&mut self, now: Micros) -> Vec<Finding> {
        let mut holding: HashMap<(Lint, Subject), Condition> = HashMap::new();
        let check = Check {
            now,
            settings: &self.settings,
        };
        for h in self.conns.values() {
            for lint in Lint::ALL {
                if !self.settings.enabled(lint) {
                    continue;
                }
                if let Some((c, hold)) = check_conn(lint, h, &check)
                    && now.saturating_sub(c.since) >= hold
                {
                    holding.insert((lint, Subject::Conn(h.id)), c);
                }
            }
        }
        if self.settings.enabled(Lint::ReconnectStorm) {
            for (ip, host) in &self.hosts {
                if let Some(c) = reconnect_storm::check(*ip, host, &check)
                    && now.saturating_sub(c.since) >= self.settings.storm_for
                {
                    holding.insert((Lint::ReconnectStorm, Subject::Host(*ip)), c);
                }
            }
        }
        self.active.retain(|key, _| holding.contains_key(key));
        let mut fired = Vec::new();
        for (key, c) in holding {
            if let Some(f) = self.active.get_mut(&key) {
                f.message = c.message;
                continue;
            }
            let (lint, subject) = key;
            let finding = Finding {
                lint,
                conn: match subject {
                    Subject::Conn(id) => Some(id),
                    Subject::Host(_) => None,
                },
                host: match subject {
                    Subject::Host(ip) => Some(ip),
                    Subject::Conn(_) => None,
                },
                since: c.since,
                fired_at: now,
                message: c.message,
            };
            *self.fired.entry(lint).or_default() += 1;
            self.active.insert(key, finding.clone());
            fired.push(finding);
        }
        fired.sort_by_key(|f| (f.since, f.lint));
        self.forget_old(now);
        fired
    }

    fn forget_old(&mut self, now: Micros) {
        self.conns.retain(|_, h| match &h.counters.state {
            ConnState::Closed(_) => h.last_seen + CLOSED_KEPT >= now,
            _ => true,
        });
        self.hosts.retain(|_, h| h.recent(now));
    }

    /// Findings firing now, oldest first.
    pub fn active(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> = self.active.values().collect();
        all.sort_by_key(|f| (f.since, f.lint, f.conn));
        all
    }

    /// The lints firing on one connection now.
    pub fn on_conn(&self, id: ConnId) -> Vec<&Finding> {
        let mut found: Vec<&Finding> = Lint::ALL
            .iter()
            .filter_map(|l| self.active.get(&(*l, Subject::Conn(id))))
            .collect();
        found.sort_by_key(|f| f.lint);
        found
    }

    pub fn count(&self, lint: Lint) -> LintCount {
        LintCount {
            active: self.active.keys().filter(|(l, _)| *l == lint).count(),
            fired: self.fired.get(&lint).copied().unwrap_or(0),
        }
    }

    /// The connections a lint fires on now.
    pub fn conns_with(&self, lint: Lint) -> BTreeSet<ConnId> {
        self.active
            .values()
            .filter(|f| f.lint == lint)
            .filter_map(|f| f.conn)
            .collect()
    }
}

/// A connection's lint: its condition, and how long it must hold.
fn check_conn(lint: Lint, h: &ConnHistory, c: &Check) -> Option<(Condition, Micros)> {
    let s = c.settings;
    match lint {
        Lint::ClientNotReading => {
            client_not_reading::check(h, c).map(|x| (x, client_not_reading::HOLD))
        }
        Lint::SilentClient => silent_client::check(h, c).map(|x| (x, s.silent_after)),
        Lint::NagleDelay => nagle_delay::check(h, c).map(|x| (x, 0)),
        Lint::TinyWrites => tiny_writes::check(h, c).map(|x| (x, tiny_writes::HOLD)),
        Lint::HalfOpenRead => half_open_read::check(h, c).map(|x| (x, s.half_open_after)),
        Lint::AbortiveClose => abortive_close::check(h, c).map(|x| (x, 0)),
        Lint::IncompleteMessage => incomplete_message::check(h, c).map(|x| (x, s.incomplete_after)),
        Lint::Retransmits => retransmits::check(h, c).map(|x| (x, retransmits::HOLD)),
        Lint::ReconnectStorm => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_list_the_lints() {
        for l in Lint::ALL {
            assert_eq!(Lint::parse(l.name()), Ok(l));
            assert!(!l.advice().is_empty());
            assert!(!l.condition(&LintSettings::default()).is_empty());
        }
        let err = Lint::parse("nagel-delay").unwrap_err();
        assert!(
            err.contains("nagle-delay") && err.contains("retransmits"),
            "{err}"
        );
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::protocol::{ConnCounters, Event, EventKind, TcpInfo};

    pub fn lints() -> Lints {
        Lints::default()
    }

    pub fn peer(id: u64) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", 40_000 + id).parse().unwrap()
    }

    pub fn open_row(id: u64, at: Micros) -> ConnCounters {
        ConnCounters::opened(ConnId(id), peer(id), at)
    }

    pub fn sample(at: Micros, peer_window: Option<u32>) -> TcpInfo {
        TcpInfo {
            at,
            rtt_us: 20_000,
            peer_window,
            ..TcpInfo::default()
        }
    }

    fn event(l: &mut Lints, id: u64, at: Micros, kind: EventKind) {
        l.observe(&Batch {
            events: vec![Event {
                at,
                conn: Some(ConnId(id)),
                kind,
            }],
            ..Batch::default()
        });
    }

    pub fn accept(l: &mut Lints, id: u64, at: Micros) {
        event(l, id, at, EventKind::Accepted { peer: peer(id) });
    }

    pub fn read(l: &mut Lints, id: u64, at: Micros, n: u32) {
        event(l, id, at, EventKind::Read { n });
    }

    pub fn wrote(l: &mut Lints, id: u64, at: Micros, n: u32) {
        event(l, id, at, EventKind::Wrote { n });
    }

    pub fn observe_counters(l: &mut Lints, c: ConnCounters) {
        l.observe(&Batch {
            counters: vec![c],
            ..Batch::default()
        });
    }
}
