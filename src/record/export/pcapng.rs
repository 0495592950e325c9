//! A capture Wireshark opens as if it had watched the wire: per connection,
//! a three-way handshake at its open, each recorded read (client to
//! server) or write (server to client) as its own segment(s) at its
//! recorded time, each acknowledged at once by the other side, and a FIN
//! or RST where the connection ended, as its close reason says. Follow TCP
//! Stream then shows exactly the recorded bytes, and TCP analysis has
//! nothing to flag. muxscope's own events become packet comments.
//!
//! The frames are synthesized: the bytes and times are the recording's,
//! the client and server addresses and ports are the real ones, while the
//! MAC addresses, sequence numbers (fixed ISNs per connection), window and
//! IP ids are made up. The section header's comment says so.

use super::{Conversation, Item, Recording, What, describe_loss, unix_micros};
use crate::protocol::{CloseReason, Direction, EventKind, KickMode, Micros};
use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The largest payload of one segment: an IPv4 packet (20 + 20 bytes of
/// headers) must fit its 16-bit total length.
pub const MAX_SEGMENT: usize = 65_000;
/// The receive window both sides advertise: wider than any segment, so a
/// segment never fills it (no window scaling needed).
const WINDOW: u16 = 65_535;
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// An option's length is 16 bits.
const MAX_COMMENT: usize = 60_000;

/// Write the capture of `convs` (of `rec`) to `out`.
pub fn write(rec: &Recording, convs: &[&Conversation], out: impl Write) -> io::Result<()> {
    // Connections interleave on the wire as they did in the engine: each
    // connection's packets come in time order, so merging them by (time,
    // connection) orders them all, packets made as they are written (a
    // few per connection in memory, not two per read and write).
    let mut tcps: Vec<std::iter::Peekable<Tcp>> =
        convs.iter().map(|c| Tcp::new(c).peekable()).collect();
    let mut next: BinaryHeap<Reverse<(Micros, usize)>> = tcps
        .iter_mut()
        .enumerate()
        .filter_map(|(i, t)| t.peek().map(|p| Reverse((p.at, i))))
        .collect();

    let section = SectionHeaderBlock {
        options: vec![
            SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "muxscope {}",
                env!("CARGO_PKG_VERSION")
            ))),
            SectionHeaderOption::Comment(Cow::Owned(format!(
                "Exported from a muxscope recording (written by muxscope {}). The frames are synthesized: bytes, times, addresses and ports are recorded; MAC addresses, TCP sequence numbers, windows and acknowledgements are made up, one segment per recorded read or write. muxscope's events are packet comments.{}",
                rec.header.writer,
                if rec.lost_events > 0 {
                    format!(" The recording lost {} events.", rec.lost_events)
                } else {
                    String::new()
                }
            ))),
        ],
        ..SectionHeaderBlock::default()
    };
    let mut writer = PcapNgWriter::with_section_header(out, section).map_err(to_io)?;
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 262_144,
            // pcap-file writes a timestamp as nanoseconds whatever the
            // resolution says, so the resolution must say nanoseconds.
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed("muxscope")),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })
        .map_err(to_io)?;
    let mut frame = Vec::new();
    while let Some(Reverse((_, i))) = next.pop() {
        let p = tcps[i].next().expect("a packet was peeked");
        if let Some(after) = tcps[i].peek() {
            next.push(Reverse((after.at, i)));
        }
        frame.clear();
        p.encode(&mut frame)?;
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: std::time::Duration::from_micros(unix_micros(&rec.header, p.at)),
                original_len: frame.len() as u32,
                data: Cow::Borrowed(&frame),
                options: p
                    .comments
                    .into_iter()
                    .map(|c| EnhancedPacketOption::Comment(Cow::Owned(c)))
                    .collect(),
            })
            .map_err(to_io)?;
    }
    writer.into_inner().flush()
}

fn to_io(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// One TCP segment, before it is a frame.
#[derive(Debug)]
struct Packet<'a> {
    at: Micros,
    src: SocketAddr,
    dst: SocketAddr,
    from_client: bool,
    flags: Flags,
    seq: u32,
    ack: Option<u32>,
    payload: &'a [u8],
    comments: Vec<String>,
}

