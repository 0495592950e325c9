//! The selected connection up close: counters, pending queue, transcript
//! (with search and copy), and the kick buttons.

use super::{PaneCtx, engine_time, labelled};
use crate::format;
use crate::monitor::connections::state_label_at;
use crate::monitor::messages::{MessageState, frame_transcript};
use crate::monitor::transcript::{self, CopyFormat, Directions, Match};
use crate::payload;
use crate::protocol::{
    Command, ConnCounters, ConnDetail, ConnId, ConnState, Direction, EventKind, ReplayDetail,
    ScriptDetail,
};
use crate::scenario::Framing;
use crate::scenario::framing::DEFAULT_MAX_MESSAGE;
use egui::text::{CCursor, LayoutJob};
use egui::{Color32, FontId, RichText, Sense, TextFormat, Ui};
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
    /// Cut into messages by the running scenario's framing (lines when
    /// none runs), each with its time; an incomplete one is pending.
    Messages,
}

/// The queue list's height unless the user dragged its handle.
const DEFAULT_QUEUE_HEIGHT: f32 = 90.0;
const MIN_QUEUE_HEIGHT: f32 = 24.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InspectorPane {
    pub view: TranscriptView,
    /// Height of the queue list; its handle below it drags it.
    pub queue_height: f32,
    #[serde(skip)]
    pub search: TranscriptSearch,
    #[serde(skip)]
    last_request: Option<(ConnId, Instant, u64)>,
    #[serde(skip)]
    rendered: RenderedTranscript,
}

impl Default for InspectorPane {
    fn default() -> Self {
        InspectorPane {
            view: TranscriptView::default(),
            queue_height: DEFAULT_QUEUE_HEIGHT,
            search: TranscriptSearch::default(),
            last_request: None,
            rendered: RenderedTranscript::default(),
        }
    }
}

/// Find in the transcript: what to look for, and where it was found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TranscriptSearch {
    pub query: String,
    /// The query is hex bytes rather than text with escapes.
    pub hex: bool,
    /// Index of the highlighted match.
    pub current: usize,
    /// Scroll the highlighted match into view on the next frame.
    scroll: bool,
    found: Option<(SearchKey, SearchResult)>,
}

/// What a search result was computed from: (connection, snapshot count,
/// query, hex).
type SearchKey = (ConnId, u64, String, bool);

/// The matches, or why the query is not bytes.
type SearchResult = Result<Arc<Vec<Match>>, String>;

impl TranscriptSearch {
    /// The matches in `detail` (recomputed only when it or the query
    /// changed), or why the query is not bytes.
    fn matches(&mut self, id: ConnId, snapshot: u64, detail: &ConnDetail) -> SearchResult {
        let key = (id, snapshot, self.query.clone(), self.hex);
        if let Some((k, result)) = &self.found
            && *k == key
        {
            return result.clone();
        }
        let needle = if self.hex {
            payload::parse_hex(&self.query)
        } else {
            payload::parse_escaped(&self.query)
        };
        let result = needle
            .map(|needle| Arc::new(transcript::find(&detail.transcript, &needle)))
            .map_err(|e| e.to_string());
        if let Ok(m) = &result
            && self.current >= m.len()
        {
            self.current = 0;
        }
        self.found = Some((key, result.clone()));
        result
    }

    fn step(&mut self, n: usize, forward: bool) {
        if n == 0 {
            return;
        }
        self.current = if forward {
            (self.current + 1) % n
        } else {
            (self.current + n - 1) % n
        };
        self.scroll = true;
    }
}

/// What the transcript was laid out from: (connection, snapshot count,
/// view, dark mode, search query and hex flag, current match).
type TranscriptKey = (ConnId, u64, TranscriptView, bool, String, bool, usize);

/// The transcript, built once per snapshot rather than per frame (a hex
/// dump of 32 KiB is thousands of `format!`s), laid out once per wrap
/// width, and where in it the current match starts.
#[derive(Clone, Debug, Default)]
struct RenderedTranscript(Option<Rendered>);

