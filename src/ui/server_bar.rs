//! The strip at the top: where the server listens, its mode, and its totals,
//! including how many events were dropped on the way to this window.

use super::{PaneCtx, error_color, labelled, warn_color};
use crate::format;
use crate::protocol::{Command, ListenState, Mode};
use egui::{RichText, Ui};

#[derive(Debug, Default)]
pub struct ServerBar {
    /// The address being edited.
    pub listen_text: String,
    edited: bool,
    /// The address this window last asked the engine to listen on, as
    /// typed: `127.0.0.1:0` stays `:0` (what a layout saves), while the
    /// status shows the port the engine got. Empty when this window never
    /// asked (a viewer attached to a running server): the field then shows
    /// the engine's address.
    pub requested: String,
    /// The backend can record (an engine in this process).
    pub can_record: bool,
    /// Set when Record was clicked; the app picks the file.
    pub record_clicked: bool,
    /// A recording is shown: what it says, without controls.
    pub read_only: bool,
}

impl ServerBar {
    /// ⏺ Record, or the recording's elapsed time and size with Stop recording.
    fn recording_ui(
        &mut self,
        ui: &mut Ui,
        ctx: &mut PaneCtx,
        stats: Option<&crate::protocol::EngineStats>,
    ) {
        let recording = stats.and_then(|s| s.recording.as_deref());
        match recording {
            Some(r) if r.ended.is_none() => {
                let elapsed = ctx.monitor.engine_now().saturating_sub(r.started_at);
                let secs = elapsed / 1_000_000;
                let text = format!(
                    "⏺ REC {}:{:02} · {}",
                    secs / 60,
                    secs % 60,
                    format::bytes(r.bytes)
                );
                let mut hover = format!("Recording every event and byte to {}", r.path);
                if r.part > 1 {
                    hover.push_str(&format!(" (part {})", r.part));
                }
                ui.label(RichText::new(text).color(error_color(ui)).strong())
                    .on_hover_text(hover);
                if r.lost_events > 0 || r.lost_bytes > 0 {
                    ui.label(
                        RichText::new(format!(
                            "⚠ lost {} events, {}",
                            r.lost_events,
                            format::bytes(r.lost_bytes)
                        ))
                        .color(warn_color(ui)),
                    )
                    .on_hover_text("The disk could not keep up; the file says exactly what is missing and where.");
                }
                if self.can_record
                    && ui
                        .button("Stop recording")
                        .on_hover_text("Stop recording and close the file")
                        .clicked()
                {
                    ctx.commands.push(Command::StopRecording);
                }
            }
            _ if self.can_record => {
                let button = ui.button("⏺ Record").on_hover_text(
                    "Record every event and every byte, both ways, of every connection to a .muxrec file (File → Open recording… plays it back)",
                );
                let button = match recording.and_then(|r| r.ended.as_ref().map(|e| (r, e))) {
                    Some((r, why)) => {
                        button.on_hover_text(format!("Last recording: {} ({why})", r.path))
                    }
                    None => button,
                };
                if button.clicked() {
                    self.record_clicked = true;
                }
            }
            _ => {}
        }
    }

    /// A recording's server, as of the playback position: no controls.
    fn recorded_ui(ui: &mut Ui, stats: Option<&crate::protocol::EngineStats>) {
        ui.label(RichText::new("▶ recording").strong());
        let Some(s) = stats else { return };
        match &s.listen {
            ListenState::Listening(addr) => ui.label(format!("listened on {addr}")),
            ListenState::Stopped => ui.label(RichText::new("not listening").weak()),
            ListenState::Failed { error, .. } => ui.label(format!("could not listen: {error}")),
        };
        ui.separator();
        ui.label(format!("mode {}", s.mode));
    }

    pub fn new(listen: &str) -> Self {
        ServerBar {
            listen_text: listen.to_owned(),
            edited: false,
            requested: listen.to_owned(),
            can_record: false,
            record_clicked: false,
            read_only: false,
        }
    }

    /// The address a layout should store.
    pub fn listen_for_layout(&self, engine: Option<&ListenState>) -> String {
        match engine {
            _ if !self.requested.is_empty() => self.requested.clone(),
            Some(ListenState::Listening(addr)) => addr.to_string(),
            _ => self.listen_text.trim().to_owned(),
        }
    }

