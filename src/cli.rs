//! Command-line options. With none, muxscope opens its window and listens on
//! the seed's address, as a double-click would start it.

use crate::engine::{DEFAULT_LISTEN, EngineConfig};
use crate::faults::spec::{self, FaultPlan};
use crate::protocol::{Mode, ReplayTiming};

use clap::Parser;
use clap::builder::TypedValueParser;

#[derive(Debug, Parser)]
#[command(
    name = "muxscope",
    version,
    about = "See into and steer a select()-style TCP echo server",
    // `muxscope export …` is a subcommand; `muxscope [LAYOUT] [flags]`
    // stays as it was (a layout named like a subcommand: `./export`).
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Sub>,

    /// A session layout to open (`*.muxscope.ron`).
    #[arg(value_name = "LAYOUT")]
    pub layout: Option<std::path::PathBuf>,

    /// Run without a window; print a summary line each second.
    #[arg(long)]
    pub headless: bool,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// What to do with received bytes: echo, manual or discard.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<Mode>,

    /// Per-client queue bound in bytes; reading stops at it (backpressure).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub queue_limit: usize,

    /// Bytes of conversation kept per client and direction for the
    /// inspector (0 keeps none).
    #[arg(long, value_name = "BYTES", default_value_t = crate::engine::DEFAULT_TRANSCRIPT_LIMIT)]
    pub transcript_bytes: usize,

    /// Seconds a graceful kick may take (flush, FIN, the peer's FIN) before
    /// the connection is reset instead.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_secs)]
    pub kick_timeout: f64,

    /// With --headless: serve the web viewer and its WebSocket (/ws) on
    /// ADDR. A bare port (or no value) binds 127.0.0.1 only.
    #[arg(
        long,
        value_name = "ADDR",
        requires = "headless",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:8801"
    )]
    pub control: Option<String>,

    /// Secret that viewers must give as ?token=…; required (16 characters
    /// or more) to serve --control on an address other than loopback.
    /// `auto` makes a random one and prints the viewer's URL with it.
    #[arg(
        long,
        value_name = "SECRET",
        env = "MUXSCOPE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Directory the web viewer is served from (default: the viewer
    /// shipped next to the executable).
    #[arg(long, value_name = "DIR", requires = "control")]
    pub web_root: Option<std::path::PathBuf>,

    /// Serve --control over TLS (https/wss) with this certificate chain
    /// (PEM), so tokens and transcripts never cross a network in clear.
    #[arg(long, value_name = "FILE", requires_all = ["control", "tls_key"])]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Open the window on a headless muxscope instead of an in-process
    /// engine, e.g. ws://127.0.0.1:8801/ws?token=SECRET.
    #[arg(long, value_name = "URL", conflicts_with = "headless")]
    pub attach: Option<String>,

    /// Faults for every new connection, e.g. latency=200ms~50ms,
    /// bandwidth=10KiB/s, slice=4..64@0ms, stall-writes, close-after=1KiB,
    /// accept=refuse. Repeatable or comma-separated; a fault given twice
    /// takes the later value. See the README's "Faults" for the grammar.
    #[arg(
        long = "fault",
        value_name = "SPEC",
        action = clap::ArgAction::Append,
        value_parser = FaultSpecParser
    )]
    pub faults: Vec<FaultPlan>,

    /// Run this scenario (a `*.muxscope-scenario.ron` file): how bytes
    /// split into messages, which rules answer them, and its faults. See
    /// the README's "Scenarios".
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<std::path::PathBuf>,

    /// Record everything (events, counters, stats, and every byte each
    /// client sent and was sent) into FILE (`*.muxrec`) from the start.
    /// Open it later with `muxscope FILE`.
    #[arg(long, value_name = "FILE", conflicts_with = "attach")]
    pub record: Option<std::path::PathBuf>,

    /// Cap each recording file at SIZE (e.g. 500MiB, 1GiB): at the cap the
    /// recording stops, saying so, or with --record-rotate goes on in
    /// FILE.2.muxrec, FILE.3.muxrec, … (each readable on its own).
    #[arg(long, value_name = "SIZE", value_parser = parse_record_max)]
    pub record_max: Option<u64>,

    /// Turn a lint off (e.g. --allow silent-client; `all` for every one).
    /// Repeatable. See the README's "Diagnostics" for the lints.
    #[arg(long, value_name = "LINT", action = clap::ArgAction::Append, value_parser = parse_lint_name)]
    pub allow: Vec<String>,

    /// Turn a lint on again after --allow (or a layout) turned it off.
    /// Repeatable; `all` for every one.
    #[arg(long, value_name = "LINT", action = clap::ArgAction::Append, value_parser = parse_lint_name)]
    pub warn: Vec<String>,

    /// At --record-max, go on in a new file instead of stopping.
    #[arg(long, requires = "record_max")]
    pub record_rotate: bool,

    /// Be the server of a recording (`*.muxrec`): every client gets the
    /// server side of one recorded connection, byte for byte, and is told
    /// where it differs from the recorded client. See the README's
    /// "Replaying a recording against a client".
    #[arg(long, value_name = "FILE", conflicts_with_all = ["attach", "scenario"])]
    pub replay: Option<std::path::PathBuf>,

    /// With --replay: the recorded connection to play (default: the first
    /// one with any bytes).
    #[arg(long = "conn", value_name = "N", requires = "replay")]
    pub replay_conn: Option<u64>,

    /// With --replay: `wait` sends each recorded write once the client has
    /// sent what preceded it; `original` keeps the recorded timing.
    #[arg(
        long = "timing",
        value_name = "TIMING",
        requires = "replay",
        default_value = "wait",
        value_parser = parse_timing
    )]
    pub replay_timing: ReplayTiming,

    /// With --replay: reset a client as soon as its bytes differ from the
    /// recording's (by default the replay goes on, and says so once).
    #[arg(long, requires = "replay")]
    pub replay_strict: bool,

    /// The --replay file, compiled ([`Cli::load_replay`]).
    #[arg(skip)]
    pub replay_script: Option<std::sync::Arc<crate::record::replay::ReplayScript>>,
}

