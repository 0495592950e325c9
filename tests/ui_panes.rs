//! The desktop panes driven through egui_kittest, against a real in-process
//! engine on 127.0.0.1:0 and real TCP clients.
//!
//! Every test builds the app exactly as the window does
//! (`desktop::local_app`), acts on it only through the accessibility tree
//! (clicks, typing), and checks what the engine and the clients actually did.
//! Frames only fold engine batches in `logic`, so waits step the harness
//! until a condition holds, bounded by [`TIMEOUT`].

use clap::Parser;
use egui::accesskit::Role;
use egui::{Modifiers, PointerButton, Pos2, Rect, pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::{AccessKitNode, NodeT as _, Queryable as _};
use muxscope::cli::Cli;
use muxscope::protocol::{ConnCounters, ConnId, ConnState, ListenState, Mode};
use muxscope::ui::MuxscopeApp;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

type App = Harness<'static, MuxscopeApp>;

/// The longest a single wait may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const SILENCE: Duration = Duration::from_millis(300);

// ---- the app --------------------------------------------------------------

/// The app on an in-process engine listening on a free loopback port, and
/// that port.
fn start() -> (App, SocketAddr) {
    start_with(&[])
}

/// [`start`] with more command-line arguments.
fn start_with(args: &[&str]) -> (App, SocketAddr) {
    let mut argv = vec!["muxscope", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let cli = Cli::parse_from(argv);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| {
            muxscope::desktop::local_app(&cc.egui_ctx, &cli).expect("engine starts")
        });
    let addr = wait_for(
        &mut h,
        "the engine to report its listening address",
        |h| match h.state().monitor.stats.as_ref()?.listen {
            ListenState::Listening(addr) => Some(addr),
            _ => None,
        },
    );
    (h, addr)
}

/// Step frames until `check` returns something, or fail after [`TIMEOUT`]
/// naming what was awaited and what the app knew by then.
#[track_caller]
fn wait_for<T>(h: &mut App, what: &str, mut check: impl FnMut(&App) -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        h.step();
        if let Some(v) = check(h) {
            return v;
        }
        if Instant::now() >= deadline {
            let app = h.state();
            let mut rows: Vec<String> = app
                .monitor
                .connections
                .iter()
                .map(|c| {
                    format!(
                        "{} {} rx={} tx={} {:?}",
                        c.id, c.peer, c.rx_bytes, c.tx_bytes, c.state
                    )
                })
                .collect();
            rows.sort();
            panic!(
                "timed out after {TIMEOUT:?} waiting for {what}\n  listen: {:?}\n  mode: {:?}\n  \
                 selection: {:?}\n  rows in the model: {rows:#?}\n  rows in the table: {:?}",
                app.monitor.stats.as_ref().map(|s| &s.listen),
                app.monitor.stats.as_ref().map(|s| s.mode),
                app.selection,
                table_ids(h),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The model's row for the client whose local address is `peer`.
fn row_of(h: &App, peer: SocketAddr) -> Option<&ConnCounters> {
    h.state()
        .monitor
        .connections
        .iter()
        .find(|c| c.peer == peer)
}

/// Wait for the client's row to be drawn in the table; returns its id.
#[track_caller]
fn wait_row(h: &mut App, client: &TcpStream) -> ConnId {
    let peer = client.local_addr().unwrap();
    wait_for(h, &format!("a table row for the client at {peer}"), |h| {
        let id = row_of(h, peer)?.id;
        table_ids(h).contains(&id).then_some(id)
    })
}

// ---- the accessibility tree ---------------------------------------------

/// What a node says: a label's text is its value, other widgets' is their
/// label.
fn text_of(node: &AccessKitNode<'_>) -> Option<String> {
    if node.role() == Role::Label {
        node.value()
    } else {
        node.label()
    }
}

fn rect_of(node: &AccessKitNode<'_>) -> Rect {
    let r = node.bounding_box().expect("egui nodes have bounds");
    Rect::from_min_max(
        pos2(r.x0 as f32, r.y0 as f32),
        pos2(r.x1 as f32, r.y1 as f32),
    )
}

/// Every node whose text satisfies `f`, with its text and rect.
fn nodes_where(h: &App, f: impl Fn(&str) -> bool) -> Vec<(String, Rect, Role)> {
    h.root()
        .children_recursive()
        .map(|n| n.accesskit_node())
        .filter_map(|n| {
            let text = text_of(&n)?;
            f(&text).then(|| (text, rect_of(&n), n.role()))
        })
        .collect()
}

/// The connections table's header cells, left to right: (title, rect).
/// A sorted column's title carries an arrow (`rx ⏷`).
fn table_headers(h: &App) -> Vec<(String, Rect)> {
    let titles = muxscope::monitor::Column::ALL.map(|c| c.title());
    let mut headers: Vec<(String, Rect)> = nodes_where(h, |t| {
        titles.iter().any(|title| {
            t == *title
                || t.strip_prefix(title)
                    .is_some_and(|rest| rest == " ⏶" || rest == " ⏷")
        })
    })
    .into_iter()
    .filter(|(_, _, role)| *role == Role::Button)
    .map(|(t, r, _)| (t.trim_end_matches([' ', '⏶', '⏷']).to_owned(), r))
    .collect();
    headers.sort_by(|a, b| a.1.left().total_cmp(&b.1.left()));
    headers
}

fn header_rect(h: &App, title: &str) -> Rect {
    table_headers(h)
        .into_iter()
        .find(|(t, _)| t == title)
        .unwrap_or_else(|| panic!("no '{title}' column header in the connections table"))
        .1
}

/// Cells of the connections table that sit in column `title`: left-aligned
/// with its header and below it.
fn column_cells(h: &App, title: &str) -> Vec<(String, Rect)> {
    let header = header_rect(h, title);
    let mut cells: Vec<(String, Rect)> = nodes_where(h, |_| true)
        .into_iter()
        .filter(|(_, r, role)| {
            *role == Role::Label
                && (r.left() - header.left()).abs() < 2.0
                && r.top() > header.bottom()
        })
        .map(|(t, r, _)| (t, r))
        .collect();
    cells.sort_by(|a, b| a.1.top().total_cmp(&b.1.top()));
    cells
}

/// The ids the connections table draws, top to bottom.
fn table_ids(h: &App) -> Vec<ConnId> {
    if table_headers(h).is_empty() {
        return Vec::new();
    }
    column_cells(h, "id")
        .into_iter()
        .filter_map(|(t, _)| t.strip_prefix('#')?.parse().ok().map(ConnId))
        .collect()
}

/// The rect of `id`'s cell in the id column.
fn id_cell(h: &App, id: ConnId) -> Rect {
    column_cells(h, "id")
        .into_iter()
        .find(|(t, _)| *t == id.to_string())
        .unwrap_or_else(|| panic!("{id} is not drawn in the connections table"))
        .1
}

/// The text in row `id`, column `title`, if that row is drawn.
fn try_cell(h: &App, id: ConnId, title: &str) -> Option<String> {
    let row = column_cells(h, "id")
        .into_iter()
        .find(|(t, _)| *t == id.to_string())?
        .1;
    column_cells(h, title)
        .into_iter()
        .find(|(_, r)| (r.center().y - row.center().y).abs() < 3.0)
        .map(|(t, _)| t)
}

#[track_caller]
fn cell(h: &App, id: ConnId, title: &str) -> String {
    try_cell(h, id, title).unwrap_or_else(|| panic!("no '{title}' cell in the row of {id}"))
}

/// Click row `id` in empty space beside its id text (a label under the
/// pointer would take the click for text selection instead of the row).
fn click_row(h: &mut App, id: ConnId) {
    let r = id_cell(h, id);
    click_at(h, pos2(r.right() + 8.0, r.center().y));
    h.step();
}

fn click_at(h: &App, pos: Pos2) {
    h.event(egui::Event::PointerMoved(pos));
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::default(),
        });
    }
}

/// Click the widget called `label`; when several are (the inspector's
/// transcript has its own Text/Hex), the lowest on screen, which is the
/// inject pane's.
#[track_caller]
fn click_lowest(h: &mut App, label: &str) {
    {
        let node = h
            .query_all_by_label(label)
            .max_by(|a, b| a.rect().center().y.total_cmp(&b.rect().center().y))
            .unwrap_or_else(|| panic!("no widget labelled '{label}'"));
        node.click();
    }
    h.step();
}

/// Click the only widget called `label`.
#[track_caller]
fn click(h: &mut App, label: &str) {
    h.get_by_label(label).click();
    h.step();
}

/// Focus the text box called `label` and type `text` into it.
#[track_caller]
fn type_into(h: &mut App, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.step();
    assert!(
        h.get_by_label(label).is_focused(),
        "'{label}' did not take focus when clicked"
    );
    h.get_by_label(label).type_text(text);
    // One frame takes the text; the next draws what depends on it.
    h.run_steps(2);
}

// ---- clients --------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("client connects");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Read exactly `n` bytes, or fail after [`TIMEOUT`].
#[track_caller]
fn read_n(client: &mut TcpStream, n: usize) -> Vec<u8> {
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match client.read(&mut buf[got..]) {
            Ok(0) => panic!(
                "EOF after {got} of {n} bytes: {:?}",
                String::from_utf8_lossy(&buf[..got])
            ),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading {n} bytes failed after {got}: {e}"),
        }
    }
    buf
}