#[derive(Clone, Debug)]
struct Rendered {
    key: TranscriptKey,
    job: LayoutJob,
    /// Byte offset in the job's text of the current match.
    current_at: Option<usize>,
    /// The job laid out at a wrap width.
    galley: Option<(f32, Arc<egui::Galley>)>,
}

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
        // A recording still has a closed connection's bytes.
        if !closed || ctx.playback {
            self.request_detail(ctx, id, counters.last_activity);
        }
        let now = ctx.monitor.engine_now();
        let queue_limit = ctx.monitor.stats.as_ref().map(|s| s.queue_limit);

        ui.horizontal_wrapped(|ui| {
            ui.heading(format!("{id}"));
            ui.label(counters.peer.to_string());
            ui.label(RichText::new(state_label_at(&counters, now)).strong());
            if let ConnState::Closing { .. } = counters.state {
                ui.ctx().request_repaint_after(Duration::from_millis(100));
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.add_enabled_ui(!closed && !ctx.playback, |ui| {
                if let Some(cmd) = super::conn_action_buttons(ui, &[id], counters.read_paused) {
                    ctx.commands.push(cmd);
                }
            });
            if ui.button("Show its events").clicked() {
                *ctx.focus_events_on = Some(vec![id]);
            }
        });
        egui::CollapsingHeader::new("Counters")
            .default_open(true)
            .show(ui, |ui| counters_grid(ui, &counters, now, queue_limit));
        let unavailable = ctx
            .monitor
            .stats
            .as_ref()
            .and_then(|s| s.tcp_info_unavailable.as_deref());
        super::kernel::section(
            ui,
            unavailable,
            counters.tcp.as_deref(),
            ctx.monitor.tcp_history(id),
            closed,
        );

        let Some(detail) = ctx.monitor.detail(id) else {
            let why = if closed {
                "It closed before it was inspected, so no transcript was kept for it."
            } else {
                "loading transcript…"
            };
            ui.label(RichText::new(why).weak());
            return;
        };
        if !detail.faults.is_none() {
            ui.horizontal_wrapped(|ui| {
                ui.label("Faults acting on it:");
                ui.label(
                    RichText::new(detail.faults.to_string())
                        .monospace()
                        .color(super::warn_color(ui)),
                );
            });
        }
        if let Some(script) = &detail.script {
            script_summary(ui, script, now);
        }
        if let Some(replay) = &detail.replay {
            replay_summary(ui, replay);
        }
        let scenario = ctx.monitor.stats.as_ref().and_then(|s| s.scenario.as_ref());
        let framing = scenario.map_or(Framing::Lines, |s| s.file.framing.clone());
        let snapshot = ctx.monitor.details_received();
        let queue_title = format!("Queue: {} pending message(s)", detail.queue.len());
        egui::CollapsingHeader::new(queue_title)
            .default_open(!detail.queue.is_empty())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("queue")
                    .max_height(self.queue_height)
                    .min_scrolled_height(self.queue_height)
                    .auto_shrink([false, true])
                    .show(ui, |ui| queue_list(ui, detail, now));
                self.queue_height = drag_handle(ui, self.queue_height);
            });

        ui.separator();
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Transcript").strong());
            ui.selectable_value(&mut self.view, TranscriptView::Text, "Text")
                .on_hover_text("Printable ASCII; every other byte as \\xNN");
            ui.selectable_value(&mut self.view, TranscriptView::Utf8, "UTF-8")
                .on_hover_text(
                    "Valid UTF-8 decoded; bidi controls, right-to-left letters and invisible \
                 characters shown as \\u{…}",
                );
            ui.selectable_value(&mut self.view, TranscriptView::Hex, "Hex");
            ui.selectable_value(&mut self.view, TranscriptView::Messages, "Messages")
                .on_hover_text(format!(
                    "Cut into messages by the framing {} ({:?}); a read is not a message",
                    if scenario.is_some() {
                        "of the running scenario"
                    } else {
                        "of lines, as no scenario runs"
                    },
                    framing
                ));
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
            copy_menu(ui, detail);
            if detail.transcript_dropped_rx + detail.transcript_dropped_tx > 0 {
                ui.label(
                    RichText::new(format!(
                        "older bytes not kept: {} received, {} sent",
                        format::bytes(detail.transcript_dropped_rx),
                        format::bytes(detail.transcript_dropped_tx)
                    ))
                    .weak(),
                )
                .on_hover_text(
                    "The inspector keeps the newest bytes of each direction \
                     (--transcript-bytes); the counters above count them all.",
                );
            }
        });
        let matches = self.search_bar(ui, id, snapshot, detail);

        let s = &self.search;
        let key = (
            id,
            snapshot,
            self.view,
            ui.visuals().dark_mode,
            s.query.clone(),
            s.hex,
            s.current,
        );
        if self.rendered.0.as_ref().is_none_or(|r| r.key != key) {
            let (job, current_at) = match self.view {
                TranscriptView::Messages => (messages_job(ui, detail, &framing), None),
                view => transcript_job(ui, detail, view, &matches, s.current),
            };
            self.rendered.0 = Some(Rendered {
                key,
                job,
                current_at,
                galley: None,
            });
        }
        let scroll_to_match = std::mem::take(&mut self.search.scroll);
        let stick = !scroll_to_match && self.search.query.is_empty();
        let view = self.view;
        let Some(rendered) = self.rendered.0.as_mut() else {
            return;
        };
        egui::ScrollArea::both()
            .id_salt("transcript")
            .stick_to_bottom(stick)
            .auto_shrink(false)
            .show(ui, |ui| {
                // A hex dump's columns only line up unwrapped; text wraps
                // to fit.
                let width = match view {
                    TranscriptView::Hex => f32::INFINITY,
                    _ => ui.available_width(),
                };
                let galley = match &rendered.galley {
                    Some((w, galley)) if *w == width => galley.clone(),
                    _ => {
                        let mut job = rendered.job.clone();
                        job.wrap.max_width = width;
                        let galley = ui.fonts_mut(|f| f.layout_job(job));
                        rendered.galley = Some((width, galley.clone()));
                        galley
                    }
                };
                let response = ui.add(egui::Label::new(galley.clone()).selectable(true));
                if scroll_to_match && let Some(at) = rendered.current_at {
                    let chars = galley.job.text[..at].chars().count();
                    let rect = galley
                        .pos_from_cursor(CCursor::new(chars))
                        .translate(response.rect.min.to_vec2());
                    ui.scroll_to_rect(rect, Some(egui::Align::Center));
                }
            });
    }

    /// The find row; returns the matches to highlight.
    fn search_bar(
        &mut self,
        ui: &mut Ui,
        id: ConnId,
        snapshot: u64,
        detail: &ConnDetail,
    ) -> Arc<Vec<Match>> {
        let mut matches = Arc::new(Vec::new());
        ui.horizontal_wrapped(|ui| {
            let search = &mut self.search;
            let hint = if search.hex {
                "hex bytes, e.g. 0d 0a"
            } else {
                "text; \\r \\n \\xNN escapes"
            };
            let field = labelled(ui, "Find", |ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut search.query)
                        .hint_text(hint)
                        .desired_width(170.0),
                )
            });
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui
                .selectable_value(&mut search.hex, false, "as text")
                .changed()
                | ui.selectable_value(&mut search.hex, true, "as hex")
                    .changed()
            {
                search.current = 0;
            }
            if field.changed() {
                search.current = 0;
                search.scroll = true;
            }
            if search.query.is_empty() {
                return;
            }
            match search.matches(id, snapshot, detail) {
                Err(why) => {
                    ui.label(RichText::new(why).color(super::error_color(ui)));
                }
                Ok(found) => {
                    let n = found.len();
                    let more = if n == transcript::MAX_MATCHES {
                        "+"
                    } else {
                        ""
                    };
                    if n == 0 {
                        ui.label(RichText::new("no match").color(super::warn_color(ui)));
                    } else {
                        ui.label(format!("{} of {n}{more}", search.current + 1));
                    }
                    // One widget each: an enabled-scope would stack them.
                    let prev = egui::Button::new("⏶");
                    if ui
                        .add_enabled(n > 0, prev)
                        .on_hover_text("Previous match")
                        .clicked()
                    {
                        search.step(n, false);
                    }
                    let next = egui::Button::new("⏷");
                    let next = ui
                        .add_enabled(n > 0, next)
                        .on_hover_text("Next match (Enter)");
                    if next.clicked() || entered {
                        search.step(n, true);
                    }
                    if entered {
                        field.request_focus();
                    }
                    matches = found;
                }
            }
        });
        matches
    }
}

