//! The HTTP side of the control endpoint, as pure functions over a parsed
//! request head: static files from the web root (and nothing outside it),
//! and the checks a WebSocket upgrade must pass.
//!
//! Every response closes its connection; the viewer is a handful of files,
//! fetched once. Files are streamed by the io thread ([`Route::File`]), so a
//! slow reader never makes the server hold a whole file.
//!
//! A file may have precompressed siblings, `NAME.br` and `NAME.gz`
//! (scripts/build-web.sh writes them for the wasm and the JavaScript). When
//! the request's `Accept-Encoding` takes one ([`preferred_coding`]), the
//! sibling is streamed instead, with `Content-Encoding` and the original
//! `Content-Type`; a sibling must pass the same checks as the file itself
//! ([`sibling`]). Every file response says `Vary: Accept-Encoding`.
//!
//! Every response forbids framing (`Content-Security-Policy:
//! frame-ancestors 'none'` and `X-Frame-Options: DENY`), so no other site
//! can overlay the viewer and click for the user. Scripts may come from
//! this origin only, plus any inline script of the page being served,
//! allowed by its SHA-256 hash (Trunk injects one module script that loads
//! the wasm); `'wasm-unsafe-eval'` lets that script compile the wasm.
//!
//! For fuzzing, [`parse_head`] and [`route`] take arbitrary input and never
//! panic.

use super::token::Secret;
use percent_encoding::percent_decode_str;
use std::fs::{self, File};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// A request head larger than this is refused (431).
pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;
/// An HTML page up to this size is read whole, to allow its inline scripts
/// by hash; anything else is streamed.
const MAX_HASHED_HTML: u64 = 1 << 20;
/// The policy for every response; an HTML page adds its scripts' hashes.
const CSP_SCRIPT: &str = "script-src 'self' 'wasm-unsafe-eval'";
/// On every file response: the body depends on `Accept-Encoding`.
const VARY: &str = "Vary: Accept-Encoding\r\n";
const CSP_REST: &str = "style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self' ws: wss:; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The parts of a request the endpoint looks at.
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    pub method: String,
    /// As sent: `/path?query`.
    pub target: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list-valued header (it may be sent several times).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    }
}

/// What parsing the bytes read so far gave.
#[derive(Debug)]
pub enum Parsed {
    /// The head and how many bytes of the buffer it took.
    Complete(RequestHead, usize),
    Partial,
    /// A response to send before closing.
    Invalid(Vec<u8>),
}

pub fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let head = RequestHead {
                method: req.method.unwrap_or_default().to_owned(),
                target: req.path.unwrap_or_default().to_owned(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            };
            Parsed::Complete(head, n)
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Parsed::Invalid(error(
            431,
            "Request Header Fields Too Large",
            "request head too large",
        )),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Invalid(error(
            431,
            "Request Header Fields Too Large",
            "too many headers",
        )),
        Err(e) => Parsed::Invalid(error(400, "Bad Request", &format!("bad request: {e}"))),
    }
}

/// What the endpoint serves from.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Canonical web root; `None` when it does not exist (viewer not built).
    pub web_root: Option<PathBuf>,
    /// The root as configured, for messages.
    pub web_root_shown: Option<PathBuf>,
    pub token: Option<Secret>,
}

impl HttpConfig {
    pub fn new(web_root: Option<&Path>, token: Option<String>) -> Self {
        HttpConfig {
            web_root: web_root
                .and_then(|r| r.canonicalize().ok())
                .filter(|p| p.is_dir()),
            web_root_shown: web_root.map(Path::to_owned),
            token: token.as_deref().map(Secret::new),
        }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Route {
    /// Send this response, then close.
    Reply(Vec<u8>),
    /// Send `head`, then `len` bytes of `file` (streamed), then close.
    File { head: Vec<u8>, file: File, len: u64 },
    /// Send this `101 Switching Protocols`, then speak WebSocket.
    Upgrade(Vec<u8>),
}

pub fn route(head: &RequestHead, cfg: &HttpConfig) -> Route {
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Route::Reply(error(
                405,
                "Method Not Allowed",
                "only GET and HEAD are served",
            ));
        }
    };
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    if !path.starts_with('/') {
        return Route::Reply(error(400, "Bad Request", "bad request target"));
    }
    if path == "/ws" {
        if head_only {
            return Route::Reply(error(405, "Method Not Allowed", "use GET to attach"));
        }
        return match check_upgrade(head, query, cfg) {
            Ok(response) => Route::Upgrade(response),
            Err(reply) => Route::Reply(reply),
        };
    }
    let accepted = AcceptEncoding::parse(head.header_values("accept-encoding"));
    serve_static(path, cfg, head_only, &accepted)
}

