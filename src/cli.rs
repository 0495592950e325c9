//! Command-line options. With none, muxscope opens its window and listens on
//! the seed's address, as a double-click would start it.

use crate::engine::{DEFAULT_LISTEN, EngineConfig};
use crate::protocol::Mode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "muxscope",
    version,
    about = "See into and steer a select()-style TCP echo server"
)]
pub struct Cli {
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
        Ok(config)
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

    pub fn engine_config(&self) -> EngineConfig {
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
            ..EngineConfig::default()
        }
    }
}
