//! The Scenario pane: what scenario the server plays, how often each rule
//! fired, the scenario's text to edit and run, and a try-out that asks
//! the engine what some input would do, without a client.

use super::{PaneCtx, error_color, labelled};
use crate::monitor::Monitor;
use crate::payload::{self, InputFormat};
use crate::protocol::{Command, Micros, RuleTally, ScenarioStatus, Targets};
use crate::scenario::{
    self, PatternSpec, ReplySpec, RuleSpec, ScenarioFile, ThenSpec, TriggerSpec, TryOutcome,
    TryReport, TryTrigger,
};
use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The shipped examples, offered in the pane (and so on the web, where
/// there are no files to open).
pub const EXAMPLES: [(&str, &str); 2] = [
    (
        "line protocol",
        include_str!("../../examples/line-protocol.muxscope-scenario.ron"),
    ),
    (
        "length-prefixed",
        include_str!("../../examples/length-prefixed.muxscope-scenario.ron"),
    ),
];

/// What the user arranged in this pane; saved in session layouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScenarioPane {
    /// The file the text came from, and where Save writes it.
    pub path: Option<PathBuf>,
    /// The scenario being edited, as RON.
    #[serde(skip)]
    pub text: String,
    /// Why the text is not a scenario, as last checked.
    #[serde(skip)]
    pub problem: Option<String>,
    /// Input for the try-out, with escapes (`\n`, `\x00`).
    pub try_input: String,
    pub try_format: InputFormat,
    /// Whether the editor is open.
    pub editing: bool,
}

impl Default for ScenarioPane {
    fn default() -> Self {
        ScenarioPane {
            path: None,
            text: String::new(),
            problem: None,
            try_input: String::new(),
            // Typed input needs its line ends spelled out.
            try_format: InputFormat::Escaped,
            editing: false,
        }
    }
}

/// What the pane asks of the app (files are the app's business).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioAction {
    Open,
    Save,
    SaveAs,
}

impl ScenarioPane {
    /// Parse the text; on failure remember why (shown under the editor).
    pub fn parsed(&mut self) -> Option<ScenarioFile> {
        match scenario::parse(&self.text) {
            Ok(file) => {
                self.problem = None;
                Some(file)
            }
            Err(e) => {
                self.problem = Some(e);
                None
            }
        }
    }

    pub fn ui(&mut self, ui: &mut Ui, ctx: &mut PaneCtx) -> Option<ScenarioAction> {
        let mut action = None;
        // Borrowed, not cloned: the scenario's file travels in every stats
        // update, and this runs every frame.
        let monitor: &Monitor = ctx.monitor;
        let status = monitor.stats.as_ref().and_then(|s| s.scenario.as_deref());
        let now = monitor.engine_now();
        match status {
            Some(s) => {
                ui.horizontal_wrapped(|ui| {
                    ui.label("Running:");
                    ui.label(RichText::new(self.name_of(&s.file)).strong());
                    ui.label(
                        RichText::new(format!(
                            "{} rules · framing {} · otherwise {:?}",
                            s.file.rules.len(),
                            framing_text(&s.file),
                            s.file.otherwise
                        ))
                        .weak(),
                    );
                });
            }
            None => {
                ui.label("No scenario runs: every message gets the server's mode.");
            }
        }
        ui.horizontal_wrapped(|ui| {
            if !cfg!(target_arch = "wasm32") {
                if ui.button("Open…").clicked() {
                    action = Some(ScenarioAction::Open);
                }
                let save = ui.add_enabled(self.path.is_some(), egui::Button::new("Save file"));
                if save.clicked() {
                    action = Some(ScenarioAction::Save);
                }
                if ui.button("Save file as…").clicked() {
                    action = Some(ScenarioAction::SaveAs);
                }
            }
            ui.menu_button("Examples", |ui| {
                for (name, text) in EXAMPLES {
                    if ui.button(name).clicked() {
                        self.text = text.to_owned();
                        self.path = None;
                        self.problem = None;
                        self.editing = true;
                        ui.close();
                    }
                }
            });
            let run = ui
                .add_enabled(!self.text.trim().is_empty(), egui::Button::new("Run"))
                .on_hover_text("Every connection runs this scenario from now on");
            if run.clicked()
                && let Some(file) = self.parsed()
            {
                ctx.commands
                    .push(Command::SetScenario(Some(Box::new(file))));
            }
            let stop = ui.add_enabled(status.is_some(), egui::Button::new("Stop scenario"));
            if stop.on_hover_text("Back to the plain mode").clicked() {
                ctx.commands.push(Command::SetScenario(None));
            }
            let selected = ctx.selection.primary_first();
            let n = selected.len();
            let targets = || Targets::Conns(selected.clone());
            let on_selected = ui
                .add_enabled(
                    n > 0 && !self.text.trim().is_empty(),
                    egui::Button::new(format!("Run on selected ({n})")),
                )
                .on_hover_text(
                    "Only the selected connections run this scenario; new ones get the usual",
                );
            if on_selected.clicked()
                && let Some(file) = self.parsed()
            {
                ctx.commands.push(Command::SetConnScenario {
                    targets: targets(),
                    scenario: Some(Box::new(file)),
                });
            }
            let off = ui
                .add_enabled(n > 0, egui::Button::new(format!("None on selected ({n})")))
                .on_hover_text("The selected connections run no scenario: the mode answers them");
            if off.clicked() {
                ctx.commands.push(Command::SetConnScenario {
                    targets: targets(),
                    scenario: None,
                });
            }
            ui.toggle_value(&mut self.editing, "Edit");
        });
        // The try-out before the long parts, so it stays in view.
        ui.separator();
        self.try_out(ui, monitor, ctx.commands);
        egui::ScrollArea::vertical()
            .id_salt("scenario-pane")
            .auto_shrink([false, true])
            .show(ui, |ui| {
                if let Some(s) = status {
                    ui.separator();
                    rules_table(ui, s, now);
                }
                if self.editing {
                    ui.separator();
                    self.editor(ui);
                }
            });
        action
    }

