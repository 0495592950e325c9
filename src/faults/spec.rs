//! The `--fault` grammar: one spec per fault, the same on the command line,
//! in headless output and in the window.

use super::Faults;

/// `faults` in `--fault` grammar, for events and headless output.
pub fn describe(faults: &Faults) -> String {
    format!("{faults:?}")
}
