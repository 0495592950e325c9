#!/usr/bin/env python3
"""Regenerate the web viewer's fonts, assets/fonts/web/*.ttf: subsets of
egui's default fonts (the crate epaint_default_fonts, which the desktop
build embeds whole), so the wasm carries ~0.2 MB of fonts instead of 1.4 MB.

    pip install fonttools        # pyftsubset, fontTools 4.x
    python3 scripts/subset-web-fonts.py

Each subset keeps, of its font: the text ranges below, the symbols the UI
shows (UI_SYMBOLS), the .notdef box, hinting (egui hints with the fonts'
own TrueType instructions, so the kept glyphs render exactly as on the
desktop) and kerning. The script checks that every UI symbol still comes
from the same font of egui's fallback chain as with the full fonts.
Characters outside the subsets are drawn by the browser's own fonts
(eframe's canvas glyph rasterizer), as emoji and CJK already were.
See assets/fonts/web/README.md.
"""

import json
import pathlib
import shutil
import subprocess
import sys

from fontTools.ttLib import TTFont

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "fonts" / "web"

# Latin, Latin-1 Supplement, Latin Extended-A, general punctuation, arrows,
# minus, less/greater-or-equal, the replacement character.
TEXT = [(0x20, 0x7E), (0xA0, 0x17F), (0x2000, 0x206F), (0x2190, 0x21FF),
        (0x2212, 0x2212), (0x2264, 0x2265), (0xFFFD, 0xFFFD)]
# Combining diacritics: the transcript's UTF-8 view shows marks on their
# base (src/payload.rs), in monospace.
MONO_EXTRA = [(0x300, 0x36F)]

# Every non-ASCII character the UI's own strings use (src/ui, src/monitor,
# src/backend, src/payload.rs; the test in src/web_fonts.rs keeps this list
# complete), plus egui's arrow-key names (⏴⏵⏶⏷) and the dotted circle that
# src/payload.rs puts under a lone combining mark.
UI_SYMBOLS = "…→←·−±✖⚠⚡⏴⏵⏶⏷▶⏸⏺○☆◌"

# egui's fallback chains (epaint FontDefinitions::default with
# monochrome_emoji_fonts), without egui-icons (egui::special_emojis only).
PROPORTIONAL = ["Ubuntu-Light", "NotoEmoji-Regular", "emoji-icon-font"]
MONOSPACE = ["Hack-Regular", "Ubuntu-Light", "NotoEmoji-Regular", "emoji-icon-font"]

LICENSES = ["OFL.txt", "UFL.txt", "Hack-Regular.txt", "emoji-icon-font-mit-license.txt"]


def source_dir():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT))
    for p in meta["packages"]:
        if p["name"] == "epaint_default_fonts":
            return pathlib.Path(p["manifest_path"]).parent / "fonts", p["version"]
    sys.exit("subset-web-fonts: no epaint_default_fonts in the dependency graph")


def expand(ranges):
    return {c for lo, hi in ranges for c in range(lo, hi + 1)}


def main():
    src, version = source_dir()
    OUT.mkdir(parents=True, exist_ok=True)
    symbols = {ord(c) for c in UI_SYMBOLS}
    wanted = {
        "Ubuntu-Light": expand(TEXT) | symbols,
        "Hack-Regular": expand(TEXT + MONO_EXTRA) | symbols,
        "NotoEmoji-Regular": set(symbols),
        "emoji-icon-font": set(symbols),
    }
    full = {name: TTFont(src / f"{name}.ttf").getBestCmap() for name in wanted}
    # An emoji font keeps only the symbols it is the first of a chain to
    # have, i.e. the glyphs egui actually takes from it.
    def first(chain, c, cmaps):
        return next((f for f in chain if c in cmaps[f]), None)

    for name in ["NotoEmoji-Regular", "emoji-icon-font"]:
        wanted[name] = {c for c in symbols
                        if name in (first(PROPORTIONAL, c, full), first(MONOSPACE, c, full))}
    subset = {}
    for name, codepoints in wanted.items():
        codepoints &= set(full[name])
        unicodes = ",".join(f"U+{c:04X}" for c in sorted(codepoints))
        out = OUT / f"{name}.subset.ttf"
        subprocess.check_call([
            "pyftsubset", str(src / f"{name}.ttf"), f"--unicodes={unicodes}",
            "--notdef-outline", "--name-IDs=*", "--layout-features=*",
            f"--output-file={out}"])
        subset[name] = TTFont(out).getBestCmap()
        print(f"{out.relative_to(ROOT)}: {len(subset[name])} characters, "
              f"{out.stat().st_size} bytes (of {(src / f'{name}.ttf').stat().st_size})")
    for lic in LICENSES:
        shutil.copyfile(src / lic, OUT / lic)

    # Each UI symbol resolves to the same font as with the full fonts.
    bad = []
    for chain_name, chain in (("proportional", PROPORTIONAL), ("monospace", MONOSPACE)):
        for c in sorted(symbols):
            before, after = first(chain, c, full), first(chain, c, subset)
            if before != after:
                bad.append(f"{chr(c)} U+{c:04X} ({chain_name}): {before} -> {after}")
    if bad:
        sys.exit("subset-web-fonts: symbols resolve differently:\n  " + "\n  ".join(bad))
    print(f"from epaint_default_fonts {version}; every UI symbol resolves as before")


if __name__ == "__main__":
    main()
