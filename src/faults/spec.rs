//! The `--fault` grammar: one spec per fault, the same on the command line,
//! in headless output and in the window.
//!
//! A spec is a comma-separated list of faults; `--fault` may be given more
//! than once. Whitespace around a fault, its `=` and its parts is ignored;
//! names and units are case-sensitive.
//!
//! | fault | value | sets |
//! |---|---|---|
//! | `latency=TIME[~TIME]` | delay, jitter (0 if absent) | [`Faults::latency`] |
//! | `bandwidth=SIZE[/s]` | bytes per second, ≥ 1 | [`Faults::bandwidth`] |
//! | `read-bandwidth=SIZE[/s]` | bytes per second, ≥ 1 | [`Faults::read_bandwidth`] |
//! | `slice=SIZE[..SIZE][@TIME]` | smallest, largest (1 ≤ N ≤ M), delay (0 if absent) | [`Faults::slice`] |
//! | `stall-writes` | no value | [`Faults::stall_writes`] |
//! | `close-after=SIZE\|TIME` | bytes sent, or time since accept | [`Faults::close_after`] |
//! | `reset-after=SIZE\|TIME` | bytes sent, or time since accept | [`Faults::reset_after`] |
//! | `slow-close=TIME` | how long the FIN waits | [`Faults::slow_close`] |
//! | `corrupt=P` | probability per byte, 0 to 1 | [`Faults::corrupt`] |
//! | `rcvbuf=SIZE` | 1 byte to 4 GiB − 1 | [`Faults::rcvbuf`] |
//! | `toxicity=P` | share of new connections, 0 to 1 | [`Faults::toxicity`] |
//! | `accept=refuse\|stall\|delay:TIME` | engine-wide | [`FaultPlan::accept`] |
//! | `none` | no faults; only on its own | nothing |
//!
//! - TIME is a number and `ms` or `s` (`200ms`, `1.5s`); it must come to
//!   whole milliseconds, at most `u32::MAX` ms (about 49 days).
//! - SIZE is a number and `B`, `KiB` or `MiB`, or a bare number of bytes
//!   (`512`, `1.5KiB`); it must come to whole bytes.
//! - For `close-after`/`reset-after`, a number with `ms` or `s` is a time,
//!   anything else a size.
//! - A fault given twice (in one spec or across `--fault`s) takes the later
//!   value; `stall-writes` cannot be taken back.
//!
//! A plan prints ([`Display`](fmt::Display)) as its canonical spec, which
//! parses back to the same plan: faults in the order of the table, `, `
//! between them, times and sizes in the largest unit that divides them
//! evenly, and `none` for no faults.
//!
//! Input is untrusted (a CI script, a window field): parsing never panics,
//! does work linear in the input, and an error is one line that quotes the
//! bad part (escaped, cut short) and says what is valid.

use super::{AcceptFault, Chance, Faults, Latency, Limit, Millis, Slice};
use crate::logging::terminal_safe;
use std::fmt;

/// Everything `--fault` sets: the faults given to every new connection, and
/// the engine-wide fault on accepting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub faults: Faults,
    pub accept: Option<AcceptFault>,
}

/// Every fault name, in canonical order.
pub const FAULT_NAMES: [&str; 13] = [
    "latency",
    "bandwidth",
    "read-bandwidth",
    "slice",
    "stall-writes",
    "close-after",
    "reset-after",
    "slow-close",
    "corrupt",
    "rcvbuf",
    "toxicity",
    "accept",
    "none",
];

/// A spec that does not parse. Its `Display` is one line that quotes the
/// bad part and says what is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    part: String,
    message: String,
}

impl SpecError {
    /// The bad part of the spec, as typed (unescaped).
    pub fn part(&self) -> &str {
        &self.part
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// Quoted text in an error is cut to about this many bytes.
const QUOTE_MAX: usize = 80;

/// `'text'`, escaped so it cannot act on a terminal, and cut short.
fn quote(text: &str) -> String {
    format!("'{}'", terminal_safe(text, QUOTE_MAX))
}

/// `'part' in 'item': why`, or `'item': why` when the part is all of it.
fn bad(part: &str, item: &str, why: impl fmt::Display) -> SpecError {
    let message = if part == item {
        format!("{}: {why}", quote(item))
    } else {
        format!("{} in {}: {why}", quote(part), quote(item))
    };
    SpecError {
        part: part.to_owned(),
        message,
    }
}

/// Parse one `--fault` value: a comma-separated list of faults.
pub fn parse(spec: &str) -> Result<FaultPlan, SpecError> {
    if spec.trim().is_empty() {
        return Err(SpecError {
            part: spec.to_owned(),
            message: format!(
                "empty fault spec: give one or more faults separated by commas \
                 (e.g. latency=200ms~50ms,stall-writes); valid faults are {}",
                FAULT_NAMES.join(", ")
            ),
        });
    }
    let mut plan = FaultPlan::default();
    let mut items = 0;
    let mut none = false;
    for item in spec.split(',') {
        items += 1;
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(
                spec,
                spec,
                "empty fault between commas: separate faults with single commas \
                 (e.g. latency=200ms,stall-writes)",
            ));
        }
        if item == "none" {
            none = true;
        } else {
            apply(&mut plan, item)?;
        }
    }
    if none && items > 1 {
        return Err(bad(
            "none",
            spec,
            "'none' means no faults, so it stands alone (leave it out to combine faults)",
        ));
    }
    Ok(plan)
}

/// One TIME of this grammar on its own (`200ms`, `1.5s`), in whole
/// milliseconds: for files that reuse its units (scenarios), so a time
/// means the same everywhere. Errors quote the text as given.
pub fn parse_time(text: &str) -> Result<Millis, SpecError> {
    time(text.trim(), text)
}

