//! Scenario files: the examples parse verbatim and behave as the issue
//! says, framing is the same however reads split, templates render, and
//! bad files are refused with a position or a rule number.

use muxscope::faults::Slice;
use muxscope::scenario::framing::{self, DEFAULT_MAX_MESSAGE};
use muxscope::scenario::{
    self, BytesSpec, Context, Firing, Framer, Framing, FramingError, Otherwise, RuleState,
    Scenario, ScenarioFile, Then, Trigger,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}{}", scenario::FILE_SUFFIX))
}

fn load(name: &str) -> (ScenarioFile, Scenario) {
    let file = scenario::load(&example(name)).unwrap_or_else(|e| panic!("{e}"));
    let compiled = Scenario::compile(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
    (file, compiled)
}

const EXAMPLES: [&str; 3] = ["line-protocol", "length-prefixed", "reference"];

#[test]
fn the_examples_parse_compile_and_round_trip() {
    for name in EXAMPLES {
        let (file, _) = load(name);
        let text = scenario::to_ron(&file);
        assert_eq!(scenario::parse(&text), Ok(file.clone()), "{name}:\n{text}");
        assert!(!text.contains("Some("), "{name}:\n{text}");
        Scenario::compile(&scenario::parse(&text).unwrap()).unwrap();
    }
    let (file, _) = load("reference");
    assert_eq!(file.rules.len(), 14);
    assert_eq!(file.name.as_deref(), Some("reference"));
}

#[test]
fn loading_reads_and_never_writes() {
    let path = example("line-protocol");
    let before = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    load("line-protocol");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    let missing = example("no-such");
    let e = scenario::load(&missing).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read: ", missing.display())),
        "{e}"
    );
}

/// One connection running a scenario, as the engine would.
struct Client<'a> {
    scenario: &'a Scenario,
    framer: Framer,
    state: RuleState,
}

/// What the server did for one trigger.
#[derive(Debug, PartialEq)]
enum Did {
    Fired(Firing),
    Otherwise(Otherwise, Vec<u8>),
}

impl<'a> Client<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        Client {
            scenario,
            framer: Framer::new(),
            state: RuleState::default(),
        }
    }

    fn fire(&mut self, trigger: Trigger<'_>) -> Option<Firing> {
        let ctx = Context {
            conn: 5,
            unix_micros: 0,
        };
        self.scenario
            .fire(trigger, &mut self.state, &ctx, &mut || 500_000)
    }

    fn send(&mut self, bytes: &[u8]) -> Vec<Did> {
        let mut did = Vec::new();
        let (scenario, state) = (self.scenario, &mut self.state);
        self.framer
            .push(scenario.framing(), scenario.max_message(), bytes, |m| {
                let ctx = Context {
                    conn: 5,
                    unix_micros: 0,
                };
                did.push(
                    match scenario.fire(Trigger::Message(m.body), state, &ctx, &mut || 500_000) {
                        Some(f) => Did::Fired(f),
                        None => Did::Otherwise(scenario.otherwise(), m.raw.to_vec()),
                    },
                );
            })
            .unwrap();
        did
    }

    /// The one reply `bytes` gets.
    fn reply(&mut self, bytes: &[u8]) -> Firing {
        match self.send(bytes).as_slice() {
            [Did::Fired(f)] => f.clone(),
            other => panic!("{bytes:?} got {other:?}"),
        }
    }
}

fn firing(rule: usize, reply: Option<&[u8]>, delay_ms: u64, then: Option<Then>) -> Firing {
    Firing {
        rule,
        reply: reply.map(<[u8]>::to_vec),
        delay: Duration::from_millis(delay_ms),
        then,
        reply_error: None,
    }
}

