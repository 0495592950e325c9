//! The web viewer's fonts: subsets of egui's default fonts
//! (assets/fonts/web/, made by scripts/subset-web-fonts.py), in the same
//! fallback chains and with the same tweaks as egui's own
//! `FontDefinitions::default()`, which the desktop build keeps whole (its
//! `default_fonts` and `monochrome_emoji_fonts` features are native only,
//! see Cargo.toml). The full fonts are 1.4 MB of the wasm; these are 0.24 MB.
//!
//! The subsets keep Latin, Latin-1, Latin Extended-A, general punctuation,
//! arrows and every symbol the UI shows, with the fonts' own hinting, so the
//! UI looks as it did. Other characters (in a transcript's UTF-8 view, say)
//! are drawn by the browser's fonts through eframe's canvas glyph
//! rasterizer, as emoji and CJK already were.

use egui::{FontData, FontDefinitions, FontFamily, FontTweak};
use std::sync::Arc;

const UBUNTU_LIGHT: &[u8] = include_bytes!("../assets/fonts/web/Ubuntu-Light.subset.ttf");
const HACK: &[u8] = include_bytes!("../assets/fonts/web/Hack-Regular.subset.ttf");
const NOTO_EMOJI: &[u8] = include_bytes!("../assets/fonts/web/NotoEmoji-Regular.subset.ttf");
const EMOJI_ICON: &[u8] = include_bytes!("../assets/fonts/web/emoji-icon-font.subset.ttf");

/// The fonts to give `egui::Context::set_fonts` on the web.
pub fn definitions() -> FontDefinitions {
    let mut defs = FontDefinitions::empty();
    let mut add = |name: &str, data: &'static [u8], scale: f32| {
        let tweak = FontTweak {
            scale,
            ..Default::default()
        };
        defs.font_data.insert(
            name.to_owned(),
            Arc::new(FontData::from_static(data).tweak(tweak)),
        );
    };
    // Names and scales as in epaint's FontDefinitions::default.
    add("Hack", HACK, 1.0);
    add("Ubuntu-Light", UBUNTU_LIGHT, 1.0);
    add("NotoEmoji-Regular", NOTO_EMOJI, 0.81);
    add("emoji-icon-font", EMOJI_ICON, 0.90);
    let chain = |fonts: &[&str]| -> Vec<String> {
        fonts
            .iter()
            .chain(&["NotoEmoji-Regular", "emoji-icon-font"])
            .map(|name| (*name).to_owned())
            .collect()
    };
    defs.families
        .insert(FontFamily::Monospace, chain(&["Hack", "Ubuntu-Light"]));
    defs.families
        .insert(FontFamily::Proportional, chain(&["Ubuntu-Light"]));
    defs
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::FontId;
    use egui::epaint::text::{Fonts, TextOptions};
    use std::collections::BTreeSet;
    use std::path::Path;

    /// What scripts/subset-web-fonts.py keeps beside the text ranges
    /// (its UI_SYMBOLS), less the three no proportional font has anyway.
    const SYMBOLS: &str = "…·−±✖⚠⚡⏴⏵⏶⏷▶⏸⏺○☆";
    const MONO_ONLY: &str = "←→◌";

    fn fonts() -> Fonts {
        Fonts::new(TextOptions::default(), definitions())
    }

    #[test]
    fn symbols_and_latin_have_glyphs() {
        let mut fonts = fonts();
        let prop = FontId::proportional(14.0);
        let mono = FontId::monospace(14.0);
        let latin: String = (' '..='~').chain('\u{a0}'..='\u{17f}').collect();
        for font_id in [&prop, &mono] {
            for c in SYMBOLS.chars().chain(latin.chars()) {
                assert!(fonts.has_glyph(font_id, c), "{c:?} in {font_id:?}");
            }
        }
        for c in MONO_ONLY.chars() {
            assert!(fonts.has_glyph(&mono, c), "{c:?} in monospace");
        }
    }

    /// Every non-ASCII character in the UI's strings is one the web fonts
    /// were made for: add a new one to the lists here and in
    /// scripts/subset-web-fonts.py, and run the script.
    #[test]
    fn ui_strings_use_only_subset_characters() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for dir in ["ui", "monitor", "backend"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        files.extend(["payload.rs", "format.rs"].map(|f| root.join(f)));
        let known: BTreeSet<char> = SYMBOLS.chars().chain(MONO_ONLY.chars()).collect();
        let mut fonts = fonts();
        let mut unknown = BTreeSet::new();
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        {
            let text = std::fs::read_to_string(file).unwrap();
            // The unit tests sit at the end of a file.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                let line = line.split(" // ").next().unwrap_or_default();
                for c in line.chars().filter(|c| !c.is_ascii()) {
                    let covered = fonts.has_glyph(&FontId::proportional(14.0), c)
                        && fonts.has_glyph(&FontId::monospace(14.0), c);
                    if !known.contains(&c) && !covered {
                        unknown.insert((c, file.display().to_string()));
                    }
                }
            }
        }
        assert!(unknown.is_empty(), "not in the web fonts: {unknown:?}");
    }
}