/// Counters, spelled out, one topic a row (two columns, so a narrow
/// inspector wraps values instead of clipping them).
fn counters_grid(ui: &mut Ui, counters: &ConnCounters, now: u64, queue_limit: Option<u64>) {
    let closed = matches!(counters.state, ConnState::Closed(_));
    let end = if closed { counters.last_activity } else { now };
    egui::Grid::new("inspector-counters")
        .num_columns(2)
        .spacing([12.0, 2.0])
        .show(ui, |ui| {
            ui.label("bytes");
            ui.horizontal_wrapped(|ui| {
                ui.label(
                    RichText::new(format!("{} received", format::bytes(counters.rx_bytes)))
                        .color(super::rx_color(ui)),
                );
                ui.label("·");
                ui.label(
                    RichText::new(format!("{} sent", format::bytes(counters.tx_bytes)))
                        .color(super::tx_color(ui)),
                );
            });
            ui.end_row();
            ui.label("queued");
            let limit = match queue_limit {
                Some(l) => format!(" of {} limit", format::bytes(l)),
                None => String::new(),
            };
            ui.label(format!(
                "{} in {} msgs{limit} · peak {}",
                format::bytes(counters.queued_bytes),
                counters.queued_msgs,
                format::bytes(counters.queue_high_water)
            ))
            .on_hover_text(
                "Bytes waiting to be written to this client. At the limit, muxscope \
                 stops reading it (backpressure) until the queue drains. The peak is the \
                 most ever queued.",
            );
            ui.end_row();
            ui.label("age");
            let since = format::duration_micros(end.saturating_sub(counters.last_activity));
            let last = if closed {
                format!("last read/write {since} before it closed")
            } else if counters.read_paused {
                format!(
                    "last read/write {since} ago (reading paused: its bytes wait in the kernel)"
                )
            } else {
                format!("last read/write {since} ago")
            };
            ui.label(format!(
                "{} · {last}",
                format::duration_micros(end.saturating_sub(counters.opened_at))
            ));
            ui.end_row();
            let e = counters.events;
            ui.label("readiness");
            ui.label(format!(
                "{} readable · {} writable events",
                e.readable, e.writable
            ))
            .on_hover_text("How often mio reported this socket readable or writable");
            ui.end_row();
            if let Some(f) = counters.faults.as_deref().filter(|f| f.active) {
                ui.label("faults");
                let next = match f.next_release {
                    Some(t) => format!(
                        " · next release in {}",
                        format::duration_micros(t.saturating_sub(now))
                    ),
                    None => String::new(),
                };
                ui.label(
                    RichText::new(format!("⚡ holding {}{next}", format::bytes(f.held)))
                        .color(super::warn_color(ui)),
                );
                ui.end_row();
            }
            ui.label("closes");
            ui.label(format!(
                "{} read closed · {} write closed · {} errors",
                e.read_closed, e.write_closed, e.error
            ))
            .on_hover_text(
                "read closed: the client sent FIN (or reset); write closed: it can no \
                 longer receive; errors: the socket reported an error",
            );
            ui.end_row();
        });
}

