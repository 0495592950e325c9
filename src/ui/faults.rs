//! The Faults pane: edit a set of faults with plain controls (a toggle and
//! fields with units per fault), then apply it to new connections or to
//! the selected ones; and the engine-wide fault on accepting.

use super::{PaneCtx, labelled};
use crate::faults::{AcceptFault, Chance, Faults, Latency, Limit, Millis, Slice};
use crate::protocol::{Command, FaultScope, Targets};
use egui::{DragValue, RichText, Ui};
use serde::{Deserialize, Serialize};

/// What the user arranged in this pane; saved in session layouts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultsPane {
    /// The faults being edited.
    pub draft: Faults,
    /// The accept fault being edited.
    pub accept: Option<AcceptFault>,
}

impl FaultsPane {
    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        let stats = ctx.monitor.stats.as_ref();
        let (new_faults, accept_now) = stats
            .map(|s| (s.new_faults.clone(), s.accept_fault))
            .unwrap_or_default();
        ui.horizontal_wrapped(|ui| {
            ui.label("New connections get:");
            ui.label(RichText::new(new_faults.to_string()).monospace());
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Accepting:");
            let text = match accept_now {
                None => "normal".to_owned(),
                Some(f) => describe_accept(f),
            };
            ui.label(RichText::new(text).monospace());
        });
        // Actions first, so they stay in view however tall the form is.
        let selected = ctx.selection.primary_first();
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Apply to new")
                .on_hover_text("Connections accepted from now on get the faults below")
                .clicked()
            {
                ctx.commands.push(Command::SetFaults {
                    scope: FaultScope::New,
                    faults: Box::new(self.draft.clone()),
                });
            }
            let n = selected.len();
            let apply =
                ui.add_enabled(n > 0, egui::Button::new(format!("Apply to selected ({n})")));
            if apply.clicked() {
                ctx.commands.push(Command::SetFaults {
                    scope: FaultScope::Conns(Targets::Conns(selected.clone())),
                    faults: Box::new(self.draft.clone()),
                });
            }
            let lift = ui.add_enabled(n > 0, egui::Button::new("Lift from selected"));
            if lift.on_hover_text("Held bytes go out at once").clicked() {
                ctx.commands.push(Command::SetFaults {
                    scope: FaultScope::Conns(Targets::Conns(selected)),
                    faults: Box::default(),
                });
            }
            if ui.button("Clear form").clicked() {
                self.draft = Faults::default();
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Accept fault");
            let mut kind = AcceptKind::of(self.accept);
            for k in AcceptKind::ALL {
                ui.selectable_value(&mut kind, k, k.label());
            }
            let mut delay = match self.accept {
                Some(AcceptFault::Delay(ms)) => ms,
                _ => 500,
            };
            if kind == AcceptKind::Delay {
                ui.add(DragValue::new(&mut delay).suffix(" ms").range(0..=600_000));
            }
            self.accept = kind.fault(delay);
            if ui
                .button("Apply accept fault")
                .on_hover_text(
                    "Refuse: the listener closes. Stall: accept() is not called, the \
                     backlog fills. Delay: each client is served that much later.",
                )
                .clicked()
            {
                ctx.commands.push(Command::SetAcceptFault(self.accept));
            }
        });
        ui.separator();
        ui.label(RichText::new(self.draft.to_string()).monospace().weak());
        egui::ScrollArea::vertical()
            .id_salt("faults")
            .auto_shrink(false)
            .show(ui, |ui| {
                egui::Grid::new("fault-controls")
                    .num_columns(2)
                    .spacing([10.0, 4.0])
                    .show(ui, |ui| self.controls(ui));
            });
    }

    /// One row per fault: a toggle, then its values.
    fn controls(&mut self, ui: &mut Ui) {
        let d = &mut self.draft;
        ui.label("stall writes");
        ui.checkbox(&mut d.stall_writes, "send nothing until lifted");
        ui.end_row();
        toggle_row(
            ui,
            "latency",
            &mut d.latency,
            Latency {
                delay: 200,
                jitter: 0,
            },
            |ui, l| {
                ms(ui, &mut l.delay);
                ui.label("±");
                ms(ui, &mut l.jitter);
            },
        );
        toggle_row(ui, "bandwidth", &mut d.bandwidth, 10 * 1024, |ui, r| {
            rate(ui, r);
        });
        toggle_row(
            ui,
            "read bandwidth",
            &mut d.read_bandwidth,
            1024,
            |ui, r| {
                rate(ui, r);
            },
        );
        let slice = Slice {
            min: 1,
            max: 1,
            delay: 5,
        };
        toggle_row(ui, "slice", &mut d.slice, slice, |ui, s| {
            ui.add(DragValue::new(&mut s.min).range(1..=65_536).suffix(" B"));
            ui.label("to");
            let min = s.min;
            ui.add(DragValue::new(&mut s.max).range(min..=65_536).suffix(" B"));
            ui.label("every");
            ms(ui, &mut s.delay);
        });
        toggle_row(
            ui,
            "close after",
            &mut d.close_after,
            Limit::Bytes(1024),
            limit,
        );
        toggle_row(
            ui,
            "reset after",
            &mut d.reset_after,
            Limit::Bytes(1024),
            limit,
        );
        toggle_row(ui, "slow close", &mut d.slow_close, 3000, ms);
        toggle_row(ui, "corrupt", &mut d.corrupt, Chance(10_000), |ui, c| {
            percent(ui, c);
            ui.label("of bytes sent");
        });
        toggle_row(ui, "receive buffer", &mut d.rcvbuf, 4096, |ui, b| {
            ui.add(DragValue::new(b).range(1..=16 << 20).suffix(" B"));
        });
        toggle_row(ui, "toxicity", &mut d.toxicity, Chance(500_000), |ui, c| {
            percent(ui, c);
            ui.label("of new connections");
        });
    }
}

