//! The Diagnostics pane: what the clients do wrong. A summary line per
//! lint that fires ("2 connections: client not reading"), every lint with
//! how many fire now and in all, when it fires and what to fix; a click
//! narrows the connections table to the connections a lint fires on.

use super::PaneCtx;
use crate::monitor::lints::Lint;
use egui::{RichText, Ui};

/// What the pane asks of the others this frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DiagnosticsAction {
    /// Show only the connections this lint fires on (`None`: all).
    FilterTable(Option<Lint>),
}

#[derive(Debug, Default)]
pub struct DiagnosticsPane {
    /// The lint whose advice is open.
    open: Option<Lint>,
}

impl DiagnosticsPane {
    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) -> Option<DiagnosticsAction> {
        let mut action = None;
        let lints = &mut ctx.monitor.lints;
        let firing: Vec<(Lint, usize)> = Lint::ALL
            .into_iter()
            .map(|l| (l, lints.count(l).active))
            .filter(|(_, n)| *n > 0)
            .collect();
        if firing.is_empty() {
            ui.label(RichText::new("No lint fires now.").weak());
        }
        for (lint, n) in &firing {
            let noun = if *lint == Lint::ReconnectStorm {
                "host"
            } else {
                "connection"
            };
            let text = format!("⚠ {}: {}", crate::format::counted(*n, noun), lint.name());
            if ui
                .add(
                    egui::Button::new(RichText::new(text).color(super::warn_color(ui)))
                        .frame(false),
                )
                .on_hover_text("Show only these in the connections table")
                .clicked()
            {
                action = Some(DiagnosticsAction::FilterTable(Some(*lint)));
                self.open = Some(*lint);
            }
        }
        ui.separator();
        egui::ScrollArea::vertical()
            .auto_shrink([false, true])
            .show(ui, |ui| {
                egui::Grid::new("lints")
                    .striped(true)
                    .num_columns(4)
                    .show(ui, |ui| {
                        ui.label(RichText::new("on").strong());
                        ui.label(RichText::new("lint").strong());
                        ui.label(RichText::new("now").strong())
                            .on_hover_text("Connections (or hosts) it fires on now");
                        ui.label(RichText::new("fired").strong())
                            .on_hover_text("Times it fired since the window opened");
                        ui.end_row();
                        for lint in Lint::ALL {
                            let mut on = lints.settings.enabled(lint);
                            if ui
                                .checkbox(&mut on, "")
                                .on_hover_text(format!(
                                    "Run {} (--allow / --warn {})",
                                    lint.name(),
                                    lint.name()
                                ))
                                .changed()
                            {
                                if on {
                                    lints.settings.allowed.remove(&lint);
                                } else {
                                    lints.settings.allowed.insert(lint);
                                }
                            }
                            let count = lints.count(lint);
                            let name = ui
                                .selectable_label(self.open == Some(lint), lint.name())
                                .on_hover_text(lint.condition(&lints.settings));
                            if name.clicked() {
                                self.open = (self.open != Some(lint)).then_some(lint);
                                action = Some(DiagnosticsAction::FilterTable(
                                    self.open.filter(|l| lints.count(*l).active > 0),
                                ));
                            }
                            ui.label(count.active.to_string());
                            ui.label(count.fired.to_string());
                            ui.end_row();
                        }
                    });
                if let Some(lint) = self.open {
                    ui.separator();
                    ui.label(RichText::new(lint.name()).strong());
                    ui.label(format!("Fires when {}.", lint.condition(&lints.settings)));
                    ui.label(lint.advice());
                    for f in lints.active().into_iter().filter(|f| f.lint == lint) {
                        let text =
                            RichText::new(format!("⚠ {}", f.message)).color(super::warn_color(ui));
                        match f.conn {
                            Some(id) => {
                                if ui
                                    .add(egui::Button::new(text).frame(false))
                                    .on_hover_text("Select it")
                                    .clicked()
                                {
                                    ctx.selection.conns = [id].into();
                                    ctx.selection.primary = Some(id);
                                }
                            }
                            None => {
                                ui.label(text);
                            }
                        }
                    }
                }
            });
        action
    }
}
