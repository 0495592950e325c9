//! The selected connection up close: counters, pending queue, transcript,
//! and the kick buttons.

use super::{PaneCtx, engine_time};
use crate::format;
use crate::monitor::connections::state_label_at;
use crate::payload;
use crate::protocol::{Command, ConnDetail, ConnId, ConnState, Direction};
use egui::text::LayoutJob;
use egui::{FontId, RichText, TextFormat, Ui};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use web_time::{Duration, Instant};

/// How often the open inspector asks the engine for a fresh snapshot while
/// the connection is active.
const REFRESH: Duration = Duration::from_millis(250);

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TranscriptView {
    /// Printable ASCII, everything else escaped: safe for any bytes.
    #[default]
    Text,
    /// Valid UTF-8 decoded, with whatever could mislead made visible.
    Utf8,
    Hex,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InspectorPane {
    pub view: TranscriptView,
    #[serde(skip)]
    last_request: Option<(ConnId, Instant, u64)>,
    #[serde(skip)]
    rendered: RenderedTranscript,
}

/// What the transcript was laid out from: (connection, snapshot count,
/// view, dark mode).
type TranscriptKey = (ConnId, u64, TranscriptView, bool);

/// The transcript's text, built once per snapshot rather than per frame
/// (a hex dump of 32 KiB is thousands of `format!`s).
#[derive(Clone, Debug, Default)]
struct RenderedTranscript(Option<(TranscriptKey, Arc<LayoutJob>)>);

/// A cache never makes two panes differ.
impl PartialEq for RenderedTranscript {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl InspectorPane {
    /// Ask for a snapshot of `id` when it changed since the last one.
    fn request_detail(&mut self, ctx: &mut PaneCtx, id: ConnId, last_activity: u64) {
        let due = match self.last_request {
            Some((conn, at, activity)) => {
                conn != id || (activity != last_activity && at.elapsed() >= REFRESH)
            }
            None => true,
        };
        if due {
            ctx.commands.push(Command::Inspect { conn: id });
            self.last_request = Some((id, Instant::now(), last_activity));
        }
    }

    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        let Some(id) = ctx.selection.primary else {
            ui.label(RichText::new("Select a connection to inspect it.").weak());
            return;
        };
        let Some(counters) = ctx.monitor.connections.get(id).cloned() else {
            ui.label(RichText::new(format!("{id} is gone from the table.")).weak());
            return;
        };
        let closed = matches!(counters.state, ConnState::Closed(_));
        if !closed {
            self.request_detail(ctx, id, counters.last_activity);
        }
        let now = ctx.monitor.engine_now();

        ui.horizontal_wrapped(|ui| {
            ui.heading(format!("{id}"));
            ui.label(counters.peer.to_string());
            ui.label(RichText::new(state_label_at(&counters, now)).strong());
            if let ConnState::Closing { .. } = counters.state {
                ui.ctx().request_repaint_after(Duration::from_millis(100));
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.add_enabled_ui(!closed, |ui| {
                if let Some(cmd) = super::conn_action_buttons(ui, &[id], counters.read_paused) {
                    ctx.commands.push(cmd);
                }
            });
            if ui.button("Show its events").clicked() {
                *ctx.focus_events_on = Some(vec![id]);
            }
        });

        egui::Grid::new("inspector-counters")
            .num_columns(4)
            .spacing([16.0, 2.0])
            .show(ui, |ui| {
                let end = if closed { counters.last_activity } else { now };
                ui.label("received");
                ui.label(
                    RichText::new(format::bytes(counters.rx_bytes)).color(super::rx_color(ui)),
                );
                ui.label("sent");
                ui.label(
                    RichText::new(format::bytes(counters.tx_bytes)).color(super::tx_color(ui)),
                );
                ui.end_row();
                ui.label("queued");
                ui.label(format!(
                    "{} in {} msgs",
                    format::bytes(counters.queued_bytes),
                    counters.queued_msgs
                ));
                ui.label("queue peak");
                ui.label(format::bytes(counters.queue_high_water));
                ui.end_row();
                ui.label("age");
                ui.label(format::duration_micros(
                    end.saturating_sub(counters.opened_at),
                ));
                ui.label("last activity");
                ui.label(format!(
                    "{} ago",
                    format::duration_micros(now.saturating_sub(counters.last_activity))
                ));
                ui.end_row();
                let e = counters.events;
                ui.label("readiness");
                ui.label(format!("R {} · W {}", e.readable, e.writable));
                ui.label("closed/err");
                ui.label(format!(
                    "rc {} · wc {} · err {}",
                    e.read_closed, e.write_closed, e.error
                ));
                ui.end_row();
            });

        let Some(detail) = ctx.monitor.detail(id) else {
            ui.label(RichText::new("loading transcript…").weak());
            return;
        };
        ui.separator();
        let queue_title = format!("Queue: {} pending message(s)", detail.queue.len());
        egui::CollapsingHeader::new(queue_title)
            .default_open(!detail.queue.is_empty())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("queue")
                    .max_height(100.0)
                    .show(ui, |ui| {
                        for (i, m) in detail.queue.iter().enumerate().take(500) {
                            ui.label(format!(
                                "{:>3}. {:>10}  {:?}  waiting {}",
                                i + 1,
                                format::bytes(m.len as u64),
                                m.origin,
                                format::duration_micros(now.saturating_sub(m.queued_at))
                            ));
                        }
                        if detail.queue.len() > 500 {
                            ui.label(format!("… and {} more", detail.queue.len() - 500));
                        }
                    });
            });

        ui.horizontal(|ui| {
            ui.label("Transcript");
            ui.selectable_value(&mut self.view, TranscriptView::Text, "Text")
                .on_hover_text("Printable ASCII; every other byte as \\xNN");
            ui.selectable_value(&mut self.view, TranscriptView::Utf8, "UTF-8")
                .on_hover_text(
                    "Valid UTF-8 decoded; bidi controls, right-to-left letters and invisible \
                 characters shown as \\u{…}",
                );
            ui.selectable_value(&mut self.view, TranscriptView::Hex, "Hex");
            ui.label(
                RichText::new("← received")
                    .monospace()
                    .color(super::rx_color(ui)),
            );
            ui.label(
                RichText::new("→ sent")
                    .monospace()
                    .color(super::tx_color(ui)),
            );
            if detail.transcript_dropped_rx + detail.transcript_dropped_tx > 0 {
                ui.label(
                    RichText::new(format!(
                        "(older bytes not kept: {} received, {} sent)",
                        format::bytes(detail.transcript_dropped_rx),
                        format::bytes(detail.transcript_dropped_tx)
                    ))
                    .weak(),
                );
            }
        });
        let key = (
            id,
            ctx.monitor.details_received(),
            self.view,
            ui.visuals().dark_mode,
        );
        let job = match &self.rendered.0 {
            Some((k, job)) if *k == key => job.clone(),
            _ => {
                let job = Arc::new(transcript_job(ui, detail, self.view));
                self.rendered.0 = Some((key, job.clone()));
                job
            }
        };
        // A hex dump's columns only line up unwrapped; text wraps to fit.
        let wrap = match self.view {
            TranscriptView::Text | TranscriptView::Utf8 => egui::TextWrapMode::Wrap,
            TranscriptView::Hex => egui::TextWrapMode::Extend,
        };
        egui::ScrollArea::both()
            .id_salt("transcript")
            .stick_to_bottom(true)
            .auto_shrink(false)
            .show(ui, |ui| {
                ui.add(egui::Label::new(job).selectable(true).wrap_mode(wrap));
            });
    }
}

