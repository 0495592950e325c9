//! Typing bytes to send: text, escapes or hex, with a line ending, to the
//! selected connections or to all. Invalid input is flagged inline and
//! nothing is sent.

use super::{PaneCtx, error_color, labelled};
use crate::payload::{self, InputFormat, LineEnding};
use crate::protocol::{Command, Targets};
use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

const MAX_HISTORY: usize = 50;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InjectTarget {
    #[default]
    Selected,
    All,
}

/// One message as the user wrote it, to send again later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMessage {
    pub text: String,
    pub format: InputFormat,
    pub ending: LineEnding,
    /// In the history: to whom and when it was last sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Sent>,
}

/// Where and when a message from the history went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// `all clients`, or the connection ids, e.g. `#3, #5`.
    pub to: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl SavedMessage {
    pub fn bytes(&self) -> Result<Vec<u8>, payload::PayloadError> {
        payload::parse(&self.text, self.format, self.ending)
    }

    /// The same message, wherever and whenever it went.
    fn same_message(&self, other: &SavedMessage) -> bool {
        (&self.text, self.format, self.ending) == (&other.text, other.format, other.ending)
    }
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms_now() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// At most this many ids are named in a history entry.
const NAMED_TARGETS: usize = 4;

fn describe_targets(targets: &Targets) -> String {
    match targets {
        Targets::All => "all clients".to_owned(),
        Targets::Conns(ids) => {
            let mut names: Vec<String> = ids
                .iter()
                .take(NAMED_TARGETS)
                .map(|id| id.to_string())
                .collect();
            if ids.len() > NAMED_TARGETS {
                names.push(format!("+{} more", ids.len() - NAMED_TARGETS));
            }
            names.join(", ")
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InjectPane {
    pub text: String,
    pub format: InputFormat,
    pub ending: LineEnding,
    pub target: InjectTarget,
    /// Newest last.
    pub history: Vec<SavedMessage>,
    pub favourites: Vec<SavedMessage>,
}

impl InjectPane {
    fn current(&self) -> SavedMessage {
        SavedMessage {
            text: self.text.clone(),
            format: self.format,
            ending: self.ending,
            sent: None,
        }
    }

    fn load(&mut self, m: &SavedMessage) {
        self.text = m.text.clone();
        self.format = m.format;
        self.ending = m.ending;
    }

    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) {
        ui.horizontal_wrapped(|ui| {
            ui.label("As");
            for f in InputFormat::ALL {
                ui.selectable_value(&mut self.format, f, f.label());
            }
            ui.separator();
            ui.label("Line ending");
            for e in LineEnding::ALL {
                ui.selectable_value(&mut self.ending, e, e.label());
            }
        });
        let hint = match self.format {
            InputFormat::Text => "bytes to send, as typed",
            InputFormat::Escaped => r"e.g. GET / HTTP/1.0\r\n\r\n or \x00\x01",
            InputFormat::Hex => "e.g. 48 65 6c 6c 6f",
        };
        let edit = labelled(ui, "Message", |ui| {
            ui.add(
                egui::TextEdit::multiline(&mut self.text)
                    .hint_text(hint)
                    .desired_rows(3)
                    .desired_width(f32::INFINITY)
                    .code_editor(),
            )
        });
        let parsed = self.current().bytes();
        if let Err(e) = &parsed {
            ui.label(RichText::new(format!("⚠ {e}")).color(error_color(ui)));
        }
        let selected: Vec<_> = ctx
            .selection
            .conns
            .iter()
            .copied()
            .filter(|id| ctx.monitor.connections.get(*id).is_some())
            .collect();
        let mut send = false;
        ui.horizontal_wrapped(|ui| {
            ui.label("To");
            ui.selectable_value(
                &mut self.target,
                InjectTarget::Selected,
                format!("selected ({})", selected.len()),
            );
            ui.selectable_value(&mut self.target, InjectTarget::All, "all clients");
            let ready = parsed.as_ref().is_ok_and(|b| !b.is_empty())
                && (self.target == InjectTarget::All || !selected.is_empty());
            let ctrl_enter = edit.has_focus()
                && ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::Enter));
            if ui
                .add_enabled(ready, egui::Button::new("Send"))
                .on_hover_text("Ctrl+Enter in the message")
                .clicked()
                || (ready && ctrl_enter)
            {
                send = true;
            }
            if let Ok(b) = &parsed {
                ui.label(RichText::new(format!("{} bytes", b.len())).weak());
            }
            if ui
                .button("☆ Save")
                .on_hover_text("Keep this message in the favourites")
                .clicked()
                && !self
                    .favourites
                    .iter()
                    .any(|f| f.same_message(&self.current()))
            {
                self.favourites.push(self.current());
            }
        });
        if send && let Ok(bytes) = parsed {
            let targets = match self.target {
                InjectTarget::All => Targets::All,
                InjectTarget::Selected => Targets::Conns(selected),
            };
            let entry = SavedMessage {
                sent: Some(Sent {
                    to: describe_targets(&targets),
                    at_unix_ms: unix_ms_now(),
                }),
                ..self.current()
            };
            ctx.commands.push(Command::Inject { targets, bytes });
            self.history.retain(|h| !h.same_message(&entry));
            self.history.push(entry);
            if self.history.len() > MAX_HISTORY {
                self.history.remove(0);
            }
        }

        let mut load = None;
        let mut unfavourite = None;
        if !self.favourites.is_empty() {
            ui.separator();
            ui.label(RichText::new("Favourites").strong());
            for (i, m) in self.favourites.iter().enumerate() {
                ui.horizontal(|ui| {
                    if ui
                        .small_button("✖")
                        .on_hover_text("Remove from favourites")
                        .clicked()
                    {
                        unfavourite = Some(i);
                    }
                    if ui
                        .button(entry_label(m))
                        .on_hover_text("Load into the editor")
                        .clicked()
                    {
                        load = Some(m.clone());
                    }
                });
            }
        }
        ui.separator();
        ui.label(RichText::new("Sent").strong());
        egui::ScrollArea::vertical()
            .id_salt("inject-history")
            .show(ui, |ui| {
                if self.history.is_empty() {
                    ui.label(RichText::new("nothing sent yet").weak());
                }
                let now = unix_ms_now();
                for m in self.history.iter().rev() {
                    let mut label = entry_label(m);
                    if let Some(sent) = &m.sent {
                        let ago = now.saturating_sub(sent.at_unix_ms).saturating_mul(1000);
                        label.push_str(&format!(
                            "  to {} · {} ago",
                            sent.to,
                            crate::format::duration_micros(ago)
                        ));
                    }
                    if ui
                        .button(label)
                        .on_hover_text("Load into the editor")
                        .clicked()
                    {
                        load = Some(m.clone());
                    }
                }
            });
        if let Some(i) = unfavourite {
            self.favourites.remove(i);
        }
        if let Some(m) = load {
            self.load(&m);
        }
    }
}

/// What a saved message sends, as bytes shown unambiguously, and how it
/// was written: `[hex] \xde\xad\xbe\xef`, `[text + CRLF] PING\r\n`.
fn entry_label(m: &SavedMessage) -> String {
    let preview = match m.bytes() {
        Ok(b) => payload::preview(&b, 48),
        Err(_) => payload::preview(m.text.as_bytes(), 48),
    };
    let how = match m.ending {
        LineEnding::None => m.format.label().to_lowercase(),
        e => format!("{} + {}", m.format.label().to_lowercase(), e.label()),
    };
    format!("[{how}] {preview}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConnId;

    #[test]
    fn chips_show_the_bytes_and_how_they_were_written() {
        let hex = SavedMessage {
            text: "de ad be ef".into(),
            format: InputFormat::Hex,
            ending: LineEnding::None,
            sent: None,
        };
        assert_eq!(entry_label(&hex), r"[hex] \xde\xad\xbe\xef");
        let ping = SavedMessage {
            text: "PING".into(),
            format: InputFormat::Text,
            ending: LineEnding::CrLf,
            sent: None,
        };
        assert_eq!(entry_label(&ping), r"[text + CRLF] PING\r\n");
    }

    #[test]
    fn targets_are_named_briefly() {
        assert_eq!(describe_targets(&Targets::All), "all clients");
        let ids = (1..=6).map(ConnId).collect();
        assert_eq!(
            describe_targets(&Targets::Conns(ids)),
            "#1, #2, #3, #4, +2 more"
        );
    }
}