/// Keep the UI running for [`SILENCE`] and fail if the client receives
/// anything (or the connection ends) meanwhile.
#[track_caller]
fn expect_silence(h: &mut App, client: &mut TcpStream, why: &str) {
    client
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let deadline = Instant::now() + SILENCE;
    let mut buf = [0; 4096];
    while Instant::now() < deadline {
        h.step();
        match client.read(&mut buf) {
            Ok(0) => panic!("{why}: the client saw EOF"),
            Ok(n) => panic!(
                "{why}: the client received {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("{why}: read failed: {e}"),
        }
    }
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// Send `bytes` and read them back (echo mode).
#[track_caller]
fn round_trip(client: &mut TcpStream, bytes: &[u8]) {
    client.write_all(bytes).unwrap();
    assert_eq!(
        read_n(client, bytes.len()),
        bytes,
        "the echo differs from what was sent"
    );
}

// ---- tests ------------------------------------------------------------------

/// Each client's row shows the bytes it sent and got back, in the table and
/// in the model, and every input widget is named.
#[test]
fn rows_show_byte_counts() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    let mut b = connect(addr);
    round_trip(&mut a, &[b'a'; 37]);
    round_trip(&mut b, &[b'b'; 1000]);
    let a_peer = a.local_addr().unwrap();
    let b_peer = b.local_addr().unwrap();

    let counted =
        |h: &App, peer, n| row_of(h, peer).is_some_and(|c| c.rx_bytes == n && c.tx_bytes == n);
    wait_for(&mut h, "rx == tx == 37 and 1000 in the model", |h| {
        (counted(h, a_peer, 37) && counted(h, b_peer, 1000)).then_some(())
    });
    let ida = wait_row(&mut h, &a);
    let idb = wait_row(&mut h, &b);
    h.step();

    assert_eq!(table_ids(&h), vec![ida, idb], "rows sorted by id");
    for (id, peer, n) in [(ida, a_peer, "37 B"), (idb, b_peer, "1000 B")] {
        assert_eq!(cell(&h, id, "rx"), n, "rx cell of {id}");
        assert_eq!(cell(&h, id, "tx"), n, "tx cell of {id}");
        assert_eq!(cell(&h, id, "peer"), peer.to_string(), "peer cell of {id}");
        assert_eq!(cell(&h, id, "state"), "open", "state cell of {id}");
        assert_eq!(cell(&h, id, "queued"), "0 B", "queued cell of {id}");
    }
    assert!(
        h.query_by_label_contains("2 shown · 2 open").is_some(),
        "the table's summary counts two open rows"
    );
    h.check_accessibility();
}

/// Clicking a row selects it and the inspector's kick buttons end that
/// client: gracefully with EOF, or with a reset.
#[test]
fn select_row_and_kick() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    let mut b = connect(addr);
    round_trip(&mut a, b"hello");
    let ida = wait_row(&mut h, &a);
    let idb = wait_row(&mut h, &b);

    click_row(&mut h, ida);
    wait_for(&mut h, "the clicked row to be selected", |h| {
        let s = &h.state().selection;
        (s.primary == Some(ida) && s.conns.len() == 1).then_some(())
    });
    // The inspector follows the selection and fetches its transcript.
    wait_for(&mut h, "the inspector's transcript", |h| {
        h.query_by_label_contains("← 5 B").is_some().then_some(())
    });
    h.check_accessibility();

    click(&mut h, "Kick (graceful)");
    a.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0; 64];
    match a.read(&mut buf) {
        Ok(0) => {}
        other => panic!("a gracefully kicked client should see EOF, got {other:?}"),
    }
    // Its answering FIN completes the graceful close (before the deadline).
    drop(a);
    wait_for(&mut h, "row A to show the graceful kick", |h| {
        (try_cell(h, ida, "state")? == "closed: kicked (graceful)").then_some(())
    });
    assert!(matches!(
        h.state().monitor.connections.get(ida).unwrap().state,
        ConnState::Closed(_)
    ));

    click_row(&mut h, idb);
    wait_for(&mut h, "row B to be selected", |h| {
        (h.state().selection.primary == Some(idb)).then_some(())
    });
    click(&mut h, "Kick (reset)");
    match b.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("a client kicked with reset should see ConnectionReset, got {other:?}"),
    }
    wait_for(&mut h, "row B to show the reset", |h| {
        (try_cell(h, idb, "state")? == "closed: kicked (reset)").then_some(())
    });
    assert_eq!(table_ids(&h), vec![ida, idb], "closed rows stay listed");
}

