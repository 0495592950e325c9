//! Where muxscope keeps its files: the per-user data directory (e.g.
//! `~/.local/share/muxscope` on Linux), overridable with `MUXSCOPE_DATA_DIR`
//! so tests and portable installs stay self-contained.

use std::path::PathBuf;

pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MUXSCOPE_DATA_DIR") {
        return PathBuf::from(dir);
    }
    eframe::storage_dir("muxscope").unwrap_or_else(|| PathBuf::from(".muxscope"))
}

/// The default folder of named layouts, listed by the open dialog.
pub fn layouts_dir() -> PathBuf {
    data_dir().join("layouts")
}

/// Where the Record button writes, and the open dialog looks.
pub fn recordings_dir() -> PathBuf {
    data_dir().join("recordings")
}

/// The last session, written on exit and periodically, restored on start.
pub fn autosave_path() -> PathBuf {
    data_dir().join("last-session.muxscope.ron")
}

pub fn log_path() -> PathBuf {
    data_dir().join("muxscope.log")
}

pub fn recent_path() -> PathBuf {
    data_dir().join("recent-layouts.ron")
}
