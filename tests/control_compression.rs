//! Precompressed files over real sockets: a file in the web root with
//! `NAME.br` / `NAME.gz` siblings is sent encoded when the request's
//! `Accept-Encoding` takes it, plain otherwise, and every file response
//! says `Vary: Accept-Encoding`. A sibling obeys the same rules as any file
//! (inside the web root, a regular file) and is skipped when it is older
//! than the file it stands for.
//!
//! The siblings here are distinct byte patterns, not real compressed data:
//! the server never looks inside them, and a mix-up shows in the body.

mod control_support;

use control_support::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Bigger than the server's 64 KiB file chunk, so each is streamed in
/// pieces.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

struct Files {
    plain: Vec<u8>,
    br: Vec<u8>,
    gz: Vec<u8>,
}

/// `www/app.wasm` with both siblings, `www/app.js` with a `.gz` only, and
/// `www/plain.wasm` with none.
fn setup() -> (Setup, Files, PathBuf) {
    let s = Setup::start(None);
    let www = s.dir.path().join("www");
    let files = Files {
        plain: pattern(300_000, 1),
        br: pattern(150_000, 2),
        gz: pattern(200_000, 3),
    };
    std::fs::write(www.join("app.wasm"), &files.plain).unwrap();
    std::fs::write(www.join("app.wasm.br"), &files.br).unwrap();
    std::fs::write(www.join("app.wasm.gz"), &files.gz).unwrap();
    std::fs::write(www.join("app.js"), "export const plain = 1;").unwrap();
    std::fs::write(www.join("app.js.gz"), "gzip of app.js").unwrap();
    std::fs::write(www.join("plain.wasm"), "\0asm plain only").unwrap();
    (s, files, www)
}

/// Back-date a file's modification time by `age`.
fn set_age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    /// The values of header `name` (case-insensitive).
    fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(": "))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        let all = self.headers(name);
        assert!(
            all.len() <= 1,
            "{name} sent {} times: {}",
            all.len(),
            self.head
        );
        all.first().copied()
    }

    fn encoding(&self) -> Option<&str> {
        self.header("Content-Encoding")
    }

    fn assert_vary(&self) {
        assert_eq!(
            self.header("Vary"),
            Some("Accept-Encoding"),
            "no Vary: {}",
            self.head
        );
    }

    /// Content-Length matches what came, and the type is the file's own.
    fn assert_file(&self, content_type: &str, body: &[u8]) {
        assert_eq!(self.status, 200, "{}", self.head);
        assert_eq!(self.header("Content-Type"), Some(content_type));
        assert_eq!(
            self.header("Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert!(
            self.body == body,
            "body differs ({} bytes)",
            self.body.len()
        );
        self.assert_vary();
    }
}

fn request(addr: SocketAddr, method: &str, target: &str, extra: &[u8]) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
    req.extend_from_slice(extra);
    req.extend_from_slice(b"\r\n");
    let (status, text, body) = http_raw(addr, &req);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    Reply { status, head, body }
}

fn get_with(addr: SocketAddr, target: &str, accept: Option<&str>) -> Reply {
    let extra = accept
        .map(|a| format!("Accept-Encoding: {a}\r\n"))
        .unwrap_or_default();
    request(addr, "GET", target, extra.as_bytes())
}

const WASM: &str = "application/wasm";

#[test]
fn gzip_is_sent_when_only_gzip_is_offered() {
    let (s, f, _) = setup();
    let a = s.control_addr;
    for accept in ["gzip", "GZIP", "x-gzip", "deflate, gzip;q=0.8", "br;q=0, *"] {
        let r = get_with(a, "/app.wasm", Some(accept));
        assert_eq!(r.encoding(), Some("gzip"), "{accept}: {}", r.head);
        r.assert_file(WASM, &f.gz);
    }
}

