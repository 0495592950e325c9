//! The connections table: one row per client, virtualized so 10,000 rows
//! cost only the visible ones.

use super::{PaneCtx, labelled};
use crate::format;
use crate::monitor::connections::state_label_at;
use crate::monitor::{Column, Sort};
use crate::protocol::{Command, ConnCounters, ConnId, ConnState, ListenState};
use egui::{Align, Layout, RichText, Sense, Ui};
use egui_extras::{Column as TableColumn, TableBuilder};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const ROW_HEIGHT: f32 = 20.0;

/// What the user arranged in this pane; saved in session layouts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionsPane {
    pub sort: Sort,
    pub filter: String,
    pub hidden_columns: BTreeSet<Column>,
    /// Optional columns ([`Column::optional`]) the user turned on.
    pub shown_optional: BTreeSet<Column>,
    /// Rows drawn in the last frame, for `Command::Watch` (the app reads
    /// and clears it).
    #[serde(skip)]
    pub visible: VisibleRows,
    /// Column widths as last drawn, applied when a layout is opened.
    pub widths: BTreeMap<Column, f32>,
    /// Bumped when widths come from a layout so the table forgets its own.
    #[serde(skip)]
    pub table_generation: u32,
    /// Only the connections this lint fires on (set from Diagnostics).
    #[serde(skip)]
    pub lint_filter: Option<crate::monitor::lints::Lint>,
}

/// The ids of the rows drawn in a frame. Not part of what the user
/// arranged, so never makes two panes differ.
#[derive(Clone, Debug, Default)]
pub struct VisibleRows(pub Vec<ConnId>);

impl PartialEq for VisibleRows {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Widths that fit the usual text of each column in a 1280 px window
/// ("paused (backpressure)", "closing (reset in 1.2 s)", "queue peak");
/// longer text (close reasons) is clipped and shown whole on hover.
fn default_width(col: Column) -> f32 {
    match col {
        Column::Id => 40.0,
        Column::Warnings => 24.0,
        Column::Peer => 118.0,
        Column::State => 150.0,
        Column::Age => 52.0,
        Column::Msgs => 40.0,
        Column::HighWater => 76.0,
        Column::LastActivity => 90.0,
        Column::Rx | Column::Tx | Column::Queued => 60.0,
        Column::Rtt | Column::Retransmits | Column::Unsent => 60.0,
        Column::PeerWindow => 76.0,
    }
}

impl ConnectionsPane {
    pub fn is_shown(&self, col: Column) -> bool {
        if col.optional() {
            self.shown_optional.contains(&col)
        } else {
            !self.hidden_columns.contains(&col)
        }
    }