#[test]
fn the_line_protocol_example_behaves() {
    let (_, s) = load("line-protocol");
    assert!(s.has_connect_rules());
    assert_eq!(s.idle_after(), &[Duration::from_secs(2)]);
    let mut c = Client::new(&s);
    assert_eq!(
        c.fire(Trigger::Connect),
        Some(firing(0, Some(b"+OK muxscope ready\r\n"), 0, None))
    );
    assert_eq!(c.reply(b"PING\n"), firing(1, Some(b"+PONG\r\n"), 0, None));
    assert_eq!(
        c.reply(b"ECHO hi there\r\n"),
        firing(2, Some(b"hi there\r\n"), 200, None)
    );
    // Anything else is echoed byte for byte, line end included, split or not.
    assert_eq!(c.send(b"hel"), vec![]);
    assert_eq!(
        c.send(b"lo\r\nPI"),
        vec![Did::Otherwise(Otherwise::Echo, b"hello\r\n".to_vec())]
    );
    assert_eq!(c.reply(b"NG\r\n"), firing(1, Some(b"+PONG\r\n"), 0, None));
    // Two seconds of silence: once, ever.
    assert_eq!(
        s.next_idle(&c.state, Duration::ZERO),
        Some(Duration::from_secs(2))
    );
    assert_eq!(c.fire(Trigger::Idle(Duration::from_millis(1999))), None);
    assert_eq!(
        c.fire(Trigger::Idle(Duration::from_secs(2))),
        Some(firing(5, Some(b"+STILL THERE?\r\n"), 0, None))
    );
    c.state.activity();
    assert_eq!(s.next_idle(&c.state, Duration::ZERO), None);
    assert_eq!(c.fire(Trigger::Idle(Duration::from_secs(60))), None);
    assert_eq!(
        c.reply(b"QUIT\n"),
        firing(3, Some(b"+BYE\r\n"), 0, Some(Then::Close))
    );
    assert_eq!(c.reply(b"BOOM\n"), firing(4, None, 0, Some(Then::Reset)));
    assert_eq!(c.fire(Trigger::HalfClose), None);
}

#[test]
fn the_length_prefixed_example_behaves() {
    let (_, s) = load("length-prefixed");
    assert_eq!(s.otherwise(), Otherwise::Discard);
    assert_eq!(
        s.faults().slice,
        Some(Slice {
            min: 1,
            max: 1,
            delay: 2
        })
    );
    let mut c = Client::new(&s);
    assert_eq!(c.fire(Trigger::Connect), None);
    assert_eq!(
        c.reply(b"\x00\x01\x01"),
        firing(0, Some(b"\x00\x02\x81\x00"), 0, None)
    );
    assert_eq!(
        c.reply(b"\x00\x01\x01"),
        firing(0, Some(b"\x00\x02\x81\x01"), 0, None)
    );
    assert_eq!(
        c.send(b"\x00\x02\x03\x04\x00"),
        vec![Did::Otherwise(
            Otherwise::Discard,
            b"\x00\x02\x03\x04".to_vec()
        )]
    );
    assert_eq!(c.framer.pending(), b"\x00");
    assert_eq!(
        c.reply(b"\x01\x02"),
        firing(1, Some(b"\x00\x01\x82"), 0, Some(Then::Close))
    );
}

#[test]
fn templates_render_captures_seq_widths_and_crcs() {
    let file = scenario::parse(
        r#"(
            version: 1,
            framing: Lines,
            rules: [
                (on: Message(Regex("^(?P<cmd>[A-Z]+) (\\d+)$")), send: Text("${cmd}/${2}/${0}/${seq}/${len}/${conn}")),
                (on: Message(Exact("w")), send: Hex("${seq} ${seq:u16be} ${seq:u16le} ${seq:u32be} ${seq:u32le} ${seq:u64be} ${seq:u64le}")),
                (on: Message(Exact("crc16")), send: Text("123456789${crc16}")),
                (on: Message(Exact("crc32")), send: Text("123456789${crc32}")),
                (on: Message(Exact("crc16hex")), send: Hex("31 32 33 34 35 36 37 38 39 ${crc16}")),
                (on: Message(Exact("crc32hex")), send: Hex("31 32 33 34 35 36 37 38 39 ${crc32:u32le}")),
                (on: Message(Exact("now")), send: Hex("${now}")),
            ],
        )"#,
    )
    .unwrap();
    let s = Scenario::compile(&file).unwrap();
    let mut c = Client::new(&s);
    let reply = |c: &mut Client, m: &[u8]| c.reply(m).reply.unwrap();
    assert_eq!(reply(&mut c, b"GET 42\n"), b"GET/42/GET 42/0/6/5");
    assert_eq!(
        reply(&mut c, b"w\n"),
        [
            &[1][..],
            &[0, 1],
            &[1, 0],
            &[0, 0, 0, 1],
            &[1, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 0, 0, 0]
        ]
        .concat()
    );
    // The check values of "123456789": CRC-16/MODBUS 0x4b37, CRC-32/ISO-HDLC
    // 0xcbf43926; lowercase hex digits in Text, binary in Hex.
    assert_eq!(reply(&mut c, b"crc16\n"), b"1234567894b37");
    assert_eq!(reply(&mut c, b"crc32\n"), b"123456789cbf43926");
    assert_eq!(reply(&mut c, b"crc16hex\n").split_off(9), [0x4b, 0x37]);
    assert_eq!(
        reply(&mut c, b"crc32hex\n").split_off(9),
        [0x26, 0x39, 0xf4, 0xcb]
    );
    // Time: the context's, big-endian.
    assert_eq!(reply(&mut c, b"now\n"), [0; 8]);
    assert_eq!(c.state.seq(), 7);
}