/// The `101` response for a valid, authorised upgrade, or the error reply.
pub fn check_upgrade(
    head: &RequestHead,
    query: &str,
    cfg: &HttpConfig,
) -> Result<Vec<u8>, Vec<u8>> {
    let key = head.header("sec-websocket-key");
    if !head.header_has_token("upgrade", "websocket")
        || !head.header_has_token("connection", "upgrade")
        || head.header("sec-websocket-version") != Some("13")
        || key.is_none()
    {
        return Err(error(
            400,
            "Bad Request",
            "expected a WebSocket upgrade (version 13)",
        ));
    }
    match &cfg.token {
        Some(token) => {
            let given = query_param(query, "token");
            if !given.is_some_and(|g| token.matches(&g)) {
                return Err(error(401, "Unauthorized", "a valid ?token= is required"));
            }
        }
        // Without a token the endpoint is loopback-only, and the browser is
        // the way in: refuse pages of other sites (cross-site WebSocket
        // hijacking) and host names that resolve to us (DNS rebinding).
        None => check_same_machine_origin(head).map_err(|why| {
            error(
                403,
                "Forbidden",
                &format!("cross-origin viewer refused: {why}"),
            )
        })?,
    }
    let accept =
        tungstenite::handshake::derive_accept_key(key.unwrap_or_default().trim().as_bytes());
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes())
}

/// `Host` must name this machine by address or as `localhost`, and an
/// `Origin` (sent by browsers, not by native clients) must be that host.
pub fn check_same_machine_origin(head: &RequestHead) -> Result<(), String> {
    let host = head.header("host").ok_or("no Host header")?.trim();
    if !is_local_host(host) {
        return Err(format!("Host '{host}' is not this machine's address"));
    }
    if let Some(origin) = head.header("origin") {
        let origin = origin.trim();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err(format!("Origin '{origin}' is not http://{host}"));
        }
    }
    Ok(())
}

fn is_local_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map(|(ip, _)| ip).unwrap_or(rest)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// The percent-decoded value of `name` in a query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            percent_decode_str(&v).decode_utf8_lossy().into_owned()
        })
    })
}

/// Why a path was not served.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    BadRequest,
    Forbidden,
    NotFound,
}

/// The file under `root` (canonical) that a request path names. Only plain
/// path segments are allowed; the result is canonicalized (resolving
/// symlinks) and must still lie under `root`.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, Refused> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| Refused::BadRequest)?;
    if decoded.contains(['\0', '\\']) {
        return Err(Refused::BadRequest);
    }
    let rel = decoded.trim_start_matches('/');
    let mut full = root.to_path_buf();
    for component in Path::new(rel).components() {
        match component {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => full.push(part),
            // `..`, `.`, a root or a drive prefix, or a hidden file.
            _ => return Err(Refused::Forbidden),
        }
    }
    let mut file = full.canonicalize().map_err(|_| Refused::NotFound)?;
    if !file.starts_with(root) {
        return Err(Refused::Forbidden);
    }
    if file.is_dir() {
        file = file
            .join("index.html")
            .canonicalize()
            .map_err(|_| Refused::NotFound)?;
        if !file.starts_with(root) {
            return Err(Refused::Forbidden);
        }
    }
    if !file.is_file() {
        return Err(Refused::NotFound);
    }
    Ok(file)
}

/// A content coding the endpoint can serve from a precompressed sibling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    /// In the order the endpoint prefers them when the client likes both
    /// equally (brotli is the smaller).
    pub const ALL: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// What the sibling's name adds to the file's: `NAME.br`, `NAME.gz`.
    pub fn extension(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gz",
        }
    }
}

/// Elements of `Accept-Encoding` looked at; any more are ignored (the head
/// is bounded anyway, this bounds the work per request).
const MAX_CODINGS: usize = 64;

