//! The Diagnostics pane and the warnings column, driven like a user: a
//! real client does something wrong against the window's own engine.

mod ui_support;

use egui_kittest::kittest::Queryable as _;
use muxscope::monitor::lints::Lint;
use muxscope::protocol::ConnId;
use socket2::{Domain, Socket, Type};
use std::time::Duration;
use ui_support::{listening, step_until};

#[test]
fn a_reset_client_shows_in_diagnostics_and_narrows_the_table() {
    let mut h = ui_support::app(&["--allow", "silent-client"], Default::default());
    let addr = listening(&mut h);
    assert!(
        !h.state().monitor.lints.settings.enabled(Lint::SilentClient),
        "--allow applies"
    );

    // #1 closes politely; #2 resets.
    drop(std::net::TcpStream::connect(addr).unwrap());
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.connect(&addr.into()).unwrap();
    step_until(&mut h, "two rows", |a| a.monitor.connections.len() == 2);
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    step_until(&mut h, "the abortive-close lint", |a| {
        a.monitor.lints.count(Lint::AbortiveClose).active == 1
    });

    h.get_by_label("Diagnostics").click();
    h.run_steps(3);
    h.get_by_label("⚠ 1 connection: abortive-close").click();
    h.run_steps(3);
    assert_eq!(
        h.state().panes.connections.lint_filter,
        Some(Lint::AbortiveClose)
    );
    // The advice is shown, and the finding names the connection.
    h.get_by_label_contains("Read until EOF");
    h.get_by_label("⚠ #2 reset the connection (RST) instead of closing it: unread data at close, or SO_LINGER 0");
    // The event log has it too.
    let events = h
        .state_mut()
        .monitor
        .events
        .snapshot(&muxscope::monitor::EventFilter::default());
    assert!(
        events.iter().any(|e| e.conn == Some(ConnId(2))
            && matches!(&e.kind, muxscope::protocol::EventKind::Lint { lint, .. } if lint == "abortive-close")),
        "a lint event in the log"
    );
    assert!(
        h.state().monitor.lints.on_conn(ConnId(2)).len() == 1
            && h.state().monitor.lints.on_conn(ConnId(1)).is_empty()
    );
    h.get_by_label("only abortive-close ✖").click();
    h.run_steps(2);
    assert_eq!(h.state().panes.connections.lint_filter, None);
}
