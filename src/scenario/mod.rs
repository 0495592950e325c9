//! Scenarios: a scripted server, as a versioned RON file
//! (`NAME.muxscope-scenario.ron`).
//!
//! A scenario says how the bytes a client sends split into messages
//! ([`framing`]), which rules answer them (a trigger, then actions: delay,
//! reply, close or fault), what happens to a message no rule matches
//! ([`Otherwise`]), and which faults every connection gets. The README's
//! "Scenarios" section is the format reference.
//!
//! This module is the file format only, shared with the web viewer (which
//! shows and edits scenarios but never runs them). Running one is native:
//! [`compiled`] validates a file once (regexes, templates, times, faults)
//! into a [`Scenario`] that the engine fires rules on.
//!
//! Files are untrusted input: parsing never panics, and every error says
//! where (line and column, or the rule number) and what would be valid.

pub mod framing;
pub mod report;

#[cfg(not(target_arch = "wasm32"))]
pub mod compiled;
#[cfg(not(target_arch = "wasm32"))]
mod pattern;
#[cfg(not(target_arch = "wasm32"))]
mod template;

pub use framing::{BytesSpec, Framer, Framing, FramingError, Message};
pub use report::{TryOutcome, TryReport, TryStep, TryTrigger};

#[cfg(not(target_arch = "wasm32"))]
pub use compiled::{Context, Firing, RuleState, Scenario, Then, Trigger};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::path::Path;

/// The version this build writes, and the newest it reads.
pub const SCENARIO_VERSION: u32 = 1;
/// Scenario files are named `NAME.muxscope-scenario.ron`, so they are told
/// apart from layouts (`.muxscope.ron`) by name alone.
pub const FILE_SUFFIX: &str = ".muxscope-scenario.ron";

/// A scenario file as written: nothing is checked beyond its shape and its
/// framing until it is compiled (natively) into a `Scenario`.
///
/// `Option` fields are written bare in RON (`delay: "200ms"`, not
/// `Some("200ms")`) and left out when absent; see [`parse`] and [`to_ron`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Required, so a file from a newer muxscope is refused rather than
    /// misread.
    pub version: u32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// How bytes split into messages; `Raw` (each read) if left out.
    #[serde(default)]
    pub framing: Framing,
    /// The largest message a client may send, as a SIZE of the `--fault`
    /// grammar (`"64KiB"`); [`framing::DEFAULT_MAX_MESSAGE`] if left out.
    #[serde(default)]
    pub max_message: Option<String>,
    /// What a message no rule matches gets.
    #[serde(default)]
    pub otherwise: Otherwise,
    /// Tried in order; the first that matches (and is not used up) fires.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// `--fault` specs every connection gets, later ones winning.
    #[serde(default)]
    pub faults: Vec<String>,
}

impl Default for ScenarioFile {
    /// An echo server: no rules, raw framing, echo.
    fn default() -> Self {
        ScenarioFile {
            version: SCENARIO_VERSION,
            name: None,
            description: None,
            framing: Framing::Raw,
            max_message: None,
            otherwise: Otherwise::Echo,
            rules: Vec::new(),
            faults: Vec::new(),
        }
    }
}

/// What a message no rule matches gets.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Otherwise {
    /// Sent back as received, framing included (a line with its line end).
    #[default]
    Echo,
    /// Thrown away.
    Discard,
    /// Nothing is sent; the user answers by hand (the Inject pane).
    Manual,
}

impl From<Otherwise> for crate::protocol::Mode {
    /// The server mode that treats every message the same way.
    fn from(o: Otherwise) -> Self {
        match o {
            Otherwise::Echo => crate::protocol::Mode::Echo,
            Otherwise::Discard => crate::protocol::Mode::Discard,
            Otherwise::Manual => crate::protocol::Mode::Manual,
        }
    }
}

/// One rule: when it fires, and what it does then, in order: wait
/// `delay`, `send`, then `then`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub on: TriggerSpec,
    #[serde(default)]
    pub send: Option<ReplySpec>,
    /// `"TIME"` or `"TIME~TIME"` (delay ± jitter), as in `latency=`.
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub then: Option<ThenSpec>,
    /// How often the rule may fire per connection; always if absent.
    #[serde(default)]
    pub times: Option<u32>,
}

