//! The part every format shares: a recording read once and regrouped into
//! one conversation per connection (who, when it opened and closed, and its
//! bytes and muxscope's events in time order).
//!
//! A recording interleaves connections, and writes bytes as they move but
//! events when the engine flushes, so the bytes of a read can come before
//! the batch that says the connection was accepted. Grouping first and
//! ordering each conversation by time undoes both.

use super::super::reader::{Damage, Reader, Source};
use super::super::{Header, Record};
use crate::protocol::{
    CloseReason, ConnId, DEFAULT_LISTEN, Direction, EventKind, ListenState, Micros,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One recording, regrouped.
#[derive(Debug)]
pub struct Recording {
    pub header: Header,
    /// Every connection the file mentions, by id.
    pub conversations: Vec<Conversation>,
    /// Events the recording lost (they belong to no connection).
    pub lost_events: u64,
    /// Where the file stops being readable, if it does: everything before
    /// it was read.
    pub damage: Option<Damage>,
    /// The part that follows this file, when rotation made one (its file
    /// name, as the trailer says).
    pub next_part: Option<String>,
}

#[derive(Debug)]
pub struct Conversation {
    pub id: ConnId,
    /// The client's address; `None` if the file never said (a connection
    /// older than the recording whose counters never came).
    pub peer: Option<SocketAddr>,
    /// The address the server listened on when the connection opened.
    pub server: SocketAddr,
    /// Its `Accepted` event, or its first appearance in the file.
    pub opened: Micros,
    /// It was accepted before the recording started.
    pub opened_before: bool,
    pub closed: Option<(Micros, CloseReason)>,
    /// Bytes and events in time order.
    pub items: Vec<Item>,
}

#[derive(Debug)]
pub struct Item {
    pub at: Micros,
    pub what: What,
}

#[derive(Debug)]
pub enum What {
    /// One read (`Rx`, client to server) or write (`Tx`).
    Data(Direction, Vec<u8>),
    /// A muxscope event worth showing next to the bytes
    /// ([`annotates`]), including `PeerHalfClosed` and `Closed`.
    Event(EventKind),
    /// Bytes of this conversation the recording did not get.
    Lost { rx: u64, tx: u64 },
}

impl Conversation {
    /// Every byte of one direction, in order.
    pub fn bytes(&self, dir: Direction) -> impl Iterator<Item = &[u8]> {
        self.items.iter().filter_map(move |i| match &i.what {
            What::Data(d, b) if *d == dir => Some(b.as_slice()),
            _ => None,
        })
    }

    /// The peer, or a stand-in that says it is unknown (`0.0.0.0:0`).
    pub fn peer_or_unknown(&self) -> SocketAddr {
        self.peer
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// Whether an event of a connection is shown with its bytes. Reads,
/// writes and queueing are the bytes themselves, readiness is noise, and
/// an accept is the conversation's start.
pub fn annotates(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Readiness(_)
            | EventKind::Read { .. }
            | EventKind::Wrote { .. }
            | EventKind::WouldBlock { .. }
            | EventKind::Queued { .. }
            | EventKind::Accepted { .. }
    )
}

/// Where an item goes among others of the same instant (the engine stamps
/// a whole poll iteration with one time): what muxscope did first, then
/// the bytes, then the ends (a FIN read after the data of the same read).
fn rank(what: &What) -> u8 {
    match what {
        What::Event(EventKind::PeerHalfClosed | EventKind::Closed { .. }) => 2,
        What::Event(_) | What::Lost { .. } => 0,
        What::Data(..) => 1,
    }
}

#[derive(Default)]
struct Draft {
    peer: Option<SocketAddr>,
    accepted: Option<Micros>,
    first_seen: Micros,
    closed: Option<(Micros, CloseReason)>,
    items: Vec<Item>,
}

/// Read the whole file. `Err` only when it cannot be read at all (its
/// header); damage further on ends the reading there and is reported in
/// [`Recording::damage`].
pub fn gather<S: Source>(mut reader: Reader<S>) -> Result<Recording, String> {
    let mut drafts: BTreeMap<ConnId, Draft> = BTreeMap::new();
    let mut listens: Vec<(Micros, SocketAddr)> = Vec::new();
    let mut lost_events = 0;
    // The file's clock: a record without a time of its own (counters only)
    // happened at the latest time seen so far.
    let mut now = reader.header.started_at;
    let draft = |drafts: &mut BTreeMap<ConnId, Draft>, id: ConnId, now: Micros| {
        drafts.entry(id).or_insert_with(|| Draft {
            first_seen: now,
            ..Draft::default()
        });
    };
    reader.for_each_record(|record| {
        now = now.max(record.at().unwrap_or(now));
        match record {
            Record::Data(d) => {
                draft(&mut drafts, d.conn, d.at);
                let conv = drafts.get_mut(&d.conn).expect("just made");
                conv.first_seen = conv.first_seen.min(d.at);
                conv.items.push(Item {
                    at: d.at,
                    what: What::Data(d.dir, d.bytes.clone()),
                });
            }
            Record::Lost(loss) => {
                lost_events += loss.events;
                for c in &loss.conns {
                    draft(&mut drafts, c.conn, loss.from);
                    drafts
                        .get_mut(&c.conn)
                        .expect("just made")
                        .items
                        .push(Item {
                            at: loss.to,
                            what: What::Lost { rx: c.rx, tx: c.tx },
                        });
                }
            }
            Record::Batch(batch) => {
                if let Some(stats) = &batch.stats
                    && let ListenState::Listening(addr) = stats.listen
                {
                    listens.push((stats.at, addr));
                }
                for e in &batch.events {
                    let Some(id) = e.conn else {
                        if let EventKind::Listening { addr } = e.kind {
                            listens.push((e.at, addr));
                        }
                        continue;
                    };
                    draft(&mut drafts, id, e.at);
                    let conv = drafts.get_mut(&id).expect("just made");
                    conv.first_seen = conv.first_seen.min(e.at);
                    match &e.kind {
                        EventKind::Accepted { peer } => {
                            conv.peer = Some(*peer);
                            conv.accepted = Some(e.at);
                        }
                        EventKind::Closed { reason } => conv.closed = Some((e.at, reason.clone())),
                        _ => {}
                    }
                    if annotates(&e.kind) {
                        conv.items.push(Item {
                            at: e.at,
                            what: What::Event(e.kind.clone()),
                        });
                    }
                }
                for c in &batch.counters {
                    draft(&mut drafts, c.id, now);
                    drafts
                        .get_mut(&c.id)
                        .expect("just made")
                        .peer
                        .get_or_insert(c.peer);
                }
            }
        }
    })?;
    listens.sort_by_key(|l| l.0);
    let conversations = drafts
        .into_iter()
        .map(|(id, mut d)| {
            d.items.sort_by_key(|i| (i.at, rank(&i.what)));
            let opened = d.accepted.unwrap_or(d.first_seen);
            Conversation {
                id,
                peer: d.peer,
                server: listen_at(&listens, opened),
                opened,
                opened_before: d.accepted.is_none(),
                closed: d.closed,
                items: d.items,
            }
        })
        .collect();
    Ok(Recording {
        header: reader.header.clone(),
        conversations,
        lost_events,
        damage: reader.index.damage.clone(),
        next_part: reader
            .index
            .trailer
            .as_ref()
            .and_then(|t| t.next_part.clone()),
    })
}

/// The address listened on at `at`: the last one known by then, else the
/// first one known at all, else the default one.
fn listen_at(listens: &[(Micros, SocketAddr)], at: Micros) -> SocketAddr {
    let i = listens.partition_point(|l| l.0 <= at);
    listens
        .get(i.wrapping_sub(1))
        .or(listens.first())
        .map(|l| l.1)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_is_the_one_in_force_at_the_open() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let listens = [(10, a), (20, b)];
        assert_eq!(listen_at(&listens, 5), a, "before any: the first");
        assert_eq!(listen_at(&listens, 15), a);
        assert_eq!(listen_at(&listens, 20), b);
        assert_eq!(
            listen_at(&[], 5),
            DEFAULT_LISTEN.parse::<SocketAddr>().unwrap()
        );
    }

    /// A file in memory: the header, then one records frame.
    fn file(records: Vec<Record>) -> Reader<std::io::Cursor<Vec<u8>>> {
        use crate::record::frame::{self, Kind};
        let mut out = frame::MAGIC.to_vec();
        let header = Header {
            format_version: crate::record::FORMAT_VERSION,
            writer: "test".into(),
            engine_started_unix_ms: 1_000,
            started_at: 100,
            part: 1,
        };
        frame::encode(Kind::Header, 100, &header, &mut out);
        frame::encode(Kind::Records, 500, &records, &mut out);
        Reader::open(std::io::Cursor::new(out)).unwrap()
    }

    #[test]
    fn bytes_written_before_their_accept_batch_and_older_connections_are_placed() {
        use crate::protocol::{Batch, ConnCounters, Event};
        use crate::record::DataChunk;
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let old_peer: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let data = |at, conn, bytes: &[u8]| {
            Record::Data(DataChunk {
                at,
                conn: ConnId(conn),
                dir: Direction::Rx,
                bytes: bytes.to_vec(),
            })
        };
        let rec = gather(file(vec![
            // #2 was open before the recording: its bytes come first.
            data(150, 2, b"old"),
            data(200, 1, b"hi"),
            Record::Batch(Box::new(Batch {
                events: vec![Event {
                    at: 190,
                    conn: Some(ConnId(1)),
                    kind: EventKind::Accepted { peer },
                }],
                counters: vec![
                    ConnCounters::opened(ConnId(1), peer, 190),
                    ConnCounters::opened(ConnId(2), old_peer, 5),
                ],
                ..Batch::default()
            })),
        ]))
        .unwrap();
        assert!(rec.damage.is_none());
        let [new, old] = &rec.conversations[..] else {
            panic!("{:?}", rec.conversations);
        };
        assert_eq!(
            (new.id, new.opened, new.opened_before),
            (ConnId(1), 190, false)
        );
        assert_eq!(new.peer, Some(peer));
        assert_eq!(new.bytes(Direction::Rx).collect::<Vec<_>>(), [b"hi"]);
        assert_eq!(
            (old.id, old.opened, old.opened_before),
            (ConnId(2), 150, true)
        );
        assert_eq!(old.peer, Some(old_peer), "from its counters");
        assert_eq!(
            old.server,
            DEFAULT_LISTEN.parse::<SocketAddr>().unwrap(),
            "no stats: the default address"
        );
    }

    #[test]
    fn at_one_instant_events_come_before_bytes_and_ends_after() {
        let mut items = [
            What::Event(EventKind::Closed {
                reason: CloseReason::PeerClosed,
            }),
            What::Data(Direction::Rx, vec![1]),
            What::Event(EventKind::Injected { n: 1 }),
        ];
        items.sort_by_key(rank);
        assert!(matches!(items[0], What::Event(EventKind::Injected { .. })));
        assert!(matches!(items[1], What::Data(..)));
        assert!(matches!(items[2], What::Event(EventKind::Closed { .. })));
    }
}
