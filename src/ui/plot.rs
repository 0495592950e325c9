//! Throughput over the last minutes, from the engine's cumulative totals.

use super::PaneCtx;
use egui::Ui;
use egui_plot::{Legend, Line, Plot, PlotPoints};

#[derive(Debug, Default)]
pub struct PlotPane;

impl PlotPane {
    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        let points = ctx.monitor.rates.points();
        let now = points.back().map(|p| p.t).unwrap_or(0.0);
        let series = |f: fn(&crate::monitor::rates::RatePoint) -> f64| -> PlotPoints<'static> {
            points.iter().map(|p| [p.t - now, f(p)]).collect()
        };
        let rx = Line::new("rx B/s", series(|p| p.rx_per_sec)).color(super::rx_color(ui));
        let tx = Line::new("tx B/s", series(|p| p.tx_per_sec)).color(super::tx_color(ui));
        Plot::new("throughput")
            .legend(Legend::default())
            .allow_scroll(false)
            .include_y(0.0)
            .x_axis_label("seconds ago")
            .y_axis_formatter(|mark, _range| crate::format::rate(mark.value))
            .show(ui, |plot| {
                plot.line(rx);
                plot.line(tx);
            });
    }
}