/// When a rule fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum TriggerSpec {
    /// The client connected.
    Connect,
    /// A message matched.
    Message(PatternSpec),
    /// The client has sent nothing for this TIME (once per silence).
    Idle(String),
    /// The client half-closed (sent FIN).
    HalfClose,
}

/// What a message must look like. Text patterns compare the message's
/// bytes with the string's UTF-8 bytes; hex patterns take the grammar of
/// the Inject pane (`01 ff`, `01ff`, `0x01,0xff`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum PatternSpec {
    /// Every message.
    Any,
    /// The whole message is this text.
    Exact(String),
    /// The message starts with this text.
    Prefix(String),
    /// The message contains this text.
    Contains(String),
    /// The regex (`regex` crate syntax, unanchored) matches the message.
    Regex(String),
    /// The whole message is these bytes.
    Hex(String),
    /// The message starts with these bytes.
    HexPrefix(String),
    /// The message is as long as `pattern`, and equal to it in every bit
    /// `mask` sets.
    HexMask { pattern: String, mask: String },
}

/// A reply: a template rendered when the rule fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplySpec {
    /// The string's UTF-8 bytes (RON escapes only: no second escape pass).
    Text(String),
    /// Hex bytes.
    Hex(String),
    /// The inner reply wrapped in the scenario's framing.
    Framed(Box<ReplySpec>),
}

/// What a rule does after its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThenSpec {
    /// FIN, once what was sent has gone out.
    Close,
    /// RST.
    Reset,
    /// Stop reading the client (its sends back up).
    PauseReading,
    /// These faults (the `--fault` grammar) act on the connection from now.
    Fault(String),
}

/// Writes `Option` fields bare and leaves out absent ones in text formats
/// (RON), where [`parse`] reads them back with implicit `Some`; binary
/// formats (postcard) get every field, as the derived `Deserialize` wants.
fn optional<S: SerializeStruct, T: Serialize>(
    s: &mut S,
    key: &'static str,
    value: &Option<T>,
    readable: bool,
) -> Result<(), S::Error> {
    match value {
        Some(v) if readable => s.serialize_field(key, v),
        None if readable => s.skip_field(key),
        _ => s.serialize_field(key, value),
    }
}

impl Serialize for ScenarioFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let readable = serializer.is_human_readable();
        let mut s = serializer.serialize_struct("ScenarioFile", 8)?;
        s.serialize_field("version", &self.version)?;
        optional(&mut s, "name", &self.name, readable)?;
        optional(&mut s, "description", &self.description, readable)?;
        s.serialize_field("framing", &self.framing)?;
        optional(&mut s, "max_message", &self.max_message, readable)?;
        s.serialize_field("otherwise", &self.otherwise)?;
        s.serialize_field("rules", &self.rules)?;
        s.serialize_field("faults", &self.faults)?;
        s.end()
    }
}

impl Serialize for RuleSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let readable = serializer.is_human_readable();
        let mut s = serializer.serialize_struct("RuleSpec", 5)?;
        s.serialize_field("on", &self.on)?;
        optional(&mut s, "send", &self.send, readable)?;
        optional(&mut s, "delay", &self.delay, readable)?;
        optional(&mut s, "then", &self.then, readable)?;
        optional(&mut s, "times", &self.times, readable)?;
        s.end()
    }
}

/// Why a scenario file could not be read.
pub type ScenarioError = crate::ron_file::FileError;

/// RON as scenario files use it: `Option` values written bare.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// Only the version, read first so a newer file is refused for what it is
/// rather than for a field this build does not know.
#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    version: Option<u32>,
}

/// Parse scenario text. Checks the shape (unknown fields are errors) and
/// the framing; rules are checked when the file is compiled.
pub fn parse(text: &str) -> Result<ScenarioFile, String> {
    let probe: VersionProbe = ron_options().from_str(text).map_err(|e| {
        format!(
            "{} (this is not a muxscope scenario, or it is cut short)",
            crate::ron_file::error_message(&e)
        )
    })?;
    match probe.version {
        Some(SCENARIO_VERSION) => {}
        None => {
            return Err(format!(
                "no version: a scenario starts with `(version: {SCENARIO_VERSION}, ...`"
            ));
        }
        Some(0) => {
            return Err(format!(
                "version 0 is not a scenario version: write `version: {SCENARIO_VERSION}`"
            ));
        }
        Some(newer) => {
            return Err(format!(
                "written by a newer muxscope (scenario version {newer}; this one reads up to \
                 {SCENARIO_VERSION}). Update muxscope to use it; the file was left as it is."
            ));
        }
    }
    let file: ScenarioFile = ron_options()
        .from_str(text)
        .map_err(|e| crate::ron_file::error_message(&e))?;
    file.framing.check().map_err(|e| format!("framing: {e}"))?;
    Ok(file)
}