/// One SIZE of this grammar on its own (`512`, `4KiB`, `1MiB`), in bytes.
pub fn parse_size(text: &str) -> Result<u64, SpecError> {
    size(text.trim(), text)
}

impl std::str::FromStr for FaultPlan {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<FaultPlan, SpecError> {
        parse(spec)
    }
}

/// Which fault an item names.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Which {
    Latency,
    Bandwidth,
    ReadBandwidth,
    Slice,
    StallWrites,
    CloseAfter,
    ResetAfter,
    SlowClose,
    Corrupt,
    Rcvbuf,
    Toxicity,
    Accept,
}

/// One fault: its name, its syntax and an example, for messages.
struct Kind {
    which: Which,
    name: &'static str,
    syntax: &'static str,
    example: &'static str,
}

const KINDS: [Kind; 12] = [
    Kind {
        which: Which::Latency,
        name: "latency",
        syntax: "latency=TIME[~TIME]",
        example: "latency=200ms~50ms",
    },
    Kind {
        which: Which::Bandwidth,
        name: "bandwidth",
        syntax: "bandwidth=SIZE/s",
        example: "bandwidth=10KiB/s",
    },
    Kind {
        which: Which::ReadBandwidth,
        name: "read-bandwidth",
        syntax: "read-bandwidth=SIZE/s",
        example: "read-bandwidth=1KiB/s",
    },
    Kind {
        which: Which::Slice,
        name: "slice",
        syntax: "slice=SIZE[..SIZE][@TIME]",
        example: "slice=4..64@0ms",
    },
    Kind {
        which: Which::StallWrites,
        name: "stall-writes",
        syntax: "stall-writes",
        example: "stall-writes",
    },
    Kind {
        which: Which::CloseAfter,
        name: "close-after",
        syntax: "close-after=SIZE|TIME",
        example: "close-after=1KiB",
    },
    Kind {
        which: Which::ResetAfter,
        name: "reset-after",
        syntax: "reset-after=SIZE|TIME",
        example: "reset-after=2s",
    },
    Kind {
        which: Which::SlowClose,
        name: "slow-close",
        syntax: "slow-close=TIME",
        example: "slow-close=3s",
    },
    Kind {
        which: Which::Corrupt,
        name: "corrupt",
        syntax: "corrupt=P (0 to 1)",
        example: "corrupt=0.01",
    },
    Kind {
        which: Which::Rcvbuf,
        name: "rcvbuf",
        syntax: "rcvbuf=SIZE",
        example: "rcvbuf=4KiB",
    },
    Kind {
        which: Which::Toxicity,
        name: "toxicity",
        syntax: "toxicity=P (0 to 1)",
        example: "toxicity=0.5",
    },
    Kind {
        which: Which::Accept,
        name: "accept",
        syntax: "accept=refuse|stall|delay:TIME",
        example: "accept=delay:500ms",
    },
];

/// Parse one fault (`name` or `name=value`) into `plan`.
fn apply(plan: &mut FaultPlan, item: &str) -> Result<(), SpecError> {
    let (name, value) = match item.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (item, None),
    };
    let Some(kind) = KINDS.iter().find(|k| k.name == name) else {
        return Err(unknown_fault(name));
    };
    if kind.which == Which::StallWrites {
        if value.is_some() {
            return Err(bad(item, item, "stall-writes takes no value"));
        }
        plan.faults.stall_writes = true;
        return Ok(());
    }
    let value = match value {
        Some(v) if !v.is_empty() => v,
        _ => {
            return Err(bad(
                item,
                item,
                format_args!(
                    "{} needs a value: {} (e.g. {})",
                    kind.name, kind.syntax, kind.example
                ),
            ));
        }
    };
    let f = &mut plan.faults;
    match kind.which {
        Which::StallWrites => {}
        Which::Latency => {
            let (delay, jitter) = match value.split_once('~') {
                Some((d, j)) => (time(d.trim(), item)?, time(j.trim(), item)?),
                None => (time(value, item)?, 0),
            };
            f.latency = Some(Latency { delay, jitter });
        }
        Which::Bandwidth => f.bandwidth = Some(rate(value, item)?),
        Which::ReadBandwidth => f.read_bandwidth = Some(rate(value, item)?),
        Which::Slice => f.slice = Some(slice(value, item)?),
        Which::CloseAfter => f.close_after = Some(limit(value, item)?),
        Which::ResetAfter => f.reset_after = Some(limit(value, item)?),
        Which::SlowClose => f.slow_close = Some(time(value, item)?),
        Which::Corrupt => f.corrupt = Some(probability(value, item)?),
        Which::Toxicity => f.toxicity = Some(probability(value, item)?),
        Which::Rcvbuf => {
            let bytes = size(value, item)?;
            f.rcvbuf = Some(
                u32::try_from(bytes)
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| {
                        bad(
                            value,
                            item,
                            "a receive buffer is 1 byte to 4294967295 bytes (e.g. rcvbuf=4KiB)",
                        )
                    })?,
            );
        }
        Which::Accept => plan.accept = Some(accept(value, item)?),
    }
    Ok(())
}

fn unknown_fault(name: &str) -> SpecError {
    let hint = suggestion(name)
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    SpecError {
        part: name.to_owned(),
        message: format!(
            "unknown fault {}{hint}: valid faults are {}",
            quote(name),
            FAULT_NAMES.join(", ")
        ),
    }
}