fn parse_timing(s: &str) -> Result<ReplayTiming, String> {
    match s {
        "wait" => Ok(ReplayTiming::Wait),
        "original" => Ok(ReplayTiming::Original),
        _ => Err(format!("unknown timing '{s}': use wait or original")),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Export a recording (`*.muxrec`) for other tools: pcapng for
    /// Wireshark, JSON messages, or raw bytes per connection and direction.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The recording to export.
    #[arg(value_name = "FILE.muxrec")]
    pub file: std::path::PathBuf,

    /// pcapng: a capture for Wireshark (synthesized TCP frames, events as
    /// packet comments); json: messages per connection; raw: a directory
    /// with one file per connection and direction.
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub format: crate::record::export::Format,

    /// Only this connection (as the app shows it: 3 or #3); repeatable.
    #[arg(
        long = "conn",
        value_name = "N",
        action = clap::ArgAction::Append,
        value_parser = crate::record::export::parse_conn_id
    )]
    pub conns: Vec<crate::protocol::ConnId>,

    /// Where to write: a file, or a directory for --format raw.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: std::path::PathBuf,
}

impl ExportArgs {
    /// Export, saying what was written (stdout) and what to know (stderr);
    /// exit code 0 on success, 1 on failure.
    pub fn run(&self) -> std::process::ExitCode {
        match crate::record::export::export(&self.file, self.format, &self.conns, &self.output) {
            Ok(done) => {
                // A warning can quote the file (a part's name): it is
                // printed as text, never as terminal control sequences.
                for w in &done.warnings {
                    eprintln!(
                        "muxscope: warning: {}",
                        crate::logging::terminal_safe(w, 1000)
                    );
                }
                println!(
                    "muxscope: exported {} from {} to {}",
                    crate::format::counted(done.connections, "connection"),
                    self.file.display(),
                    self.output.display()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("muxscope: {}", crate::logging::terminal_safe(&e, 1000));
                std::process::ExitCode::FAILURE
            }
        }
    }
}

fn parse_lint_name(s: &str) -> Result<String, String> {
    if s == "all" {
        return Ok(s.to_owned());
    }
    crate::monitor::lints::Lint::parse(s).map(|l| l.name().to_owned())
}

fn parse_record_max(s: &str) -> Result<u64, String> {
    match spec::parse_size(s) {
        Ok(n) if n >= 64 * 1024 => Ok(n),
        Ok(_) => Err(format!(
            "'{s}' is too small for a recording: use 64KiB or more (e.g. 1GiB)"
        )),
        Err(e) => Err(format!("'{s}': {e} (e.g. 500MiB, 1GiB)")),
    }
}

/// `--fault`'s parser. A bad spec is reported as the grammar's own line
/// (`error: --fault: unknown fault 'latncy': valid faults are …`), not as
/// clap's "invalid value" line, which would repeat the value unescaped.
#[derive(Clone, Copy, Debug)]
struct FaultSpecParser;

impl TypedValueParser for FaultSpecParser {
    type Value = FaultPlan;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FaultPlan, clap::Error> {
        let fail = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("--fault: {message}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| {
            fail(format!(
                "{}: a fault spec is text (UTF-8)",
                crate::logging::terminal_safe(&value.to_string_lossy(), 80)
            ))
        })?;
        spec::parse(text).map_err(|e| fail(e.to_string()))
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.0..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 86400"
        )),
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("unknown mode '{s}': use echo, manual or discard"))
}