/// The file as RON, in the names the examples use; [`parse`] gives it back.
pub fn to_ron(file: &ScenarioFile) -> String {
    crate::ron_file::to_pretty(file)
}

/// Read and parse a scenario file. The file is only read, never written.
pub fn load(path: &Path) -> Result<ScenarioFile, ScenarioError> {
    let error = |message: String| ScenarioError {
        path: path.to_owned(),
        message,
    };
    let text = crate::ron_file::read_text(path, "scenario").map_err(error)?;
    parse(&text).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"(
        version: 1,
        framing: Lines,
        rules: [
            (on: Message(Exact("PING")), send: Text("+PONG\r\n")),
            (on: Idle("2s"), send: Text("?"), delay: "1s~10ms", times: 1),
            (on: Message(HexMask(pattern: "01", mask: "0f")), then: Fault("latency=1s")),
        ],
    )"#;

    #[test]
    fn options_are_written_bare_and_read_back() {
        let file = parse(LINES).unwrap();
        assert_eq!(file.rules[1].delay.as_deref(), Some("1s~10ms"));
        assert_eq!(file.rules[1].times, Some(1));
        assert_eq!(file.otherwise, Otherwise::Echo);
        let text = to_ron(&file);
        assert!(text.contains("delay: \"1s~10ms\""), "{text}");
        assert!(!text.contains("Some("), "{text}");
        assert!(!text.contains("None"), "{text}");
        assert_eq!(parse(&text).unwrap(), file);
        // Explicit Some(...) is read too.
        let explicit = LINES.replace("times: 1", "times: Some(1)");
        assert_eq!(parse(&explicit).unwrap(), file);
    }

    /// Over the wire (postcard, not self-describing) every field is sent.
    #[test]
    fn postcard_round_trips() {
        let file = parse(LINES).unwrap();
        let bytes = postcard::to_allocvec(&file).unwrap();
        assert_eq!(postcard::from_bytes::<ScenarioFile>(&bytes).unwrap(), file);
        let empty = ScenarioFile::default();
        let bytes = postcard::to_allocvec(&empty).unwrap();
        assert_eq!(postcard::from_bytes::<ScenarioFile>(&bytes).unwrap(), empty);
    }

    #[test]
    fn versions_are_required_and_newer_ones_refused() {
        let e = parse("(version: 2)").unwrap_err();
        assert!(
            e.starts_with("written by a newer muxscope (scenario version 2"),
            "{e}"
        );
        assert!(parse("(rules: [])").unwrap_err().starts_with("no version"));
        assert!(
            parse("(version: 0)")
                .unwrap_err()
                .contains("write `version: 1`")
        );
        let e = parse("(version: 1, rules: [").unwrap_err();
        assert!(e.starts_with("line 1, column "), "{e}");
        assert_eq!(parse("(version: 1)").unwrap(), ScenarioFile::default());
    }

    #[test]
    fn unknown_fields_are_errors_with_a_position() {
        let e = parse("(\n  version: 1,\n  framng: Lines,\n)").unwrap_err();
        assert!(e.starts_with("line 3, column "), "{e}");
        assert!(e.contains("framng"), "{e}");
        let e = parse("(version: 1, rules: [(on: Connect, sned: Text(\"x\"))])").unwrap_err();
        assert!(e.contains("sned"), "{e}");
    }

    #[test]
    fn bad_framing_is_refused_at_parse() {
        let e = parse("(version: 1, framing: LengthPrefix(width: 3))").unwrap_err();
        assert!(e.starts_with("framing: "), "{e}");
        assert!(e.contains("1, 2, 4 or 8"), "{e}");
    }

    #[test]
    fn otherwise_maps_to_the_server_mode() {
        use crate::protocol::Mode;
        assert_eq!(Mode::from(Otherwise::Discard), Mode::Discard);
        assert_eq!(Mode::from(Otherwise::Manual), Mode::Manual);
        assert_eq!(Mode::from(Otherwise::Echo), Mode::Echo);
    }
}