    fn set_shown(&mut self, col: Column, shown: bool) {
        let set = if col.optional() {
            &mut self.shown_optional
        } else {
            &mut self.hidden_columns
        };
        if shown == col.optional() {
            set.insert(col);
        } else {
            set.remove(&col);
        }
    }

    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        let now = ctx.monitor.engine_now();
        let table = &mut ctx.monitor.connections;
        let shown = match self.lint_filter {
            Some(lint) => {
                let with = ctx.monitor.lints.conns_with(lint);
                table
                    .view(self.sort, &self.filter)
                    .iter()
                    .filter(|id| with.contains(id))
                    .count()
            }
            None => table.view(self.sort, &self.filter).len(),
        };
        ui.horizontal(|ui| {
            labelled(ui, "Filter", |ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut self.filter)
                        .hint_text("id, address or state")
                        .desired_width(180.0),
                )
            });
            if !self.filter.is_empty()
                && ui
                    .small_button("✖")
                    .on_hover_text("Clear the filter")
                    .clicked()
            {
                self.filter.clear();
            }
            ui.menu_button("Columns", |ui| {
                for col in Column::ALL {
                    if col == Column::Rtt {
                        ui.separator();
                        ui.label(RichText::new("The kernel's view (TCP_INFO)").weak());
                    }
                    let mut visible = self.is_shown(col);
                    if ui
                        .checkbox(&mut visible, col.title())
                        .on_hover_text(col.description())
                        .changed()
                    {
                        self.set_shown(col, visible);
                    }
                }
            });
            if let Some(lint) = self.lint_filter
                && ui
                    .button(format!("only {} ✖", lint.name()))
                    .on_hover_text("Show every connection again")
                    .clicked()
            {
                self.lint_filter = None;
            }
            ui.label(
                RichText::new(format!(
                    "{shown} shown · {} open · {} selected",
                    table.open_count(),
                    ctx.selection.conns.len()
                ))
                .weak(),
            );
        });
        if table.is_empty() {
            first_run_hint(ui, ctx.monitor.stats.as_ref().map(|s| &s.listen));
            return;
        }
        // Re-read: the filter may have changed above.
        table.view(self.sort, &self.filter);
        let table = &ctx.monitor.connections;
        let lints = &ctx.monitor.lints;
        let narrowed: Vec<ConnId>;
        let order = match self.lint_filter {
            Some(lint) => {
                let with = lints.conns_with(lint);
                narrowed = table
                    .order()
                    .iter()
                    .copied()
                    .filter(|id| with.contains(id))
                    .collect();
                &narrowed[..]
            }
            None => table.order(),
        };

        let columns: Vec<Column> = Column::ALL
            .into_iter()
            .filter(|c| self.is_shown(*c))
            .collect();
        // Cell text must not take clicks meant for selecting the row.
        ui.style_mut().interaction.selectable_labels = false;
        let mut builder = TableBuilder::new(ui)
            .id_salt(("connections", self.table_generation))
            .striped(true)
            .resizable(true)
            .sense(Sense::click())
            .cell_layout(Layout::left_to_right(Align::Center));
        for (i, &col) in columns.iter().enumerate() {
            let width = self
                .widths
                .get(&col)
                .copied()
                .unwrap_or_else(|| default_width(col));
            let column = if i + 1 == columns.len() {
                TableColumn::remainder().at_least(40.0)
            } else {
                TableColumn::initial(width).at_least(30.0).clip(true)
            };
            builder = builder.column(column);
        }

        let mut clicked: Option<(ConnId, egui::Modifiers)> = None;
        let mut actions: Vec<RowAction> = Vec::new();
        let mut widths = Vec::new();
        builder
            .header(ROW_HEIGHT, |mut header| {
                for &col in &columns {
                    header.col(|ui| {
                        let mut title = col.title().to_owned();
                        if self.sort.column == col {
                            title.push_str(if self.sort.ascending { " ⏶" } else { " ⏷" });
                        }
                        if ui
                            .add(egui::Button::new(RichText::new(title).strong()).frame(false))
                            .on_hover_text(format!("{}. Click to sort by it.", col.description()))
                            .clicked()
                        {
                            if self.sort.column == col {
                                self.sort.ascending = !self.sort.ascending;
                            } else {
                                self.sort = Sort {
                                    column: col,
                                    ascending: matches!(
                                        col,
                                        Column::Id | Column::Peer | Column::State
                                    ),
                                };
                            }
                        }
                    });
                }
            })
            .body(|body| {
                widths = body.widths().to_vec();
                let visible = &mut self.visible.0;
                body.rows(ROW_HEIGHT, order.len(), |mut row| {
                    let id = order[row.index()];
                    // Only the rows on screen are drawn.
                    visible.push(id);
                    let Some(c) = table.get(id) else { return };
                    let selected = ctx.selection.is_selected(id);
                    row.set_selected(selected);
                    let closed = matches!(c.state, ConnState::Closed(_));
                    for &col in &columns {
                        row.col(|ui| {
                            // Closed rows are dimmed, and state colours
                            // give way to the selection's own text colour
                            // (red on blue read badly).
                            if closed && !selected {
                                ui.disable();
                            }
                            if col == Column::Warnings {
                                warnings_cell(ui, lints, id);
                            } else {
                                cell(ui, c, col, now, selected);
                            }
                        });
                    }
                    let response = row.response();
                    if response.clicked() {
                        clicked = Some((id, response.ctx.input(|i| i.modifiers)));
                    }
                    response.context_menu(|ui| {
                        let targets = ctx.selection.targets_for(id);
                        row_menu(ui, &targets, closed, c.read_paused, &mut actions);
                    });
                });
            });
        for (col, w) in columns.iter().zip(widths) {
            self.widths.insert(*col, w);
        }
        if let Some((id, m)) = clicked {
            ctx.selection.click(id, m.command, m.shift, order);
        }
        for action in actions {
            match action {
                RowAction::Command(cmd) => ctx.commands.push(cmd),
                RowAction::ShowEvents(ids) => *ctx.focus_events_on = Some(ids),
            }
        }
    }
}

enum RowAction {
    Command(Command),
    ShowEvents(Vec<ConnId>),
}