/// Hex typed into the inject box goes to every client, exactly.
/// Binary that happens to be valid UTF-8 stays bytes in the text view, and
/// the UTF-8 view decodes it without letting it reorder the line.
#[test]
fn transcript_shows_hostile_bytes_as_bytes() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    // de ad is U+07AD, a right-to-left combining mark; be ef is not UTF-8.
    round_trip(&mut a, &[0xde, 0xad, 0xbe, 0xef, b'\n']);
    let id = wait_row(&mut h, &a);
    click_row(&mut h, id);
    let text = wait_for(&mut h, "the transcript in the text view", |h| {
        let found = nodes_where(h, |t| t.contains("\\xde\\xad\\xbe\\xef\\n"));
        found.into_iter().next().map(|(text, _, _)| text)
    });
    assert!(
        !text.contains('\u{07ad}'),
        "no decoded mark in the text view: {text}"
    );
    click(&mut h, "UTF-8");
    wait_for(&mut h, "the transcript in the UTF-8 view", |h| {
        let found = nodes_where(h, |t| t.contains("\\u{07ad}\\xbe\\xef\\n"));
        (!found.is_empty()).then_some(())
    });
}

/// The events pane has one connection filter (all, the selection, or a
/// pinned set), and its Kinds menu stays open while kinds are toggled.
#[test]
fn events_have_one_connection_filter_and_a_kinds_menu_that_stays_open() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    round_trip(&mut a, b"x");
    let id = wait_row(&mut h, &a);
    click_row(&mut h, id);
    click(&mut h, "Show its events");
    let pinned = format!("only {id}");
    wait_for(&mut h, "the pinned scope", |h| {
        h.query_by_label(&pinned).map(|_| ())
    });
    assert_eq!(
        h.state()
            .panes
            .events
            .filter
            .conns
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![id]
    );
    click(&mut h, "all");
    assert!(
        h.state().panes.events.filter.conns.is_empty(),
        "all connections"
    );
    assert!(!h.state().panes.events.follow_selection);
    click(&mut h, "selected rows (1)");
    assert!(h.state().panes.events.follow_selection);
    assert!(
        h.query_by_label(&pinned).is_some(),
        "the pinned set stays on offer as one of the same choices"
    );

    click(&mut h, "Kinds");
    // Kinds that no row of the log shows, so each label is the menu's.
    // With the pointer, as a person clicks: a click inside the menu is
    // what used to close it.
    let toggle = |h: &mut App, kind: &str| {
        let at = wait_for(
            h,
            &format!("the {kind} toggle in the open Kinds menu"),
            |h| h.query_by_label(kind).map(|n| n.rect().center()),
        );
        click_at(h, at);
        h.step();
        h.step();
    };
    toggle(&mut h, "accept-error");
    toggle(&mut h, "listen-failed");
    let hidden = &h.state().panes.events.filter.hidden_kinds;
    assert!(
        hidden.contains("accept-error") && hidden.contains("listen-failed"),
        "two toggles in one opening of the menu: {hidden:?}"
    );
}