/// The fault name closest to a mistyped one, if it is close (ignoring case,
/// at most two edits).
fn suggestion(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 32 {
        return None;
    }
    let typed: Vec<char> = name.to_lowercase().chars().collect();
    FAULT_NAMES
        .iter()
        .map(|&n| (edit_distance(&typed, &n.chars().collect::<Vec<_>>()), n))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// Levenshtein distance (both sides are short: at most 32 characters).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Why a number did not scale to whole units.
enum NumError {
    NotANumber,
    TooLarge,
    NotWhole,
}

/// `num` (digits, optionally `.` and more digits) times `scale`, exactly.
/// `scale` is at most 2^20, so more than 20 significant decimals can never
/// come to a whole number, and 30 integer digits cannot overflow u128.
fn scaled(num: &str, scale: u128) -> Result<u128, NumError> {
    let (int, frac) = match num.split_once('.') {
        Some((int, frac)) if !frac.is_empty() => (int, frac),
        Some(_) => return Err(NumError::NotANumber),
        None => (num, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return Err(NumError::NotANumber);
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.len() > 30 {
        return Err(NumError::TooLarge);
    }
    if frac.len() > 20 {
        return Err(NumError::NotWhole);
    }
    let value = |s: &str| s.bytes().fold(0u128, |v, b| v * 10 + u128::from(b - b'0'));
    let pow = 10u128.pow(frac.len() as u32);
    let frac_scaled = value(frac) * scale;
    if !frac_scaled.is_multiple_of(pow) {
        return Err(NumError::NotWhole);
    }
    Ok(value(int) * scale + frac_scaled / pow)
}

/// `text` split into its number (digits and dots) and its unit (the rest,
/// trimmed).
fn split_unit(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

const TIME_HELP: &str = "a time is a number and ms or s (e.g. 200ms, 1.5s)";
const SIZE_HELP: &str = "a size is a number and B, KiB or MiB, or a bare number of bytes \
                         (e.g. 512, 4KiB, 1.5MiB)";

fn time_scale(unit: &str) -> Option<u128> {
    match unit {
        "ms" => Some(1),
        "s" => Some(1000),
        _ => None,
    }
}

fn size_scale(unit: &str) -> Option<u128> {
    match unit {
        "" | "B" => Some(1),
        "KiB" => Some(1 << 10),
        "MiB" => Some(1 << 20),
        // Only sizes of files (`--record-max 1GiB`) come near it.
        "GiB" => Some(1 << 30),
        _ => None,
    }
}

/// A duration in whole milliseconds.
fn time(text: &str, item: &str) -> Result<Millis, SpecError> {
    let (num, unit) = split_unit(text);
    if num.is_empty() {
        return Err(bad(text, item, format_args!("not a time: {TIME_HELP}")));
    }
    let Some(scale) = time_scale(unit) else {
        return Err(if unit.is_empty() {
            // The example repeats the number only while it is short: the
            // number is input, and an error stays one short line.
            let example = if num.len() <= 16 { num } else { "200" };
            bad(
                text,
                item,
                format_args!("a time needs a unit, ms or s (e.g. {example}ms)"),
            )
        } else {
            bad(
                text,
                item,
                format_args!(
                    "{} is not a time unit: use ms or s (e.g. 200ms)",
                    quote(unit)
                ),
            )
        });
    };
    whole(num, scale, text, item, &TIME)
}

/// How the errors of one kind of quantity are worded.
struct Quantity {
    /// "not a {noun}: {help}"
    noun: &'static str,
    help: &'static str,
    too_large: &'static str,
    not_whole: &'static str,
}

const TIME: Quantity = Quantity {
    noun: "time",
    help: TIME_HELP,
    too_large: "too long: a time is at most 4294967295ms (about 49 days)",
    not_whole: "not a whole number of milliseconds (e.g. 1.5s, 200ms)",
};

const SIZE: Quantity = Quantity {
    noun: "size",
    help: SIZE_HELP,
    too_large: "too large: a size is at most 18446744073709551615 bytes",
    not_whole: "not a whole number of bytes (e.g. 1.5KiB, 512)",
};

/// `num` times `scale`, as a whole `T`, or the error `q` words.
fn whole<T: TryFrom<u128>>(
    num: &str,
    scale: u128,
    text: &str,
    item: &str,
    q: &Quantity,
) -> Result<T, SpecError> {
    let too_large = || bad(text, item, q.too_large);
    match scaled(num, scale) {
        Ok(n) => T::try_from(n).map_err(|_| too_large()),
        Err(NumError::NotANumber) => Err(bad(
            text,
            item,
            format_args!("not a {}: {}", q.noun, q.help),
        )),
        Err(NumError::TooLarge) => Err(too_large()),
        Err(NumError::NotWhole) => Err(bad(text, item, q.not_whole)),
    }
}

/// A size in whole bytes.
fn size(text: &str, item: &str) -> Result<u64, SpecError> {
    let (num, unit) = split_unit(text);
    if num.is_empty() {
        return Err(bad(text, item, format_args!("not a size: {SIZE_HELP}")));
    }
    let Some(scale) = size_scale(unit) else {
        return Err(bad(
            text,
            item,
            format_args!(
                "{} is not a size unit: use B, KiB or MiB, or a bare number of bytes (e.g. 4KiB)",
                quote(unit)
            ),
        ));
    };
    whole(num, scale, text, item, &SIZE)
}

/// Bytes per second: a size, with or without `/s`, at least 1.
fn rate(text: &str, item: &str) -> Result<u64, SpecError> {
    let amount = text.strip_suffix("/s").unwrap_or(text).trim_end();
    if amount.contains('/') {
        return Err(bad(
            text,
            item,
            "a rate is per second: SIZE/s (e.g. 10KiB/s)",
        ));
    }
    match size(amount, item)? {
        0 => Err(bad(
            text,
            item,
            "a rate is at least 1 byte per second (to send nothing, use stall-writes)",
        )),
        bytes => Ok(bytes),
    }
}

/// `SIZE|TIME`: a number with a time unit is a time, anything else a size.
fn limit(text: &str, item: &str) -> Result<Limit, SpecError> {
    let (num, unit) = split_unit(text);
    if time_scale(unit).is_some() {
        return time(text, item).map(Limit::After);
    }
    if !num.is_empty() && size_scale(unit).is_none() {
        return Err(bad(
            text,
            item,
            format_args!(
                "{} is not a unit: use B, KiB or MiB for bytes sent, ms or s for time \
                 since accept (e.g. 1KiB, 2s)",
                quote(unit)
            ),
        ));
    }
    size(text, item).map(Limit::Bytes)
}

/// `SIZE[..SIZE][@TIME]`.
fn slice(text: &str, item: &str) -> Result<Slice, SpecError> {
    let (sizes, delay) = match text.split_once('@') {
        Some((sizes, delay)) => (sizes.trim(), time(delay.trim(), item)?),
        None => (text, 0),
    };
    let (min, max) = match sizes.split_once("..") {
        Some((min, max)) => (size(min.trim(), item)?, size(max.trim(), item)?),
        None => {
            let n = size(sizes, item)?;
            (n, n)
        }
    };
    if min == 0 {
        return Err(bad(
            sizes,
            item,
            "a slice is at least 1 byte (e.g. slice=1@5ms)",
        ));
    }
    if min > max {
        return Err(bad(
            sizes,
            item,
            "the smaller size comes first (e.g. slice=4..64@0ms)",
        ));
    }
    let (Ok(min), Ok(max)) = (u32::try_from(min), u32::try_from(max)) else {
        return Err(bad(
            sizes,
            item,
            "too large: a slice is at most 4294967295 bytes",
        ));
    };
    Ok(Slice { min, max, delay })
}

/// A probability, 0 to 1, kept in parts per million (finer is rounded).
fn probability(text: &str, item: &str) -> Result<Chance, SpecError> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(Chance((p * 1e6).round() as u32)),
        _ => Err(bad(
            text,
            item,
            "not a probability: use a number from 0 to 1 (e.g. 0.01)",
        )),
    }
}

/// `refuse`, `stall` or `delay:TIME`.
fn accept(text: &str, item: &str) -> Result<AcceptFault, SpecError> {
    match text {
        "refuse" => Ok(AcceptFault::Refuse),
        "stall" => Ok(AcceptFault::Stall),
        _ => match text.strip_prefix("delay:") {
            Some(t) if !t.trim().is_empty() => time(t.trim(), item).map(AcceptFault::Delay),
            _ => Err(bad(
                text,
                item,
                "valid are refuse, stall and delay:TIME (e.g. accept=delay:500ms)",
            )),
        },
    }
}

impl FaultPlan {
    /// No fault at all.
    pub fn is_none(&self) -> bool {
        self.faults.is_none() && self.accept.is_none()
    }

    /// Put `later` on top of this plan: every fault `later` sets replaces
    /// this plan's; the others stay.
    pub fn merge(&mut self, later: &FaultPlan) {
        let Faults {
            latency,
            bandwidth,
            read_bandwidth,
            slice,
            stall_writes,
            close_after,
            reset_after,
            slow_close,
            corrupt,
            rcvbuf,
            toxicity,
        } = &later.faults;
        let f = &mut self.faults;
        fn over<T: Copy>(to: &mut Option<T>, from: &Option<T>) {
            if from.is_some() {
                *to = *from;
            }
        }
        over(&mut f.latency, latency);
        over(&mut f.bandwidth, bandwidth);
        over(&mut f.read_bandwidth, read_bandwidth);
        over(&mut f.slice, slice);
        f.stall_writes |= stall_writes;
        over(&mut f.close_after, close_after);
        over(&mut f.reset_after, reset_after);
        over(&mut f.slow_close, slow_close);
        over(&mut f.corrupt, corrupt);
        over(&mut f.rcvbuf, rcvbuf);
        over(&mut f.toxicity, toxicity);
        over(&mut self.accept, &later.accept);
    }

    /// Several `--fault` values as one plan, later ones winning.
    pub fn fold<'a>(plans: impl IntoIterator<Item = &'a FaultPlan>) -> FaultPlan {
        let mut all = FaultPlan::default();
        for plan in plans {
            all.merge(plan);
        }
        all
    }
}

/// `1500` → `1500ms`, `2000` → `2s`.
struct Time(Millis);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ms if ms != 0 && ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// `512` → `512`, `4096` → `4KiB`, `1048576` → `1MiB`.
struct Size(u64);

impl Size {
    fn unit(&self) -> Option<(u64, &'static str)> {
        const MIB: u64 = 1 << 20;
        match self.0 {
            0 => None,
            b if b.is_multiple_of(MIB) => Some((b / MIB, "MiB")),
            b if b.is_multiple_of(1024) => Some((b / 1024, "KiB")),
            _ => None,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit() {
            Some((n, unit)) => write!(f, "{n}{unit}"),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `10240` → `10KiB/s`, `100` → `100B/s`.
struct Rate(u64);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = Size(self.0);
        match size.unit() {
            Some(_) => write!(f, "{size}/s"),
            None => write!(f, "{}B/s", self.0),
        }
    }
}

struct LimitText(Limit);

impl fmt::Display for LimitText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Limit::Bytes(b) => Size(b).fmt(f),
            Limit::After(ms) => Time(ms).fmt(f),
        }
    }
}

