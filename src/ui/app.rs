//! `MuxscopeApp`: the eframe app. Drains the backend into the monitor in
//! `logic` (within a time budget), draws the menu, server bar and panes in
//! `ui`, and sends what the panes asked for. It also owns the session
//! layout: gathering it, applying it, and the files it lives in.

use super::file_dialog::{DialogKind, DialogOutcome, FileDialog, FileKind};
use super::scenario::ScenarioAction;
use super::server_bar::ServerBar;
use super::tiles::{self, Behavior, PaneKind, Panes};
use super::{PaneCtx, Selection};
use crate::backend::{Backend, BackendStatus};
use crate::layout::{self, SessionLayout, Theme};
use crate::monitor::Monitor;
use crate::protocol::{Command, ConnId, ListenState};
use std::path::{Path, PathBuf};
use std::time::Duration;
use web_time::Instant;

/// Time a frame may spend folding batches in; the rest waits a frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);
const MAX_RECENT: usize = 10;
/// Where the layout lives in eframe's own storage (the browser's local
/// storage on the web).
pub const STORAGE_KEY: &str = "muxscope-layout";
/// How often the crash-recovery copy of the layout is refreshed.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

/// A message for the user, shown under the server bar until dismissed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// A file the browser read: its name and bytes.
pub type PickedFile = (String, Vec<u8>);

/// Where the app's files are; all `None` in tests and on the web.
#[derive(Clone, Debug, Default)]
pub struct AppFiles {
    /// The last session, restored on start and written on exit.
    pub autosave: Option<PathBuf>,
    /// The folder the open dialog lists.
    pub layouts_dir: Option<PathBuf>,
    /// Where the recent-layouts list is kept.
    pub recent_list: Option<PathBuf>,
    /// The log file, when logging goes to a file.
    pub log: Option<PathBuf>,
    /// Where the ⏺ Record button writes (none: it asks where).
    pub recordings_dir: Option<PathBuf>,
    /// Handed the layout every few seconds, for the shell's panic hook to
    /// restore after a crash. The shell passes it in; the UI does not know
    /// which shell hosts it.
    pub crash_snapshot: Option<fn(&SessionLayout)>,
    /// The browser's file picker for a recording (the web has no paths)…
    pub pick_recording: Option<fn()>,
    /// …and the file it chose, once read: (name, bytes).
    pub picked_recording: Option<fn() -> Option<PickedFile>>,
    /// Read a file dropped on the page (the browser reads asynchronously).
    pub read_dropped: Option<fn(egui::DroppedFileHandle)>,
}

pub struct MuxscopeApp {
    backend: Box<dyn Backend>,
    pub monitor: Monitor,
    pub selection: Selection,
    pub panes: Panes,
    pub server_bar: ServerBar,
    pub tree: egui_tiles::Tree<PaneKind>,
    pub theme: Theme,
    pub zoom: f32,
    /// The named layout file this session was opened from or saved to.
    pub layout_path: Option<PathBuf>,
    pub recent: Vec<PathBuf>,
    pub notices: Vec<Notice>,
    pub files: AppFiles,
    dialog: Option<FileDialog>,
    commands: Vec<Command>,
    focus_events_on: Option<Vec<ConnId>>,
    applied_style: Option<(Theme, f32)>,
    last_snapshot: Option<Instant>,
    /// The mode asked for by the layout until the engine reports it.
    pending_mode: Option<crate::protocol::Mode>,
    /// Likewise the faults for new connections and the accept fault.
    pending_faults: Option<crate::faults::Faults>,
    pending_accept_fault: Option<Option<crate::faults::AcceptFault>>,
    /// The live backend and its model, kept while a recording is shown.
    live: Option<(Box<dyn Backend>, Monitor)>,
    /// The connections last named in a `Command::Watch`, and when.
    watching: (Vec<ConnId>, Option<Instant>),
    /// The selection of a recording's part just left, for the next part:
    /// taken up once that part's model has the connection (its first
    /// drains may not have reached it, nor may this point of the part);
    /// dropped when the user picks a row or another recording opens.
    carried_selection: Option<Selection>,
}

impl MuxscopeApp {
    pub fn new(backend: Box<dyn Backend>, listen: &str) -> Self {
        MuxscopeApp {
            backend,
            monitor: Monitor::default(),
            selection: Selection::default(),
            panes: Panes::default(),
            server_bar: ServerBar::new(listen),
            tree: tiles::default_tree(),
            theme: Theme::Dark,
            zoom: 1.0,
            layout_path: None,
            recent: Vec::new(),
            notices: Vec::new(),
            files: AppFiles::default(),
            dialog: None,
            commands: Vec::new(),
            focus_events_on: None,
            applied_style: None,
            last_snapshot: None,
            pending_mode: None,
            pending_faults: None,
            pending_accept_fault: None,
            live: None,
            watching: (Vec::new(), None),
            carried_selection: None,
        }
    }

