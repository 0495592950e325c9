//! Logging: to stderr when a terminal is attached, otherwise (double-clicked
//! app) to `muxscope.log` in the data directory, which the Help menu names.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;

/// Above this size the log starts over, so it never grows without bound.
const MAX_LOG_BYTES: u64 = 4 * 1024 * 1024;

struct Logger {
    file: Option<Mutex<File>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
            || metadata.target().starts_with("muxscope") && metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let line = format!(
            "{secs:.3} {:5} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        match &self.file {
            Some(file) => {
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Install the logger. Returns the log file's path when logging to a file.
pub fn init() -> Option<PathBuf> {
    let path = crate::paths::log_path();
    let file = if std::io::stderr().is_terminal() {
        None
    } else {
        let _ = std::fs::create_dir_all(path.parent()?);
        let too_big = std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG_BYTES);
        OpenOptions::new()
            .create(true)
            .append(!too_big)
            .write(true)
            .truncate(too_big)
            .open(&path)
            .ok()
    };
    let to_file = file.is_some();
    let logger = Logger {
        file: file.map(Mutex::new),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    to_file.then_some(path)
}