/// What a request's `Accept-Encoding` (RFC 9110, section 12.5.3) says about
/// the codings the endpoint has, as weights in thousandths: 0 is refused.
/// Names are case-insensitive; `x-gzip` is `gzip`; `*` covers codings not
/// named; an element with a malformed weight is ignored; when a coding is
/// named twice the first counts. No header means identity only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    br: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

impl AcceptEncoding {
    /// From every value of the header (none when it is absent).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = AcceptEncoding::default();
        let elements = values
            .into_iter()
            .flat_map(|v| v.split(','))
            .take(MAX_CODINGS);
        for element in elements {
            let mut parts = element.split(';');
            let name = parts.next().unwrap_or_default().trim();
            if name.is_empty() {
                continue;
            }
            let mut weight = Some(1000);
            for param in parts {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                if key.trim().eq_ignore_ascii_case("q") {
                    weight = qvalue(value);
                }
            }
            let Some(weight) = weight else {
                continue;
            };
            let slot = if name.eq_ignore_ascii_case("br") {
                &mut out.br
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut out.gzip
            } else if name.eq_ignore_ascii_case("identity") {
                &mut out.identity
            } else if name == "*" {
                &mut out.any
            } else {
                continue;
            };
            slot.get_or_insert(weight);
        }
        out
    }

    /// The weight of `coding` (0: not acceptable).
    pub fn weight(&self, coding: Coding) -> u16 {
        let named = match coding {
            Coding::Brotli => self.br,
            Coding::Gzip => self.gzip,
        };
        named.or(self.any).unwrap_or(0)
    }

    /// The codings the client takes, the one it weighs highest first (the
    /// endpoint's order, [`Coding::ALL`], breaks ties). None when it
    /// refuses them all or weighs an explicit `identity` higher.
    pub fn by_preference(&self) -> Vec<Coding> {
        let floor = self.identity.unwrap_or(0);
        let mut out: Vec<Coding> = Coding::ALL
            .into_iter()
            .filter(|c| self.weight(*c) > 0 && self.weight(*c) >= floor)
            .collect();
        // Stable: ties keep the endpoint's order.
        out.sort_by_key(|c| std::cmp::Reverse(self.weight(*c)));
        out
    }
}

/// A weight, `0` to `1` with at most three decimals, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to send, out of those `available`: the first of
/// [`AcceptEncoding::by_preference`] that is there.
pub fn preferred_coding(
    accepted: &AcceptEncoding,
    available: impl IntoIterator<Item = Coding>,
) -> Option<Coding> {
    let available: Vec<Coding> = available.into_iter().collect();
    accepted
        .by_preference()
        .into_iter()
        .find(|c| available.contains(c))
}

/// The precompressed sibling of `file` (a path [`resolve`] gave), by the
/// same rules: after resolving symlinks it lies under `root` and is a
/// regular file.
pub fn sibling(root: &Path, file: &Path, coding: Coding) -> Option<PathBuf> {
    let mut name = file.file_name()?.to_os_string();
    name.push(".");
    name.push(coding.extension());
    let found = file.with_file_name(name).canonicalize().ok()?;
    (found.starts_with(root) && found.is_file()).then_some(found)
}

/// The sibling to stream for `file` and what it is encoded with: the most
/// wanted one that exists, is a regular file once open, and is not older
/// than `file` (an older one is stale, left from an earlier build).
fn open_sibling(
    root: &Path,
    file: &Path,
    plain: &fs::Metadata,
    accepted: &AcceptEncoding,
) -> Option<(File, u64, Coding)> {
    accepted.by_preference().into_iter().find_map(|coding| {
        let opened = File::open(sibling(root, file, coding)?).ok()?;
        let meta = opened.metadata().ok()?;
        let stale = matches!(
            (meta.modified(), plain.modified()),
            (Ok(sib), Ok(orig)) if sib < orig
        );
        (meta.is_file() && !stale).then_some((opened, meta.len(), coding))
    })
}

pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve_static(path: &str, cfg: &HttpConfig, head_only: bool, accepted: &AcceptEncoding) -> Route {
    let Some(root) = &cfg.web_root else {
        return Route::Reply(not_built(cfg, head_only));
    };
    let file = match resolve(root, path) {
        Ok(f) => f,
        Err(Refused::BadRequest) => return Route::Reply(error(400, "Bad Request", "bad path")),
        Err(Refused::Forbidden) => return Route::Reply(error(403, "Forbidden", "forbidden")),
        Err(Refused::NotFound) => return Route::Reply(error(404, "Not Found", "not found")),
    };
    let not_found = || Route::Reply(error(404, "Not Found", "not found"));
    let Ok(opened) = File::open(&file) else {
        return not_found();
    };
    let Ok(meta) = opened.metadata() else {
        return not_found();
    };
    let kind = content_type(&file);
    if kind.starts_with("text/html") && meta.len() <= MAX_HASHED_HTML {
        // Read whole to hash its scripts; always sent as it is.
        let Ok(body) = fs::read(&file) else {
            return not_found();
        };
        let csp = csp(&inline_script_hashes(&String::from_utf8_lossy(&body)));
        let mut out = response_head(200, "OK", kind, body.len() as u64, &csp, VARY);
        if !head_only {
            out.extend_from_slice(&body);
        }
        return Route::Reply(out);
    }
    let (file, len, coding) = match open_sibling(root, &file, &meta, accepted) {
        Some((sib, len, coding)) => (sib, len, Some(coding)),
        None => (opened, meta.len(), None),
    };
    let extra = match coding {
        Some(c) => format!("Content-Encoding: {}\r\n{VARY}", c.token()),
        None => VARY.to_owned(),
    };
    let head = response_head(200, "OK", kind, len, &csp(&[]), &extra);
    if head_only {
        return Route::Reply(head);
    }
    Route::File { head, file, len }
}

/// The page served when there is no viewer to serve.
fn not_built(cfg: &HttpConfig, head_only: bool) -> Vec<u8> {
    let looked = match &cfg.web_root_shown {
        Some(root) => format!(
            "<p>There is no viewer in <code>{}</code>.</p>",
            html_escape(&root.display().to_string())
        ),
        None => "<p>No web viewer was found next to the muxscope executable \
                 (<code>dist/</code> beside it, or <code>share/muxscope/web</code> \
                 in its prefix).</p>"
            .to_owned(),
    };
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>muxscope: web viewer not built</title>\
         <h1>The muxscope web viewer is not built</h1>{looked}\
         <p>Build it with <code>scripts/build-web.sh</code> (in a muxscope checkout; it \
         writes <code>dist/</code>), then start muxscope with \
         <code>--web-root path/to/dist</code>.</p>\n"
    );
    response(
        503,
        "Service Unavailable",
        "text/html; charset=utf-8",
        body.as_bytes(),
        head_only,
    )
}

/// The `'sha256-…'` sources of the inline scripts in `html`.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut hashes = Vec::new();
    let mut at = 0;
    while let Some(open) = lower[at..].find("<script").map(|i| at + i) {
        let Some(tag_end) = lower[open..].find('>').map(|i| open + i + 1) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</script").map(|i| tag_end + i) else {
            break;
        };
        if !lower[open..tag_end].contains("src=") {
            let digest =
                ring::digest::digest(&ring::digest::SHA256, &html.as_bytes()[tag_end..close]);
            hashes.push(format!(
                "'sha256-{}'",
                data_encoding::BASE64.encode(digest.as_ref())
            ));
        }
        at = close;
    }
    hashes
}