#[derive(Copy, Clone, Debug, Default)]
struct Flags {
    syn: bool,
    fin: bool,
    rst: bool,
    psh: bool,
}

impl Packet<'_> {
    fn encode(&self, frame: &mut Vec<u8>) -> io::Result<()> {
        let (src_mac, dst_mac) = if self.from_client {
            (CLIENT_MAC, SERVER_MAC)
        } else {
            (SERVER_MAC, CLIENT_MAC)
        };
        let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
        let ip = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (s, d) => eth.ipv6(v6(s).octets(), v6(d).octets(), 64),
        };
        let mut tcp = ip.tcp(self.src.port(), self.dst.port(), self.seq, WINDOW);
        if let Some(ack) = self.ack {
            tcp = tcp.ack(ack);
        }
        if self.flags.syn {
            tcp = tcp.syn();
        }
        if self.flags.fin {
            tcp = tcp.fin();
        }
        if self.flags.rst {
            tcp = tcp.rst();
        }
        if self.flags.psh {
            tcp = tcp.psh();
        }
        tcp.write_to_vec(frame, self.payload)
            .map_err(|e| io::Error::other(format!("cannot build a frame: {e}")))
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Both ends in one IP family. The server's address is the one listened
/// on; one that names no host (`0.0.0.0`, `::`) or the other family
/// becomes the loopback address if the client is local, and otherwise the
/// unspecified address of the client's family (it is not known).
fn endpoints(conv: &Conversation) -> (SocketAddr, SocketAddr) {
    let mut client = conv.peer_or_unknown();
    client.set_ip(client.ip().to_canonical());
    let mut server = conv.server;
    server.set_ip(server.ip().to_canonical());
    if server.ip().is_unspecified() || server.is_ipv4() != client.is_ipv4() {
        let ip = match (client.ip(), client.ip().is_loopback()) {
            (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        server.set_ip(ip);
    }
    (client, server)
}

/// One side's state.
#[derive(Debug)]
struct Side {
    addr: SocketAddr,
    /// The next sequence number it sends.
    next: u32,
    fin: bool,
}

/// One connection's TCP, replayed from its conversation: its packets, in
/// order, made as they are asked for.
#[derive(Debug)]
struct Tcp<'a> {
    client: Side,
    server: Side,
    /// Said by the last reset: nothing moves after it.
    reset: bool,
    /// Comments waiting for the connection's next packet.
    comments: Vec<String>,
    /// Packets made and not yet taken.
    out: VecDeque<Packet<'a>>,
    items: std::slice::Iter<'a, Item>,
    opened: Micros,
}

impl<'a> Iterator for Tcp<'a> {
    type Item = Packet<'a>;

    fn next(&mut self) -> Option<Packet<'a>> {
        // One packet is kept back until another follows it: comments after
        // the last packet go on the last packet.
        while self.out.len() < 2 {
            let Some(item) = self.items.next() else {
                let rest = std::mem::take(&mut self.comments);
                if let Some(last) = self.out.back_mut() {
                    last.comments.extend(rest);
                }
                break;
            };
            self.apply(item);
        }
        self.out.pop_front()
    }
}

impl<'a> Tcp<'a> {
    /// The connection up to its handshake; its items follow as packets
    /// are taken.
    fn new(conv: &'a Conversation) -> Self {
        let (client, server) = endpoints(conv);
        // Fixed per connection, so two exports of one file are identical.
        let id = conv.id.0 as u32;
        let client_isn = 0x1000_0000u32.wrapping_add(id.wrapping_mul(0x0001_0003));
        let server_isn = 0x8000_0000u32.wrapping_add(id.wrapping_mul(0x0003_0001));
        let mut tcp = Tcp {
            client: Side {
                addr: client,
                next: client_isn,
                fin: false,
            },
            server: Side {
                addr: server,
                next: server_isn,
                fin: false,
            },
            reset: false,
            comments: Vec::new(),
            out: VecDeque::new(),
            items: conv.items.iter(),
            opened: conv.opened,
        };
        if conv.opened_before {
            tcp.comments.push(
                "muxscope: this connection was open before the recording started; its handshake is shown where the recording first saw it".to_owned(),
            );
        }
        if conv.peer.is_none() {
            tcp.comments.push(
                "muxscope: the recording does not say who the client was (0.0.0.0:0 stands for it)"
                    .to_owned(),
            );
        }
        let at = conv.opened;
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        tcp.send(at, true, syn, &[], false);
        tcp.send(at, false, syn, &[], true);
        tcp.send(at, true, Flags::default(), &[], true);
        tcp
    }