/// A label, a toggle, and (when on) the value's controls.
fn toggle_row<T: Clone>(
    ui: &mut Ui,
    name: &str,
    value: &mut Option<T>,
    default: T,
    edit: impl FnOnce(&mut Ui, &mut T),
) {
    let mut on = value.is_some();
    let toggled = labelled(ui, name, |ui| ui.checkbox(&mut on, "")).changed();
    if toggled {
        *value = on.then_some(default);
    }
    ui.horizontal(|ui| match value {
        Some(v) => edit(ui, v),
        None => {
            ui.label(RichText::new("off").weak());
        }
    });
    ui.end_row();
}

fn ms(ui: &mut Ui, value: &mut Millis) {
    ui.add(DragValue::new(value).range(0..=600_000).suffix(" ms"));
}

fn rate(ui: &mut Ui, value: &mut u64) {
    ui.add(
        DragValue::new(value)
            .range(1..=1u64 << 40)
            .speed(64)
            .suffix(" B/s"),
    );
    ui.label(RichText::new(crate::format::rate(*value as f64)).weak());
}

fn percent(ui: &mut Ui, chance: &mut Chance) {
    let mut pct = f64::from(chance.0) / 10_000.0;
    if ui
        .add(
            DragValue::new(&mut pct)
                .range(0.0..=100.0)
                .speed(0.1)
                .max_decimals(4)
                .suffix(" %"),
        )
        .changed()
    {
        *chance = Chance((pct * 10_000.0).round() as u32);
    }
}

fn limit(ui: &mut Ui, limit: &mut Limit) {
    let mut by_bytes = matches!(limit, Limit::Bytes(_));
    ui.selectable_value(&mut by_bytes, true, "bytes sent");
    ui.selectable_value(&mut by_bytes, false, "time");
    match (by_bytes, *limit) {
        (true, Limit::After(_)) => *limit = Limit::Bytes(1024),
        (false, Limit::Bytes(_)) => *limit = Limit::After(2000),
        _ => {}
    }
    match limit {
        Limit::Bytes(n) => {
            ui.add(DragValue::new(n).range(0..=1u64 << 40).suffix(" B"));
        }
        Limit::After(t) => {
            ms(ui, t);
            ui.label("after accept");
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum AcceptKind {
    Normal,
    Refuse,
    Stall,
    Delay,
}

impl AcceptKind {
    const ALL: [AcceptKind; 4] = [
        AcceptKind::Normal,
        AcceptKind::Refuse,
        AcceptKind::Stall,
        AcceptKind::Delay,
    ];

    fn of(fault: Option<AcceptFault>) -> AcceptKind {
        match fault {
            None => AcceptKind::Normal,
            Some(AcceptFault::Refuse) => AcceptKind::Refuse,
            Some(AcceptFault::Stall) => AcceptKind::Stall,
            Some(AcceptFault::Delay(_)) => AcceptKind::Delay,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AcceptKind::Normal => "normal",
            AcceptKind::Refuse => "refuse",
            AcceptKind::Stall => "stall",
            AcceptKind::Delay => "delay",
        }
    }

    fn fault(self, delay: Millis) -> Option<AcceptFault> {
        match self {
            AcceptKind::Normal => None,
            AcceptKind::Refuse => Some(AcceptFault::Refuse),
            AcceptKind::Stall => Some(AcceptFault::Stall),
            AcceptKind::Delay => Some(AcceptFault::Delay(delay)),
        }
    }
}

/// An accept fault in words, as the status line shows it.
pub fn describe_accept(fault: AcceptFault) -> String {
    match fault {
        AcceptFault::Refuse => "refusing connections (listener closed)".to_owned(),
        AcceptFault::Stall => "stalled (accept() not called; the backlog fills)".to_owned(),
        AcceptFault::Delay(ms) => format!("each client served {ms} ms late"),
    }
}