fn queue_list(ui: &mut Ui, detail: &ConnDetail, now: u64) {
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
    if detail.queue.is_empty() {
        ui.label(RichText::new("(empty)").weak());
    }
}

/// A horizontal grip that resizes what is above it; returns the new height.
fn drag_handle(ui: &mut Ui, height: f32) -> f32 {
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(ui.available_width(), 8.0), Sense::drag());
    let response = response.on_hover_cursor(egui::CursorIcon::ResizeVertical);
    let stroke = if response.hovered() || response.dragged() {
        ui.visuals().widgets.hovered.fg_stroke
    } else {
        ui.visuals().widgets.noninteractive.bg_stroke
    };
    ui.painter().hline(rect.x_range(), rect.center().y, stroke);
    (height + response.drag_delta().y).clamp(MIN_QUEUE_HEIGHT, 2000.0)
}

/// Copy the whole transcript, or one direction, in a chosen format.
fn copy_menu(ui: &mut Ui, detail: &ConnDetail) {
    ui.menu_button("Copy", |ui| {
        let scopes = [
            ("Both directions", Directions::Both),
            ("Received only", Directions::Only(Direction::Rx)),
            ("Sent only", Directions::Only(Direction::Tx)),
        ];
        for (title, which) in scopes {
            ui.menu_button(title, |ui| {
                for format in CopyFormat::ALL {
                    if ui.button(format.label()).clicked() {
                        ui.ctx()
                            .copy_text(transcript::export(&detail.transcript, format, which));
                        ui.close();
                    }
                }
            });
        }
        ui.label(RichText::new("To copy part of it, select the text and press Ctrl+C.").weak());
    });
}