    /// This window asks the engine to listen on `addr`.
    pub fn request(&mut self, addr: &str) {
        self.listen_text = addr.to_owned();
        self.requested = addr.to_owned();
        self.edited = false;
    }

    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        let stats = ctx.monitor.stats.clone();
        let listen = stats.as_ref().map(|s| s.listen.clone());
        if !self.edited
            && self.requested.is_empty()
            && let Some(ListenState::Listening(addr)) = &listen
        {
            self.listen_text = addr.to_string();
        }
        ui.horizontal_wrapped(|ui| {
            if self.read_only {
                Self::recorded_ui(ui, stats.as_ref());
                return;
            }
            let edit = labelled(ui, "Listen", |ui| {
                ui.add(egui::TextEdit::singleline(&mut self.listen_text).desired_width(150.0))
            });
            if edit.changed() {
                self.edited = true;
            }
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let listening = matches!(listen, Some(ListenState::Listening(_)));
            let start_label = if listening { "Restart" } else { "Start" };
            if ui.button(start_label).clicked() || enter {
                let addr = self.listen_text.trim().to_owned();
                self.request(&addr);
                ctx.commands.push(Command::Listen { addr });
            }
            if ui
                .add_enabled(listening, egui::Button::new("Stop"))
                .clicked()
            {
                ctx.commands.push(Command::StopListening);
            }
            match &listen {
                Some(ListenState::Listening(addr)) => {
                    ui.label(
                        RichText::new(format!("⏺ listening on {addr}")).color(super::tx_color(ui)),
                    );
                }
                Some(ListenState::Stopped) => {
                    ui.label(RichText::new("○ not listening").weak());
                }
                Some(ListenState::Failed { .. }) | None => {}
            }

            ui.separator();
            ui.label("Mode");
            let current = stats.as_ref().map(|s| s.mode).unwrap_or_default();
            for mode in Mode::ALL {
                let hint = match mode {
                    Mode::Echo => "Write every received byte back (the seed's behaviour)",
                    Mode::Manual => "Record received bytes but send only what you inject",
                    Mode::Discard => "Count received bytes and throw them away",
                };
                if ui
                    .selectable_label(current == mode, mode.name())
                    .on_hover_text(hint)
                    .clicked()
                    && current != mode
                {
                    ctx.commands.push(Command::SetMode(mode));
                }
            }
            ui.separator();
            self.recording_ui(ui, ctx, stats.as_ref());
        });
        if let Some(ListenState::Failed { error, .. }) = &listen {
            ui.label(
                RichText::new(format!("⚠ {error}"))
                    .color(error_color(ui))
                    .strong(),
            );
        }

        ui.horizontal_wrapped(|ui| {
            let Some(s) = &stats else {
                // A recording's stats come four times a second: the first
                // ones may be just after where it is shown.
                let waiting = if self.read_only {
                    "no server figures recorded yet at this point"
                } else {
                    "waiting for the engine…"
                };
                ui.label(RichText::new(waiting).weak());
                return;
            };
            let latest = ctx.monitor.rates.latest().copied();
            let (rx_rate, tx_rate) = latest.map(|p| (p.rx_per_sec, p.tx_per_sec)).unwrap_or_default();
            // The table's count, so the bar and the table never disagree
            // while a burst of accepts or closes is on its way.
            ui.label(format!("{} open", ctx.monitor.connections.open_count()))
                .on_hover_text(format!("{} accepted since the engine started", s.accepted_total));
            ui.separator();
            ui.label(RichText::new(format!("rx {} ({})", format::bytes(s.rx_bytes), format::rate(rx_rate))).color(super::rx_color(ui)));
            ui.label(RichText::new(format!("tx {} ({})", format::bytes(s.tx_bytes), format::rate(tx_rate))).color(super::tx_color(ui)));
            ui.label(format!("queued {}", format::bytes(s.queued_bytes)))
                .on_hover_text(format!(
                    "Bytes waiting to be written, all clients together. Each client may queue up to {} before muxscope stops reading it.",
                    format::bytes(s.queue_limit)
                ));
            ui.separator();
            ui.label(format!("{} events/s", format::count(s.events_per_sec)));
            ui.label(format!("{} polls/s", format::count(s.polls_per_sec)));
            ui.separator();
            let dropped = ctx.monitor.engine_dropped;
            let fell_out = ctx.monitor.events.fell_out();
            let text = format!("dropped {dropped} events · {fell_out} fell out of the log");
            if dropped > 0 {
                ui.label(RichText::new(format!("⚠ {text}")).color(warn_color(ui)).strong())
                    .on_hover_text("The window fell behind the engine; counters and the table stay exact, only log lines were dropped.");
            } else {
                ui.label(text).on_hover_text("Events the engine could not hand to this window, and old events evicted from the log ring.");
            }
            if s.accept_paused {
                ui.separator();
                ui.label(
                    RichText::new("⚠ accepting paused: out of file descriptors")
                        .color(error_color(ui))
                        .strong(),
                );
            }
        });
    }
}
