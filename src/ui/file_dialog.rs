//! An in-app dialog to pick a layout or scenario file: a path field plus
//! the files of that kind found in its folder. It works the same under any
//! desktop (or none, as in headless tests), unlike native dialogs that
//! need a portal.

use super::labelled;
use egui::RichText;
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DialogKind {
    Open,
    SaveAs,
}

/// Which kind of file the dialog picks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Layout,
    Scenario,
    Recording,
}

impl FileKind {
    pub fn suffix(self) -> &'static str {
        match self {
            FileKind::Layout => crate::layout::FILE_SUFFIX,
            FileKind::Scenario => crate::scenario::FILE_SUFFIX,
            FileKind::Recording => ".muxrec",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            FileKind::Layout => "layout",
            FileKind::Scenario => "scenario",
            FileKind::Recording => "recording",
        }
    }
}

/// `name` → `name` + `suffix` unless it already ends so (a bare `.ron`
/// becomes the full suffix).
pub fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let name = path.to_string_lossy();
    if name.ends_with(suffix) {
        path
    } else if let Some(stem) = name.strip_suffix(".ron") {
        PathBuf::from(format!("{stem}{suffix}"))
    } else {
        PathBuf::from(format!("{name}{suffix}"))
    }
}

#[derive(Debug)]
pub struct FileDialog {
    pub kind: DialogKind,
    pub file: FileKind,
    pub path_text: String,
    files: Vec<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DialogOutcome {
    Pending,
    Cancelled,
    Chosen(PathBuf),
}

/// Files ending in `suffix` directly inside `dir`, newest first.
pub fn list_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .map(|e| {
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, e.path())
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().map(|(_, p)| p).collect()
}

impl FileDialog {
    pub fn new(kind: DialogKind, file: FileKind, dir: &Path, suggestion: Option<&Path>) -> Self {
        let path_text = match (kind, suggestion) {
            (_, Some(p)) => p.display().to_string(),
            (DialogKind::SaveAs, None) => {
                let stem = match file {
                    FileKind::Layout => "session",
                    FileKind::Scenario => "server",
                    FileKind::Recording => "session",
                };
                dir.join(format!("{stem}{}", file.suffix()))
                    .display()
                    .to_string()
            }
            (DialogKind::Open, None) => format!("{}/", dir.display()),
        };
        FileDialog {
            kind,
            file,
            path_text,
            files: list_files(dir, file.suffix()),
        }
    }

    pub fn ui(&mut self, ctx: &egui::Context) -> DialogOutcome {
        let title = match self.kind {
            DialogKind::Open => format!("Open {}", self.file.noun()),
            DialogKind::SaveAs => format!("Save {} as", self.file.noun()),
        };
        let mut outcome = DialogOutcome::Pending;
        egui::Window::new(title)
            .collapsible(false)
            .resizable(true)
            .default_width(520.0)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                let edit = labelled(ui, "Path", |ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.path_text)
                            .desired_width(f32::INFINITY),
                    )
                });
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                let path = PathBuf::from(self.path_text.trim());
                let target = match self.kind {
                    DialogKind::SaveAs => with_suffix(path.clone(), self.file.suffix()),
                    DialogKind::Open => path.clone(),
                };
                let exists = target.is_file();
                match self.kind {
                    DialogKind::SaveAs if exists => {
                        ui.label(
                            RichText::new(format!(
                                "{} exists and will be replaced.",
                                target.display()
                            ))
                            .color(super::warn_color(ui)),
                        );
                    }
                    DialogKind::SaveAs => {
                        ui.label(RichText::new(format!("Saves to {}", target.display())).weak());
                    }
                    DialogKind::Open
                        if !exists
                            && !self.path_text.trim().is_empty()
                            && !self.path_text.ends_with('/') =>
                    {
                        ui.label(RichText::new("No such file.").color(super::warn_color(ui)));
                    }
                    DialogKind::Open => {}
                }
                if !self.files.is_empty() {
                    ui.separator();
                    ui.label(RichText::new(format!("{}s in this folder", self.file.noun())).weak());
                    egui::ScrollArea::vertical()
                        .max_height(180.0)
                        .show(ui, |ui| {
                            for f in &self.files {
                                let name = f
                                    .file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default();
                                if ui.selectable_label(target == *f, name).clicked() {
                                    self.path_text = f.display().to_string();
                                }
                            }
                        });
                }
                ui.separator();
                ui.horizontal(|ui| {
                    let (label, enabled) = match self.kind {
                        DialogKind::Open => ("Open", exists),
                        DialogKind::SaveAs => (
                            if exists { "Replace" } else { "Save" },
                            !self.path_text.trim().is_empty(),
                        ),
                    };
                    if ui.add_enabled(enabled, egui::Button::new(label)).clicked()
                        || (enter && enabled)
                    {
                        outcome = DialogOutcome::Chosen(target.clone());
                    }
                    if ui.button("Cancel").clicked()
                        || ui.input(|i| i.key_pressed(egui::Key::Escape))
                    {
                        outcome = DialogOutcome::Cancelled;
                    }
                });
            });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_is_added_once() {
        let layout = FileKind::Layout.suffix();
        assert_eq!(
            with_suffix("a".into(), layout),
            PathBuf::from("a.muxscope.ron")
        );
        assert_eq!(
            with_suffix("a.ron".into(), layout),
            PathBuf::from("a.muxscope.ron")
        );
        assert_eq!(
            with_suffix("a.muxscope.ron".into(), layout),
            PathBuf::from("a.muxscope.ron")
        );
        let scenario = FileKind::Scenario.suffix();
        assert_eq!(
            with_suffix("s.ron".into(), scenario),
            PathBuf::from("s.muxscope-scenario.ron")
        );
    }
}
