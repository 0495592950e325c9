//! `ConnectionTable`: every connection's latest counters, plus the sorted and
//! filtered order the table draws. Closed connections stay for a while so
//! the user can still see how they ended.

use crate::protocol::{ConnCounters, ConnId, ConnState, Micros};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;

/// How long closed rows stay visible (engine time).
pub const CLOSED_RETENTION: Micros = 60_000_000;
/// Closed rows kept at most, so a storm of short connections stays cheap.
pub const MAX_CLOSED_ROWS: usize = 2_000;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Column {
    Id,
    /// ⚠ when a lint fires on it (from the lints, not the counters).
    Warnings,
    Peer,
    State,
    Age,
    Rx,
    Tx,
    Queued,
    Msgs,
    HighWater,
    LastActivity,
    // The kernel's view (`TCP_INFO`); optional, off by default.
    Rtt,
    Retransmits,
    PeerWindow,
    Unsent,
}

impl Column {
    pub const ALL: [Column; 15] = [
        Column::Id,
        Column::Warnings,
        Column::Peer,
        Column::State,
        Column::Age,
        Column::Rx,
        Column::Tx,
        Column::Queued,
        Column::Msgs,
        Column::HighWater,
        Column::LastActivity,
        Column::Rtt,
        Column::Retransmits,
        Column::PeerWindow,
        Column::Unsent,
    ];

    /// Off until chosen in the Columns menu: a layout saved before such a
    /// column existed does not hide it, yet should not show it either.
    pub fn optional(self) -> bool {
        matches!(
            self,
            Column::Rtt | Column::Retransmits | Column::PeerWindow | Column::Unsent
        )
    }

    pub fn title(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::Warnings => "⚠",
            Column::Peer => "peer",
            Column::State => "state",
            Column::Age => "age",
            Column::Rx => "rx",
            Column::Tx => "tx",
            Column::Queued => "queued",
            Column::Msgs => "msgs",
            Column::HighWater => "queue peak",
            Column::LastActivity => "last activity",
            Column::Rtt => "RTT",
            Column::Retransmits => "retrans",
            Column::PeerWindow => "peer window",
            Column::Unsent => "unsent",
        }
    }

    /// What the column holds, for its header's tooltip.
    pub fn description(self) -> &'static str {
        match self {
            Column::Id => "Connection id, in order of accept (never reused)",
            Column::Warnings => {
                "Lints that fire on it (hover a ⚠ for what; the Diagnostics pane explains)"
            }
            Column::Peer => "The client's address and port",
            Column::State => "Open, paused (and why), closing, or how it closed",
            Column::Age => "Time since accept (until close, for closed rows)",
            Column::Rx => "Bytes received from the client",
            Column::Tx => "Bytes sent to the client",
            Column::Queued => "Bytes waiting to be written to the client",
            Column::Msgs => "Messages waiting in the queue",
            Column::HighWater => "The most bytes ever queued for this client",
            Column::LastActivity => "Time since muxscope last read from or wrote to it",
            Column::Rtt => "The kernel's smoothed round-trip time (TCP_INFO)",
            Column::Retransmits => "Segments the kernel retransmitted over its life (TCP_INFO)",
            Column::PeerWindow => {
                "The window the client advertises: 0 means it is not reading (TCP_INFO)"
            }
            Column::Unsent => "Bytes written to the socket that TCP has not sent yet (TCP_INFO)",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub column: Column,
    pub ascending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            column: Column::Id,
            ascending: true,
        }
    }
}

/// The state label to draw: [`state_label`], with the countdown of a
/// running graceful kick (`now` is the engine's clock).
pub fn state_label_at(c: &ConnCounters, now: Micros) -> String {
    match c.state {
        ConnState::Closing { deadline } => format!(
            "closing (reset in {})",
            crate::format::duration_micros(deadline.saturating_sub(now))
        ),
        _ => state_label(c),
    }
}

