//! A headless muxscope's engine, reached over its control WebSocket
//! (`muxscope --headless --control ADDR`). Works in the browser and
//! natively: ewebsock uses the browser's WebSocket on the web and a
//! tungstenite thread natively.
//!
//! Batches arrive as binary frames (see [`crate::control::wire`]) and go
//! into the monitor like a local engine's. When the connection drops, the
//! status says why and the backend reconnects with a growing pause; on
//! reconnecting the monitor starts afresh from the server's snapshot, since
//! what happened in between is unknown.

use super::{Backend, BackendStatus};
use crate::control::wire::{decode_batch, encode_command};
use crate::monitor::Monitor;
use crate::protocol::Command;
use ewebsock::{WsEvent, WsMessage, WsReceiver, WsSender};
use std::sync::Arc;
use std::time::Duration;
use web_time::Instant;

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Commands given while still connecting are sent once connected.
const MAX_OUTBOX: usize = 64;
/// The largest frame accepted from the server (native only; browsers have
/// their own limits). A batch is normally kilobytes.
const MAX_SERVER_FRAME: usize = 64 << 20;

/// Called from the socket's thread when something arrives, e.g. to wake egui.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

pub struct RemoteBackend {
    url: String,
    /// `url` with the token hidden, for the status line.
    shown: String,
    wake: Wake,
    socket: Option<(WsSender, WsReceiver)>,
    status: BackendStatus,
    open: bool,
    /// A connection was open before: the next one starts a fresh monitor.
    was_open: bool,
    outbox: Vec<Command>,
    retry_at: Option<Instant>,
    retry_pause: Duration,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("url", &self.shown)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl RemoteBackend {
    /// Start connecting to `url` (`ws://HOST:PORT/ws?token=…`); `wake` is
    /// called whenever something arrives.
    pub fn connect(url: impl Into<String>, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let url = url.into();
        let shown = hide_token(&url);
        let mut backend = RemoteBackend {
            status: BackendStatus::Connecting { url: shown.clone() },
            url,
            shown,
            wake: Arc::new(wake),
            socket: None,
            open: false,
            was_open: false,
            outbox: Vec::new(),
            retry_at: None,
            retry_pause: RETRY_FIRST,
        };
        backend.open_socket();
        backend
    }

    fn open_socket(&mut self) {
        let options = ewebsock::Options {
            max_incoming_frame_size: MAX_SERVER_FRAME,
            ..Default::default()
        };
        let wake = self.wake.clone();
        match ewebsock::connect_with_wakeup(self.url.clone(), options, move || wake()) {
            Ok(socket) => {
                self.socket = Some(socket);
                self.status = BackendStatus::Connecting {
                    url: self.shown.clone(),
                };
            }
            Err(e) => self.lost(e),
        }
    }

    /// The connection is gone: say why and schedule the next attempt.
    fn lost(&mut self, error: impl Into<String>) {
        if let Some((mut sender, _)) = self.socket.take() {
            sender.close();
        }
        if self.open {
            self.retry_pause = RETRY_FIRST;
        }
        self.open = false;
        self.outbox.clear();
        self.status = BackendStatus::Disconnected {
            url: self.shown.clone(),
            error: error.into(),
        };
        self.retry_at = Some(Instant::now() + self.retry_pause);
        self.retry_pause = (self.retry_pause * 2).min(RETRY_MAX);
    }

    /// The next thing that arrived, handling connection events on the way.
    fn next(&mut self) -> Option<Arrived> {
        loop {
            let event = self.socket.as_ref()?.1.try_recv()?;
            match event {
                WsEvent::Opened => {
                    self.open = true;
                    self.retry_pause = RETRY_FIRST;
                    self.status = BackendStatus::Connected {
                        url: self.shown.clone(),
                    };
                    if let Some((sender, _)) = &mut self.socket {
                        for cmd in self.outbox.drain(..) {
                            sender.send(WsMessage::Text(encode_command(&cmd)));
                        }
                    }
                    if std::mem::replace(&mut self.was_open, true) {
                        return Some(Arrived::Reconnected);
                    }
                }
                WsEvent::Message(WsMessage::Binary(frame)) => match decode_batch(&frame) {
                    Ok(batch) => return Some(Arrived::Batch(Box::new(batch))),
                    Err(e) => {
                        self.lost(format!("bad data from the server: {e}"));
                        return None;
                    }
                },
                WsEvent::Message(_) => {}
                WsEvent::Error(e) => {
                    self.lost(e);
                    return None;
                }
                WsEvent::Closed => {
                    self.lost("closed by the server");
                    return None;
                }
            }
        }
    }
}

enum Arrived {
    Batch(Box<crate::protocol::Batch>),
    Reconnected,
}

impl Backend for RemoteBackend {
    fn drain_into(&mut self, monitor: &mut Monitor, budget: Duration) -> bool {
        if self.socket.is_none() && self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.retry_at = None;
            self.open_socket();
        }
        let start = Instant::now();
        while let Some(arrived) = self.next() {
            match arrived {
                Arrived::Batch(batch) => monitor.absorb(*batch),
                Arrived::Reconnected => *monitor = Monitor::default(),
            }
            if start.elapsed() >= budget {
                return true;
            }
        }
        false
    }

    fn send(&mut self, cmd: Command) {
        match &mut self.socket {
            Some((sender, _)) if self.open => sender.send(WsMessage::Text(encode_command(&cmd))),
            // Kept for the connection being made; dropped when there is none,
            // since the status already says commands cannot reach it.
            Some(_) if self.outbox.len() < MAX_OUTBOX => self.outbox.push(cmd),
            _ => log::warn!("not connected: dropped {cmd:?}"),
        }
    }

    fn status(&self) -> BackendStatus {
        self.status.clone()
    }
}

/// `url` with the value of a `token` query parameter replaced by `…`.
pub fn hide_token(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("token", _)) => "token=…".to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// The control WebSocket's URL for a viewer page at `protocol//host` with
/// query `search` (as in `window.location`): same host, path `/ws`, and
/// the page's `token` parameter passed on unchanged.
pub fn ws_url_for_page(protocol: &str, host: &str, search: &str) -> String {
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    let mut url = format!("{scheme}://{host}/ws");
    let token = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="));
    if let Some(token) = token {
        url.push_str("?token=");
        url.push_str(token);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_location_gives_the_socket_url() {
        assert_eq!(
            ws_url_for_page("http:", "127.0.0.1:8801", ""),
            "ws://127.0.0.1:8801/ws"
        );
        assert_eq!(
            ws_url_for_page("https:", "example.org", "?a=1&token=s%20t&b"),
            "wss://example.org/ws?token=s%20t"
        );
        assert_eq!(ws_url_for_page("http:", "h:1", "?tokens=x"), "ws://h:1/ws");
    }

    #[test]
    fn token_is_hidden_from_the_status_line() {
        assert_eq!(hide_token("ws://h/ws?token=secret"), "ws://h/ws?token=…");
        assert_eq!(hide_token("ws://h/ws?x=1&token=s"), "ws://h/ws?x=1&token=…");
        assert_eq!(hide_token("ws://h/ws"), "ws://h/ws");
    }
}