    /// One item of the conversation, as packets and comments.
    fn apply(&mut self, item: &'a Item) {
        let at = item.at.max(self.opened);
        match &item.what {
            What::Data(dir, bytes) => self.data(at, *dir == Direction::Rx, bytes),
            What::Lost { rx, tx } => self.note(at, &describe_loss(*rx, *tx)),
            What::Event(kind) => {
                self.note(at, &kind.describe());
                match kind {
                    EventKind::PeerHalfClosed => self.fin(at, true),
                    EventKind::Closed { reason } => self.close(at, reason),
                    _ => {}
                }
            }
        }
    }

    fn note(&mut self, at: Micros, text: &str) {
        // Engine time, exact: the packet's own time may be later.
        let mut text = format!(
            "muxscope at +{}.{:06} s: {text}",
            at / 1_000_000,
            at % 1_000_000
        );
        if text.len() > MAX_COMMENT {
            let mut cut = MAX_COMMENT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.comments.push(text);
    }

    /// A segment from one side, acknowledging all the other side sent
    /// when `ack`; its comments are those waiting.
    fn send(&mut self, at: Micros, from_client: bool, flags: Flags, payload: &'a [u8], ack: bool) {
        let (from, to) = if from_client {
            (&mut self.client, &self.server)
        } else {
            (&mut self.server, &self.client)
        };
        self.out.push_back(Packet {
            at,
            src: from.addr,
            dst: to.addr,
            from_client,
            flags,
            seq: from.next,
            ack: ack.then_some(to.next),
            payload,
            comments: std::mem::take(&mut self.comments),
        });
        from.next = from
            .next
            .wrapping_add(payload.len() as u32)
            .wrapping_add(u32::from(flags.syn || flags.fin));
    }

    /// One read or write: segments of at most [`MAX_SEGMENT`], each
    /// acknowledged by the other side at once.
    fn data(&mut self, at: Micros, from_client: bool, bytes: &'a [u8]) {
        if self.reset {
            return;
        }
        let psh = Flags {
            psh: true,
            ..Flags::default()
        };
        for segment in bytes.chunks(MAX_SEGMENT) {
            self.send(at, from_client, psh, segment, true);
            self.send(at, !from_client, Flags::default(), &[], true);
        }
    }

    /// A FIN from one side (once), acknowledged by the other.
    fn fin(&mut self, at: Micros, from_client: bool) {
        let side = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        if self.reset || side.fin {
            return;
        }
        side.fin = true;
        let fin = Flags {
            fin: true,
            ..Flags::default()
        };
        self.send(at, from_client, fin, &[], true);
        self.send(at, !from_client, Flags::default(), &[], true);
    }

    fn rst(&mut self, at: Micros, from_client: bool) {
        if self.reset {
            return;
        }
        self.reset = true;
        let rst = Flags {
            rst: true,
            ..Flags::default()
        };
        self.send(at, from_client, rst, &[], true);
    }

    /// The end the close reason says: who sent FIN or RST.
    fn close(&mut self, at: Micros, reason: &CloseReason) {
        match reason {
            CloseReason::PeerClosed => {
                self.fin(at, true);
                self.fin(at, false);
            }
            // The kick sent FIN and waited for the client's.
            CloseReason::Kicked(KickMode::Graceful) => {
                self.fin(at, false);
                self.fin(at, true);
            }
            CloseReason::EngineStopped
            | CloseReason::Fault { reset: false, .. }
            | CloseReason::Rule { reset: false, .. }
            | CloseReason::ReplayEnded { reset: false } => self.fin(at, false),
            CloseReason::PeerReset => self.rst(at, true),
            CloseReason::Kicked(KickMode::Reset)
            | CloseReason::KickTimedOut { .. }
            | CloseReason::Fault { reset: true, .. }
            | CloseReason::Rule { reset: true, .. }
            | CloseReason::RuleTimedOut { .. }
            | CloseReason::ReplayTimedOut { .. }
            | CloseReason::ReplayEnded { reset: true }
            | CloseReason::ReplayDiverged { .. }
            | CloseReason::Error(_) => self.rst(at, false),
            // Not something an engine records.
            CloseReason::Missed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConnId;
    use crate::record::export::Item;

    fn conv(items: Vec<Item>, closed: bool) -> Conversation {
        Conversation {
            id: ConnId(1),
            peer: Some("127.0.0.1:40000".parse().unwrap()),
            server: "0.0.0.0:8800".parse().unwrap(),
            opened: 10,
            opened_before: false,
            closed: closed.then_some((30, CloseReason::PeerReset)),
            items,
        }
    }

    #[test]
    fn sequence_numbers_count_every_byte_and_big_reads_split() {
        let big = vec![7u8; MAX_SEGMENT + 5];
        let c = conv(
            vec![
                Item {
                    at: 20,
                    what: What::Data(Direction::Rx, big),
                },
                Item {
                    at: 21,
                    what: What::Event(EventKind::Injected { n: 3 }),
                },
                Item {
                    at: 22,
                    what: What::Data(Direction::Tx, b"abc".to_vec()),
                },
                Item {
                    at: 30,
                    what: What::Event(EventKind::Closed {
                        reason: CloseReason::PeerReset,
                    }),
                },
            ],
            true,
        );
        let p = Tcp::new(&c).collect::<Vec<_>>();
        // SYN, SYN-ACK, ACK, 2 × (data, ACK), data, ACK, RST.
        assert_eq!(p.len(), 10);
        let cisn = p[0].seq;
        let sisn = p[1].seq;
        assert_eq!(p[1].ack, Some(cisn + 1));
        assert_eq!(p[2].ack, Some(sisn + 1));
        assert_eq!(p[3].payload.len(), MAX_SEGMENT);
        assert_eq!(p[4].ack, Some(cisn + 1 + MAX_SEGMENT as u32));
        assert_eq!(p[5].payload.len(), 5);
        assert_eq!(p[5].seq, cisn + 1 + MAX_SEGMENT as u32);
        assert!(!p[7].from_client && p[7].payload == b"abc");
        assert_eq!(p[7].comments.len(), 1, "the inject is on the next packet");
        assert!(p[7].comments[0].contains("injected 3 B"));
        assert!(p[9].flags.rst && p[9].from_client);
        assert_eq!(p[9].seq, cisn + 1 + MAX_SEGMENT as u32 + 5);
        assert!(p[9].comments[0].contains("closed: peer reset"));
        // The unspecified listen address became the client's loopback.
        assert_eq!(p[0].dst, "127.0.0.1:8800".parse().unwrap());
        let mut frame = Vec::new();
        p[3].encode(&mut frame).unwrap();
        assert_eq!(frame.len(), 14 + 20 + 20 + MAX_SEGMENT);
    }

    #[test]
    fn an_ipv6_client_of_an_ipv4_listener_gets_one_family() {
        let mut c = conv(Vec::new(), false);
        c.peer = Some("[::1]:5000".parse().unwrap());
        let (client, server) = endpoints(&c);
        assert!(client.is_ipv6() && server.is_ipv6());
        assert_eq!(server, "[::1]:8800".parse().unwrap());
        c.peer = Some("[::ffff:10.0.0.1]:5000".parse().unwrap());
        assert_eq!(endpoints(&c).0, "10.0.0.1:5000".parse().unwrap());
    }
}