/// A short state label for a row, e.g. `paused (backpressure)`; stable
/// over time, so rows sort and filter by it.
pub fn state_label(c: &ConnCounters) -> String {
    let label = state_label_plain(c);
    match &c.faults {
        _ if matches!(c.state, ConnState::Closed(_)) => label,
        Some(f) if f.active => format!("⚡ {label} · faults"),
        Some(f) if !f.chosen => format!("{label} · spared (toxicity)"),
        _ => label,
    }
}

fn state_label_plain(c: &ConnCounters) -> String {
    match &c.state {
        ConnState::Closed(reason) => format!("closed: {reason}"),
        ConnState::Closing { .. } => "closing".into(),
        ConnState::HalfClosed => "half-closed".into(),
        ConnState::Open if c.backpressure => "paused (backpressure)".into(),
        ConnState::Open if c.read_paused => "paused (by you)".into(),
        ConnState::Open => "open".into(),
    }
}

#[derive(Debug, Default)]
pub struct ConnectionTable {
    rows: HashMap<ConnId, ConnCounters>,
    closed: usize,
    order: Vec<ConnId>,
    order_stale: bool,
    /// Sort and filter the current `order` was built with.
    built_for: Option<(Sort, String)>,
    /// That filter, trimmed and lowercased as `matches_filter` wants it.
    built_needle: String,
}

impl ConnectionTable {
    pub fn upsert(&mut self, counters: ConnCounters) {
        let closed = matches!(counters.state, ConnState::Closed(_));
        // Most updates change counters that neither the sort column nor the
        // filter looks at; those leave the built order valid, so a busy
        // table is not re-sorted every frame.
        let reorders = match (self.rows.get(&counters.id), &self.built_for) {
            (Some(old), Some((sort, _))) => {
                compare(old, &counters, sort.column) != Ordering::Equal
                    || matches_filter(old, &self.built_needle)
                        != matches_filter(&counters, &self.built_needle)
            }
            _ => true,
        };
        match self.rows.insert(counters.id, counters) {
            None => {
                self.closed += closed as usize;
            }
            Some(old) => {
                let was_closed = matches!(old.state, ConnState::Closed(_));
                self.closed += closed as usize;
                self.closed -= was_closed as usize;
            }
        }
        self.order_stale |= reorders;
    }

