//! Throughput over the last minutes: the whole server, or the selected
//! connections, from cumulative byte counts.

use super::PaneCtx;
use crate::monitor::rates::{MAX_WATCHED, RatePoint};
use egui::{Color32, RichText, Ui};
use egui_plot::{GridInput, GridMark, Legend, Line, LineStyle, Plot, PlotPoints};
use std::collections::VecDeque;

/// The y range never shrinks below this, so an idle plot shows a clean
/// 0–16 B/s scale instead of ten labels of "0 B/s".
const MIN_Y_RANGE: f64 = 16.0;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum PlotScope {
    #[default]
    Server,
    Selected,
}

#[derive(Debug, Default)]
pub struct PlotPane {
    pub scope: PlotScope,
}

impl PlotPane {
    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        let selected = ctx.selection.primary_first();
        ui.horizontal(|ui| {
            ui.label("Throughput of");
            ui.selectable_value(&mut self.scope, PlotScope::Server, "the server");
            ui.selectable_value(
                &mut self.scope,
                PlotScope::Selected,
                format!("selected connections ({})", selected.len()),
            );
            if self.scope == PlotScope::Selected && selected.len() > MAX_WATCHED {
                ui.label(RichText::new(format!("first {MAX_WATCHED} shown")).weak());
            }
        });
        let rates = &ctx.monitor.rates;
        let now = rates.points().back().map(|p| p.t).unwrap_or(0.0);
        let mut lines: Vec<Line<'static>> = Vec::new();
        match self.scope {
            PlotScope::Server => {
                lines.extend(rx_tx_lines(ui, "", rates.points(), now, None));
            }
            PlotScope::Selected => {
                if selected.is_empty() {
                    ui.label(RichText::new("Select connections in the table to plot them.").weak());
                }
                let many = selected.len() > 1;
                for (i, id) in selected.iter().take(MAX_WATCHED).enumerate() {
                    if let Some(series) = rates.conn(*id) {
                        let tint = many.then(|| PALETTE[i % PALETTE.len()]);
                        lines.extend(rx_tx_lines(
                            ui,
                            &format!("{id} "),
                            series.points(),
                            now,
                            tint,
                        ));
                    }
                }
            }
        }
        Plot::new("throughput")
            .legend(Legend::default())
            .allow_scroll(false)
            .include_y(0.0)
            .include_y(MIN_Y_RANGE)
            .x_axis_label("seconds before now")
            .x_grid_spacer(seconds_marks)
            .x_axis_formatter(|mark, _| seconds_before_now(mark.value))
            .y_grid_spacer(byte_rate_marks)
            .y_axis_formatter(|mark, _| {
                // Nothing is negative; the plot's margin may show below 0.
                if mark.value < 0.0 {
                    String::new()
                } else {
                    crate::format::rate(mark.value)
                }
            })
            .y_axis_min_width(64.0)
            .show(ui, |plot| {
                for line in lines {
                    plot.line(line);
                }
            });
    }
}

/// Distinct hues for several connections at once.
const PALETTE: [Color32; 4] = [
    Color32::from_rgb(110, 180, 255),
    Color32::from_rgb(255, 170, 60),
    Color32::from_rgb(200, 120, 255),
    Color32::from_rgb(240, 90, 110),
];

/// rx as a filled area and tx as a dashed line over it, so equal rates (an
/// echo) show both instead of one hiding the other.
fn rx_tx_lines(
    ui: &Ui,
    prefix: &str,
    points: &VecDeque<RatePoint>,
    now: f64,
    tint: Option<Color32>,
) -> [Line<'static>; 2] {
    let series = |f: fn(&RatePoint) -> f64| -> PlotPoints<'static> {
        points.iter().map(|p| [p.t - now, f(p)]).collect()
    };
    let rx_color = tint.unwrap_or_else(|| super::rx_color(ui));
    let tx_color = tint.unwrap_or_else(|| super::tx_color(ui));
    [
        Line::new(format!("{prefix}rx (received)"), series(|p| p.rx_per_sec))
            .color(rx_color)
            .fill(0.0)
            .fill_alpha(0.25),
        Line::new(format!("{prefix}tx (sent)"), series(|p| p.tx_per_sec))
            .color(tx_color)
            .width(2.0)
            .style(LineStyle::dashed_loose()),
    ]
}

/// `-30` → `30 s`, `0` → `now`; `-90` → `1 min 30 s`.
fn seconds_before_now(x: f64) -> String {
    let ago = (-x).round();
    if ago < 0.0 {
        return String::new();
    }
    if ago == 0.0 {
        return "now".into();
    }
    let ago = ago as u64;
    match (ago / 60, ago % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// Grid marks at 1, 2 and 5 times powers of ten of a binary unit (B, KiB,
/// MiB…), so labels read "512 KiB/s" rather than "976.6 KiB/s"; never below
/// zero and never closer than one byte/s, so labels never repeat.
fn byte_rate_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let span = (hi - lo).max(1.0);
    // Aim for about five labelled marks.
    let raw = span / 5.0;
    let unit = 1024f64.powf(raw.log(1024.0).floor().max(0.0));
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1024.0]
        .into_iter()
        .map(|m| m * unit)
        .find(|s| *s >= raw)
        .unwrap_or(1024.0 * unit)
        .max(1.0);
    marks_every(lo.max(0.0), hi, step)
}

/// Time marks every 1, 2, 5, 10, 15 or 30 s or 1, 2 or 5 min, about five
/// to a plot, so each label has room (egui_plot drops labels closer than
/// 60 px, which left only "now").
fn seconds_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let raw = (hi - lo).max(1.0) / 5.0;
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|s| *s >= raw)
        .unwrap_or(600.0);
    marks_every(lo, hi, step)
}

/// Marks at every multiple of `step` from `lo` to `hi` (at most 100).
fn marks_every(lo: f64, hi: f64, step: f64) -> Vec<GridMark> {
    let mut marks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi && marks.len() < 100 {
        marks.push(GridMark {
            value: v,
            step_size: step,
        });
        v += step;
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_axis_counts_back_from_now() {
        assert_eq!(seconds_before_now(0.0), "now");
        assert_eq!(seconds_before_now(-30.0), "30 s");
        assert_eq!(seconds_before_now(-120.0), "2 min");
        assert_eq!(seconds_before_now(-90.0), "1 min 30 s");
        assert_eq!(seconds_before_now(5.0), "");
    }

    #[test]
    fn time_marks_are_round_and_few() {
        let marks = seconds_marks(GridInput {
            bounds: (-62.0, 1.0),
            base_step_size: 0.0,
        });
        let values: Vec<f64> = marks.iter().map(|m| m.value).collect();
        assert_eq!(values, [-60.0, -45.0, -30.0, -15.0, 0.0]);
    }

    #[test]
    fn rate_marks_are_distinct_and_not_negative() {
        for (lo, hi) in [(-0.1, 0.1), (-50.0, 1024.0), (0.0, 3.5e6), (10.0, 11.0)] {
            let marks = byte_rate_marks(GridInput {
                bounds: (lo, hi),
                base_step_size: 0.0,
            });
            let labels: Vec<String> = marks.iter().map(|m| crate::format::rate(m.value)).collect();
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(labels, unique, "({lo}, {hi}) labels repeat: {labels:?}");
            assert!(marks.iter().all(|m| m.value >= 0.0));
            assert!(marks.len() <= 12, "({lo}, {hi}): {} marks", marks.len());
            assert!(
                labels.iter().all(|l| !l.contains('.') || l.contains(".0 ")),
                "({lo}, {hi}) round labels: {labels:?}"
            );
        }
    }
}
