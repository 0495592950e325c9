//! Number formatting shared by the headless summary and the UI.

/// `1536` → `1.5 KiB`. Exact below 1 KiB so small counts stay readable.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A rate in bytes per second.
pub fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", bytes(bytes_per_sec.max(0.0).round() as u64))
}

/// `1234567` → `1.2M`, for counts in tight columns.
pub fn count(n: f64) -> String {
    if n < 10_000.0 {
        format!("{n:.0}")
    } else if n < 10_000_000.0 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{:.1}M", n / 1e6)
    }
}

/// `1 connection`, `3 connections`: a count and its noun, plural by `s`.
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Microseconds as a short duration: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub fn duration_micros(us: u64) -> String {
    let ms = us / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// A UTC calendar time from Unix seconds: (year, month, day, hour,
/// minute, second), by Howard Hinnant's days-to-civil (no time-zone
/// database needed).
pub fn civil(unix_secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

/// A UTC timestamp for file names, `20261203-071203`, from Unix seconds.
pub fn file_stamp(unix_secs: u64) -> String {
    let (year, month, day, h, m, s) = civil(unix_secs);
    format!("{year:04}{month:02}{day:02}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1024 * 1024 * 300), "300 MiB");
    }

    #[test]
    fn formats_durations_and_counts() {
        assert_eq!(duration_micros(850_000), "850ms");
        assert_eq!(duration_micros(12_300_000), "12.3s");
        assert_eq!(duration_micros(245_000_000), "4m05s");
        assert_eq!(count(123.0), "123");
        assert_eq!(count(45_600.0), "45.6k");
    }

    #[test]
    fn file_stamps_are_utc_calendar_times() {
        assert_eq!(file_stamp(0), "19700101-000000");
        assert_eq!(file_stamp(951_782_400), "20000229-000000");
        assert_eq!(file_stamp(1_796_281_923), "20261203-071203");
    }
}