/// The canonical spec of `faults` and `accept`: `none`, or the faults in
/// the order of the grammar's table, `, ` between them.
fn write_spec(
    f: &mut fmt::Formatter<'_>,
    faults: &Faults,
    accept: Option<AcceptFault>,
) -> fmt::Result {
    let Faults {
        latency,
        bandwidth,
        read_bandwidth,
        slice,
        stall_writes,
        close_after,
        reset_after,
        slow_close,
        corrupt,
        rcvbuf,
        toxicity,
    } = faults;
    let mut items: Vec<String> = Vec::new();
    if let Some(l) = latency {
        items.push(match l.jitter {
            0 => format!("latency={}", Time(l.delay)),
            j => format!("latency={}~{}", Time(l.delay), Time(j)),
        });
    }
    if let Some(b) = bandwidth {
        items.push(format!("bandwidth={}", Rate(*b)));
    }
    if let Some(b) = read_bandwidth {
        items.push(format!("read-bandwidth={}", Rate(*b)));
    }
    if let Some(s) = slice {
        let sizes = if s.min == s.max {
            Size(s.min.into()).to_string()
        } else {
            format!("{}..{}", Size(s.min.into()), Size(s.max.into()))
        };
        items.push(format!("slice={sizes}@{}", Time(s.delay)));
    }
    if *stall_writes {
        items.push("stall-writes".to_owned());
    }
    if let Some(l) = close_after {
        items.push(format!("close-after={}", LimitText(*l)));
    }
    if let Some(l) = reset_after {
        items.push(format!("reset-after={}", LimitText(*l)));
    }
    if let Some(t) = slow_close {
        items.push(format!("slow-close={}", Time(*t)));
    }
    if let Some(p) = corrupt {
        items.push(format!("corrupt={}", chance_text(*p)));
    }
    if let Some(b) = rcvbuf {
        items.push(format!("rcvbuf={}", Size((*b).into())));
    }
    if let Some(p) = toxicity {
        items.push(format!("toxicity={}", chance_text(*p)));
    }
    match accept {
        Some(AcceptFault::Refuse) => items.push("accept=refuse".to_owned()),
        Some(AcceptFault::Stall) => items.push("accept=stall".to_owned()),
        Some(AcceptFault::Delay(ms)) => items.push(format!("accept=delay:{}", Time(ms))),
        None => {}
    }
    if items.is_empty() {
        f.write_str("none")
    } else {
        f.write_str(&items.join(", "))
    }
}

