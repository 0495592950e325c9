//! Binding the listening socket, with errors a person can act on.

use mio::net::TcpListener;
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The kernel caps this at `net.core.somaxconn`; a deep backlog lets a burst
/// of thousands of connects wait for the accept loop instead of failing.
const BACKLOG: i32 = 4096;

/// First and longest wait before accepting again after the process ran out
/// of descriptors. Connections wait in the backlog meanwhile.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(25);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Resolve `addr` and bind a non-blocking listener on it. This may block
/// on name resolution: the engine thread binds through
/// [`super::resolve::Resolver`] instead.
pub fn bind(addr: &str) -> Result<TcpListener, String> {
    let resolved = super::resolve::resolve(addr)?;
    bind_addr(resolved).map_err(|e| describe_bind_error(&resolved, &e))
}

pub fn bind_addr(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Lets a restarted muxscope rebind while old connections sit in TIME_WAIT;
    // it does not allow two live listeners on one port.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

pub fn describe_bind_error(addr: &SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "{addr} is already in use: another program (perhaps another muxscope) listens there. \
             Stop it or choose another port (port 0 picks a free one)."
        ),
        io::ErrorKind::PermissionDenied => format!(
            "not allowed to listen on {addr}: ports below 1024 need privileges; choose a port above 1024."
        ),
        io::ErrorKind::AddrNotAvailable => {
            format!("{addr} is not an address of this machine; try 127.0.0.1 or 0.0.0.0.")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// Whether an accept error means the process or system is out of a resource
/// (descriptors, buffers). The pending connection stays in the backlog and
/// no new edge will announce it, so the loop must back off and retry on a
/// timer instead of spinning or waiting for an event.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