/// The transcript as one layout job, matches highlighted; also where the
/// current match starts in the job's text (a byte offset).
fn transcript_job(
    ui: &Ui,
    detail: &ConnDetail,
    view: TranscriptView,
    matches: &[Match],
    current: usize,
) -> (LayoutJob, Option<usize>) {
    let mono = FontId::monospace(12.0);
    let mut job = LayoutJob::default();
    let weak = ui.visuals().weak_text_color();
    // Per chunk: its bytes' marks (0 none, 1 a match, 2 the current one).
    let mut marks: Vec<Option<Vec<u8>>> = vec![None; detail.transcript.len()];
    for (i, m) in matches.iter().enumerate() {
        for (chunk, range) in &m.pieces {
            let Some(slot) = marks.get_mut(*chunk) else {
                continue;
            };
            let len = detail.transcript[*chunk].bytes.len();
            let marks = slot.get_or_insert_with(|| vec![0; len]);
            for b in &mut marks[range.clone()] {
                *b = if i == current { 2 } else { 1 };
            }
        }
    }
    let backgrounds = [
        Color32::TRANSPARENT,
        Color32::from_rgba_unmultiplied(255, 210, 0, 70),
        Color32::from_rgba_unmultiplied(255, 140, 0, 190),
    ];
    let mut current_at = None;
    for (chunk, marks) in detail.transcript.iter().zip(&marks) {
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
        let mut append = |job: &mut LayoutJob, text: &str, mark: u8| {
            if mark == 2 && current_at.is_none() {
                current_at = Some(job.text.len());
            }
            let mut format = TextFormat::simple(mono.clone(), color);
            format.background = backgrounds[mark as usize];
            job.append(text, 0.0, format);
        };
        let mark_of = |i: usize| marks.as_ref().map_or(0, |m| m[i]);
        match view {
            TranscriptView::Text | TranscriptView::Utf8 | TranscriptView::Messages => {
                let render = if view == TranscriptView::Text {
                    payload::to_escaped_text
                } else {
                    payload::to_utf8_text
                };
                // Runs of bytes with the same mark, each rendered apart.
                let mut from = 0;
                while from < chunk.bytes.len() {
                    let mark = mark_of(from);
                    let to = (from..chunk.bytes.len())
                        .find(|&i| mark_of(i) != mark)
                        .unwrap_or(chunk.bytes.len());
                    append(&mut job, &render(&chunk.bytes[from..to]), mark);
                    from = to;
                }
                if !job.text.ends_with('\n') {
                    append(&mut job, "\n", 0);
                }
            }
            TranscriptView::Hex => payload::hex_dump_pieces(&chunk.bytes, |piece, at| {
                append(&mut job, piece, at.map_or(0, mark_of));
            }),
        }
    }
    if detail.transcript.is_empty() {
        job.append("(no bytes yet)", 0.0, TextFormat::simple(mono, weak));
    }
    (job, current_at)
}

/// What the scenario did on this connection: each rule's count here, the
/// incomplete message, replies waiting, a framing error.
fn script_summary(ui: &mut Ui, script: &ScriptDetail, now: u64) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Scenario here:");
        if script.own {
            ui.label(RichText::new(format!("{} (its own)", script.name)).strong());
        }
        let fired: Vec<String> = script
            .fired
            .iter()
            .enumerate()
            .filter(|(_, t)| t.fired > 0)
            .map(|(i, t)| format!("rule {} {}", i + 1, super::scenario::tally_text(*t, now)))
            .collect();
        if fired.is_empty() {
            ui.label(RichText::new("no rule fired yet").weak());
        } else {
            ui.label(RichText::new(fired.join(" · ")).monospace());
        }
        if script.deferred > 0 {
            ui.label(format!(
                "{} repl(ies) waiting for their delay",
                script.deferred
            ));
        }
        if script.pending_len > 0 {
            ui.label(
                RichText::new(format!(
                    "incomplete message {}: {}",
                    format::bytes(script.pending_len),
                    payload::preview(&script.pending, 40)
                ))
                .weak(),
            );
        }
        if let Some(why) = &script.framing_error {
            ui.label(RichText::new(format!("framing failed: {why}")).color(super::error_color(ui)));
        }
    });
}

