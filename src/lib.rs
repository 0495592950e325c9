//! muxscope: a single-threaded, readiness-driven TCP echo server you can see
//! into and steer. See the README for the architecture.

pub mod faults;
pub mod format;
pub mod layout;
pub mod monitor;
pub mod payload;
pub mod protocol;
pub mod record;
pub mod ron_file;
pub mod scenario;

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
#[cfg(not(target_arch = "wasm32"))]
pub mod engine;
#[cfg(not(target_arch = "wasm32"))]
pub mod headless;
/// `terminal_safe` is everywhere (the fault grammar's errors use it); the
/// logger itself is native only.
pub mod logging;
#[cfg(not(target_arch = "wasm32"))]
pub mod paths;

pub mod backend;
pub mod control;
pub mod ui;

#[cfg(target_arch = "wasm32")]
pub mod web;
/// The web viewer's fonts; compiled natively only for its tests, so the
/// desktop binary does not carry them.
#[cfg(any(target_arch = "wasm32", test))]
pub mod web_fonts;

#[cfg(not(target_arch = "wasm32"))]
pub mod desktop;
