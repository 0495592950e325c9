//! Each direction's bytes as they are, one file per connection and
//! direction (`conn-<id>-client-to-server.bin`,
//! `conn-<id>-server-to-client.bin`), for diffing, hexdumps and replay
//! tools. Both files are written even when a direction is empty, so a
//! script finds what it expects.

use super::Conversation;
use crate::protocol::{ConnId, Direction};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file of one connection's direction in `dir`.
pub fn file_name(dir: &Path, id: ConnId, direction: Direction) -> PathBuf {
    let way = match direction {
        Direction::Rx => "client-to-server",
        Direction::Tx => "server-to-client",
    };
    dir.join(format!("conn-{}-{way}.bin", id.0))
}

/// Write the files into `dir`, made if missing.
pub fn write(convs: &[&Conversation], dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for conv in convs {
        for direction in [Direction::Rx, Direction::Tx] {
            let path = file_name(dir, conv.id, direction);
            let mut out = io::BufWriter::new(std::fs::File::create(&path)?);
            for bytes in conv.bytes(direction) {
                out.write_all(bytes)?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