/// Where the replay of a recording is on this connection, and where the
/// client first differed from the recorded one.
fn replay_summary(ui: &mut Ui, replay: &ReplayDetail) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Replaying:");
        ui.label(
            RichText::new(format!(
                "{} conn {} ({} timing)",
                replay.file,
                replay.recorded_conn,
                replay.timing.name()
            ))
            .strong(),
        );
        ui.label(format!(
            "server writes {}/{}",
            replay.sent_writes, replay.writes
        ));
        ui.label(format!(
            "client matched {} of {}",
            format::bytes(replay.matched),
            format::bytes(replay.expected)
        ));
        if replay.beyond > 0 {
            ui.label(
                RichText::new(format!(
                    "{} beyond the recording",
                    format::bytes(replay.beyond)
                ))
                .color(super::warn_color(ui)),
            );
        }
        match (&replay.ends_with, replay.ended) {
            (Some(reason), true) => {
                ui.label(format!("ended as recorded ({reason})"));
            }
            (Some(reason), false) => {
                ui.label(RichText::new(format!("then ends: {reason}")).weak());
            }
            (None, _) => {
                ui.label(
                    RichText::new("the recorded client closed; open until this one does").weak(),
                );
            }
        }
    });
    if let Some(d) = &replay.divergence {
        let text = EventKind::ReplayDiverged {
            offset: d.offset,
            expected: d.expected.clone(),
            got: d.got.clone(),
        }
        .describe();
        ui.horizontal_wrapped(|ui| {
            ui.label(
                RichText::new(text)
                    .monospace()
                    .color(super::error_color(ui)),
            );
        });
        ui.horizontal_wrapped(|ui| {
            ui.label(
                RichText::new(format!(
                    "expected {}  got {}",
                    payload::preview(&d.expected, 40),
                    payload::preview(&d.got, 40)
                ))
                .monospace()
                .weak(),
            );
        });
    }
}

/// The transcript as framed messages, one block each: time, direction,
/// size and state, then the bytes as the text view shows them.
fn messages_job(ui: &Ui, detail: &ConnDetail, framing: &Framing) -> LayoutJob {
    let mono = FontId::monospace(12.0);
    let weak = ui.visuals().weak_text_color();
    let mut job = LayoutJob::default();
    let messages = frame_transcript(&detail.transcript, framing, DEFAULT_MAX_MESSAGE);
    if detail.transcript_dropped_rx + detail.transcript_dropped_tx > 0 {
        job.append(
            "(older bytes were not kept: the first message may be cut)\n",
            0.0,
            TextFormat::simple(mono.clone(), weak),
        );
    }
    for m in &messages {
        let (arrow, color) = match m.dir {
            Direction::Rx => ("←", super::rx_color(ui)),
            Direction::Tx => ("→", super::tx_color(ui)),
        };
        let state = match &m.state {
            MessageState::Complete => String::new(),
            MessageState::Pending => " · pending: incomplete".to_owned(),
            MessageState::Unframed(why) if why.is_empty() => " · unframed".to_owned(),
            MessageState::Unframed(why) => format!(" · framing failed: {why}"),
        };
        job.append(
            &format!("{} {arrow} {} B{state}\n", engine_time(m.at), m.raw.len()),
            0.0,
            TextFormat::simple(mono.clone(), weak),
        );
        let mut text = payload::to_escaped_text(&m.raw);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        job.append(&text, 0.0, TextFormat::simple(mono.clone(), color));
    }
    if messages.is_empty() {
        job.append("(no bytes yet)", 0.0, TextFormat::simple(mono, weak));
    }
    job
}