fn transcript_job(ui: &Ui, detail: &ConnDetail, view: TranscriptView) -> LayoutJob {
    let mono = FontId::monospace(12.0);
    let mut job = LayoutJob::default();
    let weak = ui.visuals().weak_text_color();
    for chunk in &detail.transcript {
        let (arrow, color) = match chunk.dir {
            Direction::Rx => ("←", super::rx_color(ui)),
            Direction::Tx => ("→", super::tx_color(ui)),
        };
        job.append(
            &format!(
                "{} {arrow} {} B\n",
                engine_time(chunk.at),
                chunk.bytes.len()
            ),
            0.0,
            TextFormat::simple(mono.clone(), weak),
        );
        let body = match view {
            TranscriptView::Text | TranscriptView::Utf8 => {
                let mut t = if view == TranscriptView::Text {
                    payload::to_escaped_text(&chunk.bytes)
                } else {
                    payload::to_utf8_text(&chunk.bytes)
                };
                if !t.ends_with('\n') {
                    t.push('\n');
                }
                t
            }
            TranscriptView::Hex => payload::hex_dump(&chunk.bytes),
        };
        job.append(&body, 0.0, TextFormat::simple(mono.clone(), color));
    }
    if detail.transcript.is_empty() {
        job.append("(no bytes yet)", 0.0, TextFormat::simple(mono, weak));
    }
    job
}