/// The Content-Security-Policy with these extra script sources.
fn csp(script_hashes: &[String]) -> String {
    let mut out = CSP_SCRIPT.to_owned();
    for h in script_hashes {
        out.push(' ');
        out.push_str(h);
    }
    format!("default-src 'none'; {out}; {CSP_REST}")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A complete response that closes the connection.
pub fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = response_head(
        status,
        reason,
        content_type,
        body.len() as u64,
        &csp(&[]),
        "",
    );
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// The head of a response whose body is `len` bytes; `extra` is more
/// header lines, each ending in CRLF.
fn response_head(
    status: u16,
    reason: &str,
    content_type: &str,
    len: u64,
    csp: &str,
    extra: &str,
) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {len}\r\n\
         {extra}\
         Cache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\n\
         Content-Security-Policy: {csp}\r\n\
         X-Frame-Options: DENY\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

pub fn error(status: u16, reason: &str, message: &str) -> Vec<u8> {
    response(
        status,
        reason,
        "text/plain; charset=utf-8",
        format!("{message}\n").as_bytes(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
        }
    }

    fn status(bytes: &[u8]) -> u16 {
        let text = String::from_utf8_lossy(bytes);
        text.split(' ').nth(1).unwrap().parse().unwrap()
    }

    const UPGRADE: [(&str, &str); 4] = [
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn upgrade_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        UPGRADE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn parses_heads_and_refuses_huge_ones() {
        let Parsed::Complete(h, n) = parse_head(b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nrest") else {
            panic!()
        };
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), n),
            ("GET", "/a?b", 30)
        );
        assert_eq!(h.header("host"), Some("x"));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHo"),
            Parsed::Partial
        ));
        let big = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        let Parsed::Invalid(r) = parse_head(&big) else {
            panic!()
        };
        assert_eq!(status(&r), 431);
        let Parsed::Invalid(r) = parse_head(b"\x00\x01garbage\r\n\r\n") else {
            panic!()
        };
        assert_eq!(status(&r), 400);
    }

    #[test]
    fn upgrade_answers_with_the_rfc_accept_key() {
        let cfg = HttpConfig::new(None, None);
        let h = head("/ws", &upgrade_with(&[("Host", "127.0.0.1:8801")]));
        let Route::Upgrade(r) = route(&h, &cfg) else {
            panic!()
        };
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 101"));
        // The example from RFC 6455, section 1.3.
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn upgrade_needs_the_token_when_one_is_set() {
        let cfg = HttpConfig::new(None, Some("s3 cr&t".into()));
        let h = upgrade_with(&[("Host", "example.org")]);
        for (target, want) in [
            ("/ws", 401),
            ("/ws?token=wrong", 401),
            ("/ws?token=s3", 401),
            ("/ws?token=s3%20cr%26t", 101),
            ("/ws?x=1&token=s3+cr%26t", 101),
        ] {
            let got = match route(&head(target, &h), &cfg) {
                Route::Upgrade(r) | Route::Reply(r) | Route::File { head: r, .. } => status(&r),
            };
            assert_eq!(got, want, "{target}");
        }
    }

    #[test]
    fn without_a_token_only_same_machine_pages_may_attach() {
        let cfg = HttpConfig::new(None, None);
        for (host, origin, want) in [
            ("127.0.0.1:8801", None, 101),
            ("localhost:8801", Some("http://localhost:8801"), 101),
            ("[::1]:8801", Some("http://[::1]:8801"), 101),
            ("127.0.0.1:8801", Some("https://evil.example"), 403),
            ("evil.example:8801", Some("http://evil.example:8801"), 403),
            ("127.0.0.1:8801", Some("null"), 403),
        ] {
            let mut h = upgrade_with(&[("Host", host)]);
            if let Some(o) = origin {
                h.push(("Origin", o));
            }
            let got = match route(&head("/ws", &h), &cfg) {
                Route::Upgrade(r) | Route::Reply(r) | Route::File { head: r, .. } => status(&r),
            };
            assert_eq!(got, want, "{host} {origin:?}");
        }
    }

    #[test]
    fn plain_get_of_ws_is_a_bad_request() {
        let cfg = HttpConfig::new(None, None);
        let Route::Reply(r) = route(&head("/ws", &[("Host", "127.0.0.1")]), &cfg) else {
            panic!()
        };
        assert_eq!(status(&r), 400);
        let mut h = head("/ws", &upgrade_with(&[("Host", "127.0.0.1")]));
        h.method = "HEAD".into();
        let Route::Reply(r) = route(&h, &cfg) else {
            panic!()
        };
        assert_eq!(status(&r), 405);
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("a=1&token=x%2By", "token").as_deref(),
            Some("x+y")
        );
        assert_eq!(query_param("token", "token").as_deref(), Some(""));
        assert_eq!(query_param("tokens=1", "token"), None);
    }

    /// A file is not read into the response: the route hands back the open
    /// file and its length, and the io thread streams it.
    #[test]
    fn files_are_routed_for_streaming_not_read_whole() {
        let dir = std::env::temp_dir().join(format!("muxscope-route-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("big.wasm"), vec![7u8; 300_000]).unwrap();
        let cfg = HttpConfig::new(Some(&dir), None);
        match route(&head("/big.wasm", &[]), &cfg) {
            Route::File { head, len, .. } => {
                assert_eq!(len, 300_000);
                assert!(head.len() < 1024, "only the head: {} bytes", head.len());
                assert!(String::from_utf8_lossy(&head).contains("Content-Length: 300000\r\n"));
            }
            other => panic!("expected a streamed file, got {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inline_scripts_are_hashed_and_sourced_ones_are_not() {
        let html = "<script type=module>import init from '/a.js';</script>\
                    <SCRIPT src=\"/b.js\"></SCRIPT><script>x</script >";
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2, "{hashes:?}");
        // sha256("x"), base64.
        assert_eq!(
            hashes[1],
            "'sha256-LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE='"
        );
        assert!(inline_script_hashes("<script>unterminated").is_empty());
    }

    #[test]
    fn without_a_viewer_the_page_says_how_to_build_one() {
        let cfg = HttpConfig::new(None, None);
        let Route::Reply(r) = route(&head("/", &[]), &cfg) else {
            panic!()
        };
        let text = String::from_utf8_lossy(&r);
        assert!(text.contains("scripts/build-web.sh") && text.contains("--web-root"));
        assert!(text.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn accept_encoding_picks_by_weight_then_brotli() {
        use Coding::{Brotli, Gzip};
        let pick = |v: &str| preferred_coding(&AcceptEncoding::parse([v]), Coding::ALL);
        for (value, want) in [
            ("gzip, deflate, br, zstd", Some(Brotli)),
            ("gzip", Some(Gzip)),
            ("GZip", Some(Gzip)),
            ("x-gzip", Some(Gzip)),
            ("Br", Some(Brotli)),
            ("BR;Q=0.5, gzip;q=0.6", Some(Gzip)),
            ("br; q=1.0, gzip", Some(Brotli)),
            ("br;q=1., gzip;q=1.000", Some(Brotli)),
            ("br;q=0, gzip;q=0.001", Some(Gzip)),
            ("br;q=0.000, gzip;q=0", None),
            ("*", Some(Brotli)),
            ("*;q=0", None),
            ("br;q=0, *", Some(Gzip)),
            // A named coding beats `*`, wherever it stands.
            ("*, br;q=0", Some(Gzip)),
            ("*;q=0, gzip", Some(Gzip)),
            // An explicit identity weighed higher wins.
            ("identity, gzip;q=0.5", None),
            ("identity;q=0.5, gzip", Some(Gzip)),
            ("identity;q=0", None),
            ("", None),
            ("deflate, zstd", None),
            // The first mention counts.
            ("br;q=0, br", None),
            ("br;q=0.5;level=9", Some(Brotli)),
            (" , ,, ;q=1, br", Some(Brotli)),
        ] {
            assert_eq!(pick(value), want, "{value:?}");
        }
        // A malformed weight makes its element ignored.
        for bad in [
            "br;q=1.5",
            "br;q=2",
            "br;q=-1",
            "br;q=0.0001",
            "br;q=1.001",
            "br;q=abc",
            "br;q=",
            "br;q",
            "br;q=.5",
            "br;q=0.5e1",
            "br;q=0.\u{665}",
            "br;q=\u{2460}",
        ] {
            assert_eq!(pick(bad), None, "{bad:?}");
        }
        // Values of several header lines add up.
        let two = AcceptEncoding::parse(["gzip;q=0", "br"]);
        assert_eq!(preferred_coding(&two, Coding::ALL), Some(Brotli));
        // No header: identity.
        assert_eq!(
            preferred_coding(&AcceptEncoding::parse([]), Coding::ALL),
            None
        );
        // Only what is there is chosen.
        let both = AcceptEncoding::parse(["br, gzip"]);
        assert_eq!(preferred_coding(&both, [Gzip]), Some(Gzip));
        assert_eq!(preferred_coding(&both, []), None);
        // The work is bounded: elements past the limit are not looked at.
        let long = format!("{}br", "deflate,".repeat(MAX_CODINGS));
        assert_eq!(pick(&long), None);
        let short = format!("{}br", "deflate,".repeat(MAX_CODINGS - 1));
        assert_eq!(pick(&short), Some(Brotli));
    }

    #[test]
    fn content_types() {
        for (f, t) in [
            ("a.wasm", "application/wasm"),
            ("a.JS", "text/javascript; charset=utf-8"),
            ("index.html", "text/html; charset=utf-8"),
            ("manifest.json", "application/json"),
            ("icon.png", "image/png"),
            ("x", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(f)), t);
        }
    }
}