/// A graceful kick of a client that never answers with its FIN counts down
/// in the row and the inspector, then ends in a reset that says why.
#[test]
fn graceful_kick_counts_down_then_resets() {
    let (mut h, addr) = start_with(&["--kick-timeout", "1.5"]);
    let mut a = connect(addr);
    round_trip(&mut a, b"hi");
    let id = wait_row(&mut h, &a);
    click_row(&mut h, id);
    click(&mut h, "Kick (graceful)");
    let kicked = Instant::now();
    let shown = wait_for(&mut h, "the row to count down", |h| {
        let state = try_cell(h, id, "state")?;
        state.starts_with("closing (reset in ").then_some(state)
    });
    assert!(shown.ends_with("s)"), "{shown}");
    let countdowns = nodes_where(&h, |t| t.starts_with("closing (reset in "));
    assert!(
        countdowns.len() >= 2,
        "the row and the inspector count down: {countdowns:?}"
    );
    // The client reads our FIN but keeps its socket open.
    a.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0; 8];
    assert_eq!(a.read(&mut buf).unwrap(), 0, "FIN after the kick");
    let state = wait_for(&mut h, "the reset at the deadline", |h| {
        let state = try_cell(h, id, "state")?;
        state.starts_with("closed").then_some(state)
    });
    assert_eq!(state, "closed: graceful kick timed out after 1.5s: reset");
    assert!(
        kicked.elapsed() >= Duration::from_millis(1400),
        "not before the deadline"
    );
    // Reading past our FIN still says EOF; the reset shows on writing.
    match a.write_all(b"too late") {
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        other => panic!("the client should see a reset, got {other:?}"),
    }
}