    /// Arrange the panes as eframe's storage remembers (the web viewer's
    /// last session). The engine is not steered: a viewer must not move
    /// the server it watches.
    pub fn restore_from_storage(mut self, storage: Option<&dyn eframe::Storage>) -> Self {
        if let Some(text) = storage.and_then(|s| s.get_string(STORAGE_KEY)) {
            match layout::parse(&text) {
                Ok(l) => self.apply_layout(l, false),
                Err(e) => self.notify(format!("Could not restore the last layout: {e}"), true),
            }
        }
        self
    }

    pub fn with_files(mut self, files: AppFiles) -> Self {
        if let Some(list) = &files.recent_list {
            self.recent = std::fs::read_to_string(list)
                .ok()
                .and_then(|t| ron::from_str(&t).ok())
                .unwrap_or_default();
        }
        self.files = files;
        self
    }

    pub fn notify(&mut self, text: impl Into<String>, is_error: bool) {
        let text = text.into();
        if is_error {
            log::warn!("{text}");
        } else {
            log::info!("{text}");
        }
        self.notices.push(Notice { text, is_error });
    }

    /// Pull what the backend has; returns true if more is waiting.
    pub fn pump(&mut self) -> bool {
        let more = self.backend.drain_into(&mut self.monitor, DRAIN_BUDGET);
        self.monitor.prune();
        if self.carried_selection.is_some() && self.selection != Selection::default() {
            // The user chose meanwhile.
            self.carried_selection = None;
        }
        if let Some(carried) = &self.carried_selection {
            let primary = carried.primary;
            if primary.is_some_and(|id| self.monitor.connections.get(id).is_some()) {
                self.selection = carried.clone();
                self.carried_selection = None;
                // The new part knows nothing of what was inspected: ask it
                // (the inspector asks again only when the selection moves).
                if let Some(conn) = primary {
                    self.commands.push(Command::Inspect { conn });
                }
            }
        }
        // Forget selected rows that were pruned away.
        let table = &self.monitor.connections;
        self.selection.conns.retain(|id| table.get(*id).is_some());
        if self
            .selection
            .primary
            .is_some_and(|id| table.get(id).is_none())
        {
            self.selection.primary = None;
        }
        if let Some(stats) = &self.monitor.stats {
            if self.pending_mode == Some(stats.mode) {
                self.pending_mode = None;
            }
            if self.pending_faults.as_ref() == Some(&stats.new_faults) {
                self.pending_faults = None;
            }
            if self.pending_accept_fault == Some(stats.accept_fault) {
                self.pending_accept_fault = None;
            }
        }
        more
    }

    pub fn send(&mut self, cmd: Command) {
        self.backend.send(cmd);
    }

    pub fn backend_status(&self) -> BackendStatus {
        self.backend.status()
    }

    // ---- recordings --------------------------------------------------------

    /// Show a recording instead of the live engine, which goes on
    /// (its clients stay connected) until the recording is closed.
    pub fn show_recording(&mut self, replay: crate::backend::ReplayBackend) {
        let replay: Box<dyn Backend> = Box::new(replay);
        let old = std::mem::replace(&mut self.backend, replay);
        let fresh = self.monitor.fresh();
        let old_monitor = std::mem::replace(&mut self.monitor, fresh);
        if old_status_is_live(&old.status()) && self.live.is_none() {
            self.live = Some((old, old_monitor));
        }
        self.carried_selection = None;
        self.selection = Selection::default();
        self.focus_events_on = None;
    }

    /// The playback controls, while a recording is shown.
    pub fn timeline(&mut self) -> Option<&mut crate::backend::Timeline> {
        self.backend.timeline()
    }

