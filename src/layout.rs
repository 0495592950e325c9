//! Session layouts: how the user arranged muxscope, as a versioned RON file.
//!
//! A layout is read in two steps: first only its `version`, then the struct
//! of that version, migrated forward to the current one. A file that cannot
//! be read is reported with its path, line and column, and is never written
//! over: the caller keeps going with defaults.

use crate::faults::{AcceptFault, Faults};
use crate::protocol::Mode;
use crate::ron_file;
use crate::ui::connections::ConnectionsPane;
use crate::ui::events::EventsPane;
use crate::ui::faults::FaultsPane;
use crate::ui::inject::InjectPane;
use crate::ui::inspector::InspectorPane;
use crate::ui::scenario::ScenarioPane;
use crate::ui::tiles::{self, PaneKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version this build writes, and the newest it reads.
pub const LAYOUT_VERSION: u32 = 1;
/// Layout files are named `NAME.muxscope.ron`; the file manager association
/// and the open dialog's listing use this suffix.
pub const FILE_SUFFIX: &str = ".muxscope.ron";

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Theme {
    #[default]
    Dark,
    Light,
}

/// Everything a user arranged, in the current version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionLayout {
    pub version: u32,
    pub listen: String,
    pub mode: Mode,
    pub theme: Theme,
    pub zoom: f32,
    pub tree: egui_tiles::Tree<PaneKind>,
    pub connections: ConnectionsPane,
    pub events: EventsPane,
    pub inspector: InspectorPane,
    pub inject: InjectPane,
    /// The Faults pane's form.
    pub faults_form: FaultsPane,
    /// Faults new connections get, and the accept fault: applied to the
    /// engine when the layout is opened.
    pub faults: Faults,
    pub accept_fault: Option<AcceptFault>,
    /// The Scenario pane's settings.
    pub scenario_pane: ScenarioPane,
    /// The scenario file the server runs: run again when the layout is
    /// opened.
    pub scenario: Option<PathBuf>,
    /// Which lints run, and their times.
    pub lints: crate::monitor::lints::LintSettings,
}

impl Default for SessionLayout {
    fn default() -> Self {
        SessionLayout {
            version: LAYOUT_VERSION,
            listen: crate::protocol::DEFAULT_LISTEN.to_owned(),
            mode: Mode::Echo,
            theme: Theme::Dark,
            zoom: 1.0,
            tree: tiles::default_tree(),
            connections: ConnectionsPane::default(),
            events: EventsPane::default(),
            inspector: InspectorPane::default(),
            inject: InjectPane::default(),
            faults_form: FaultsPane::default(),
            faults: Faults::default(),
            accept_fault: None,
            scenario_pane: ScenarioPane::default(),
            scenario: None,
            lints: Default::default(),
        }
    }
}

/// Version 0: the first, flat layout format (no `version` field, one
/// filter, a dark-mode flag). Kept to migrate old files.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct LayoutV0 {
    listen: Option<String>,
    mode: Option<Mode>,
    filter: String,
    dark_mode: Option<bool>,
    favourites: Vec<String>,
}

fn migrate_v0(old: LayoutV0) -> SessionLayout {
    let mut layout = SessionLayout::default();
    if let Some(listen) = old.listen {
        layout.listen = listen;
    }
    layout.mode = old.mode.unwrap_or_default();
    layout.connections.filter = old.filter;
    layout.theme = match old.dark_mode {
        Some(false) => Theme::Light,
        _ => Theme::Dark,
    };
    layout.inject.favourites = old
        .favourites
        .into_iter()
        .map(|text| crate::ui::inject::SavedMessage {
            text,
            format: crate::payload::InputFormat::Escaped,
            ending: crate::payload::LineEnding::None,
            sent: None,
        })
        .collect();
    layout
}

#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    version: u32,
}

/// Why a layout could not be read or written.
pub type LayoutError = crate::ron_file::FileError;