#[test]
fn brotli_is_preferred_when_offered() {
    let (s, f, _) = setup();
    let a = s.control_addr;
    // What browsers send, and variations; a query string changes nothing.
    for (target, accept) in [
        ("/app.wasm", "gzip, deflate, br, zstd"),
        ("/app.wasm?v=2", "br"),
        ("/app.wasm", "Br;Q=1, gzip;q=1"),
        ("/app.wasm", "*"),
    ] {
        let r = get_with(a, target, Some(accept));
        assert_eq!(r.encoding(), Some("br"), "{accept}: {}", r.head);
        r.assert_file(WASM, &f.br);
    }
    // The client's weights come first.
    let r = get_with(a, "/app.wasm", Some("br;q=0.5, gzip;q=0.9"));
    assert_eq!(r.encoding(), Some("gzip"), "{}", r.head);
    r.assert_file(WASM, &f.gz);
    // Brotli offered but there is no .br: gzip.
    let r = get_with(a, "/app.js", Some("gzip, deflate, br, zstd"));
    assert_eq!(r.encoding(), Some("gzip"), "{}", r.head);
    r.assert_file("text/javascript; charset=utf-8", b"gzip of app.js");
}

#[test]
fn the_plain_file_when_no_coding_is_acceptable() {
    let (s, f, _) = setup();
    let a = s.control_addr;
    for accept in [
        None,
        Some(""),
        Some("identity"),
        Some("deflate, zstd"),
        Some("gzip;q=0, br;q=0"),
        Some("br;q=0.000, x-gzip;q=0"),
        Some("*;q=0"),
        Some("identity, br;q=0.5, gzip;q=0.5"),
        Some("br;q=2, gzip;q=-1"),
    ] {
        let r = get_with(a, "/app.wasm", accept);
        assert_eq!(r.encoding(), None, "{accept:?}: {}", r.head);
        r.assert_file(WASM, &f.plain);
    }
}

#[test]
fn no_sibling_means_the_plain_file() {
    let (s, _, _) = setup();
    let a = s.control_addr;
    let r = get_with(a, "/plain.wasm", Some("gzip, deflate, br"));
    assert_eq!(r.encoding(), None, "{}", r.head);
    r.assert_file(WASM, b"\0asm plain only");
    // A .gz only, and only brotli offered.
    let r = get_with(a, "/app.js", Some("br"));
    assert_eq!(r.encoding(), None, "{}", r.head);
    r.assert_file("text/javascript; charset=utf-8", b"export const plain = 1;");
}

/// Caches must key on Accept-Encoding for every file, encoded or not, the
/// page included; error replies are not files.
#[test]
fn every_file_response_says_vary() {
    let (s, _, _) = setup();
    let a = s.control_addr;
    for (target, accept) in [
        ("/", Some("gzip, br")),
        ("/", None),
        ("/index.html", Some("br")),
        ("/app.wasm", Some("br")),
        ("/app.wasm", Some("gzip")),
        ("/app.wasm", None),
        ("/plain.wasm", Some("br")),
        ("/muxscope.js", None),
    ] {
        let r = get_with(a, target, accept);
        assert_eq!(r.status, 200, "{target}");
        r.assert_vary();
    }
    // The page is never sent encoded: its inline scripts are hashed into
    // the CSP from the plain text.
    let www = s.dir.path().join("www");
    std::fs::write(www.join("index.html.gz"), "not the page").unwrap();
    std::fs::write(www.join("index.html.br"), "not the page").unwrap();
    let r = get_with(a, "/", Some("gzip, br"));
    assert_eq!(r.encoding(), None, "{}", r.head);
    r.assert_file("text/html; charset=utf-8", INDEX.as_bytes());
}