/// A chance as the shortest decimal that parses back to it: `0.01`, `1`.
fn chance_text(c: Chance) -> String {
    let whole = c.0 / 1_000_000;
    let frac = c.0 % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl fmt::Display for FaultPlan {
    /// The canonical spec; `parse` gives this plan back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_spec(f, &self.faults, self.accept)
    }
}

impl fmt::Display for Faults {
    /// The canonical spec of these faults (`none` if there are none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_spec(f, self, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(spec: &str) -> FaultPlan {
        parse(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"))
    }

    fn faults(faults: Faults) -> FaultPlan {
        FaultPlan {
            faults,
            accept: None,
        }
    }

    fn err(spec: &str) -> String {
        match parse(spec) {
            Ok(plan) => panic!("{spec:?} parsed as {plan:?}"),
            Err(e) => {
                let line = e.to_string();
                assert!(!line.contains('\n'), "{line:?}");
                assert!(!line.chars().any(char::is_control), "{line:?}");
                line
            }
        }
    }

    /// Every example of the issue, its plan, and its canonical spec.
    #[test]
    fn the_examples_parse_to_their_faults_and_print_canonically() {
        let f = Faults::default;
        let cases: Vec<(&str, FaultPlan, &str)> = vec![
            (
                "latency=200ms~50ms",
                faults(Faults {
                    latency: Some(Latency {
                        delay: 200,
                        jitter: 50,
                    }),
                    ..f()
                }),
                "latency=200ms~50ms",
            ),
            (
                "bandwidth=10KiB/s",
                faults(Faults {
                    bandwidth: Some(10 * 1024),
                    ..f()
                }),
                "bandwidth=10KiB/s",
            ),
            (
                "read-bandwidth=1KiB/s",
                faults(Faults {
                    read_bandwidth: Some(1024),
                    ..f()
                }),
                "read-bandwidth=1KiB/s",
            ),
            (
                "slice=1@5ms",
                faults(Faults {
                    slice: Some(Slice {
                        min: 1,
                        max: 1,
                        delay: 5,
                    }),
                    ..f()
                }),
                "slice=1@5ms",
            ),
            (
                "slice=4..64@0ms",
                faults(Faults {
                    slice: Some(Slice {
                        min: 4,
                        max: 64,
                        delay: 0,
                    }),
                    ..f()
                }),
                "slice=4..64@0ms",
            ),
            (
                "stall-writes",
                faults(Faults {
                    stall_writes: true,
                    ..f()
                }),
                "stall-writes",
            ),
            (
                "close-after=1KiB",
                faults(Faults {
                    close_after: Some(Limit::Bytes(1024)),
                    ..f()
                }),
                "close-after=1KiB",
            ),
            (
                "close-after=2s",
                faults(Faults {
                    close_after: Some(Limit::After(2000)),
                    ..f()
                }),
                "close-after=2s",
            ),
            (
                "reset-after=512",
                faults(Faults {
                    reset_after: Some(Limit::Bytes(512)),
                    ..f()
                }),
                "reset-after=512",
            ),
            (
                "slow-close=3s",
                faults(Faults {
                    slow_close: Some(3000),
                    ..f()
                }),
                "slow-close=3s",
            ),
            (
                "corrupt=0.01",
                faults(Faults {
                    corrupt: Some(Chance(10_000)),
                    ..f()
                }),
                "corrupt=0.01",
            ),
            (
                "rcvbuf=4KiB",
                faults(Faults {
                    rcvbuf: Some(4096),
                    ..f()
                }),
                "rcvbuf=4KiB",
            ),
            (
                "accept=refuse",
                FaultPlan {
                    accept: Some(AcceptFault::Refuse),
                    ..FaultPlan::default()
                },
                "accept=refuse",
            ),
            (
                "accept=stall",
                FaultPlan {
                    accept: Some(AcceptFault::Stall),
                    ..FaultPlan::default()
                },
                "accept=stall",
            ),
            (
                "accept=delay:500ms",
                FaultPlan {
                    accept: Some(AcceptFault::Delay(500)),
                    ..FaultPlan::default()
                },
                "accept=delay:500ms",
            ),
            (
                "toxicity=0.5",
                faults(Faults {
                    toxicity: Some(Chance(500_000)),
                    ..f()
                }),
                "toxicity=0.5",
            ),
        ];
        for (spec, plan, canonical) in cases {
            assert_eq!(ok(spec), plan, "{spec}");
            assert_eq!(plan.to_string(), canonical, "{spec}");
        }
    }

