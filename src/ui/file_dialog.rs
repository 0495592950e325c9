//! An in-app dialog to pick a layout file: a path field plus the layouts
//! found in the layouts folder. It works the same under any desktop (or
//! none, as in headless tests), unlike native dialogs that need a portal.

use super::labelled;
use crate::layout::FILE_SUFFIX;
use egui::RichText;
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DialogKind {
    Open,
    SaveAs,
}

#[derive(Debug)]
pub struct FileDialog {
    pub kind: DialogKind,
    pub path_text: String,
    files: Vec<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DialogOutcome {
    Pending,
    Cancelled,
    Chosen(PathBuf),
}

/// Layout files directly inside `dir`, newest first.
pub fn list_layouts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(FILE_SUFFIX))
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
    pub fn new(kind: DialogKind, dir: &Path, suggestion: Option<&Path>) -> Self {
        let path_text = match (kind, suggestion) {
            (_, Some(p)) => p.display().to_string(),
            (DialogKind::SaveAs, None) => dir
                .join(format!("session{FILE_SUFFIX}"))
                .display()
                .to_string(),
            (DialogKind::Open, None) => format!("{}/", dir.display()),
        };
        FileDialog {
            kind,
            path_text,
            files: list_layouts(dir),
        }
    }

    pub fn ui(&mut self, ctx: &egui::Context) -> DialogOutcome {
        let title = match self.kind {
            DialogKind::Open => "Open layout",
            DialogKind::SaveAs => "Save layout as",
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
                    DialogKind::SaveAs => crate::layout::with_suffix(path.clone()),
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
                    ui.label(RichText::new("Layouts in the layouts folder").weak());
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
