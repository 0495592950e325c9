//! The timeline bar of a recording played back: play/pause, speed, a
//! scrubber, jumps to the selected connection's previous or next event, and
//! what the file says about itself (indexing, damage, losses). It edits the
//! backend's [`Timeline`]; the backend acts on it.

use crate::backend::replay::{Jump, MAX_SPEED, MIN_SPEED, Timeline};
use crate::protocol::{ConnId, Micros};
use egui::{RichText, Ui};

/// `h:mm:ss.mmm` from the recording's start.
pub fn offset_label(from_start: Micros) -> String {
    let ms = from_start / 1000;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h}:{m:02}:{s:02}.{ms:03}")
}

pub fn ui(ui: &mut Ui, t: &mut Timeline, selected: Option<ConnId>) {
    controls(ui, t, selected);
    // The backend acts on the timeline when the next frame drains it: a
    // click that starts playing (or a seek) must bring that frame even if
    // nothing else moves, and playing keeps frames coming.
    if t.playing || t.seek.is_some() || t.jump.is_some() {
        ui.ctx().request_repaint();
    }
}

fn controls(ui: &mut Ui, t: &mut Timeline, selected: Option<ConnId>) {
    ui.horizontal(|ui| {
        let at_end = t.position >= t.end;
        let play = if t.playing {
            "⏸ Pause playback"
        } else {
            "▶ Play"
        };
        if ui
            .button(play)
            .on_hover_text("Play the recording from here at the chosen speed")
            .clicked()
        {
            if !t.playing && at_end {
                t.seek = Some(t.start);
            }
            t.playing = !t.playing;
        }
        let jump_hint = |r: egui::Response, way: &str| match selected {
            Some(id) => r.on_hover_text(format!("Go to the {way} event or bytes of {id}")),
            None => r.on_disabled_hover_text("Select a connection to jump between its events"),
        };
        let prev = ui.add_enabled(selected.is_some(), egui::Button::new("⏴ Prev event"));
        if jump_hint(prev, "previous").clicked()
            && let Some(id) = selected
        {
            t.jump = Some((id, Jump::Previous));
        }
        let next = ui.add_enabled(selected.is_some(), egui::Button::new("Next event ⏵"));
        if jump_hint(next, "next").clicked()
            && let Some(id) = selected
        {
            t.jump = Some((id, Jump::Next));
        }
        ui.label("Speed");
        let speed = ui
            .add(
                egui::Slider::new(&mut t.speed, MIN_SPEED..=MAX_SPEED)
                    .logarithmic(true)
                    .max_decimals(1)
                    .suffix("×"),
            )
            .on_hover_text("Playback speed, 0.1× to 100×");
        if speed.changed() {
            t.speed = t.speed.clamp(MIN_SPEED, MAX_SPEED);
        }
        ui.separator();
        let span = t.end.saturating_sub(t.start);
        ui.label(
            RichText::new(format!(
                "{} / {}",
                offset_label(t.position.saturating_sub(t.start)),
                offset_label(span)
            ))
            .monospace(),
        );
        if t.jump_missed {
            ui.label(RichText::new("no further event of that connection").weak());
        }
    });
    ui.horizontal(|ui| {
        let span = t.end.saturating_sub(t.start).max(1);
        let mut secs = t.position.saturating_sub(t.start) as f64 / 1e6;
        ui.spacing_mut().slider_width = (ui.available_width() - 90.0).max(100.0);
        let scrub = ui
            .add(
                egui::Slider::new(&mut secs, 0.0..=span as f64 / 1e6)
                    .show_value(false)
                    .trailing_fill(true),
            )
            .on_hover_text("Drag to any point of the recording");
        if scrub.changed() {
            t.seek = Some(t.start + (secs * 1e6) as Micros);
        }
        let label = ui.label(RichText::new("Position").weak());
        scrub.labelled_by(label.id);
    });
    parts(ui, t);
    let mut notes: Vec<(String, bool)> = Vec::new();
    if t.indexed < 1.0 {
        notes.push((format!("indexing {:.0}%…", t.indexed * 100.0), false));
    }
    if let Some(d) = &t.damage {
        notes.push((
            format!(
                "The file is {d}; it plays up to {} (everything before the damage).",
                offset_label(t.end.saturating_sub(t.start))
            ),
            true,
        ));
    }
    let lost: u64 = t.losses.iter().map(|l| l.events).sum();
    let lost_bytes: u64 = t.losses.iter().map(|l| l.bytes()).sum();
    if !t.losses.is_empty() {
        notes.push((
            format!(
                "Up to here the recording lost {lost} events and {} (its writer fell behind).",
                crate::format::bytes(lost_bytes)
            ),
            true,
        ));
    }
    if let Some(e) = &t.error {
        notes.push((format!("Playback stopped: {e}"), true));
    }
    match &t.trailer {
        Some(trailer) if trailer.next_part.is_some() && t.next_part.is_none() => {
            // Opened from memory (the browser), or a name not taken.
            let name = trailer.next_part.as_deref().unwrap_or_default();
            notes.push((
                format!("The recording continues in {name}: open that file next."),
                false,
            ));
        }
        Some(trailer) if trailer.next_part.is_none() => notes.push((
            format!("The recording ended here: {}.", trailer.reason),
            false,
        )),
        _ => {}
    }
    for (text, warn) in notes {
        let text = RichText::new(text);
        ui.label(if warn {
            text.color(super::warn_color(ui))
        } else {
            text.weak()
        });
    }
}

/// A rotated recording's neighbouring parts (files next to this one).
fn parts(ui: &mut Ui, t: &mut Timeline) {
    if t.previous_part.is_none() && t.next_part.is_none() {
        return;
    }
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("Part {} of a rotated recording", t.part)).weak());
        for (path, label) in [
            (&t.previous_part, "⏴ Previous part"),
            (&t.next_part, "Next part ⏵"),
        ] {
            let Some(path) = path else { continue };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if ui
                .button(label)
                .on_hover_text(format!("Open {name}, the part next to this file"))
                .clicked()
            {
                t.open_part = Some((path.clone(), t.playing));
            }
        }
    });
}
