//! The control endpoint's HTTP side: a request head as read from a socket
//! (`http::parse_head`), routed to a static file or a WebSocket upgrade
//! (`http::route`), and request paths mapped into the web root
//! (`http::resolve`).
//!
//! The web root holds a few viewer files, a dotfile, and symlinks to a file
//! and a folder outside it; a sibling folder whose name extends the root's
//! holds another file. Properties: nothing panics; a `200` body is one of
//! the viewer files; `resolve` only returns files inside the canonical
//! root; only a GET of `/ws` upgrades; a streamed file is a viewer file of
//! the announced length; a file is sent gzip-encoded (its `.gz` sibling)
//! only when the request's `Accept-Encoding` takes gzip, and every file
//! response says `Vary: Accept-Encoding`. `http::AcceptEncoding::parse`
//! also gets the raw input, as one header value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxscope::control::http::{self, AcceptEncoding, Coding, HttpConfig, Parsed, Route};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const VIEWER_FILES: [(&str, &str); 4] = [
    ("index.html", "<!doctype html><title>viewer</title>"),
    ("app.js", "console.log('viewer')"),
    // Written after app.js, so it is not older (stale).
    ("app.js.gz", GZ_BODY),
    ("sub/index.html", "<!doctype html><title>sub</title>"),
];
/// Stands for app.js gzipped; the server never looks inside.
const GZ_BODY: &str = "app.js, gzipped";

struct WebRoot {
    /// Canonical, as `HttpConfig` keeps it.
    root: PathBuf,
    open: HttpConfig,
    with_token: HttpConfig,
}

fn web_root() -> &'static WebRoot {
    static ROOT: OnceLock<WebRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("muxscope-fuzz-http-{}", std::process::id()));
        let root = base.join("root");
        let write = |path: PathBuf, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        for (name, text) in VIEWER_FILES {
            write(root.join(name), text);
        }
        write(root.join(".hidden"), "dotfile");
        write(base.join("secret.txt"), "outside the root");
        write(base.join("root2/index.html"), "sibling of the root");
        for (link, target) in [
            ("escape.txt", "../secret.txt"),
            ("up", ".."),
            ("sibling", "../root2"),
        ] {
            let _ = std::os::unix::fs::symlink(target, root.join(link));
        }
        let open = HttpConfig::new(Some(&root), None);
        let with_token = HttpConfig::new(Some(&root), Some("s3cret".to_owned()));
        WebRoot {
            root: open.web_root.clone().expect("the web root exists"),
            open,
            with_token,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let web = web_root();
    let text = String::from_utf8_lossy(data);
    check_resolve(&web.root, &text);
    let accepted = AcceptEncoding::parse([&*text]);
    let _ = http::preferred_coding(&accepted, Coding::ALL);
    let Parsed::Complete(head, _) = http::parse_head(data) else {
        return;
    };
    let gzip_ok = AcceptEncoding::parse(head.header_values("accept-encoding")).weight(Coding::Gzip) > 0;
    let path = head.target.split('?').next().unwrap_or_default();
    check_resolve(&web.root, path);
    for cfg in [&web.open, &web.with_token] {
        match http::route(&head, cfg) {
            Route::Upgrade(response) => {
                assert_eq!((head.method.as_str(), path), ("GET", "/ws"));
                assert!(response.starts_with(b"HTTP/1.1 101 "));
            }
            Route::Reply(response) => check_reply(&head.method, &response, gzip_ok),
            Route::File {
                head: reply,
                file,
                len,
            } => {
                assert_eq!(head.method, "GET");
                assert!(reply.starts_with(b"HTTP/1.1 200 "));
                let body = std::io::read_to_string(file).unwrap();
                assert_eq!(body.len() as u64, len);
                assert_viewer_file(body.as_bytes());
                check_encoding(&reply, body.as_bytes(), gzip_ok);
            }
        }
    }
});

fn check_resolve(root: &Path, path: &str) {
    if let Ok(file) = http::resolve(root, path) {
        assert!(file.starts_with(root), "{path:?} resolved to {file:?}");
        let name = file.strip_prefix(root).unwrap();
        assert!(
            VIEWER_FILES.iter().any(|(f, _)| name == Path::new(f)),
            "{path:?} resolved to {file:?}, not a viewer file"
        );
    }
}

fn check_reply(method: &str, response: &[u8], gzip_ok: bool) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a reply has a complete head");
    let (head, body) = (&response[..split], &response[split + 4..]);
    assert!(head.starts_with(b"HTTP/1.1 "));
    if head.starts_with(b"HTTP/1.1 200 ") {
        if method == "HEAD" {
            assert!(body.is_empty());
        } else {
            assert_viewer_file(body);
            check_encoding(head, body, gzip_ok);
        }
    }
}

/// A file response says Vary; an encoded one is the .gz sibling, sent only
/// when gzip was acceptable.
fn check_encoding(head: &[u8], body: &[u8], gzip_ok: bool) {
    let head = String::from_utf8_lossy(head);
    assert!(head.contains("\r\nVary: Accept-Encoding\r\n"), "{head}");
    if head.contains("\r\nContent-Encoding: gzip\r\n") {
        assert!(gzip_ok, "gzip sent unasked: {head}");
        assert_eq!(body, GZ_BODY.as_bytes());
    } else {
        assert!(!head.contains("Content-Encoding"), "{head}");
    }
}

fn assert_viewer_file(body: &[u8]) {
    assert!(
        VIEWER_FILES.iter().any(|(_, text)| body == text.as_bytes()),
        "served something other than a viewer file: {:?}",
        String::from_utf8_lossy(body)
    );
}