    /// Back to the live engine, if there is one.
    pub fn close_recording(&mut self) {
        if let Some((backend, monitor)) = self.live.take() {
            self.backend = backend;
            self.monitor = monitor;
            self.carried_selection = None;
            self.selection = Selection::default();
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_recording(&mut self, path: &Path) {
        if self.show_recording_file(path) {
            self.notify(format!("Opened the recording {}", path.display()), false);
        }
    }

    /// Show the recording at `path`; whether it opened (if not, a notice
    /// says why).
    #[cfg(not(target_arch = "wasm32"))]
    fn show_recording_file(&mut self, path: &Path) -> bool {
        match crate::backend::ReplayBackend::open_file(path) {
            Ok(replay) => {
                self.show_recording(replay);
                true
            }
            Err(e) => {
                self.notify(e, true);
                false
            }
        }
    }

    /// A recording the browser's picker read, or one dropped on the window.
    fn take_opened_recordings(&mut self, ctx: &egui::Context) {
        let mut opened: Vec<(String, Result<crate::backend::ReplayBackend, String>)> = Vec::new();
        if let Some((name, bytes)) = self.files.picked_recording.and_then(|take| take()) {
            let replay = crate::backend::ReplayBackend::open_bytes(bytes, name.clone());
            opened.push((name, replay));
        }
        let dropped = ctx.input_mut(|i| std::mem::take(&mut i.raw.dropped_files));
        for file in dropped {
            let name = file
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !name.ends_with(".muxrec") {
                self.notify(
                    format!("{name} is not a recording (*.muxrec): nothing was opened"),
                    true,
                );
                continue;
            }
            match self.files.read_dropped {
                // The browser reads it asynchronously, then hands it over
                // like the picker does.
                Some(read) => read(file),
                #[cfg(not(target_arch = "wasm32"))]
                None => opened.push((name, crate::backend::ReplayBackend::open_file(file.path()))),
                #[cfg(target_arch = "wasm32")]
                None => {}
            }
        }
        for (name, replay) in opened {
            match replay {
                Ok(r) => {
                    self.show_recording(r);
                    self.notify(format!("Opened the recording {name}"), false);
                }
                Err(e) => self.notify(e, true),
            }
        }
    }

    /// Ask the engine to record into `path`.
    pub fn record_to(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        self.send(Command::StartRecording {
            path: path.display().to_string(),
            max_bytes: None,
            rotate: false,
        });
    }

    /// Where the ⏺ Record button writes: a fresh, dated file.
    fn default_recording_path(&self) -> Option<PathBuf> {
        let dir = self.files.recordings_dir.as_ref()?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Some(dir.join(format!(
            "session-{}.muxrec",
            crate::format::file_stamp(secs)
        )))
    }

    // ---- layouts ---------------------------------------------------------

    /// The session as it is arranged now.
    pub fn layout(&self) -> SessionLayout {
        let listen = self
            .server_bar
            .listen_for_layout(self.monitor.stats.as_ref().map(|s| &s.listen));
        SessionLayout {
            version: layout::LAYOUT_VERSION,
            listen,
            mode: self
                .pending_mode
                .or(self.monitor.stats.as_ref().map(|s| s.mode))
                .unwrap_or_default(),
            theme: self.theme,
            zoom: self.zoom,
            tree: self.tree.clone(),
            connections: self.panes.connections.clone(),
            events: self.panes.events.clone(),
            inspector: self.panes.inspector.clone(),
            inject: self.panes.inject.clone(),
            faults_form: self.panes.faults.clone(),
            faults: self
                .pending_faults
                .clone()
                .or_else(|| self.monitor.stats.as_ref().map(|s| s.new_faults.clone()))
                .unwrap_or_default(),
            accept_fault: self
                .pending_accept_fault
                .unwrap_or_else(|| self.monitor.stats.as_ref().and_then(|s| s.accept_fault)),
            scenario_pane: self.panes.scenario.clone(),
            // The file the running scenario came from, if it came from one.
            scenario: self
                .monitor
                .stats
                .as_ref()
                .and_then(|s| s.scenario.as_ref())
                .and(self.panes.scenario.path.clone()),
            lints: self.monitor.lints.settings.clone(),
        }
    }

    /// Arrange the session as `layout` says. With `steer_engine`, the
    /// engine is also told to listen where and behave as the layout says
    /// (a port in use is then reported by the server bar; the rest of the
    /// layout still applies).
    pub fn apply_layout(&mut self, layout: SessionLayout, steer_engine: bool) {
        self.tree = layout.tree;
        let generation = self.panes.connections.table_generation + 1;
        self.panes.connections = layout.connections;
        self.panes.connections.table_generation = generation;
        self.panes.events = layout.events;
        self.panes.inspector = layout.inspector;
        self.panes.inject = layout.inject;
        self.panes.faults = layout.faults_form;
        self.panes.scenario = layout.scenario_pane;
        self.monitor.lints.settings = layout.lints;
        self.theme = layout.theme;
        self.zoom = layout.zoom;
        self.server_bar.listen_text = layout.listen.clone();
        if steer_engine {
            self.server_bar.request(&layout.listen);
            let listening_there = matches!(
                self.monitor.stats.as_ref().map(|s| &s.listen),
                Some(ListenState::Listening(a)) if a.to_string() == layout.listen
            );
            if !listening_there {
                self.commands.push(Command::Listen {
                    addr: layout.listen,
                });
            }
            self.commands.push(Command::SetMode(layout.mode));
            self.pending_mode = Some(layout.mode);
            self.commands.push(Command::SetFaults {
                scope: crate::protocol::FaultScope::New,
                faults: Box::new(layout.faults.clone()),
            });
            self.pending_faults = Some(layout.faults.sanitized());
            self.commands
                .push(Command::SetAcceptFault(layout.accept_fault));
            self.pending_accept_fault = Some(layout.accept_fault);
            match &layout.scenario {
                Some(path) => self.open_scenario(path),
                None => self.commands.push(Command::SetScenario(None)),
            }
        } else if let Some(path) = &layout.scenario {
            // The engine was started with it; the editor shows its text.
            self.show_scenario_text(path);
        }
    }

    // ---- scenarios -------------------------------------------------------

    /// Read a scenario file into the Scenario pane; its parsed form, or
    /// `None` after telling the user why not (the file is left as it is).
    fn show_scenario_text(&mut self, path: &Path) -> Option<crate::scenario::ScenarioFile> {
        let read = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|text| crate::scenario::parse(&text).map(|file| (text, file)));
        match read {
            Ok((text, file)) => {
                self.panes.scenario.text = text;
                self.panes.scenario.problem = None;
                self.panes.scenario.path = Some(path.to_owned());
                Some(file)
            }
            Err(e) => {
                self.notify(
                    format!(
                        "Could not open the scenario {}: {e}. The running scenario was kept, \
                         and the file was left as it is.",
                        path.display()
                    ),
                    true,
                );
                None
            }
        }
    }

    /// Open a scenario file into the Scenario pane and run it.
    pub fn open_scenario(&mut self, path: &Path) {
        if let Some(file) = self.show_scenario_text(path) {
            self.commands
                .push(Command::SetScenario(Some(Box::new(file))));
            tiles::show_pane(&mut self.tree, PaneKind::Scenario);
            self.notify(format!("Running the scenario {}", path.display()), false);
        }
    }

    /// Save the Scenario pane's text (only a valid scenario is written).
    pub fn save_scenario_to(&mut self, path: &Path) {
        if self.panes.scenario.parsed().is_none() {
            let why = self.panes.scenario.problem.clone().unwrap_or_default();
            self.notify(
                format!("Not saved: the text is not a scenario ({why})"),
                true,
            );
            return;
        }
        match crate::ron_file::write_atomically(path, &self.panes.scenario.text) {
            Ok(()) => {
                self.panes.scenario.path = Some(path.to_owned());
                self.notify(format!("Saved the scenario to {}", path.display()), false);
            }
            Err(e) => self.notify(
                format!("Could not save the scenario to {}: {e}", path.display()),
                true,
            ),
        }
    }

    fn scenario_dialog(&mut self, kind: DialogKind) {
        let dir = self
            .files
            .layouts_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        let suggestion = self.panes.scenario.path.clone();
        self.dialog = Some(FileDialog::new(
            kind,
            FileKind::Scenario,
            &dir,
            suggestion.as_deref(),
        ));
    }

    fn on_scenario_action(&mut self, action: ScenarioAction) {
        match action {
            ScenarioAction::Open => self.scenario_dialog(DialogKind::Open),
            ScenarioAction::SaveAs => self.scenario_dialog(DialogKind::SaveAs),
            ScenarioAction::Save => match self.panes.scenario.path.clone() {
                Some(path) => self.save_scenario_to(&path),
                None => self.scenario_dialog(DialogKind::SaveAs),
            },
        }
    }

    pub fn open_layout(&mut self, path: &Path) {
        match layout::load(path) {
            Ok(l) => {
                self.apply_layout(l, true);
                self.layout_path = Some(path.to_owned());
                self.remember_recent(path);
                self.notify(format!("Opened layout {}", path.display()), false);
            }
            Err(e) => self.notify(
                format!("Could not open the layout {e}. Nothing was changed, and the file was left as it is."),
                true,
            ),
        }
    }

    pub fn save_layout_to(&mut self, path: &Path) {
        match layout::save(path, &self.layout()) {
            Ok(()) => {
                self.layout_path = Some(path.to_owned());
                self.remember_recent(path);
                self.notify(format!("Saved layout to {}", path.display()), false);
            }
            Err(e) => self.notify(format!("Could not save the layout: {e}"), true),
        }
    }

    fn remember_recent(&mut self, path: &Path) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        self.recent.retain(|p| p != &path);
        self.recent.insert(0, path);
        self.recent.truncate(MAX_RECENT);
        if let Some(list) = &self.files.recent_list {
            let _ = std::fs::write(list, ron::to_string(&self.recent).unwrap_or_default());
        }
    }