    fn editor(&mut self, ui: &mut Ui) {
        if let Some(path) = &self.path {
            ui.label(RichText::new(path.display().to_string()).weak());
        }
        egui::ScrollArea::vertical()
            .id_salt("scenario-editor")
            .max_height(260.0)
            .show(ui, |ui| {
                let edit = labelled(ui, "Scenario text", |ui| {
                    ui.add(
                        egui::TextEdit::multiline(&mut self.text)
                            .code_editor()
                            .desired_rows(10)
                            .desired_width(f32::INFINITY),
                    )
                });
                if edit.changed() {
                    self.problem = None;
                }
            });
        if let Some(problem) = &self.problem {
            ui.label(RichText::new(problem).color(error_color(ui)));
        }
    }

    fn try_out(&mut self, ui: &mut Ui, monitor: &Monitor, commands: &mut Vec<Command>) {
        ui.horizontal_wrapped(|ui| {
            let input = labelled(ui, "Try input", |ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut self.try_input)
                        .hint_text(r"PING\n")
                        .desired_width(220.0),
                )
            });
            egui::ComboBox::from_id_salt("scenario-try-format")
                .selected_text(self.try_format.label())
                .show_ui(ui, |ui| {
                    for f in [InputFormat::Escaped, InputFormat::Hex] {
                        ui.selectable_value(&mut self.try_format, f, f.label());
                    }
                });
            let enter = input.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let tried = ui
                .button("Try")
                .on_hover_text("What this input would do, sent by a new client");
            if tried.clicked() || enter {
                let bytes = match self.try_format {
                    InputFormat::Hex => payload::parse_hex(&self.try_input),
                    _ => payload::parse_escaped(&self.try_input),
                };
                match (bytes, self.scenario_to_try(monitor)) {
                    (Ok(input), Some(scenario)) => commands.push(Command::TryScenario {
                        scenario: Box::new(scenario),
                        input,
                    }),
                    (Err(e), _) => self.problem = Some(format!("try input: {e}")),
                    (_, None) => {}
                }
            }
        });
        match &monitor.last_try {
            None => {}
            Some(Err(why)) => {
                ui.label(RichText::new(why).color(error_color(ui)));
            }
            Some(Ok(report)) => try_report(ui, report),
        }
    }

    /// The text being edited if there is any, else the running scenario.
    fn scenario_to_try(&mut self, monitor: &Monitor) -> Option<ScenarioFile> {
        if !self.text.trim().is_empty() {
            return self.parsed();
        }
        let running = monitor.stats.as_ref()?.scenario.as_ref()?;
        Some(running.file.clone())
    }
}

impl ScenarioPane {
    /// The scenario's name, else its file's, else "unnamed".
    fn name_of(&self, file: &ScenarioFile) -> String {
        let from_path = || {
            let name = self
                .path
                .as_ref()?
                .file_name()?
                .to_string_lossy()
                .into_owned();
            Some(
                name.strip_suffix(scenario::FILE_SUFFIX)
                    .map_or(name.clone(), str::to_owned),
            )
        };
        file.name
            .clone()
            .or_else(from_path)
            .unwrap_or_else(|| "unnamed".to_owned())
    }
}

fn framing_text(file: &ScenarioFile) -> String {
    format!("{:?}", file.framing)
}

