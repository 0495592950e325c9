//! The control endpoint: lets viewers (the web build, or a window started
//! with `--attach`) watch and steer a headless muxscope.
//!
//! `muxscope --headless --control ADDR` serves, on one port:
//! - `GET /ws`: a WebSocket carrying the protocol (see [`wire`]): every
//!   engine [`Batch`](crate::protocol::Batch) to every viewer, and viewers'
//!   [`Command`](crate::protocol::Command)s back to the engine;
//! - any other `GET`: the built web viewer, from `dist/` (or `--web-root`),
//!   and never a file outside it.
//!
//! Two threads, neither of them the engine's:
//! - **fan-out** consumes the engine's batches, encodes each once, and
//!   offers it to every viewer through that viewer's bounded queue. A viewer
//!   whose queue is full loses the batch's *events* (counted, and reported
//!   to that viewer in `dropped_events`) while its counters, stats and
//!   inspector snapshots are coalesced and delivered as soon as it catches
//!   up. It never waits, so a stalled viewer slows neither the engine nor
//!   the other viewers.
//! - **io** runs one `mio` poll over the listening socket, HTTP requests and
//!   WebSocket viewers: it writes queued frames while sockets accept them
//!   and reads commands, which it forwards to the engine's commander.
//!
//! Only [`wire`] compiles for wasm32; the rest is native.

pub mod wire;

#[cfg(not(target_arch = "wasm32"))]
mod fanout;
#[cfg(not(target_arch = "wasm32"))]
pub mod http;
#[cfg(not(target_arch = "wasm32"))]
mod server;
#[cfg(not(target_arch = "wasm32"))]
mod stream;
#[cfg(not(target_arch = "wasm32"))]
pub mod token;
#[cfg(not(target_arch = "wasm32"))]
mod vet;

