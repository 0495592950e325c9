//! Memory held for slow readers: a file is streamed in chunks, so a dozen
//! clients that request a big file and then read nothing cost the server
//! kilobytes each, not the file each. (Its own test binary, so no other
//! test's allocations move the numbers.)

mod control_support;

use control_support::*;
use std::io::{Read, Write};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

#[test]
#[cfg(target_os = "linux")]
fn slow_readers_of_a_big_file_do_not_pin_it_in_memory() {
    const FILE: usize = 24 << 20;
    const READERS: usize = 12;
    let s = Setup::start(None);
    let www = s.dir.path().join("www");
    std::fs::write(www.join("big.wasm"), vec![0x5au8; FILE]).unwrap();
    let before = rss_bytes();
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut c = client(s.control_addr);
        c.write_all(b"GET /big.wasm HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // The response has started: the request was routed.
        let mut status = [0u8; 12];
        c.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
        readers.push(c);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "RSS grew by {} KiB for {READERS} stalled readers of a {} MiB file",
        grown / 1024,
        FILE >> 20
    );
    assert!(
        grown < 48 << 20,
        "RSS grew by {} MiB: files are held whole",
        grown >> 20
    );
    // They still get the whole file once they read.
    let mut out = Vec::new();
    readers[0].read_to_end(&mut out).unwrap();
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(out.len() - head_end, FILE);
}