#[test]
fn inject_hex_to_all_clients() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    let mut b = connect(addr);
    wait_row(&mut h, &a);
    wait_row(&mut h, &b);

    click_lowest(&mut h, "Hex");
    type_into(&mut h, "Message", "48 65 6c");
    assert!(
        h.query_by_label("3 bytes").is_some(),
        "the inject pane counts 3 bytes"
    );
    click(&mut h, "all clients");
    click(&mut h, "Send");

    for client in [&mut a, &mut b] {
        assert_eq!(read_n(client, 3), b"Hel");
        expect_silence(&mut h, client, "after the 3 injected bytes");
    }
    assert_eq!(
        h.state().panes.inject.history.len(),
        1,
        "the message is in the history"
    );
    // Its chip says what was sent (the bytes, unambiguously) and to whom.
    let chips = nodes_where(&h, |t| t.starts_with("[hex] "));
    assert!(
        chips
            .iter()
            .any(|(t, _, _)| t.starts_with("[hex] Hel  to all clients · ")),
        "history chip: {chips:?}"
    );
}

/// Escapes and a CRLF line ending are applied, and only the selected row
/// receives the message.
#[test]
fn inject_escapes_with_crlf_to_selected_row() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    let mut b = connect(addr);
    let ida = wait_row(&mut h, &a);
    wait_row(&mut h, &b);
    click_row(&mut h, ida);
    wait_for(&mut h, "row A to be selected", |h| {
        (h.state().selection.primary == Some(ida)).then_some(())
    });

    click_lowest(&mut h, "Escapes");
    click(&mut h, "CRLF");
    type_into(&mut h, "Message", r"\x41\r\n");
    assert!(
        h.query_by_label("5 bytes").is_some(),
        "the inject pane counts 5 bytes"
    );
    assert!(
        h.query_by_label("selected (1)").is_some(),
        "the target is the selected row"
    );
    click(&mut h, "Send");

    assert_eq!(read_n(&mut a, 5), b"A\r\n\r\n");
    expect_silence(&mut h, &mut a, "after the 5 injected bytes");
    expect_silence(&mut h, &mut b, "a client that is not selected");
    wait_for(&mut h, "the injected bytes in A's tx counter", |h| {
        (row_of(h, a.local_addr().unwrap())?.tx_bytes == 5).then_some(())
    });
}

/// Invalid hex is flagged inline, Send is disabled, and nothing reaches the
/// client, whether Send is clicked or Ctrl+Enter pressed.
#[test]
fn invalid_hex_is_flagged_and_not_sent() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    wait_row(&mut h, &a);

    click(&mut h, "all clients");
    click_lowest(&mut h, "Hex");
    type_into(&mut h, "Message", "48 6z");
    assert!(
        h.query_by_label_contains("'z' is not a hex digit")
            .is_some(),
        "an inline error names the bad character"
    );
    assert!(
        h.get_by_label("Send").accesskit_node().is_disabled(),
        "Send is disabled while the input is invalid"
    );
    // Ctrl+Enter in the (still focused) message box, then the button.
    assert!(h.get_by_label("Message").is_focused());
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Enter);
    h.step();
    click(&mut h, "Send");
    expect_silence(&mut h, &mut a, "invalid hex");
    assert!(
        h.state().panes.inject.history.is_empty(),
        "nothing was recorded as sent"
    );
    assert_eq!(row_of(&h, a.local_addr().unwrap()).unwrap().tx_bytes, 0);
}

/// The Filter box narrows the table to the rows it matches.
#[test]
fn filter_narrows_rows() {
    let (mut h, addr) = start();
    let clients: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    let ids: Vec<ConnId> = clients.iter().map(|c| wait_row(&mut h, c)).collect();
    assert_eq!(table_ids(&h), ids);

    type_into(&mut h, "Filter", &ids[1].to_string());
    assert_eq!(table_ids(&h), vec![ids[1]], "filtering by id");
    assert!(h.query_by_label_contains("1 shown · 3 open").is_some());

    // Clear, then filter by the third client's port.
    click(&mut h, "✖");
    assert_eq!(
        table_ids(&h),
        ids,
        "clearing the filter shows every row again"
    );
    let port = clients[2].local_addr().unwrap().port().to_string();
    type_into(&mut h, "Filter", &port);
    assert_eq!(table_ids(&h), vec![ids[2]], "filtering by peer port");

    // Something no row matches.
    click(&mut h, "✖");
    type_into(&mut h, "Filter", "closed");
    assert_eq!(table_ids(&h), Vec::<ConnId>::new(), "no closed rows yet");
    assert!(h.query_by_label_contains("0 shown · 3 open").is_some());
}

