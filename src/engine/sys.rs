//! What the engine asks of the operating system that std and socket2 do
//! not offer. The only `unsafe` in the project lives here, each call with
//! its reason.
//!
//! Handing memory back after a burst: a burst (thousands of clients connecting at once, a flood of events)
//! passes through large, short-lived batch buffers. glibc keeps freed heap
//! memory for reuse, so without help the process would stay at its burst
//! size for as long as it runs, which for a long debugging session with
//! 10,000 idle clients is most of its memory.

/// Return freed heap memory to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers from us; it only walks and
    // shrinks glibc's own free lists, under glibc's own locks, so it is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own; nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Bytes written to `stream` that have not left it yet (not sent, or not
/// acknowledged): a reset fault waits for 0, since an RST discards them.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn unsent_bytes(stream: &mio::net::TcpStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which points
    // at a live local of that type; the descriptor is borrowed from a
    // socket that outlives the call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n.max(0) as u32)
}

/// Without a way to ask, assume the bytes left (the reset then comes one
/// poll later than the last write).
#[cfg(not(target_os = "linux"))]
pub fn unsent_bytes(_stream: &mio::net::TcpStream) -> std::io::Result<u32> {
    Ok(0)
}

/// The kernel's view of `stream` (`TCP_INFO`), stamped `at`.
///
/// No well-kept crate offers this safely with what we need: socket2, nix
/// and rustix have no `TCP_INFO`, and `tcp-info-sys` hides the length the
/// kernel returns. That length matters: an older kernel fills a shorter
/// struct, and a field past it was not reported, so it is `None` (the
/// windows, Linux 5.4+) rather than a made-up zero.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn tcp_info(
    stream: &mio::net::TcpStream,
    at: crate::protocol::Micros,
) -> std::io::Result<crate::protocol::TcpInfo> {
    use std::mem::{offset_of, size_of};
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is a plain C struct of integers, for which all
    // zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes through the pointer,
    // which points at a live local of exactly `len` bytes, and writes the
    // length it filled through `&mut len`, a live local socklen_t; the
    // descriptor is borrowed from a socket that outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let filled = len as usize;
    let has = |offset: usize, size: usize| offset + size <= filled;
    let u32_at = |offset: usize, value: u32| has(offset, size_of::<u32>()).then_some(value);
    Ok(crate::protocol::TcpInfo {
        at,
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        total_retrans: info.tcpi_total_retrans,
        lost: info.tcpi_lost,
        unacked: info.tcpi_unacked,
        cwnd: info.tcpi_snd_cwnd,
        snd_mss: info.tcpi_snd_mss,
        peer_window: u32_at(offset_of!(libc::tcp_info, tcpi_snd_wnd), info.tcpi_snd_wnd),
        rcv_window: u32_at(offset_of!(libc::tcp_info, tcpi_rcv_wnd), info.tcpi_rcv_wnd),
        // Fields older than the windows (Linux 4.6–4.9) are zero, from the
        // zeroed struct, on a kernel that old.
        notsent_bytes: info.tcpi_notsent_bytes,
        last_data_sent_ms: info.tcpi_last_data_sent,
        last_data_recv_ms: info.tcpi_last_data_recv,
        delivery_rate: info.tcpi_delivery_rate,
        segs_out: info.tcpi_segs_out,
        segs_in: info.tcpi_segs_in,
    })
}

/// Why [`tcp_info`] cannot answer here, for `EngineStats`.
pub const TCP_INFO_UNAVAILABLE: Option<&str> = if cfg!(target_os = "linux") {
    None
} else {
    Some("not available on this platform")
};

/// Only Linux reports `TCP_INFO` with the fields we show.
#[cfg(not(target_os = "linux"))]
pub fn tcp_info(
    _stream: &mio::net::TcpStream,
    _at: crate::protocol::Micros,
) -> std::io::Result<crate::protocol::TcpInfo> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "TCP_INFO is not available on this platform",
    ))
}
