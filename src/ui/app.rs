//! `MuxscopeApp`: the eframe app. Drains the backend into the monitor in
//! `logic` (within a time budget), draws the panes in `ui`, and sends what
//! the panes asked for.

use super::server_bar::ServerBar;
use super::tiles::{self, Behavior, PaneKind, Panes};
use super::{PaneCtx, Selection};
use crate::backend::Backend;
use crate::monitor::Monitor;
use crate::protocol::{Command, ConnId};
use std::time::Duration;

/// Time a frame may spend folding batches in; the rest waits a frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);

pub struct MuxscopeApp {
    backend: Box<dyn Backend>,
    pub monitor: Monitor,
    pub selection: Selection,
    pub panes: Panes,
    pub server_bar: ServerBar,
    pub tree: egui_tiles::Tree<PaneKind>,
    commands: Vec<Command>,
    focus_events_on: Option<Vec<ConnId>>,
}

impl MuxscopeApp {
    pub fn new(backend: Box<dyn Backend>, listen: &str) -> Self {
        MuxscopeApp {
            backend,
            monitor: Monitor::default(),
            selection: Selection::default(),
            panes: Panes::default(),
            server_bar: ServerBar::new(listen),
            tree: tiles::default_tree(),
            commands: Vec::new(),
            focus_events_on: None,
        }
    }

    /// Pull what the backend has; returns true if more is waiting.
    pub fn pump(&mut self) -> bool {
        let more = self.backend.drain_into(&mut self.monitor, DRAIN_BUDGET);
        self.monitor.prune();
        // Forget selected rows that were pruned away.
        let table = &self.monitor.connections;
        self.selection.conns.retain(|id| table.get(*id).is_some());
        if self.selection.primary.is_some_and(|id| table.get(id).is_none()) {
            self.selection.primary = None;
        }
        more
    }

    pub fn send(&mut self, cmd: Command) {
        self.backend.send(cmd);
    }

    pub fn backend_status(&self) -> crate::backend::BackendStatus {
        self.backend.status()
    }

    /// Draw everything into `ui`; commands the panes produced are sent.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let mut ctx = PaneCtx {
            monitor: &mut self.monitor,
            selection: &mut self.selection,
            commands: &mut self.commands,
            focus_events_on: &mut self.focus_events_on,
        };
        egui::Panel::top("server-bar").show(ui, |ui| {
            ui.add_space(2.0);
            self.server_bar.ui(ui, &mut ctx);
            ui.add_space(2.0);
        });
        let status = self.backend.status();
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new(status.describe()).weak());
            });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            let mut behavior = Behavior {
                panes: &mut self.panes,
                ctx,
            };
            self.tree.ui(&mut behavior, ui);
        });
        for cmd in self.commands.drain(..) {
            self.backend.send(cmd);
        }
    }
}

impl eframe::App for MuxscopeApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        if self.pump() {
            ctx.request_repaint();
        }
        // Ages and "last activity" tick even when nothing arrives.
        ctx.request_repaint_after(Duration::from_secs(1));
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }
}