/// "manual" stops the echo: the client's bytes are counted but nothing is
/// written back.
#[test]
fn manual_mode_stops_echo() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    round_trip(&mut a, b"ping");
    let id = wait_row(&mut h, &a);

    click(&mut h, "manual");
    wait_for(&mut h, "the engine to report manual mode", |h| {
        (h.state().monitor.stats.as_ref()?.mode == Mode::Manual).then_some(())
    });
    a.write_all(b"abcdef").unwrap();
    expect_silence(&mut h, &mut a, "manual mode");
    wait_for(&mut h, "rx to count the unanswered bytes", |h| {
        let c = h.state().monitor.connections.get(id)?;
        (c.rx_bytes == 10).then_some(())
    });
    let c = h.state().monitor.connections.get(id).unwrap();
    assert_eq!(
        c.tx_bytes, 4,
        "only the echo from before manual mode was sent"
    );
    wait_for(&mut h, "the row to show rx 10 B / tx 4 B", |h| {
        (try_cell(h, id, "rx")? == "10 B" && try_cell(h, id, "tx")? == "4 B").then_some(())
    });

    // Back to echo: new bytes come back again.
    click(&mut h, "echo");
    wait_for(&mut h, "the engine to report echo mode", |h| {
        (h.state().monitor.stats.as_ref()?.mode == Mode::Echo).then_some(())
    });
    round_trip(&mut a, b"again");
}

/// Click each widget in turn with the pointer, as a person does (menus,
/// submenus, tabs), waiting for each to appear.
fn click_through(h: &mut App, path: &[&str]) {
    for item in path {
        let at = wait_for(h, &format!("the menu item '{item}'"), |h| {
            h.query_by_label(item).map(|n| n.rect().center())
        });
        click_at(h, at);
        h.step();
    }
}