impl Cli {
    /// The engine settings for `--headless`: the layout file's listen
    /// address and mode, overridden by `--listen`/`--mode`. Without a
    /// window to show it in, an unreadable layout is an error.
    pub fn headless_config(&self) -> Result<EngineConfig, String> {
        let mut config = self.engine_config();
        if let Some(path) = &self.layout {
            let layout =
                crate::layout::load(path).map_err(|e| format!("cannot use the layout {e}"))?;
            if self.listen.is_none() {
                config.listen = Some(layout.listen);
            }
            if self.mode.is_none() {
                config.mode = layout.mode;
            }
        }
        if let Some((file, scenario)) = self.scenario()? {
            // The scenario's fallback is the mode, unless --mode says.
            if self.mode.is_none() {
                config.mode = file.otherwise.into();
            }
            // Its faults act unless --fault says otherwise.
            if self.faults.is_empty() {
                config.faults = scenario.faults().clone();
            }
            config.scenario = Some(std::sync::Arc::new(scenario));
        }
        Ok(config)
    }

    /// `--scenario`, read and compiled: a bad file is an error that names
    /// the file, the line and column, or the rule.
    pub fn scenario(
        &self,
    ) -> Result<Option<(crate::scenario::ScenarioFile, crate::scenario::Scenario)>, String> {
        self.scenario.as_deref().map(load_scenario).transpose()
    }
}

/// A scenario file, read and compiled; the error names the file and the
/// line and column, or the rule.
pub fn load_scenario(
    path: &std::path::Path,
) -> Result<(crate::scenario::ScenarioFile, crate::scenario::Scenario), String> {
    let file = crate::scenario::load(path).map_err(|e| format!("cannot use the scenario {e}"))?;
    let scenario = crate::scenario::Scenario::compile(&file).map_err(|e| {
        format!(
            "cannot use the scenario {}: {e}; the file was left as it is",
            path.display()
        )
    })?;
    Ok((file, scenario))
}

impl Cli {
    /// Read and compile `--replay`, once, before anything starts (its
    /// errors are one line naming the file). Returns the script for the
    /// start-up lines; the engine config carries it from now on.
    pub fn load_replay(
        &mut self,
    ) -> Result<Option<std::sync::Arc<crate::record::replay::ReplayScript>>, String> {
        let Some(path) = &self.replay else {
            return Ok(None);
        };
        let script = crate::record::replay::ReplayScript::load(
            path,
            self.replay_conn,
            self.replay_timing,
            self.replay_strict,
        )?;
        let script = std::sync::Arc::new(script);
        self.replay_script = Some(script.clone());
        Ok(Some(script))
    }

    /// `settings` with `--allow` and `--warn` applied (allows first, so
    /// `--allow all --warn nagle-delay` runs only that one).
    pub fn lint_settings(
        &self,
        mut settings: crate::monitor::lints::LintSettings,
    ) -> crate::monitor::lints::LintSettings {
        use crate::monitor::lints::Lint;
        let named = |names: &[String]| -> Vec<Lint> {
            names
                .iter()
                .flat_map(|n| match n.as_str() {
                    "all" => Lint::ALL.to_vec(),
                    n => Lint::parse(n).into_iter().collect(),
                })
                .collect()
        };
        settings.allowed.extend(named(&self.allow));
        for lint in named(&self.warn) {
            settings.allowed.remove(&lint);
        }
        settings
    }