#[cfg(not(target_arch = "wasm32"))]
pub use server::{CommandSink, ControlServer};

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::net::{SocketAddr, ToSocketAddrs};
    use std::path::PathBuf;
    use std::time::Duration;

    /// The port `--control` uses when given only a host.
    pub const DEFAULT_CONTROL_PORT: u16 = 8801;

    /// How the control endpoint is set up.
    #[derive(Clone, Debug)]
    pub struct ControlOptions {
        /// `HOST:PORT`, or a bare port, which binds loopback.
        pub addr: String,
        /// Required on the WebSocket as `?token=…` when set.
        pub token: Option<String>,
        /// The token was made here (`--token auto`), so it is printed once
        /// in the viewer's URL.
        pub token_generated: bool,
        /// Where the built web viewer is (Trunk's `dist/`); `None` serves a
        /// page saying how to build it.
        pub web_root: Option<PathBuf>,
        /// Viewers attached at once; more are turned away with 503.
        pub max_viewers: usize,
        /// Frames (batches) queued per viewer before its events are dropped.
        pub viewer_queue: usize,
        /// Bytes queued per viewer before its events are dropped (one frame
        /// is always allowed, however large).
        pub viewer_queue_bytes: usize,
        /// How often each viewer is pinged.
        pub ping_interval: Duration,
        /// A viewer not heard from (not even a pong) for this long is
        /// dropped and its slot freed.
        pub viewer_timeout: Duration,
        /// A request head must be complete this long after accept.
        pub head_timeout: Duration,
        /// Commands one viewer may send per second on average, and in a
        /// burst; past that its socket is not read until it is back within.
        pub commands_per_sec: u32,
        pub command_burst: u32,
        /// Serve https/wss with this certificate chain and key (PEM).
        pub tls: Option<TlsFiles>,
    }

    impl ControlOptions {
        /// `--token auto`: replace it with a fresh random token.
        pub fn make_auto_token(&mut self) -> Result<(), String> {
            if self.token.as_deref() == Some(AUTO_TOKEN) {
                self.token = Some(super::token::generate()?);
                self.token_generated = true;
            }
            Ok(())
        }
    }

    /// The `--token` value that asks for a generated token.
    pub const AUTO_TOKEN: &str = "auto";

    /// `--tls-cert` and `--tls-key`.
    #[derive(Clone, Debug)]
    pub struct TlsFiles {
        pub cert: PathBuf,
        pub key: PathBuf,
    }

    impl ControlOptions {
        pub fn new(addr: impl Into<String>) -> Self {
            ControlOptions {
                addr: addr.into(),
                token: None,
                token_generated: false,
                web_root: default_web_root(),
                max_viewers: 32,
                viewer_queue: 64,
                viewer_queue_bytes: 4 << 20,
                ping_interval: Duration::from_secs(5),
                viewer_timeout: Duration::from_secs(30),
                head_timeout: Duration::from_secs(10),
                commands_per_sec: 2048,
                command_burst: 2048,
                tls: None,
            }
        }
    }

    /// The shipped web viewer: `dist/` next to the executable (an unpacked
    /// release, or a `cargo install --root` tree with the viewer copied
    /// beside the binary), else `share/muxscope/web` in the prefix the
    /// executable is installed in. Only a directory holding `index.html`
    /// counts; never the working directory, which may hold anything.
    pub fn default_web_root() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        find_web_root(&exe)
    }

    /// [`default_web_root`] for an executable at `exe`.
    pub fn find_web_root(exe: &std::path::Path) -> Option<PathBuf> {
        let dir = exe.parent()?;
        let mut candidates = vec![dir.join("dist")];
        if let Some(prefix) = dir.parent() {
            candidates.push(prefix.join("share").join("muxscope").join("web"));
        }
        candidates
            .into_iter()
            .find(|c| c.join("index.html").is_file())
    }

    /// The address to bind: a bare port means loopback, so the endpoint is
    /// only exposed to the network when the user names such an address.
    pub fn resolve_addr(addr: &str) -> Result<SocketAddr, String> {
        let addr = addr.trim();
        if let Ok(port) = addr.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        match addr.to_socket_addrs() {
            Ok(mut addrs) => addrs
                .next()
                .ok_or_else(|| format!("'{addr}' resolves to no address")),
            Err(e) => Err(format!(
                "cannot use '{addr}' as the control address ({e}); write HOST:PORT, e.g. 127.0.0.1:{DEFAULT_CONTROL_PORT}"
            )),
        }
    }

    /// Refuse to expose the endpoint beyond this machine without a token
    /// long enough not to be guessed: whoever reaches it can kick clients
    /// and send them bytes.
    pub fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
        if token.is_some_and(|t| t.is_empty()) {
            return Err("the control token must not be empty".to_owned());
        }
        if addr.ip().is_loopback() {
            return Ok(());
        }
        match token {
            Some(t) if t.chars().count() >= super::token::MIN_NETWORK_TOKEN => Ok(()),
            Some(_) => Err(format!(
                "refusing to serve the control endpoint on {addr} with a token shorter than {} \
                 characters: it could be guessed. Use --token auto to have one made for you.",
                super::token::MIN_NETWORK_TOKEN
            )),
            None => Err(format!(
                "refusing to serve the control endpoint on {addr} without a token: anyone who can \
                 reach that address could kick your clients and inject bytes. Add --token auto \
                 (or --token SECRET, or set MUXSCOPE_TOKEN) and open the viewer with \
                 ?token=SECRET, or bind 127.0.0.1:{port} to stay on this machine.",
                port = addr.port()
            )),
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn bare_port_binds_loopback() {
        assert_eq!(
            resolve_addr("9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(resolve_addr("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        assert!(resolve_addr("nonsense").is_err());
    }

    #[test]
    fn network_bind_needs_a_token() {
        let lo = "127.0.0.1:1".parse().unwrap();
        let any = "0.0.0.0:1".parse().unwrap();
        assert!(check_exposure(lo, None).is_ok());
        assert!(check_exposure("[::1]:1".parse().unwrap(), None).is_ok());
        let err = check_exposure(any, None).unwrap_err();
        assert!(err.contains("--token"), "{err}");
        assert!(check_exposure(lo, Some("")).is_err());
        // Short tokens only on loopback.
        assert!(check_exposure(lo, Some("s3cret")).is_ok());
        let err = check_exposure(any, Some("s3cret")).unwrap_err();
        assert!(err.contains("--token auto"), "{err}");
        assert!(check_exposure(any, Some("0123456789abcdef")).is_ok());
    }

    #[test]
    fn the_web_root_is_found_next_to_the_executable_only() {
        let base = std::env::temp_dir().join(format!("muxscope-webroot-{}", std::process::id()));
        let bin = base.join("bin");
        std::fs::create_dir_all(bin.join("dist")).unwrap();
        let exe = bin.join("muxscope");
        // A dist/ without index.html is not a viewer.
        assert_eq!(find_web_root(&exe), None);
        let share = base.join("share/muxscope/web");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::write(share.join("index.html"), "x").unwrap();
        assert_eq!(find_web_root(&exe), Some(share));
        std::fs::write(bin.join("dist/index.html"), "x").unwrap();
        assert_eq!(find_web_root(&exe), Some(bin.join("dist")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
