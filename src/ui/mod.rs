//! The egui front-end. `app` owns the model and the backend; every pane is
//! its own module with its state (plain data) apart from its drawing code.
//! Panes read the `Monitor` and push `Command`s; none holds a channel.

pub mod app;
pub mod connections;
pub mod diagnostics;
pub mod events;
pub mod faults;
pub mod file_dialog;
pub mod inject;
pub mod inspector;
pub mod kernel;
pub mod plot;
pub mod scenario;
pub mod selection;
pub mod server_bar;
pub mod tiles;
pub mod timeline;

pub use app::MuxscopeApp;
pub use selection::Selection;

use crate::monitor::Monitor;
use crate::protocol::{Command, ConnId, KickMode, Targets};
use egui::{Color32, Response, Ui};

/// What a pane may touch while drawing.
pub struct PaneCtx<'a> {
    pub monitor: &'a mut Monitor,
    pub selection: &'a mut Selection,
    pub commands: &'a mut Vec<Command>,
    /// Set by a pane that wants the event log narrowed to connections.
    pub focus_events_on: &'a mut Option<Vec<ConnId>>,
    /// The data is a recording played back: nothing can be steered, and
    /// closed connections still have their bytes.
    pub playback: bool,
}

/// A label followed by a widget named by it, so screen readers and
/// egui_kittest find the widget by that label.
pub fn labelled(ui: &mut Ui, label: &str, add: impl FnOnce(&mut Ui) -> Response) -> Response {
    let label = ui.label(label);
    add(ui).labelled_by(label.id)
}

/// Colours that read on both light and dark themes.
pub fn rx_color(ui: &Ui) -> Color32 {
    if ui.visuals().dark_mode {
        Color32::from_rgb(110, 180, 255)
    } else {
        Color32::from_rgb(20, 90, 190)
    }
}

pub fn tx_color(ui: &Ui) -> Color32 {
    if ui.visuals().dark_mode {
        Color32::from_rgb(130, 220, 130)
    } else {
        Color32::from_rgb(20, 130, 40)
    }
}

pub fn warn_color(ui: &Ui) -> Color32 {
    ui.visuals().warn_fg_color
}

pub fn error_color(ui: &Ui) -> Color32 {
    ui.visuals().error_fg_color
}

/// Engine time (µs since start) as `12.345678`.
pub fn engine_time(at: u64) -> String {
    format!("{}.{:06}", at / 1_000_000, at % 1_000_000)
}

/// The kick and pause buttons for `targets`, shared by the inspector and
/// the row menu. Returns the command the user chose, if any.
pub fn conn_action_buttons(ui: &mut Ui, targets: &[ConnId], read_paused: bool) -> Option<Command> {
    let targets = || Targets::Conns(targets.to_vec());
    let mut chosen = None;
    let kicks = [
        (
            "Kick (graceful)",
            "Flush the queue, then FIN",
            KickMode::Graceful,
        ),
        ("Kick (reset)", "Close at once with RST", KickMode::Reset),
    ];
    for (label, hint, mode) in kicks {
        if ui.button(label).on_hover_text(hint).clicked() {
            chosen = Some(Command::Kick {
                targets: targets(),
                mode,
            });
        }
    }
    let label = if read_paused {
        "Resume reading"
    } else {
        "Pause reading"
    };
    if ui
        .button(label)
        .on_hover_text("Stop or restart reading from the socket; the kernel buffers fill meanwhile")
        .clicked()
    {
        chosen = Some(Command::SetReadPaused {
            targets: targets(),
            paused: !read_paused,
        });
    }
    chosen
}
