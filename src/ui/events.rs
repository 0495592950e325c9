//! The live readiness-event log: what mio reported and what the engine did,
//! following the tail unless paused.

use super::{PaneCtx, engine_time};
use crate::monitor::EventFilter;
use crate::protocol::ConnId;
use crate::protocol::{Event, EventKind, KIND_NAMES};
use egui::containers::menu::{MenuButton, MenuConfig};
use egui::{Align, Layout, PopupCloseBehavior, RichText, Ui};
use egui_extras::{Column, TableBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

const ROW_HEIGHT: f32 = 18.0;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsPane {
    pub filter: EventFilter,
    /// Narrow to the selected connections as the selection changes.
    pub follow_selection: bool,
    /// Connections picked with "Show only these events", offered as a
    /// scope of their own until dismissed.
    pub pinned: BTreeSet<ConnId>,
    /// A frozen copy of the view while paused, so rows do not shift.
    #[serde(skip)]
    paused: Option<PausedView>,
}

#[derive(Clone, Debug, PartialEq)]
struct PausedView {
    events: Vec<Event>,
    total_at_pause: u64,
}

impl EventsPane {
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        if let Some(ids) = ctx.focus_events_on.take() {
            self.pinned = ids.into_iter().collect();
            self.filter.conns = self.pinned.clone();
            self.follow_selection = false;
        }
        if self.follow_selection && self.filter.conns != ctx.selection.conns {
            self.filter.conns = ctx.selection.conns.clone();
        }
        let log = &mut ctx.monitor.events;
        let live_count = log.refresh(&self.filter);

        ui.horizontal_wrapped(|ui| {
            let pause_label = if self.paused.is_some() {
                "▶ Follow"
            } else {
                "⏸ Pause"
            };
            if ui
                .button(pause_label)
                .on_hover_text("Freeze the log to read it; events keep being recorded")
                .clicked()
            {
                self.paused = match self.paused {
                    Some(_) => None,
                    None => Some(PausedView {
                        events: log.snapshot(&self.filter),
                        total_at_pause: log.total(),
                    }),
                };
            }
            self.scope_ui(ui, ctx.selection.conns.len());
            // Stays open while kinds are toggled; a click outside closes it.
            let kinds = MenuButton::new("Kinds")
                .config(MenuConfig::new().close_behavior(PopupCloseBehavior::CloseOnClickOutside));
            kinds.ui(ui, |ui| {
                if ui.button("Show all").clicked() {
                    self.filter.hidden_kinds.clear();
                }
                for name in KIND_NAMES {
                    let mut shown = !self.filter.hidden_kinds.contains(name);
                    if ui.checkbox(&mut shown, name).changed() {
                        if shown {
                            self.filter.hidden_kinds.remove(name);
                        } else {
                            self.filter.hidden_kinds.insert(name.to_owned());
                        }
                    }
                }
            });
            let status = match &self.paused {
                Some(p) => format!(
                    "paused: {} shown, {} new since",
                    p.events.len(),
                    log.total() - p.total_at_pause
                ),
                None => format!("{live_count} shown of {} held", log.len()),
            };
            ui.label(RichText::new(status).weak());
            if log.fell_out() > 0 {
                ui.label(
                    RichText::new(format!(
                        "{} older events fell out of the log",
                        log.fell_out()
                    ))
                    .weak(),
                );
            }
        });

        let count = match &self.paused {
            Some(p) => p.events.len(),
            None => live_count,
        };
        TableBuilder::new(ui)
            .id_salt("events")
            .striped(true)
            .resizable(true)
            .stick_to_bottom(self.paused.is_none())
            .cell_layout(Layout::left_to_right(Align::Center))
            .column(Column::initial(96.0).at_least(60.0))
            .column(Column::initial(60.0).at_least(40.0))
            .column(Column::initial(90.0).at_least(50.0))
            .column(Column::remainder().at_least(80.0))
            .header(ROW_HEIGHT, |mut h| {
                for title in ["time (s)", "conn", "kind", "what happened"] {
                    h.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(ROW_HEIGHT, count, |mut row| {
                    let i = row.index();
                    let event = match &self.paused {
                        Some(p) => p.events.get(i),
                        None => log.nth(&self.filter, i),
                    };
                    let Some(e) = event else { return };
                    row.col(|ui| {
                        ui.monospace(engine_time(e.at));
                    });
                    row.col(|ui| {
                        ui.label(
                            e.conn
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "server".into()),
                        );
                    });
                    row.col(|ui| {
                        ui.label(kind_text(ui, &e.kind));
                    });
                    row.col(|ui| {
                        ui.label(e.kind.describe());
                    });
                });
            });
    }
}

impl EventsPane {
    /// The one connection filter: all, the selection (followed as it
    /// changes), or a pinned set.
    fn scope_ui(&mut self, ui: &mut Ui, selected: usize) {
        #[derive(PartialEq, Clone, Copy)]
        enum Scope {
            All,
            Selected,
            Pinned,
        }
        let current = if self.follow_selection {
            Scope::Selected
        } else if !self.filter.conns.is_empty() {
            Scope::Pinned
        } else {
            Scope::All
        };
        let mut scope = current;
        ui.label("Connections");
        ui.selectable_value(&mut scope, Scope::All, "all");
        ui.selectable_value(
            &mut scope,
            Scope::Selected,
            format!("selected rows ({selected})"),
        )
        .on_hover_text("Follow the selection in the Connections pane");
        let mut unpin = false;
        if !self.pinned.is_empty() {
            let ids: Vec<String> = self.pinned.iter().map(|c| c.to_string()).collect();
            ui.selectable_value(&mut scope, Scope::Pinned, format!("only {}", ids.join(" ")));
            unpin = ui
                .small_button("✖")
                .on_hover_text("Forget this set of connections")
                .clicked();
        }
        if unpin {
            self.pinned.clear();
            if scope == Scope::Pinned {
                scope = Scope::All;
            }
        }
        if scope != current || unpin {
            self.follow_selection = scope == Scope::Selected;
            self.filter.conns = match scope {
                Scope::Pinned => self.pinned.clone(),
                Scope::Selected | Scope::All => BTreeSet::new(),
            };
        }
    }
}

fn kind_text(ui: &Ui, kind: &EventKind) -> RichText {
    let text = RichText::new(kind.name());
    match kind {
        EventKind::Read { .. } => text.color(super::rx_color(ui)),
        EventKind::Wrote { .. } => text.color(super::tx_color(ui)),
        EventKind::Closed { .. }
        | EventKind::AcceptError { .. }
        | EventKind::ListenFailed { .. } => text.color(super::error_color(ui)),
        EventKind::Backpressure { .. } | EventKind::Kicked { .. } | EventKind::PeerHalfClosed => {
            text.color(super::warn_color(ui))
        }
        EventKind::Readiness(_) | EventKind::WouldBlock { .. } => text.weak(),
        _ => text,
    }
}