/// Bad files: a position for what RON sees, a rule number for the rest.
#[test]
fn bad_files_say_where() {
    let parse_err = |text: &str| scenario::parse(text).unwrap_err();
    let compile_err = |text: &str| Scenario::compile(&scenario::parse(text).unwrap()).unwrap_err();
    let e = parse_err("(\n    version: 1,\n    rules: [],\n    colour: \"blue\",\n)");
    assert!(e.starts_with("line 4, column 5: "), "{e}");
    assert!(e.contains("colour"), "{e}");
    let e = parse_err("(version: 1, framing: LengthPrefix(width: 2, endian: big))");
    assert!(e.starts_with("line 1, column "), "{e}");
    assert!(e.contains("endian"), "{e}");
    let e = parse_err("(version: 1, rules: [(on: Message(Exactly(\"x\")))])");
    assert!(e.contains("Exactly"), "{e}");
    let e = parse_err("(version: 7, future: true)");
    assert!(e.contains("newer muxscope (scenario version 7"), "{e}");
    let e = compile_err(
        r#"(version: 1, rules: [
            (on: Connect),
            (on: Message(Exact("a"))),
            (on: Message(Regex("a[")), send: Text("x")),
        ])"#,
    );
    assert!(
        e.starts_with("rule 3: on: Regex(\"a[\"): regex parse error"),
        "{e}"
    );
    let e = compile_err(
        r#"(version: 1, rules: [(on: Message(Regex("^(a)$")), send: Text("${name}"))])"#,
    );
    assert!(
        e.starts_with("rule 1: send: '${name}': unknown variable"),
        "{e}"
    );
    let e = compile_err(r#"(version: 1, rules: [(on: Message(Any), send: Hex("81 ${seq:u24}"))])"#);
    assert!(
        e.starts_with("rule 1: send: '${seq:u24}': 'u24' is not a width"),
        "{e}"
    );
    let e = compile_err(r#"(version: 1, rules: [(on: Message(Any), send: Hex("8"))])"#);
    assert!(
        e.starts_with("rule 1: send: '8': odd number of hex digits"),
        "{e}"
    );
}

/// Every message (body, raw), the error and what is pending, for `chunks`.
type Cut = (Vec<(Vec<u8>, Vec<u8>)>, Option<FramingError>, Vec<u8>);

fn cut<'a>(framing: &Framing, max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Cut {
    let mut framer = Framer::new();
    let mut messages = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let r = framer.push(framing, max, chunk, |m| {
            messages.push((m.body.to_vec(), m.raw.to_vec()))
        });
        if let Err(e) = r {
            assert!(
                error.is_none() || error == Some(e.clone()),
                "the error changed"
            );
            error = Some(e);
        }
    }
    assert!(framer.pending().len() <= max + 8 + 64, "held too much");
    (messages, error, framer.pending().to_vec())
}

#[test]
fn an_oversized_length_prefix_is_an_error_and_never_held() {
    for width in [4u8, 8] {
        let framing = Framing::LengthPrefix {
            width,
            big_endian: true,
            includes_header: false,
            offset: 0,
        };
        let stream = [vec![0xff; width.into()], vec![b'x'; 1000]].concat();
        let (messages, error, pending) = cut(&framing, DEFAULT_MAX_MESSAGE, stream.chunks(7));
        assert!(messages.is_empty());
        assert!(pending.is_empty());
        let e = error.unwrap();
        assert!(
            matches!(e, FramingError::PrefixTooLarge { max, .. } if max == DEFAULT_MAX_MESSAGE)
        );
        assert!(
            e.to_string().contains("over the 1 MiB limit (max_message)"),
            "{e}"
        );
    }
}

