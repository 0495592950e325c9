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
            ..EngineConfig::default()
        }
    }
}
