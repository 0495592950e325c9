//! What every muxscope file kind (session layouts, scenarios) shares:
//! reading one as text with errors that name the problem, RON errors as
//! "line L, column C: …", pretty RON in the names the files use, and
//! writing without ever leaving a truncated file behind.

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a file could not be read or written: shown as "PATH: message".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for FileError {}

/// The file's text; `kind` ("layout", "scenario") names what it should be
/// in the error.
pub fn read_text(path: &Path, kind: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not a text file (invalid UTF-8 at byte {}), so not a muxscope {kind}",
            e.utf8_error().valid_up_to()
        )
    })
}

/// A RON error with the place it was found.
pub fn error_message(e: &ron::error::SpannedError) -> String {
    format!(
        "line {}, column {}: {}",
        e.span.start.line, e.span.start.col, e.code
    )
}

/// Pretty RON without struct names, as the files are written by hand.
pub fn to_pretty<T: Serialize>(value: &T) -> String {
    let config = ron::ser::PrettyConfig::new().struct_names(false);
    ron::ser::to_string_pretty(value, config).expect("muxscope files hold only serializable data")
}

/// Write `text` to a temporary file beside `path`, then rename it over
/// `path`, so a crash mid-write never leaves a truncated file behind.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("ron.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace: {e}"))
}