/// Parse layout text of any known version into the current version.
pub fn parse(text: &str) -> Result<SessionLayout, String> {
    let probe: VersionProbe = ron::from_str(text).map_err(|e| {
        format!(
            "{} (this is not a muxscope layout, or it is cut short)",
            ron_file::error_message(&e)
        )
    })?;
    let mut layout = match probe.version {
        0 => migrate_v0(ron::from_str::<LayoutV0>(text).map_err(|e| ron_file::error_message(&e))?),
        LAYOUT_VERSION => {
            ron::from_str::<SessionLayout>(text).map_err(|e| ron_file::error_message(&e))?
        }
        newer => {
            return Err(format!(
                "written by a newer muxscope (layout version {newer}; this one reads up to \
                 {LAYOUT_VERSION}). Update muxscope to open it; the file was left as it is."
            ));
        }
    };
    layout.version = LAYOUT_VERSION;
    // A hand-edited file may hold numbers the UI never writes. NaN passes
    // `clamp`, so it gets the default.
    layout.zoom = if layout.zoom.is_nan() {
        1.0
    } else {
        layout.zoom.clamp(0.5, 3.0)
    };
    layout
        .connections
        .widths
        .retain(|_, w| w.is_finite() && *w > 0.0);
    Ok(layout)
}

pub fn to_ron(layout: &SessionLayout) -> String {
    ron_file::to_pretty(layout)
}

pub fn load(path: &Path) -> Result<SessionLayout, LayoutError> {
    let error = |message: String| LayoutError {
        path: path.to_owned(),
        message,
    };
    let text = ron_file::read_text(path, "layout").map_err(error)?;
    parse(&text).map_err(error)
}

/// Write atomically (temp file, then rename), so a crash mid-write never
/// leaves a truncated layout behind.
pub fn save(path: &Path, layout: &SessionLayout) -> Result<(), LayoutError> {
    let error = |message: String| LayoutError {
        path: path.to_owned(),
        message,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| error(format!("cannot create folder: {e}")))?;
    }
    ron_file::write_atomically(path, &to_ron(layout)).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_full_layout() {
        let mut layout = SessionLayout {
            listen: "127.0.0.1:9000".into(),
            mode: Mode::Manual,
            theme: Theme::Light,
            zoom: 1.25,
            ..SessionLayout::default()
        };
        layout.connections.filter = "closed".into();
        layout.connections.sort.ascending = false;
        layout
            .connections
            .hidden_columns
            .insert(crate::monitor::Column::Peer);
        layout
            .connections
            .shown_optional
            .insert(crate::monitor::Column::Rtt);
        layout
            .connections
            .widths
            .insert(crate::monitor::Column::Rx, 99.0);
        layout.events.filter.hidden_kinds.insert("readiness".into());
        layout
            .inject
            .favourites
            .push(crate::ui::inject::SavedMessage {
                text: r"PING\r\n".into(),
                format: crate::payload::InputFormat::Escaped,
                ending: crate::payload::LineEnding::None,
                sent: None,
            });
        layout.faults = crate::faults::Faults {
            latency: Some(crate::faults::Latency {
                delay: 200,
                jitter: 50,
            }),
            close_after: Some(crate::faults::Limit::Bytes(1024)),
            corrupt: Some(crate::faults::Chance(10_000)),
            ..Default::default()
        };
        layout.accept_fault = Some(crate::faults::AcceptFault::Delay(500));
        layout.faults_form.draft.stall_writes = true;
        let text = to_ron(&layout);
        let back = parse(&text).unwrap();
        assert_eq!(back, layout, "faults included");
        assert_eq!(back.connections.widths[&crate::monitor::Column::Rx], 99.0);
        assert!(text.contains("version: 1"), "{text}");
    }

    /// What the `layout` fuzz target asserts: NaN passes `clamp`.
    #[test]
    fn numbers_the_ui_cannot_use_fall_back_to_defaults() {
        let layout = parse(
            "(version: 1, zoom: NaN, connections: (widths: {Rx: NaN, Tx: inf, Id: -5.0, Peer: 80.0}))",
        )
        .unwrap();
        assert_eq!(layout.zoom, 1.0);
        let widths: Vec<_> = layout.connections.widths.into_iter().collect();
        assert_eq!(widths, [(crate::monitor::Column::Peer, 80.0)]);
        assert_eq!(parse("(version: 1, zoom: inf)").unwrap().zoom, 3.0);
    }

    #[test]
    fn future_versions_are_refused_with_a_reason() {
        let err = parse("(version: 99)").unwrap_err();
        assert!(err.contains("newer muxscope"), "{err}");
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = parse("(\n  version: 1,\n  zoom: \"big\",\n)").unwrap_err();
        assert!(err.starts_with("line 3, column"), "{err}");
        let err = parse("(version: 1, listen: \"127.0.0.1:1").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
