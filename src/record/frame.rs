//! The file's framing: an 8-byte magic, then frames of
//!
//! ```text
//! len: u32 LE | crc: u32 LE | kind: u8 | at: u64 LE | payload[len]
//! ```
//!
//! where `crc` is CRC-32/ISO-HDLC over `kind`, `at` and the payload, and the
//! payload is postcard. The file is only ever appended to, one whole frame
//! per `write`, so after a crash or `kill -9` everything up to the last
//! complete frame is intact; a reader stops at the first frame that is cut
//! short or fails its checksum and says where. `kind` and `at` sit outside
//! the payload so an index can be built without decoding records.

use crate::protocol::Micros;

/// `\x89` keeps the file from looking like text; the newline catches
/// transfers that rewrite line endings (as PNG's magic does).
pub const MAGIC: &[u8; 8] = b"\x89MUXREC\n";
pub const HEADER_LEN: usize = 17;
/// No frame the writer makes comes near this; a larger length is damage.
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// Slice-by-16 tables: opening a file verifies every byte of it, at
/// several GB/s instead of a few hundred MB/s byte by byte.
const CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// What a frame holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A [`super::Header`]; the first frame of a file.
    Header = 1,
    /// A `Vec<`[`super::Record`]`>`.
    Records = 2,
    /// A [`super::Keyframe`].
    Keyframe = 3,
    /// The engine's stats ([`crate::protocol::EngineStats`]), a few per
    /// second: small frames an index reads for the plot and the timeline.
    Stats = 4,
    /// A [`super::Trailer`]; the last frame of a file that was closed.
    Trailer = 5,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Header,
            2 => Kind::Records,
            3 => Kind::Keyframe,
            4 => Kind::Stats,
            5 => Kind::Trailer,
            _ => return None,
        })
    }
}

/// A frame's header as read from the file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub crc: u32,
    pub kind: Kind,
    pub at: Micros,
}

impl FrameHeader {
    /// Parse the 17 header bytes, or say why they cannot begin a frame.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<FrameHeader, String> {
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let crc = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let kind = Kind::from_u8(b[8]).ok_or_else(|| format!("unknown frame kind {}", b[8]))?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&b[9..17]);
        if len > MAX_PAYLOAD {
            return Err(format!(
                "frame length {len} is beyond any frame muxscope writes"
            ));
        }
        Ok(FrameHeader {
            len,
            crc,
            kind,
            at: u64::from_le_bytes(at),
        })
    }

    /// Whether `payload` is what this header's checksum covers.
    pub fn verify(&self, payload: &[u8]) -> bool {
        checksum(self.kind, self.at, payload) == self.crc
    }

    /// Header plus payload.
    pub fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

fn checksum(kind: Kind, at: Micros, payload: &[u8]) -> u32 {
    let mut digest = CRC.digest();
    digest.update(&[kind as u8]);
    digest.update(&at.to_le_bytes());
    digest.update(payload);
    digest.finalize()
}

/// Append a whole frame holding `value` to `out`.
pub fn encode<T: serde::Serialize>(kind: Kind, at: Micros, value: &T, out: &mut Vec<u8>) {
    // Postcard into a Vec cannot fail for the record types (no maps with
    // non-string keys, no unsized sequences).
    let payload = postcard::to_allocvec(value).expect("records always serialize");
    write(kind, at, &[&payload], out);
}

/// Append a frame whose payload is `parts`, concatenated, to `out`.
pub fn write(kind: Kind, at: Micros, parts: &[&[u8]], out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut digest = CRC.digest();
    digest.update(&[kind as u8]);
    digest.update(&at.to_le_bytes());
    for p in parts {
        digest.update(p);
    }
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&digest.finalize().to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&at.to_le_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Postcard's length prefix of a sequence of `n` elements (a varint), so
/// records encoded one by one join into a `Vec<Record>`.
pub fn seq_len(n: usize, out: &mut Vec<u8>) {
    let mut n = n as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Decode a verified payload.
pub fn decode<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(payload).map_err(|e| format!("undecodable frame: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_flipped_bit_fails_its_checksum() {
        let mut out = Vec::new();
        encode(Kind::Stats, 1234, &(7u32, "seven".to_owned()), &mut out);
        let header = FrameHeader::parse(out[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!((header.kind, header.at), (Kind::Stats, 1234));
        assert_eq!(header.total_len(), out.len() as u64);
        let payload = &out[HEADER_LEN..];
        assert!(header.verify(payload));
        let back: (u32, String) = decode(payload).unwrap();
        assert_eq!(back, (7, "seven".to_owned()));
        for bit in 0..payload.len() * 8 {
            let mut bad = payload.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!header.verify(&bad), "bit {bit}");
        }
        let mut bad_at = header;
        bad_at.at ^= 1;
        assert!(!bad_at.verify(payload), "the time is covered too");
    }

    #[test]
    fn records_encoded_one_by_one_decode_as_one_vec() {
        let items: Vec<String> = (0..200).map(|i| format!("item {i}")).collect();
        let mut body = Vec::new();
        for i in &items {
            body.extend(postcard::to_allocvec(i).unwrap());
        }
        let mut payload = Vec::new();
        seq_len(items.len(), &mut payload);
        payload.extend(body);
        let back: Vec<String> = decode(&payload).unwrap();
        assert_eq!(back, items);
    }

    #[test]
    fn a_header_with_an_impossible_length_or_kind_is_refused() {
        let mut b = [0u8; HEADER_LEN];
        b[8] = 9;
        assert!(FrameHeader::parse(&b).unwrap_err().contains("kind 9"));
        b[8] = 2;
        b[0..4].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        assert!(FrameHeader::parse(&b).unwrap_err().contains("length"));
    }
}