fn row_menu(
    ui: &mut Ui,
    targets: &[ConnId],
    closed: bool,
    paused: bool,
    actions: &mut Vec<RowAction>,
) {
    let n = targets.len();
    let which = if n == 1 {
        format!("{}", targets[0])
    } else {
        format!("{n} connections")
    };
    ui.label(RichText::new(which).strong());
    ui.add_enabled_ui(!closed || n > 1, |ui| {
        if let Some(cmd) = super::conn_action_buttons(ui, targets, paused) {
            actions.push(RowAction::Command(cmd));
            ui.close();
        }
    });
    if ui.button("Show only these events").clicked() {
        actions.push(RowAction::ShowEvents(targets.to_vec()));
        ui.close();
    }
}

/// ⚠ with the lints that fire on it, in a tooltip.
fn warnings_cell(ui: &mut Ui, lints: &crate::monitor::lints::Lints, id: ConnId) {
    let found = lints.on_conn(id);
    if found.is_empty() {
        return;
    }
    let text: Vec<String> = found.iter().map(|f| f.line()).collect();
    ui.label(RichText::new("⚠").color(super::warn_color(ui)))
        .on_hover_text(text.join("\n"));
}

fn cell(ui: &mut Ui, c: &ConnCounters, col: Column, now: u64, selected: bool) {
    let text = match col {
        Column::Id => c.id.to_string(),
        Column::Warnings => String::new(),
        Column::Peer => {
            let peer = c.peer.to_string();
            ui.label(&peer).on_hover_text(peer);
            return;
        }
        Column::State => {
            let label = state_label_at(c, now);
            if let ConnState::Closing { .. } = c.state {
                // The countdown of a graceful kick moves without new data.
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(100));
            }
            let color = match &c.state {
                ConnState::Open if c.backpressure || c.read_paused => Some(super::warn_color(ui)),
                ConnState::Closed(crate::protocol::CloseReason::PeerClosed) | ConnState::Open => {
                    None
                }
                ConnState::Closed(_) => Some(super::error_color(ui)),
                _ => Some(super::warn_color(ui)),
            };
            let text = RichText::new(&label);
            ui.label(match color {
                Some(color) if !selected => text.color(color),
                _ => text,
            })
            .on_hover_text(label);
            return;
        }
        Column::Age => {
            let end = match c.state {
                ConnState::Closed(_) => c.last_activity,
                _ => now,
            };
            format::duration_micros(end.saturating_sub(c.opened_at))
        }
        Column::Rx => format::bytes(c.rx_bytes),
        Column::Tx => format::bytes(c.tx_bytes),
        Column::Queued => format::bytes(c.queued_bytes),
        Column::Msgs => c.queued_msgs.to_string(),
        Column::HighWater => format::bytes(c.queue_high_water),
        Column::Rtt | Column::Retransmits | Column::PeerWindow | Column::Unsent => {
            let Some(t) = c.tcp.as_deref() else {
                ui.label(RichText::new("–").weak())
                    .on_hover_text("not sampled yet");
                return;
            };
            match col {
                Column::Rtt => format::duration_micros(u64::from(t.rtt_us)),
                Column::Retransmits => t.total_retrans.to_string(),
                Column::PeerWindow => {
                    let text = RichText::new(super::kernel::window(t.peer_window));
                    ui.label(if t.peer_window == Some(0) && !selected {
                        text.color(super::warn_color(ui))
                    } else {
                        text
                    });
                    return;
                }
                _ => format::bytes(u64::from(t.notsent_bytes)),
            }
        }
        Column::LastActivity => {
            let ago = format::duration_micros(now.saturating_sub(c.last_activity));
            // While reading is paused the client may well be sending; the
            // clock only says muxscope has not looked.
            if c.read_paused && matches!(c.state, ConnState::Open) {
                format!("{ago} ago (paused)")
            } else {
                format!("{ago} ago")
            }
        }
    };
    ui.label(text);
}

/// What an empty table says: where to point a client, with a command to
/// copy.
fn first_run_hint(ui: &mut Ui, listen: Option<&ListenState>) {
    ui.add_space(24.0);
    ui.vertical_centered(|ui| {
        let Some(ListenState::Listening(addr)) = listen else {
            ui.label(
                RichText::new("Not listening: enter an address above and press Start.").weak(),
            );
            return;
        };
        ui.label(RichText::new("No connections yet.").strong());
        ui.label(format!("Point your client at {addr}"));
        // nc wants the host and the port apart; an IPv6 host has no brackets.
        let example = format!("nc {} {}", addr.ip(), addr.port());
        ui.label(RichText::new(format!("for example:  {example}")).monospace());
        if ui
            .button("Copy command")
            .on_hover_text("Copy this command to the clipboard")
            .clicked()
        {
            ui.ctx().copy_text(example);
        }
    });
}
