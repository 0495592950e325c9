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