    #[test]
    fn a_list_prints_in_canonical_order_and_units() {
        let plan = ok(
            " accept=delay:1000ms , stall-writes,latency = 1.5s ~ 250 ms,\
                        bandwidth=2048,rcvbuf=1MiB,close-after=0,reset-after=0ms ",
        );
        assert_eq!(
            plan.to_string(),
            "latency=1500ms~250ms, bandwidth=2KiB/s, stall-writes, close-after=0, \
             reset-after=0ms, rcvbuf=1MiB, accept=delay:1s"
        );
        assert_eq!(plan.faults.close_after, Some(Limit::Bytes(0)));
        assert_eq!(plan.faults.reset_after, Some(Limit::After(0)));
        assert_eq!(ok(&plan.to_string()), plan);
        // Rates that are not whole KiB keep a unit; a latency without
        // jitter leaves it out.
        assert_eq!(
            ok("bandwidth=100,latency=0ms").to_string(),
            "latency=0ms, bandwidth=100B/s"
        );
    }

    #[test]
    fn no_faults_is_none_and_parses_back() {
        assert_eq!(FaultPlan::default().to_string(), "none");
        assert_eq!(Faults::default().to_string(), "none");
        assert_eq!(ok("none"), FaultPlan::default());
        assert_eq!(ok("  none "), FaultPlan::default());
        assert!(ok("none").is_none());
        assert!(!ok("accept=stall").is_none());
        let e = err("none,latency=1ms");
        assert!(e.starts_with("'none' in 'none,latency=1ms': "), "{e}");
        assert!(e.contains("stands alone"), "{e}");
    }

    #[test]
    fn faults_display_leaves_out_the_accept_fault() {
        let plan = ok("accept=refuse,slow-close=1ms");
        assert_eq!(plan.faults.to_string(), "slow-close=1ms");
        assert_eq!(plan.to_string(), "slow-close=1ms, accept=refuse");
    }

    #[test]
    fn units_decimals_and_bare_numbers() {
        let t = |s: &str| ok(&format!("slow-close={s}")).faults.slow_close.unwrap();
        assert_eq!(t("1.5s"), 1500);
        assert_eq!(t("0.001s"), 1);
        assert_eq!(t("1.250s"), 1250);
        assert_eq!(t("007ms"), 7);
        assert_eq!(t("4294967295ms"), u32::MAX);
        assert_eq!(t("4294967.295s"), u32::MAX);
        let b = |s: &str| ok(&format!("close-after={s}")).faults.close_after.unwrap();
        assert_eq!(b("1.5KiB"), Limit::Bytes(1536));
        assert_eq!(b("0.5MiB"), Limit::Bytes(512 * 1024));
        assert_eq!(b("100B"), Limit::Bytes(100));
        assert_eq!(b("100"), Limit::Bytes(100));
        assert_eq!(b("100 B"), Limit::Bytes(100));
        // 2^-20 MiB is exactly one byte.
        assert_eq!(b("0.00000095367431640625MiB"), Limit::Bytes(1));
        assert_eq!(b("1.5s"), Limit::After(1500));
        assert_eq!(b("18446744073709551615"), Limit::Bytes(u64::MAX));
        // A rate with or without /s.
        assert_eq!(ok("bandwidth=10KiB").faults.bandwidth, Some(10240));
        assert_eq!(ok("bandwidth=10KiB /s").faults.bandwidth, Some(10240));
        assert_eq!(ok("bandwidth=1.5KiB/s").to_string(), "bandwidth=1536B/s");
        // Probabilities at the ends, and -0 printed as 0.
        assert_eq!(ok("corrupt=0").faults.corrupt, Some(Chance(0)));
        assert_eq!(ok("corrupt=1").faults.corrupt, Some(Chance::ALWAYS));
        assert_eq!(ok("toxicity=-0").to_string(), "toxicity=0");
        // A slice without a delay has none.
        assert_eq!(ok("slice=4..4").to_string(), "slice=4@0ms");
        assert_eq!(ok("slice=1KiB..2KiB@1s").to_string(), "slice=1KiB..2KiB@1s");
    }

    #[test]
    fn a_repeated_fault_takes_the_later_value() {
        assert_eq!(
            ok("latency=1ms,latency=2ms").to_string(),
            "latency=2ms",
            "in one spec"
        );
        let plans = [
            ok("latency=1ms~1ms,bandwidth=1KiB,stall-writes,accept=stall"),
            ok("latency=5ms,corrupt=0.5"),
            ok("accept=refuse"),
            ok("none"),
        ];
        assert_eq!(
            FaultPlan::fold(&plans).to_string(),
            "latency=5ms, bandwidth=1KiB/s, stall-writes, corrupt=0.5, accept=refuse"
        );
        assert_eq!(FaultPlan::fold(&[]), FaultPlan::default());
    }

    #[test]
    fn unknown_fault_names_it_and_lists_the_valid_ones() {
        let e = err("latncy=200ms");
        assert!(
            e.starts_with("unknown fault 'latncy' (did you mean latency?): valid faults are latency, bandwidth, read-bandwidth, slice, stall-writes,"),
            "{e}"
        );
        assert!(e.ends_with("toxicity, accept, none"), "{e}");
        // Case-sensitive, but the hint helps.
        assert!(err("Latency=1ms").contains("'Latency' (did you mean latency?)"));
        // Nothing close: no hint.
        let e = err("stall-writes,frobnicate");
        assert!(e.starts_with("unknown fault 'frobnicate': valid"), "{e}");
        assert!(err("=5").starts_with("unknown fault '': valid"));
        assert_eq!(parse("xyzzy").unwrap_err().part(), "xyzzy");
    }