/// The text of the last clipboard copy the app asked for in the last frame.
fn copied(h: &App) -> Option<String> {
    h.output()
        .platform_output
        .commands
        .iter()
        .find_map(|c| match c {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
}

/// Find counts matches across the reads of one direction and steps
/// through them; Copy gives the transcript as code that holds the bytes.
#[test]
fn transcript_search_and_copy() {
    let (mut h, addr) = start_with(&["--mode", "manual"]);
    let mut a = connect(addr);
    let id = {
        a.write_all(b"PING 1\r\n").unwrap();
        wait_row(&mut h, &a)
    };
    // Three reads: the second PING is split across two of them.
    for (part, total) in [(&b"PI"[..], 10), (b"NG 2\r\n\xff", 17)] {
        wait_for(&mut h, "the previous read", |h| {
            (h.state().monitor.connections.get(id)?.rx_bytes == total - part.len() as u64)
                .then_some(())
        });
        std::thread::sleep(Duration::from_millis(50));
        a.write_all(part).unwrap();
    }
    wait_for(&mut h, "all 17 bytes read", |h| {
        (h.state().monitor.connections.get(id)?.rx_bytes == 17).then_some(())
    });
    click_row(&mut h, id);
    wait_for(&mut h, "the transcript of three reads", |h| {
        let d = h.state().monitor.detail(id)?;
        (d.transcript.len() == 3).then_some(())
    });
    type_into(&mut h, "Find", "PING");
    wait_for(&mut h, "two matches, one across reads", |h| {
        h.query_by_label("1 of 2").map(|_| ())
    });
    click(&mut h, "⏷");
    wait_for(&mut h, "the second match", |h| {
        h.query_by_label("2 of 2").map(|_| ())
    });
    click(&mut h, "⏷");
    wait_for(&mut h, "Next to wrap around", |h| {
        h.query_by_label("1 of 2").map(|_| ())
    });

    // Hex search: ff is one byte, found once; a bad hex query says why.
    click(&mut h, "as hex");
    h.get_by_label("Find").click();
    h.step();
    for _ in "PING".chars() {
        h.key_press(egui::Key::Backspace);
    }
    h.get_by_label("Find").type_text("0d 0a ff");
    h.run_steps(2);
    wait_for(&mut h, "one hex match", |h| {
        h.query_by_label("1 of 1").map(|_| ())
    });
    h.get_by_label("Find").type_text("z");
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("'z' is not a hex digit")
            .is_some(),
        "a bad hex query is explained"
    );

    click_through(&mut h, &["Copy", "Received only", "Python bytes"]);
    let text = copied(&h).expect("Python bytes were copied");
    assert!(
        text.contains("rx_0 = b'PING 1\\r\\n'\n")
            && text.contains("rx_1 = b'PI'\n")
            && text.contains("rx_2 = b'NG 2\\r\\n\\xff'\n"),
        "{text}"
    );
    click_through(&mut h, &["Copy", "Both directions", "C arrays"]);
    let text = copied(&h).expect("C arrays were copied");
    assert!(
        text.contains("static const unsigned char rx_1[2] = {\n    0x50, 0x49\n};"),
        "{text}"
    );
}

/// Listening on port 0 keeps ":0" in the field and in the saved layout (the
/// status names the port the engine got), and the server bar counts open
/// connections from the same table as the Connections pane.
#[test]
fn port_zero_stays_zero_and_counts_agree() {
    let (mut h, addr) = start();
    assert_ne!(addr.port(), 0);
    assert_eq!(h.state().layout().listen, "127.0.0.1:0");
    assert!(
        h.query_all_by_label_contains(&format!("listening on {addr}"))
            .next()
            .is_some(),
        "the status names the real port"
    );
    // Listen again on port 0, as a user recovering from a port in use does.
    click(&mut h, "Restart");
    let moved = wait_for(&mut h, "the engine to listen on a new port", |h| {
        match h.state().monitor.stats.as_ref()?.listen {
            ListenState::Listening(a) if a != addr => Some(a),
            _ => None,
        }
    });
    h.run_steps(2);
    assert_eq!(h.state().server_bar.listen_text, "127.0.0.1:0");
    assert_eq!(h.state().layout().listen, "127.0.0.1:0");
    let clients: Vec<TcpStream> = (0..3).map(|_| connect(moved)).collect();
    for c in &clients {
        wait_row(&mut h, c);
    }
    wait_for(&mut h, "the bar and the table to say 3 open", |h| {
        (h.query_by_label("3 open").is_some() && h.query_by_label_contains("· 3 open ·").is_some())
            .then_some(())
    });
}

/// An empty table says where to point a client, and copies a command that
/// does it.
#[test]
fn empty_table_says_how_to_connect() {
    let (mut h, addr) = start();
    wait_for(&mut h, "the first-run hint", |h| {
        h.query_by_label(&format!("Point your client at {addr}"))
            .map(|_| ())
    });
    click(&mut h, "Copy command");
    assert_eq!(
        copied(&h).as_deref(),
        Some(format!("nc 127.0.0.1 {}", addr.port()).as_str())
    );
    let client = connect(addr);
    wait_row(&mut h, &client);
    h.run_steps(2);
    assert!(
        h.query_by_label(&format!("Point your client at {addr}"))
            .is_none(),
        "the hint gives way to the rows"
    );
}

/// The throughput plot can follow the selected connection: its own rates,
/// from the counters of that connection alone.
#[test]
fn plot_follows_the_selected_connection() {
    let (mut h, addr) = start();
    let mut quiet = connect(addr);
    let mut busy = connect(addr);
    round_trip(&mut quiet, b"q");
    round_trip(&mut busy, b"b");
    let id = wait_row(&mut h, &busy);
    let quiet_id = wait_row(&mut h, &quiet);
    click_row(&mut h, id);
    click_through(&mut h, &["Throughput", "selected connections (1)"]);
    assert_eq!(
        h.state().panes.plot.scope,
        muxscope::ui::plot::PlotScope::Selected
    );
    let block = vec![b'x'; 64 * 1024];
    wait_for(&mut h, "the selected connection's own rate", |h| {
        round_trip(&mut busy, &block);
        let series = h.state().monitor.rates.conn(id)?;
        series
            .points()
            .iter()
            .any(|p| p.rx_per_sec > 0.0 && p.tx_per_sec > 0.0)
            .then_some(())
    });
    assert!(
        h.state().monitor.rates.conn(quiet_id).is_none(),
        "only the selection is followed"
    );
}

/// The Faults pane sets faults as a person would: a toggle and its value,
/// then "Apply to new"; a new client then gets them, the row says so, and
/// "Lift from selected" lets everything held go out.
#[test]
fn faults_pane_sets_and_lifts_faults() {
    let (mut h, addr) = start();
    click_through(&mut h, &["Faults"]);
    // Through accessibility: the form scrolls, and this row may be below
    // the fold of the test window.
    wait_for(&mut h, "the Faults pane", |h| {
        h.query_by_label("send nothing until lifted").map(|_| ())
    });
    click(&mut h, "send nothing until lifted");
    assert!(h.state().panes.faults.draft.stall_writes, "the toggle took");
    click_through(&mut h, &["Apply to new"]);
    wait_for(&mut h, "the engine to report the new faults", |h| {
        h.state()
            .monitor
            .stats
            .as_ref()
            .filter(|s| s.new_faults.stall_writes)
            .map(|_| ())
    });
    let mut a = connect(addr);
    a.write_all(b"held").unwrap();
    let id = wait_row(&mut h, &a);
    expect_silence(&mut h, &mut a, "stalled writes");
    wait_for(&mut h, "the row's fault badge", |h| {
        try_cell(h, id, "state").filter(|s| s.contains("faults"))
    });
    click_row(&mut h, id);
    click_through(&mut h, &["Lift from selected"]);
    assert_eq!(read_n(&mut a, 4), b"held", "lifting sends what was held");
}

#[test]
fn scenario_pane_loads_an_example_runs_it_and_tries_a_rule() {
    let (mut h, addr) = start();
    click_through(&mut h, &["Scenario", "Examples", "line protocol"]);
    assert!(
        h.state().panes.scenario.text.contains("+OK muxscope ready"),
        "the example is in the editor"
    );
    click_through(&mut h, &["Run"]);
    wait_for(&mut h, "the engine to run the scenario", |h| {
        let s = h.state().monitor.stats.as_ref()?.scenario.as_ref()?;
        (s.file.rules.len() == 6).then_some(())
    });
    // A real client meets it.
    let mut a = connect(addr);
    assert_eq!(read_n(&mut a, 20), b"+OK muxscope ready\r\n");
    a.write_all(b"PING\n").unwrap();
    assert_eq!(read_n(&mut a, 7), b"+PONG\r\n");
    // The rules table counts the firing.
    wait_for(&mut h, "rule 2's count in the table", |h| {
        h.query_all_by_label_contains("1× (last").next().map(|_| ())
    });
    // The try-out asks the engine, with no client involved.
    type_into(&mut h, "Try input", r"PING\nQUIT\n");
    click(&mut h, "Try");
    wait_for(&mut h, "the try-out's answer", |h| {
        h.query_by_label_contains("fires rule 2 and sends \"+PONG")
            .map(|_| ())
    });
    assert!(
        h.query_by_label_contains("fires rule 4 and sends \"+BYE\\r\\n\", then Close")
            .is_some(),
        "QUIT's line says what it sends and that it closes"
    );
    // Stop lifts it: plain echo again.
    click_through(&mut h, &["Stop scenario"]);
    wait_for(&mut h, "the scenario lifted", |h| {
        h.state()
            .monitor
            .stats
            .as_ref()
            .filter(|s| s.scenario.is_none())
            .map(|_| ())
    });
    round_trip(&mut a, b"PING\n");
}

#[test]
fn a_scenario_given_on_the_command_line_runs_from_the_first_client() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/length-prefixed.muxscope-scenario.ron"
    );
    let (mut h, addr) = start_with(&["--scenario", example]);
    let mut a = connect(addr);
    a.write_all(&[0x00, 0x01, 0x01]).unwrap();
    assert_eq!(read_n(&mut a, 4), [0x00, 0x02, 0x81, 0x00]);
    let status = wait_for(&mut h, "the scenario in the stats", |h| {
        h.state().monitor.stats.as_ref()?.scenario.clone()
    });
    assert_eq!(status.file.faults, ["slice=1@2ms"]);
    assert_eq!(
        h.state().panes.scenario.path.as_deref(),
        Some(std::path::Path::new(example)),
        "the pane edits the file that runs"
    );
}