fn framings() -> impl Strategy<Value = Framing> {
    let length_prefix = (
        prop::sample::select(vec![1u8, 2, 4, 8]),
        any::<bool>(),
        any::<bool>(),
        0u32..3,
    )
        .prop_map(
            |(width, big_endian, includes_header, offset)| Framing::LengthPrefix {
                width,
                big_endian,
                includes_header,
                offset,
            },
        );
    prop_oneof![
        Just(Framing::Lines),
        Just(Framing::Delimiter(BytesSpec::Text("\r\n".into()))),
        Just(Framing::Delimiter(BytesSpec::Text("aab".into()))),
        Just(Framing::Delimiter(BytesSpec::Hex("00 00 01".into()))),
        length_prefix,
        (1u32..6).prop_map(Framing::Fixed),
    ]
}

/// Bytes where delimiters and small length prefixes are common.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(0u8),
            Just(1),
            Just(2),
            Just(b'\r'),
            Just(b'\n'),
            Just(b'a'),
            Just(b'b'),
            any::<u8>()
        ],
        0..300,
    )
}

/// A body `framing` gives back as it is, made from `seed`.
fn body_for(framing: &Framing, mut seed: Vec<u8>) -> Vec<u8> {
    let avoid: &[u8] = match framing {
        Framing::Lines | Framing::Delimiter(BytesSpec::Text(_)) => b"\r\na",
        Framing::Delimiter(BytesSpec::Hex(_)) => b"\x00",
        _ => b"",
    };
    for b in &mut seed {
        if avoid.contains(b) {
            *b = b'x';
        }
    }
    match framing {
        Framing::Fixed(n) => seed.resize(*n as usize, b'f'),
        Framing::LengthPrefix { offset, .. } if seed.len() < *offset as usize => {
            seed.resize(*offset as usize, b'o')
        }
        _ => {}
    }
    seed
}

proptest! {
    /// Reads split anywhere (one byte at a time, or at random points) give
    /// the same messages, error and pending bytes as one read of it all.
    #[test]
    fn splitting_reads_changes_nothing(
        framing in framings(),
        bytes in stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in prop_oneof![Just(8usize), Just(64), Just(DEFAULT_MAX_MESSAGE)],
    ) {
        let whole = cut(&framing, max, [&bytes[..]]);
        prop_assert_eq!(&cut(&framing, max, bytes.chunks(1)), &whole);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            chunks.push(&bytes[from..p]);
            from = p;
        }
        prop_assert_eq!(&cut(&framing, max, chunks), &whole);
    }

    /// Replies framed with `frame` come back out of a framer as they went
    /// in, ten at once or a byte at a time.
    #[test]
    fn framed_replies_come_back(
        framing in framings(),
        seeds in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..=10),
    ) {
        let bodies: Vec<Vec<u8>> = seeds.into_iter().map(|s| body_for(&framing, s)).collect();
        let frames: Vec<Vec<u8>> = bodies
            .iter()
            .map(|b| framing::frame(&framing, b).unwrap())
            .collect();
        let stream = frames.concat();
        let want: Vec<(Vec<u8>, Vec<u8>)> = bodies.into_iter().zip(frames).collect();
        let (messages, error, pending) = cut(&framing, DEFAULT_MAX_MESSAGE, [&stream[..]]);
        prop_assert_eq!(error, None);
        prop_assert!(pending.is_empty());
        prop_assert_eq!(&messages, &want);
        prop_assert_eq!(cut(&framing, DEFAULT_MAX_MESSAGE, stream.chunks(1)).0, want);
    }

    /// A framer given another framing midway (the scenario changed) never
    /// panics or loops.
    #[test]
    fn changing_framing_midway_is_safe(
        steps in prop::collection::vec((framings(), stream()), 1..6),
        max in prop_oneof![Just(8usize), Just(DEFAULT_MAX_MESSAGE)],
    ) {
        let mut framer = Framer::new();
        for (framing, bytes) in steps.iter().chain([(Framing::Raw, vec![1])].iter()) {
            let _ = framer.push(framing, max, bytes, |m| assert!(m.raw.len() >= m.body.len()));
        }
    }

    /// Whatever a file says, parsing and compiling never panic.
    #[test]
    fn mangled_files_never_panic(cut_at in any::<prop::sample::Index>(), junk in "[(),:\"a-z0-9 ]{0,12}") {
        let text = std::fs::read_to_string(example("reference")).unwrap();
        let at = cut_at.index(text.len());
        if text.is_char_boundary(at) {
            let mangled = format!("{}{junk}{}", &text[..at], &text[at..]);
            if let Ok(file) = scenario::parse(&mangled) {
                let _ = Scenario::compile(&file).map(|s| s.try_input(b"PING\nSET a=b\n", 1));
            }
        }
    }
}