    #[test]
    fn a_missing_or_unwanted_value_says_the_syntax() {
        assert_eq!(
            err("latency"),
            "'latency': latency needs a value: latency=TIME[~TIME] (e.g. latency=200ms~50ms)"
        );
        assert!(
            err("accept=")
                .starts_with("'accept=': accept needs a value: accept=refuse|stall|delay:TIME")
        );
        assert_eq!(
            err("stall-writes=yes"),
            "'stall-writes=yes': stall-writes takes no value"
        );
    }

    #[test]
    fn empty_specs_and_items_are_errors() {
        assert!(err("").starts_with("empty fault spec: "));
        assert!(err("  ").contains("valid faults are latency"));
        let e = err("latency=1ms,,stall-writes");
        assert!(
            e.starts_with("'latency=1ms,,stall-writes': empty fault between commas"),
            "{e}"
        );
        assert!(err("latency=1ms,").contains("empty fault"));
    }

    #[test]
    fn bad_times_name_the_part_and_the_units() {
        assert_eq!(
            err("latency=200mz"),
            "'200mz' in 'latency=200mz': 'mz' is not a time unit: use ms or s (e.g. 200ms)"
        );
        assert_eq!(
            err("latency=200"),
            "'200' in 'latency=200': a time needs a unit, ms or s (e.g. 200ms)"
        );
        assert_eq!(
            err("latency=200ms~fast"),
            "'fast' in 'latency=200ms~fast': not a time: a time is a number and ms or s (e.g. 200ms, 1.5s)"
        );
        assert!(err("slow-close=-1s").starts_with("'-1s' in 'slow-close=-1s': not a time"));
        assert!(err("slow-close=1.s").contains("not a time"));
        assert!(err("slow-close=.5s").contains("not a time"));
        assert!(err("slow-close=1.2.3s").contains("not a time"));
        assert!(err("slow-close=2S").contains("'S' is not a time unit"));
        let e = err("slow-close=0.5ms");
        assert_eq!(
            e,
            "'0.5ms' in 'slow-close=0.5ms': not a whole number of milliseconds (e.g. 1.5s, 200ms)"
        );
        assert!(err("slow-close=1.0001s").contains("not a whole number"));
        assert!(
            err("slow-close=4294967296ms").contains("too long: a time is at most 4294967295ms")
        );
        assert!(err("slow-close=4294968s").contains("too long"));
        assert!(err(&format!("slow-close={}s", "9".repeat(100))).contains("too long"));
        assert!(err(&format!("slow-close=1.{}1s", "0".repeat(100))).contains("not a whole number"));
        assert!(err("accept=delay:5").contains("'5' in 'accept=delay:5': a time needs a unit"));
    }

    #[test]
    fn bad_sizes_name_the_part_and_the_units() {
        assert_eq!(
            err("rcvbuf=4KB"),
            "'4KB' in 'rcvbuf=4KB': 'KB' is not a size unit: use B, KiB or MiB, or a bare number of bytes (e.g. 4KiB)"
        );
        assert!(err("rcvbuf=4kib").contains("'kib' is not a size unit"));
        assert!(err("rcvbuf=big").starts_with(
            "'big' in 'rcvbuf=big': not a size: a size is a number and B, KiB or MiB"
        ));
        assert_eq!(
            err("rcvbuf=0.1KiB"),
            "'0.1KiB' in 'rcvbuf=0.1KiB': not a whole number of bytes (e.g. 1.5KiB, 512)"
        );
        assert!(err("rcvbuf=0").contains("a receive buffer is 1 byte to 4294967295 bytes"));
        assert!(err("rcvbuf=4096MiB").contains("a receive buffer is 1 byte to"));
        assert_eq!(ok("rcvbuf=4294967295").faults.rcvbuf, Some(u32::MAX));
        assert!(err("close-after=18446744073709551616").contains("too large: a size is at most"));
        assert!(
            err("close-after=5min")
                .contains("'min' is not a unit: use B, KiB or MiB for bytes sent, ms or s")
        );
        assert!(err("close-after=soon").contains("not a size"));
    }

    #[test]
    fn bad_rates_say_per_second_and_at_least_one() {
        assert_eq!(
            err("bandwidth=10KiB/m"),
            "'10KiB/m' in 'bandwidth=10KiB/m': a rate is per second: SIZE/s (e.g. 10KiB/s)"
        );
        assert!(
            err("read-bandwidth=0/s").contains(
                "a rate is at least 1 byte per second (to send nothing, use stall-writes)"
            )
        );
        assert!(err("bandwidth=10KB/s").contains("'KB' is not a size unit"));
    }

    #[test]
    fn bad_slices_say_the_order_and_the_bounds() {
        assert_eq!(
            err("slice=64..4@0ms"),
            "'64..4' in 'slice=64..4@0ms': the smaller size comes first (e.g. slice=4..64@0ms)"
        );
        assert!(err("slice=0@1ms").starts_with("'0' in 'slice=0@1ms': a slice is at least 1 byte"));
        assert!(err("slice=0..4").contains("at least 1 byte"));
        assert!(err("slice=1..8TiB").contains("'TiB' is not a size unit"));
        assert!(err("slice=1..4096MiB").contains("too large: a slice is at most 4294967295 bytes"));
        assert!(err("slice=4@").contains("not a time"));
        assert!(err("slice=4@1").contains("a time needs a unit"));
        assert!(err("slice=4...8@1ms").contains("'.8' in 'slice=4...8@1ms': not a size"));
    }