    pub fn get(&self, id: ConnId) -> Option<&ConnCounters> {
        self.rows.get(&id)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn open_count(&self) -> usize {
        self.rows.len() - self.closed
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConnCounters> {
        self.rows.values()
    }

    /// Resynchronise with the engine's list of open connections: a row
    /// shown as live whose id is not listed closed while this viewer was
    /// behind (ids are never reused), so it is marked closed at `now`.
    pub fn close_unlisted(&mut self, open: &[ConnId], now: Micros) {
        let open: std::collections::HashSet<ConnId> = open.iter().copied().collect();
        let gone: Vec<ConnId> = self
            .rows
            .values()
            .filter(|c| !matches!(c.state, ConnState::Closed(_)) && !open.contains(&c.id))
            .map(|c| c.id)
            .collect();
        for id in gone {
            let mut row = self.rows[&id].clone();
            row.state = ConnState::Closed(crate::protocol::CloseReason::Missed);
            row.queued_bytes = 0;
            row.queued_msgs = 0;
            row.last_activity = row.last_activity.max(now);
            self.upsert(row);
        }
    }

    /// Forget closed rows older than the retention, and the oldest beyond
    /// the cap.
    pub fn prune(&mut self, now: Micros) {
        if self.closed == 0 {
            return;
        }
        let before = self.rows.len();
        self.rows.retain(|_, c| {
            !matches!(c.state, ConnState::Closed(_))
                || now.saturating_sub(c.last_activity) < CLOSED_RETENTION
        });
        if self.closed - (before - self.rows.len()) > MAX_CLOSED_ROWS {
            let mut closed: Vec<(Micros, ConnId)> = self
                .rows
                .values()
                .filter(|c| matches!(c.state, ConnState::Closed(_)))
                .map(|c| (c.last_activity, c.id))
                .collect();
            closed.sort_unstable();
            let excess = closed.len() - MAX_CLOSED_ROWS;
            for (_, id) in &closed[..excess] {
                self.rows.remove(id);
            }
        }
        if self.rows.len() != before {
            self.closed = self
                .rows
                .values()
                .filter(|c| matches!(c.state, ConnState::Closed(_)))
                .count();
            self.order_stale = true;
        }
    }

    /// The rows to draw, filtered and sorted. Rebuilt only when rows or the
    /// sort/filter changed.
    pub fn view(&mut self, sort: Sort, filter: &str) -> &[ConnId] {
        let current = self
            .built_for
            .as_ref()
            .is_some_and(|(s, f)| *s == sort && f == filter);
        if self.order_stale || !current {
            let needle = filter.trim().to_lowercase();
            // Sort the rows themselves rather than ids: a comparator that
            // looks ids up in the map costs two hashes per comparison.
            let mut rows: Vec<&ConnCounters> = self
                .rows
                .values()
                .filter(|c| matches_filter(c, &needle))
                .collect();
            rows.sort_unstable_by(|a, b| {
                let ord = compare(a, b, sort.column).then(a.id.cmp(&b.id));
                if sort.ascending { ord } else { ord.reverse() }
            });
            self.order.clear();
            self.order.extend(rows.iter().map(|c| c.id));
            self.order_stale = false;
            self.built_for = Some((sort, filter.to_owned()));
            self.built_needle = needle;
        }
        &self.order
    }

    /// The order `view` built last, without rebuilding it.
    pub fn order(&self) -> &[ConnId] {
        &self.order
    }
}

/// A filter matches the id (`#12` or `12`), the peer address, or the state.
pub fn matches_filter(c: &ConnCounters, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let id = c.id.0.to_string();
    needle.split_whitespace().all(|word| {
        let word_id = word.strip_prefix('#').unwrap_or(word);
        id == word_id
            || c.peer.to_string().contains(word)
            || state_label(c).to_lowercase().contains(word)
    })
}

fn compare(a: &ConnCounters, b: &ConnCounters, column: Column) -> Ordering {
    match column {
        // The table knows counters, not lints.
        Column::Id | Column::Warnings => a.id.cmp(&b.id),
        Column::Peer => a.peer.cmp(&b.peer),
        Column::State => state_label(a).cmp(&state_label(b)),
        // Older connections have smaller `opened_at`, i.e. larger age.
        Column::Age => b.opened_at.cmp(&a.opened_at),
        Column::Rx => a.rx_bytes.cmp(&b.rx_bytes),
        Column::Tx => a.tx_bytes.cmp(&b.tx_bytes),
        Column::Queued => a.queued_bytes.cmp(&b.queued_bytes),
        Column::Msgs => a.queued_msgs.cmp(&b.queued_msgs),
        Column::HighWater => a.queue_high_water.cmp(&b.queue_high_water),
        Column::LastActivity => a.last_activity.cmp(&b.last_activity),
        // Rows not sampled yet sort first.
        Column::Rtt => tcp_key(a, |t| Some(t.rtt_us)).cmp(&tcp_key(b, |t| Some(t.rtt_us))),
        Column::Retransmits => {
            tcp_key(a, |t| Some(t.total_retrans)).cmp(&tcp_key(b, |t| Some(t.total_retrans)))
        }
        Column::PeerWindow => tcp_key(a, |t| t.peer_window).cmp(&tcp_key(b, |t| t.peer_window)),
        Column::Unsent => {
            tcp_key(a, |t| Some(t.notsent_bytes)).cmp(&tcp_key(b, |t| Some(t.notsent_bytes)))
        }
    }
}

fn tcp_key(c: &ConnCounters, f: fn(&crate::protocol::TcpInfo) -> Option<u32>) -> Option<u32> {
    c.tcp.as_deref().and_then(f)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::CloseReason;

    pub fn row(id: u64, port: u16, rx: u64) -> ConnCounters {
        let peer = format!("127.0.0.1:{port}").parse().unwrap();
        ConnCounters {
            rx_bytes: rx,
            tx_bytes: rx,
            ..ConnCounters::opened(ConnId(id), peer, id * 10)
        }
    }

    #[test]
    fn sorts_and_filters() {
        let mut t = ConnectionTable::default();
        t.upsert(row(1, 5001, 300));
        t.upsert(row(2, 5002, 100));
        t.upsert(row(3, 6003, 200));
        let by_rx = Sort {
            column: Column::Rx,
            ascending: false,
        };
        assert_eq!(t.view(by_rx, ""), [ConnId(1), ConnId(3), ConnId(2)]);
        assert_eq!(t.view(by_rx, "500"), [ConnId(1), ConnId(2)]);
        assert_eq!(t.view(by_rx, "#3"), [ConnId(3)]);
        assert_eq!(
            t.view(Sort::default(), ""),
            [ConnId(1), ConnId(2), ConnId(3)]
        );
        // An update re-sorts.
        t.upsert(row(2, 5002, 1000));
        assert_eq!(t.view(by_rx, ""), [ConnId(2), ConnId(1), ConnId(3)]);
    }

    #[test]
    fn updates_resort_only_when_sort_key_or_filter_match_changes() {
        let mut t = ConnectionTable::default();
        t.upsert(row(1, 5001, 300));
        t.upsert(row(2, 5002, 100));
        let by_rx = Sort {
            column: Column::Rx,
            ascending: false,
        };
        assert_eq!(t.view(Sort::default(), ""), [ConnId(1), ConnId(2)]);
        // Not the sort key: the order stays built.
        t.upsert(row(2, 5002, 1000));
        assert!(!t.order_stale);
        assert_eq!(t.view(by_rx, ""), [ConnId(2), ConnId(1)]);
        // The sort key: rebuilt.
        t.upsert(row(1, 5001, 5000));
        assert!(t.order_stale);
        assert_eq!(t.view(by_rx, ""), [ConnId(1), ConnId(2)]);
        // Leaving the filtered set: rebuilt, even though the sort key (id)
        // did not change.
        assert_eq!(t.view(Sort::default(), "open"), [ConnId(1), ConnId(2)]);
        let mut closed = row(2, 5002, 1000);
        closed.state = ConnState::Closed(CloseReason::PeerClosed);
        t.upsert(closed);
        assert_eq!(t.view(Sort::default(), "open"), [ConnId(1)]);
        // A new row: rebuilt.
        t.upsert(row(3, 5003, 0));
        assert_eq!(t.view(Sort::default(), "open"), [ConnId(1), ConnId(3)]);
    }

    #[test]
    fn closed_rows_linger_then_go() {
        let mut t = ConnectionTable::default();
        t.upsert(row(1, 5001, 0));
        let mut closed = row(2, 5002, 0);
        closed.state = ConnState::Closed(CloseReason::PeerReset);
        closed.last_activity = 1_000;
        t.upsert(closed);
        assert_eq!(t.open_count(), 1);
        assert!(t.view(Sort::default(), "closed").contains(&ConnId(2)));
        t.prune(1_000 + CLOSED_RETENTION - 1);
        assert_eq!(t.len(), 2);
        t.prune(1_000 + CLOSED_RETENTION);
        assert_eq!(t.len(), 1);
        assert_eq!(t.view(Sort::default(), ""), [ConnId(1)]);
    }

    #[test]
    fn closed_rows_are_capped() {
        let mut t = ConnectionTable::default();
        for i in 0..(MAX_CLOSED_ROWS as u64 + 10) {
            let mut c = row(i, 1000, 0);
            c.state = ConnState::Closed(CloseReason::PeerClosed);
            t.upsert(c);
        }
        t.prune(0);
        assert_eq!(t.len(), MAX_CLOSED_ROWS);
        assert!(t.get(ConnId(0)).is_none(), "oldest closed rows go first");
    }
}