    /// The control endpoint to serve, if `--control` was given.
    pub fn control_options(&self) -> Option<crate::control::ControlOptions> {
        let addr = self.control.as_ref()?;
        let mut opts = crate::control::ControlOptions::new(addr.clone());
        opts.token = self.token.clone();
        if let Some(root) = &self.web_root {
            opts.web_root = Some(root.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            opts.tls = Some(crate::control::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        Some(opts)
    }

    /// Every `--fault` as one plan, later ones winning.
    pub fn fault_plan(&self) -> FaultPlan {
        FaultPlan::fold(&self.faults)
    }

    pub fn engine_config(&self) -> EngineConfig {
        let plan = self.fault_plan();
        EngineConfig {
            listen: Some(
                self.listen
                    .clone()
                    .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            ),
            mode: self.mode.unwrap_or_default(),
            queue_limit: self.queue_limit.max(1),
            low_water: self.queue_limit / 4,
            transcript_limit: self.transcript_bytes,
            kick_timeout: std::time::Duration::from_secs_f64(self.kick_timeout),
            faults: plan.faults,
            accept_fault: plan.accept,
            record: self
                .record
                .as_ref()
                .map(|path| crate::record::writer::RecordingConfig {
                    path: path.clone(),
                    max_bytes: self.record_max,
                    at_cap: if self.record_rotate {
                        crate::record::writer::AtCap::Rotate
                    } else {
                        crate::record::writer::AtCap::Stop
                    },
                }),
            replay: self.replay_script.clone(),
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{AcceptFault, Latency};

    #[test]
    fn faults_from_several_flags_fill_the_engine_config() {
        let cli = Cli::try_parse_from([
            "muxscope",
            "--fault",
            "latency=1ms,accept=stall",
            "--fault=slice=4..64@0ms, stall-writes",
            "--fault",
            "latency=200ms~50ms",
        ])
        .unwrap();
        assert_eq!(cli.faults.len(), 3);
        let config = cli.engine_config();
        assert_eq!(
            config.faults.latency,
            Some(Latency {
                delay: 200,
                jitter: 50
            })
        );
        assert!(config.faults.stall_writes);
        assert_eq!(config.faults.slice.map(|s| (s.min, s.max)), Some((4, 64)));
        assert_eq!(config.accept_fault, Some(AcceptFault::Stall));
        assert_eq!(
            cli.fault_plan().to_string(),
            "latency=200ms~50ms, slice=4..64@0ms, stall-writes, accept=stall"
        );
    }

    #[test]
    fn export_is_a_subcommand_and_a_layout_is_still_a_layout() {
        let cli = Cli::try_parse_from([
            "muxscope", "export", "s.muxrec", "--format", "json", "--conn", "#3", "--conn", "4",
            "-o", "out.json",
        ])
        .unwrap();
        let Some(Sub::Export(args)) = cli.command else {
            panic!("not export: {cli:?}");
        };
        assert_eq!(
            args.conns,
            [crate::protocol::ConnId(3), crate::protocol::ConnId(4)]
        );
        let cli =
            Cli::try_parse_from(["muxscope", "a.muxscope.ron", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            cli.layout.as_deref(),
            Some(std::path::Path::new("a.muxscope.ron"))
        );
        let cli = Cli::try_parse_from(["muxscope", "--headless", "--mode", "discard"]).unwrap();
        assert!(cli.command.is_none() && cli.headless);
        let err = Cli::try_parse_from(["muxscope", "export", "s.muxrec", "-o", "x"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "--format is required");
        let err = Cli::try_parse_from([
            "muxscope", "export", "s.muxrec", "--format", "json", "--conn", "x", "-o", "o",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("e.g. 3 or #3"), "{err}");
    }

    #[test]
    fn allow_and_warn_pick_the_lints_and_unknown_names_are_refused() {
        use crate::monitor::lints::{Lint, LintSettings};
        let cli =
            Cli::try_parse_from(["muxscope", "--allow", "all", "--warn", "nagle-delay"]).unwrap();
        let s = cli.lint_settings(LintSettings::default());
        assert!(s.enabled(Lint::NagleDelay));
        assert!(!s.enabled(Lint::SilentClient));
        let err = Cli::try_parse_from(["muxscope", "--allow", "silent"]).unwrap_err();
        assert!(err.to_string().contains("unknown lint 'silent'"), "{err}");
    }

    #[test]
    fn no_fault_flag_means_no_faults() {
        let config = Cli::try_parse_from(["muxscope"]).unwrap().engine_config();
        assert!(config.faults.is_none());
        assert_eq!(config.accept_fault, None);
    }

    /// The grammar's line is clap's error line; clap exits with 2.
    #[test]
    fn a_bad_spec_is_one_line_naming_the_bad_part() {
        let err =
            Cli::try_parse_from(["muxscope", "--fault", "stall-writes,latncy=1ms"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2);
        let text = err.render().to_string();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(
                "error: --fault: unknown fault 'latncy' (did you mean latency?): valid faults are latency,"
            ),
            "{text}"
        );
        // The value is not repeated raw: escapes stay escaped.
        let err = Cli::try_parse_from(["muxscope", "--fault", "latency=1\u{1b}[2J"]).unwrap_err();
        let text = err.render().to_string();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.contains("'1\\u{1b}[2J' in 'latency=1\\u{1b}[2J'"),
            "{text}"
        );
    }
}