    #[test]
    fn bad_probabilities_and_accepts_list_what_is_valid() {
        for p in ["1.5", "-0.1", "NaN", "inf", "half", "1e9"] {
            let e = err(&format!("corrupt={p}"));
            assert_eq!(
                e,
                format!(
                    "'{p}' in 'corrupt={p}': not a probability: use a number from 0 to 1 (e.g. 0.01)"
                )
            );
        }
        assert!(err("toxicity=2").contains("not a probability"));
        assert_eq!(
            err("accept=refuze"),
            "'refuze' in 'accept=refuze': valid are refuse, stall and delay:TIME (e.g. accept=delay:500ms)"
        );
        assert!(err("accept=delay").contains("valid are refuse, stall and delay:TIME"));
        assert!(err("accept=delay:").contains("valid are refuse"));
        assert!(err("accept=delay:1h").contains("'h' is not a time unit"));
    }

    /// What cannot be printed raw is escaped, and a huge spec gives a short
    /// line.
    #[test]
    fn errors_are_one_short_escaped_line() {
        let e = err("lat\u{1b}[2Jency=1ms");
        assert!(e.starts_with("unknown fault 'lat\\u{1b}[2Jency'"), "{e}");
        let e = err("latency=1\u{1b}ms");
        assert!(e.contains("'\\u{1b}ms' is not a time unit"), "{e}");
        // Whitespace between a number and its unit is only spacing.
        assert_eq!(ok("latency=1\nms").faults.latency.map(|l| l.delay), Some(1));
        let huge = format!("latency={}", "x".repeat(1_000_000));
        let e = err(&huge);
        assert!(e.len() < 500, "{} bytes", e.len());
        assert!(e.contains("more bytes)"), "{e}");
        assert_eq!(parse(&huge).unwrap_err().part().len(), 1_000_000);
        let e = err(&"\u{202e}".repeat(10_000));
        assert!(e.len() < 800 && e.contains("\\u{202e}"), "{e}");
        // A long number without a unit is quoted cut short, never whole.
        let e = err(&format!("latency={}", "1".repeat(1000)));
        assert!(e.len() < 500, "{} bytes: {e}", e.len());
        assert!(
            e.ends_with("a time needs a unit, ms or s (e.g. 200ms)"),
            "{e}"
        );
        assert!(err("latency=1.5").ends_with("(e.g. 1.5ms)"));
    }

    fn millis() -> impl Strategy<Value = Millis> {
        prop_oneof![
            Just(0),
            Just(u32::MAX),
            (0u32..100).prop_map(|s| s * 1000),
            any::<u32>(),
        ]
    }

    fn bytes() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(u64::MAX),
            (0u64..1 << 20).prop_map(|n| n << 10),
            (0u64..1 << 20).prop_map(|n| n << 20),
            any::<u64>(),
        ]
    }

    fn rate_value() -> impl Strategy<Value = u64> {
        bytes().prop_map(|b| b.max(1))
    }

    fn chance() -> impl Strategy<Value = Chance> {
        prop_oneof![
            Just(Chance(0)),
            Just(Chance::ALWAYS),
            Just(Chance(1)),
            (0..=1_000_000u32).prop_map(Chance),
        ]
    }

    fn limit_value() -> impl Strategy<Value = Limit> {
        prop_oneof![
            bytes().prop_map(Limit::Bytes),
            millis().prop_map(Limit::After)
        ]
    }

    fn slice_value() -> impl Strategy<Value = Slice> {
        (1u32.., any::<u32>(), millis()).prop_map(|(a, b, delay)| {
            let b = b.max(1);
            Slice {
                min: a.min(b),
                max: a.max(b),
                delay,
            }
        })
    }

    fn plan() -> impl Strategy<Value = FaultPlan> {
        let timing = (
            proptest::option::of(
                (millis(), millis()).prop_map(|(delay, jitter)| Latency { delay, jitter }),
            ),
            proptest::option::of(rate_value()),
            proptest::option::of(rate_value()),
            proptest::option::of(slice_value()),
            any::<bool>(),
        );
        let closing = (
            proptest::option::of(limit_value()),
            proptest::option::of(limit_value()),
            proptest::option::of(millis()),
        );
        let rest = (
            proptest::option::of(chance()),
            proptest::option::of(1u32..),
            proptest::option::of(chance()),
            proptest::option::of(prop_oneof![
                Just(AcceptFault::Refuse),
                Just(AcceptFault::Stall),
                millis().prop_map(AcceptFault::Delay),
            ]),
        );
        (timing, closing, rest).prop_map(
            |(
                (latency, bandwidth, read_bandwidth, slice, stall_writes),
                (close_after, reset_after, slow_close),
                (corrupt, rcvbuf, toxicity, accept),
            )| FaultPlan {
                faults: Faults {
                    latency,
                    bandwidth,
                    read_bandwidth,
                    slice,
                    stall_writes,
                    close_after,
                    reset_after,
                    slow_close,
                    corrupt,
                    rcvbuf,
                    toxicity,
                },
                accept,
            },
        )
    }

    proptest! {
        /// Every valid plan prints as a spec that parses back to it, and
        /// folding its faults one `--fault` at a time gives it too.
        #[test]
        fn a_plan_round_trips_through_its_spec(plan in plan()) {
            let spec = plan.to_string();
            prop_assert_eq!(parse(&spec), Ok(plan.clone()), "{}", spec);
            let one_by_one: Vec<FaultPlan> = spec.split(", ").map(ok).collect();
            prop_assert_eq!(FaultPlan::fold(&one_by_one), plan);
        }

        /// Mangled specs never panic, and what parses prints canonically.
        #[test]
        fn any_text_parses_or_gives_one_line(spec in "[a-z=~@.:/,0-9 -]{0,40}") {
            match parse(&spec) {
                Ok(plan) => prop_assert_eq!(parse(&plan.to_string()), Ok(plan)),
                Err(e) => prop_assert!(!e.to_string().contains('\n')),
            }
        }
    }
}
