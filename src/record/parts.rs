//! The files of a rotated recording: `NAME.muxrec` is part 1, rotation goes
//! on in `NAME.2.muxrec`, `NAME.3.muxrec`, … next to it. Each part is a
//! whole recording on its own; these names let a reader move between them.

use super::EXTENSION;
use std::path::{Path, PathBuf};

/// `dir/NAME.muxrec` → `dir/NAME.N.muxrec` (part `n` ≥ 2 of that recording).
pub fn part_path(first: &Path, n: u32) -> PathBuf {
    first.with_file_name(format!("{}.{n}.{EXTENSION}", stem(first)))
}

/// The part before `path`, which is part `number` (from its header).
/// `None` for a first part, or a file not named as rotation names parts.
pub fn previous_part(path: &Path, number: u32) -> Option<PathBuf> {
    if number < 2 {
        return None;
    }
    let stem = stem(path);
    let first_stem = stem.strip_suffix(&format!(".{number}"))?;
    let first = path.with_file_name(format!("{first_stem}.{EXTENSION}"));
    Some(if number == 2 {
        first
    } else {
        part_path(&first, number - 1)
    })
}

/// The part after `path` (part `number`), when its trailer names it as
/// rotation does: `NAME.muxrec` → `NAME.2.muxrec` → `NAME.3.muxrec`. The
/// name comes from the file, so nothing else is taken: a recording cannot
/// point a reader elsewhere on the disk, nor back at an earlier part
/// (playing on would go round for ever).
pub fn next_part(path: &Path, number: u32, named: &str) -> Option<PathBuf> {
    let stem = stem(path);
    let first_stem = if number <= 1 {
        stem.as_str()
    } else {
        stem.strip_suffix(&format!(".{number}"))?
    };
    let expected = format!("{first_stem}.{}.{EXTENSION}", number.checked_add(1)?);
    (named == expected).then(|| path.with_file_name(named))
}

/// `NAME` of `dir/NAME.muxrec` (the whole file name without the extension
/// when it has another).
fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(&format!(".{EXTENSION}")) {
        Some(stem) => stem.to_owned(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_next_to_the_first() {
        let first = Path::new("/rec/s.muxrec");
        assert_eq!(part_path(first, 2), Path::new("/rec/s.2.muxrec"));
        assert_eq!(part_path(first, 11), Path::new("/rec/s.11.muxrec"));
    }

    #[test]
    fn the_previous_part_of_each_part() {
        assert_eq!(previous_part(Path::new("/rec/s.muxrec"), 1), None);
        assert_eq!(
            previous_part(Path::new("/rec/s.2.muxrec"), 2),
            Some(PathBuf::from("/rec/s.muxrec"))
        );
        assert_eq!(
            previous_part(Path::new("/rec/s.3.muxrec"), 3),
            Some(PathBuf::from("/rec/s.2.muxrec"))
        );
        // Renamed by hand: no guess.
        assert_eq!(previous_part(Path::new("/rec/evidence.muxrec"), 3), None);
    }

    #[test]
    fn a_next_part_is_only_ever_the_sibling_rotation_names_next() {
        let here = Path::new("/rec/s.muxrec");
        assert_eq!(
            next_part(here, 1, "s.2.muxrec"),
            Some(PathBuf::from("/rec/s.2.muxrec"))
        );
        assert_eq!(
            next_part(Path::new("/rec/s.2.muxrec"), 2, "s.3.muxrec"),
            Some(PathBuf::from("/rec/s.3.muxrec"))
        );
        // Back to an earlier part, or skipping one: a loop, or not ours.
        assert_eq!(next_part(Path::new("/rec/s.2.muxrec"), 2, "s.muxrec"), None);
        assert_eq!(next_part(here, 1, "s.3.muxrec"), None);
        assert_eq!(next_part(here, 1, "other.2.muxrec"), None);
        // A header that lies about its number finds nothing.
        assert_eq!(next_part(here, 2, "s.3.muxrec"), None);
        assert_eq!(next_part(here, u32::MAX, "s.0.muxrec"), None);
        for hostile in [
            "",
            "../s.2.muxrec",
            "/etc/passwd",
            "sub/s.2.muxrec",
            "..\\x.muxrec",
            ".muxrec",
            "s.2.txt",
            "a\0.muxrec",
            "s.muxrec",
        ] {
            assert_eq!(next_part(here, 1, hostile), None, "{hostile:?}");
        }
    }
}