#[test]
fn head_announces_the_encoded_length_and_sends_no_body() {
    let (s, f, _) = setup();
    let a = s.control_addr;
    for (accept, encoding, len) in [
        ("gzip", Some("gzip"), f.gz.len()),
        ("br, gzip", Some("br"), f.br.len()),
        ("identity", None, f.plain.len()),
    ] {
        let r = request(
            a,
            "HEAD",
            "/app.wasm",
            format!("Accept-Encoding: {accept}\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.encoding(), encoding, "{accept}: {}", r.head);
        assert_eq!(r.header("Content-Type"), Some(WASM));
        assert_eq!(
            r.header("Content-Length"),
            Some(len.to_string().as_str()),
            "{accept}"
        );
        assert!(r.body.is_empty(), "HEAD sent a body");
        r.assert_vary();
    }
}

/// A sibling is served by the same rules as the file: a symlink out of the
/// web root is not followed, one inside it is; a folder is no sibling; and
/// one older than its file is stale.
#[test]
fn a_sibling_obeys_the_web_roots_rules() {
    let (s, f, www) = setup();
    let a = s.control_addr;

    // The plain files are made old, so no sibling below is skipped as
    // stale: only the rule under test can turn it down.
    std::fs::write(www.join("leak.wasm"), "leak plain").unwrap();
    std::fs::write(www.join("dir.wasm"), "dir plain").unwrap();
    std::fs::write(www.join("inside.wasm"), "inside plain").unwrap();
    for name in ["leak.wasm", "dir.wasm", "inside.wasm"] {
        set_age(&www.join(name), Duration::from_secs(7200));
    }
    std::fs::create_dir(www.join("dir.wasm.br")).unwrap();
    let r = get_with(a, "/dir.wasm", Some("br"));
    assert_eq!(r.encoding(), None, "{}", r.head);
    r.assert_file(WASM, b"dir plain");
    #[cfg(unix)]
    {
        let outside = s.dir.path().join("secret.txt");
        std::os::unix::fs::symlink(&outside, www.join("leak.wasm.br")).unwrap();
        std::os::unix::fs::symlink(&outside, www.join("leak.wasm.gz")).unwrap();
        let r = get_with(a, "/leak.wasm", Some("br, gzip"));
        assert_eq!(r.encoding(), None, "{}", r.head);
        r.assert_file(WASM, b"leak plain");
        assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));

        std::os::unix::fs::symlink(www.join("app.wasm.gz"), www.join("inside.wasm.gz")).unwrap();
        let r = get_with(a, "/inside.wasm", Some("gzip"));
        assert_eq!(r.encoding(), Some("gzip"), "{}", r.head);
        r.assert_file(WASM, &f.gz);
    }

    // A .br older than app.wasm (say, left from an earlier build): gzip.
    set_age(&www.join("app.wasm.br"), Duration::from_secs(3600));
    let r = get_with(a, "/app.wasm", Some("br, gzip"));
    assert_eq!(r.encoding(), Some("gzip"), "{}", r.head);
    r.assert_file(WASM, &f.gz);
    // Requested by name, a sibling is just a file.
    let r = get_with(a, "/app.wasm.gz", Some("gzip"));
    assert_eq!(r.encoding(), None, "{}", r.head);
    r.assert_file("application/octet-stream", &f.gz);
}

/// Whatever the header holds, the answer is coherent: the body is the
/// sibling the Content-Encoding names, or the plain file; and the server
/// goes on serving.
#[test]
fn hostile_accept_encoding_gets_a_coherent_answer() {
    let (s, f, _) = setup();
    let a = s.control_addr;
    let long_list = "deflate;q=0.5, ".repeat(400) + "br";
    let many_q = format!("gzip{}", ";q=0.5".repeat(1000));
    let values: Vec<Vec<u8>> = vec![
        b";;;,,,;q=;q=1;=;".to_vec(),
        b"br;q=0.5;q=0;q=1".to_vec(),
        b"gzip;q=1.0000000000000000000000001".to_vec(),
        b"gzip;q=99999999999999999999999999999999".to_vec(),
        b"\xff\xfe br \x80;q=\xc3\xa9".to_vec(),
        b"br\t;\tq=0.3 , gzip ; q=0.2".to_vec(),
        b"*;q=0.5, identity;q=0.4".to_vec(),
        long_list.into_bytes(),
        many_q.into_bytes(),
        vec![b','; 7000],
    ];
    for value in &values {
        let mut extra = b"Accept-Encoding: ".to_vec();
        extra.extend_from_slice(value);
        extra.extend_from_slice(b"\r\n");
        let r = request(a, "GET", "/app.wasm", &extra);
        let shown = String::from_utf8_lossy(&value[..value.len().min(60)]).into_owned();
        let want = match r.encoding() {
            Some("br") => &f.br,
            Some("gzip") => &f.gz,
            None => &f.plain,
            Some(other) => panic!("{shown}: unexpected encoding {other}"),
        };
        r.assert_file(WASM, want);
    }
    // Several Accept-Encoding lines add up: the later one offers brotli.
    let r = request(
        a,
        "GET",
        "/app.wasm",
        b"Accept-Encoding: gzip;q=0\r\nAccept-Encoding: br\r\n",
    );
    assert_eq!(r.encoding(), Some("br"), "{}", r.head);
    r.assert_file(WASM, &f.br);
    assert_eq!(get_with(a, "/app.wasm", Some("br")).encoding(), Some("br"));
}
