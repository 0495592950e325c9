//! Handing memory back after a burst.
//!
//! A burst (thousands of clients connecting at once, a flood of events)
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