    /// Write the last-session file; called on exit and periodically.
    pub fn autosave(&self) {
        if let Some(path) = &self.files.autosave
            && let Err(e) = layout::save(path, &self.layout())
        {
            log::warn!("could not save the session: {e}");
        }
    }

    // ---- drawing ---------------------------------------------------------

    fn apply_style(&mut self, ctx: &egui::Context) {
        if self.applied_style == Some((self.theme, self.zoom)) {
            return;
        }
        ctx.set_theme(match self.theme {
            Theme::Dark => egui::Theme::Dark,
            Theme::Light => egui::Theme::Light,
        });
        ctx.set_zoom_factor(self.zoom);
        self.applied_style = Some((self.theme, self.zoom));
    }

    /// Open, save and recent-layout entries of the File menu.
    fn layout_file_items(&mut self, ui: &mut egui::Ui) {
        let dir = self
            .files
            .layouts_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        if ui.button("Open layout…").clicked() {
            self.dialog = Some(FileDialog::new(
                DialogKind::Open,
                FileKind::Layout,
                &dir,
                None,
            ));
            ui.close();
        }
        // Always present (disabled without a file), so the items below
        // never move.
        let path = self.layout_path.clone();
        let hint = match &path {
            Some(p) => p.display().to_string(),
            None => "No layout file yet: use Save layout as…".to_owned(),
        };
        let save = ui
            .add_enabled(path.is_some(), egui::Button::new("Save layout"))
            .on_hover_text(&hint)
            .on_disabled_hover_text(&hint);
        if let Some(path) = path
            && save.clicked()
        {
            self.save_layout_to(&path);
            ui.close();
        }
        if ui.button("Save layout as…").clicked() {
            self.dialog = Some(FileDialog::new(
                DialogKind::SaveAs,
                FileKind::Layout,
                &dir,
                self.layout_path.as_deref(),
            ));
            ui.close();
        }
        ui.menu_button("Recent layouts", |ui| {
            if self.recent.is_empty() {
                ui.label(egui::RichText::new("none yet").weak());
            }
            for path in self.recent.clone() {
                if ui.button(path.display().to_string()).clicked() {
                    self.open_layout(&path);
                    ui.close();
                }
            }
        });
    }