/// One row per rule: what triggers it, what it does, and how often it
/// fired over all connections.
fn rules_table(ui: &mut Ui, status: &ScenarioStatus, now: Micros) {
    egui::Grid::new("scenario-rules")
        .striped(true)
        .num_columns(4)
        .show(ui, |ui| {
            ui.label(RichText::new("#").strong());
            ui.label(RichText::new("fired").strong());
            ui.label(RichText::new("on").strong());
            ui.label(RichText::new("does").strong());
            ui.end_row();
            for (i, rule) in status.file.rules.iter().enumerate() {
                let tally = status.fired.get(i).copied().unwrap_or_default();
                ui.label(format!("{}", i + 1));
                ui.label(tally_text(tally, now));
                ui.label(RichText::new(trigger_text(&rule.on)).monospace());
                ui.label(RichText::new(action_text(rule)).monospace());
                ui.end_row();
            }
        });
}

pub fn tally_text(tally: RuleTally, now: Micros) -> String {
    match tally.last_at {
        None => "never".to_owned(),
        Some(at) => format!(
            "{}× (last {} ago)",
            tally.fired,
            crate::format::duration_micros(now.saturating_sub(at))
        ),
    }
}

pub fn trigger_text(on: &TriggerSpec) -> String {
    match on {
        TriggerSpec::Connect => "connect".to_owned(),
        TriggerSpec::Idle(t) => format!("idle {t}"),
        TriggerSpec::HalfClose => "half-close".to_owned(),
        TriggerSpec::Message(p) => match p {
            PatternSpec::Any => "any message".to_owned(),
            PatternSpec::Exact(t) => format!("= {t:?}"),
            PatternSpec::Prefix(t) => format!("starts {t:?}"),
            PatternSpec::Contains(t) => format!("contains {t:?}"),
            PatternSpec::Regex(r) => format!("/{r}/"),
            PatternSpec::Hex(h) => format!("= hex {h}"),
            PatternSpec::HexPrefix(h) => format!("starts hex {h}"),
            PatternSpec::HexMask { pattern, mask } => format!("hex {pattern} & {mask}"),
        },
    }
}

fn reply_text(reply: &ReplySpec) -> String {
    match reply {
        ReplySpec::Text(t) => format!("{t:?}"),
        ReplySpec::Hex(h) => format!("hex {h}"),
        ReplySpec::Framed(inner) => format!("framed {}", reply_text(inner)),
    }
}

pub fn action_text(rule: &RuleSpec) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &rule.delay {
        parts.push(format!("wait {d}"));
    }
    if let Some(r) = &rule.send {
        parts.push(format!("send {}", reply_text(r)));
    }
    match &rule.then {
        Some(ThenSpec::Close) => parts.push("close".to_owned()),
        Some(ThenSpec::Reset) => parts.push("reset".to_owned()),
        Some(ThenSpec::PauseReading) => parts.push("pause reading".to_owned()),
        Some(ThenSpec::Fault(f)) => parts.push(format!("fault {f}")),
        None => {}
    }
    if let Some(n) = rule.times {
        parts.push(format!("({n}× per connection)"));
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", then ")
    }
}

/// "this input would fire rule 3 and send …", one line per step.
fn try_report(ui: &mut Ui, report: &TryReport) {
    for step in &report.steps {
        let trigger = match &step.trigger {
            TryTrigger::Connect => "connect".to_owned(),
            TryTrigger::Message { body, .. } => {
                format!("message \"{}\"", payload::preview(body, 40))
            }
        };
        let outcome = match step.outcome {
            TryOutcome::Rule(n) => format!("fires rule {}", n + 1),
            TryOutcome::Otherwise(o) => format!("no rule: {o:?}").to_lowercase(),
            TryOutcome::Nothing => "no rule fires".to_owned(),
        };
        let mut line = format!("{trigger} → {outcome}");
        if step.delay_micros > 0 {
            line += &format!(
                ", waits {}",
                crate::format::duration_micros(step.delay_micros)
            );
        }
        if let Some(reply) = &step.reply {
            line += &format!(" and sends \"{}\"", payload::preview(reply, 60));
        }
        if let Some(then) = &step.then {
            line += &format!(", then {then}");
        }
        if let Some(e) = &step.error {
            line += &format!(" (cannot send: {e})");
        }
        ui.label(RichText::new(line).monospace());
    }
    if !report.pending.is_empty() {
        ui.label(
            RichText::new(format!(
                "incomplete message left: \"{}\"",
                payload::preview(&report.pending, 60)
            ))
            .weak(),
        );
    }
    for why in [&report.framing_error, &report.stopped]
        .into_iter()
        .flatten()
    {
        ui.label(RichText::new(why).color(super::warn_color(ui)));
    }
}