/// The kernel's view: an optional RTT column turned on in the Columns
/// menu fills in, and the inspector's Kernel section shows the sampled
/// values (not zeros, not "sampling…" forever).
#[test]
fn kernel_view_in_the_table_and_the_inspector() {
    let (mut h, addr) = start();
    let mut a = connect(addr);
    round_trip(&mut a, b"hello");
    let id = wait_row(&mut h, &a);
    assert!(
        table_headers(&h).iter().all(|(t, _)| t != "RTT"),
        "the kernel's columns are off by default"
    );
    click_through(&mut h, &["Columns", "RTT"]);
    // Close the menu.
    h.key_press(egui::Key::Escape);
    h.step();
    wait_for(&mut h, "an RTT cell with a sampled value", |h| {
        let text = try_cell(h, id, "RTT")?;
        (text != "–").then_some(())
    });
    assert!(
        h.state()
            .panes
            .connections
            .shown_optional
            .contains(&muxscope::monitor::Column::Rtt)
    );

    click_row(&mut h, id);
    // Closed, its title says the RTT; opened, it shows the rest.
    wait_for(&mut h, "the inspector's Kernel section with the RTT", |h| {
        let title = format!("{}: RTT", muxscope::ui::kernel::TITLE);
        h.query_by_label_contains(&title).is_some().then_some(())
    });
    h.get_by_label_contains(muxscope::ui::kernel::TITLE).click();
    h.step();
    wait_for(&mut h, "sampled kernel values in the inspector", |h| {
        let labels = ["peer window", "our window", "retransmits", "cwnd", "unsent"];
        let all = labels.iter().all(|l| h.query_by_label(l).is_some());
        // The RTT reads "x ± y".
        (all && h.query_by_label_contains(" ± ").is_some()).then_some(())
    });
    assert!(h.query_by_label("sampling…").is_none());
    let watched = h.state().selection.primary;
    assert_eq!(watched, Some(id));
}
