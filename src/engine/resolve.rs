//! Name resolution for `Listen`, off the engine thread.
//!
//! `getaddrinfo` blocks, for as long as a DNS timeout. On the engine thread
//! that would freeze every client, so an address that is not an `IP:port`
//! literal is resolved on a short-lived thread, which wakes the loop with
//! the answer. Only the answer to the latest request counts.

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

pub struct Resolved {
    pub addr: String,
    pub result: Result<SocketAddr, String>,
}

pub struct Resolver {
    tx: Sender<(u64, Resolved)>,
    rx: Receiver<(u64, Resolved)>,
    waker: Arc<Waker>,
    latest: u64,
}

impl Resolver {
    pub fn new(waker: Arc<Waker>) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Resolver {
            tx,
            rx,
            waker,
            latest: 0,
        }
    }

    /// Resolve `addr` in the background; an earlier request still running
    /// is superseded.
    pub fn start(&mut self, addr: String) -> Result<(), String> {
        self.latest += 1;
        let (request, tx, waker) = (self.latest, self.tx.clone(), self.waker.clone());
        std::thread::Builder::new()
            .name("muxscope-resolve".into())
            .spawn(move || {
                let result = resolve(&addr);
                let _ = tx.send((request, Resolved { addr, result }));
                let _ = waker.wake();
            })
            .map(drop)
            .map_err(|e| format!("cannot start resolving the address: {e}"))
    }

    /// The answer to the latest request, once it is there.
    pub fn take_latest(&mut self) -> Option<Resolved> {
        let mut answer = None;
        while let Ok((request, resolved)) = self.rx.try_recv() {
            if request == self.latest {
                answer = Some(resolved);
            }
        }
        answer
    }
}

pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| {
            format!("'{addr}' is not a listen address ({e}); use HOST:PORT, e.g. 127.0.0.1:8800")
        })?
        .next()
        .ok_or_else(|| {
            format!("'{addr}' resolves to no address; use HOST:PORT, e.g. 127.0.0.1:8800")
        })
}
