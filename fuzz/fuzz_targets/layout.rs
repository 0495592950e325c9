//! Session layouts: a `.muxscope.ron` file opened by the user (or a
//! double-click), or the web viewer's stored session, through
//! `muxscope::layout::parse`, which `layout::load` uses too.
//!
//! Properties: a parsed layout is in the current version with a zoom and
//! column widths the UI can use, and saving it gives text that parses back
//! to the same layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::layout::{self, LAYOUT_VERSION};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = layout::parse(&text) else {
        return;
    };
    assert_eq!(parsed.version, LAYOUT_VERSION);
    assert!(
        (0.5..=3.0).contains(&parsed.zoom),
        "zoom {} is outside 50%..300%",
        parsed.zoom
    );
    let widths = &parsed.connections.widths;
    assert!(
        widths.values().all(|w| w.is_finite() && *w > 0.0),
        "column widths {widths:?}"
    );
    let saved = layout::to_ron(&parsed);
    let back = layout::parse(&saved)
        .unwrap_or_else(|e| panic!("a saved layout does not parse back: {e}\n{saved}"));
    // Pane shares and column widths are f32; a NaN is never equal to
    // itself, so compare only layouts without one.
    if !saved.contains("NaN") {
        assert_eq!(back, parsed, "{saved}");
    }
});