    /// Open / record / close entries of the File menu.
    fn recording_file_items(&mut self, ui: &mut egui::Ui) {
        let dir = self
            .files
            .recordings_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        if ui
            .button("Open recording…")
            .on_hover_text("Play back a .muxrec file: every pane shows the session as of the timeline's position")
            .clicked()
        {
            self.dialog = Some(FileDialog::new(DialogKind::Open, FileKind::Recording, &dir, None));
            ui.close();
        }
        let live = matches!(self.backend.status(), BackendStatus::InProcess);
        if ui
            .add_enabled(live, egui::Button::new("Record to…"))
            .on_hover_text("Record every event and byte into a file you name")
            .on_disabled_hover_text("Only an engine in this window can be recorded from here; a headless one records with --record FILE")
            .clicked()
        {
            let suggestion = self.default_recording_path();
            self.dialog = Some(FileDialog::new(
                DialogKind::SaveAs,
                FileKind::Recording,
                &dir,
                suggestion.as_deref(),
            ));
            ui.close();
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(path) = self.backend.timeline().and_then(|t| t.path.clone()) {
            self.export_items(ui, &path);
        }
        if self.backend.timeline().is_some()
            && ui
                .add_enabled(self.live.is_some(), egui::Button::new("Close recording"))
                .on_hover_text("Back to the live engine")
                .clicked()
        {
            self.close_recording();
            ui.close();
        }
    }

    /// Export the recording shown, for the selection or all connections,
    /// next to the recording's file.
    #[cfg(not(target_arch = "wasm32"))]
    fn export_items(&mut self, ui: &mut egui::Ui, recording: &Path) {
        use crate::record::export::Format;
        ui.menu_button("Export recording", |ui| {
            let selected: Vec<ConnId> = self.selection.conns.iter().copied().collect();
            for (label, format) in [
                ("pcapng (Wireshark)", Format::Pcapng),
                ("JSON", Format::Json),
                ("raw bytes (a folder)", Format::Raw),
            ] {
                for (scope, only) in [
                    ("all connections", Vec::new()),
                    ("the selection", selected.clone()),
                ] {
                    let text = format!("{label}: {scope}");
                    let enabled = scope == "all connections" || !only.is_empty();
                    if ui.add_enabled(enabled, egui::Button::new(text)).clicked() {
                        self.export_recording(recording, format, &only);
                        ui.close();
                    }
                }
            }
        });
    }

    /// `session.muxrec` → `session.pcapng`, `session-conn-3-7.json`,
    /// `session-bytes/`, beside it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn export_recording(
        &mut self,
        recording: &Path,
        format: crate::record::export::Format,
        only: &[ConnId],
    ) {
        use crate::record::export::{Format, export};
        let stem = recording
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "recording".into());
        let mut name = stem;
        if !only.is_empty() {
            let ids: Vec<String> = only.iter().map(|c| c.0.to_string()).collect();
            name = format!("{name}-conn-{}", ids.join("-"));
        }
        let out = recording.with_file_name(match format {
            Format::Pcapng => format!("{name}.pcapng"),
            Format::Json => format!("{name}.json"),
            Format::Raw => format!("{name}-bytes"),
        });
        if format == Format::Raw
            && let Err(e) = std::fs::create_dir_all(&out)
        {
            self.notify(format!("Cannot create {}: {e}", out.display()), true);
            return;
        }
        match export(recording, format, only, &out) {
            Ok(done) => {
                self.notify(
                    format!(
                        "Exported {} to {}",
                        crate::format::counted(done.connections, "connection"),
                        out.display()
                    ),
                    false,
                );
                for w in done.warnings {
                    self.notify(w, true);
                }
            }
            Err(e) => self.notify(e, true),
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .button("New")
                    .on_hover_text("Default panes and settings")
                    .clicked()
                {
                    let fresh = SessionLayout {
                        listen: self.layout().listen,
                        ..SessionLayout::default()
                    };
                    self.apply_layout(fresh, false);
                    self.layout_path = None;
                    ui.close();
                }
                // A browser opens a recording through its own picker.
                if let Some(pick) = self.files.pick_recording {
                    if ui
                        .button("Open recording…")
                        .on_hover_text(
                            "Play back a .muxrec file from this computer (or drop one on the page)",
                        )
                        .clicked()
                    {
                        pick();
                        ui.close();
                    }
                    if self.backend.timeline().is_some()
                        && ui
                            .add_enabled(self.live.is_some(), egui::Button::new("Close recording"))
                            .clicked()
                    {
                        self.close_recording();
                        ui.close();
                    }
                }
                // A browser has no files to open or save: the web viewer
                // keeps its layout in local storage instead.
                if !cfg!(target_arch = "wasm32") {
                    self.layout_file_items(ui);
                    ui.separator();
                    if ui.button("Open scenario…").clicked() {
                        self.scenario_dialog(DialogKind::Open);
                        ui.close();
                    }
                    ui.separator();
                    self.recording_file_items(ui);
                    ui.separator();
                    if ui.button("Quit").clicked() {
                        ui.close();
                        ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                        ui.ctx().request_repaint();
                    }
                }
            });
            ui.menu_button("View", |ui| {
                ui.horizontal(|ui| {
                    ui.label("Theme");
                    ui.selectable_value(&mut self.theme, Theme::Dark, "Dark");
                    ui.selectable_value(&mut self.theme, Theme::Light, "Light");
                });
                ui.horizontal(|ui| {
                    ui.label("Zoom");
                    if ui.button("−").clicked() {
                        self.zoom = (self.zoom - 0.1).max(0.5);
                    }
                    ui.label(format!("{:.0}%", self.zoom * 100.0));
                    if ui.button("+").clicked() {
                        self.zoom = (self.zoom + 0.1).min(3.0);
                    }
                    if ui.button("Reset").clicked() {
                        self.zoom = 1.0;
                    }
                });
                ui.menu_button("Show pane", |ui| {
                    for kind in tiles::PaneKind::ALL {
                        if ui.button(kind.title()).clicked() {
                            tiles::show_pane(&mut self.tree, kind);
                            ui.close();
                        }
                    }
                });
                if ui.button("Reset panes").clicked() {
                    self.tree = tiles::default_tree();
                    ui.close();
                }
                ui.menu_button("Lints", |ui| {
                    let settings = &mut self.monitor.lints.settings;
                    for lint in crate::monitor::lints::Lint::ALL {
                        let mut on = settings.enabled(lint);
                        if ui
                            .checkbox(&mut on, lint.name())
                            .on_hover_text(lint.condition(settings))
                            .changed()
                        {
                            if on {
                                settings.allowed.remove(&lint);
                            } else {
                                settings.allowed.insert(lint);
                            }
                        }
                    }
                });
            });
            ui.menu_button("Help", |ui| {
                ui.label(format!("muxscope {}", env!("CARGO_PKG_VERSION")));
                ui.label(
                    "Point your client at the listen address; watch and poke the conversation.",
                );
                ui.separator();
                match &self.files.log {
                    Some(p) => ui.label(format!("Log file: {}", p.display())),
                    None => ui.label("Logging to the terminal (stderr)."),
                };
                if let Some(p) = &self.files.layouts_dir {
                    ui.label(format!("Layouts folder: {}", p.display()));
                }
                if let Some(p) = &self.files.autosave {
                    ui.label(format!("Last session: {}", p.display()));
                }
            });
            if let Some(path) = &self.layout_path {
                ui.label(egui::RichText::new(path.display().to_string()).weak());
            }
        });
    }

    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, n) in self.notices.iter().enumerate() {
            ui.horizontal(|ui| {
                if ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
                let text = egui::RichText::new(&n.text);
                ui.label(if n.is_error {
                    text.color(super::error_color(ui)).strong()
                } else {
                    text
                });
            });
        }
        if let Some(i) = dismiss {
            self.notices.remove(i);
        }
        // Confirmations fade; errors stay until dismissed.
        if self.notices.len() > 6 {
            self.notices.remove(0);
        }
    }

    /// Draw everything into `ui`; commands the panes produced are sent.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.apply_style(&ctx);
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        let playback = self.backend.timeline().is_some();
        let mut pane_ctx = PaneCtx {
            monitor: &mut self.monitor,
            selection: &mut self.selection,
            commands: &mut self.commands,
            focus_events_on: &mut self.focus_events_on,
            playback,
        };
        self.server_bar.can_record = matches!(self.backend.status(), BackendStatus::InProcess);
        self.server_bar.read_only = self.backend.timeline().is_some();
        egui::Panel::top("server-bar").show(ui, |ui| {
            ui.add_space(2.0);
            self.server_bar.ui(ui, &mut pane_ctx);
            ui.add_space(2.0);
        });
        if std::mem::take(&mut self.server_bar.record_clicked) {
            match self.default_recording_path() {
                Some(path) => self.record_to(&path),
                // No data folder (the web): ask where.
                None => {
                    self.dialog = Some(FileDialog::new(
                        DialogKind::SaveAs,
                        FileKind::Recording,
                        Path::new("."),
                        None,
                    ))
                }
            }
        }
        if !self.notices.is_empty() {
            egui::Panel::top("notices").show(ui, |ui| self.notices_ui(ui));
        }
        let status = self.backend.status();
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                let text = egui::RichText::new(status.describe());
                ui.label(match status {
                    BackendStatus::Disconnected { .. } => text.color(super::error_color(ui)),
                    _ => text.weak(),
                });
            });
        });
        let selected = self.selection.primary;
        if let Some(timeline) = self.backend.timeline() {
            // Not resizable: its height follows its content, so the notes
            // (damage, losses, a playback error) are never cut off.
            egui::Panel::bottom("timeline")
                .resizable(false)
                .show(ui, |ui| {
                    ui.add_space(2.0);
                    super::timeline::ui(ui, timeline, selected);
                    ui.add_space(2.0);
                });
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some((path, play, speed)) = self
            .backend
            .timeline()
            .and_then(|t| t.open_part.take().map(|(p, play)| (p, play, t.speed)))
        {
            // Connection ids go on across parts: so do the selection and
            // the playback speed.
            // (A part played through before its model had the selection
            // passes on the one still waiting.)
            let selection = self
                .carried_selection
                .take()
                .unwrap_or_else(|| self.selection.clone());
            // The bar says which part is shown: no notice per part. One
            // that failed to open leaves the old part paused at its end
            // (no retry every frame).
            if self.show_recording_file(&path)
                && let Some(t) = self.backend.timeline()
            {
                t.playing = play;
                t.speed = speed;
                self.carried_selection = Some(selection);
                // Opened mid-frame: the next frame plays it.
                ui.ctx().request_repaint();
            }
        }
        // The selection's throughput is followed whether or not the plot
        // shows it, so switching the plot to it shows some history.
        self.monitor.rates.watch(&self.selection.primary_first());
        let pane_ctx = PaneCtx {
            monitor: &mut self.monitor,
            selection: &mut self.selection,
            commands: &mut self.commands,
            focus_events_on: &mut self.focus_events_on,
            playback,
        };
        self.panes.connections.visible.0.clear();
        egui::CentralPanel::default().show(ui, |ui| {
            let mut behavior = Behavior {
                panes: &mut self.panes,
                ctx: pane_ctx,
            };
            self.tree.ui(&mut behavior, ui);
        });
        if let Some(action) = self.panes.scenario_action.take() {
            self.on_scenario_action(action);
        }
        if !playback {
            self.watch_what_is_shown();
        }

        if let Some(dialog) = &mut self.dialog {
            match dialog.ui(&ctx) {
                DialogOutcome::Pending => {}
                DialogOutcome::Cancelled => self.dialog = None,
                DialogOutcome::Chosen(path) => {
                    let (kind, file) = (dialog.kind, dialog.file);
                    self.dialog = None;
                    match (kind, file) {
                        (DialogKind::Open, FileKind::Layout) => self.open_layout(&path),
                        (DialogKind::SaveAs, FileKind::Layout) => self.save_layout_to(&path),
                        (DialogKind::Open, FileKind::Scenario) => self.open_scenario(&path),
                        (DialogKind::SaveAs, FileKind::Scenario) => self.save_scenario_to(&path),
                        #[cfg(not(target_arch = "wasm32"))]
                        (DialogKind::Open, FileKind::Recording) => self.open_recording(&path),
                        #[cfg(target_arch = "wasm32")]
                        (DialogKind::Open, FileKind::Recording) => {}
                        (DialogKind::SaveAs, FileKind::Recording) => self.record_to(&path),
                    }
                }
            }
        }
        for cmd in self.commands.drain(..) {
            self.backend.send(cmd);
        }
        self.snapshot_for_crash();
    }

    /// Tell the engine which connections are on screen (the visible rows
    /// and the inspected one), so it samples their `TCP_INFO` often: when
    /// that changes, and every few seconds in case the engine forgot (a
    /// reconnect, or more viewers than it keeps watches for).
    fn watch_what_is_shown(&mut self) {
        const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);
        let mut shown = std::mem::take(&mut self.panes.connections.visible.0);
        shown.truncate(crate::protocol::MAX_WATCHED - 1);
        shown.extend(self.selection.primary);
        shown.sort_unstable();
        shown.dedup();
        let (last, at) = &self.watching;
        if *last == shown && at.is_some_and(|t| t.elapsed() < REFRESH) {
            return;
        }
        if shown.is_empty() && last.is_empty() {
            return;
        }
        // A remote viewer's id is the control endpoint's to set.
        self.commands.push(Command::Watch {
            viewer: crate::protocol::LOCAL_VIEWER,
            conns: shown.clone(),
        });
        self.watching = (shown, Some(Instant::now()));
    }

    /// Keep a recent copy of the layout where the panic hook can find it.
    fn snapshot_for_crash(&mut self) {
        let Some(remember) = self.files.crash_snapshot else {
            return;
        };
        if self
            .last_snapshot
            .is_some_and(|t| t.elapsed() < SNAPSHOT_EVERY)
        {
            return;
        }
        self.last_snapshot = Some(Instant::now());
        remember(&self.layout());
    }
}

/// Whether a backend is a live engine (kept while a recording is shown).
fn old_status_is_live(status: &BackendStatus) -> bool {
    !matches!(status, BackendStatus::Replay { .. })
}

impl eframe::App for MuxscopeApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.take_opened_recordings(ctx);
        if self.pump() {
            ctx.request_repaint();
        }
        // Ages and "last activity" tick even when nothing arrives; with no
        // clients there is nothing to tick, and an idle window sleeps.
        if self.monitor.connections.open_count() > 0 {
            ctx.request_repaint_after(Duration::from_secs(1));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }

    /// In a browser, saving every few seconds is all there is: eframe 0.37
    /// listens for an "onbeforeunload" event, which no browser sends, so
    /// nothing is saved when the tab closes. A layout is a few KiB.
    #[cfg(target_arch = "wasm32")]
    fn auto_save_interval(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// eframe calls this periodically (and on exit when it has storage).
    /// The layout also goes to eframe's storage, which is all a browser has.
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        storage.set_string(STORAGE_KEY, layout::to_ron(&self.layout()));
        self.autosave();
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        log::info!("window closing: saving the session");
        self.autosave();
    }
}
