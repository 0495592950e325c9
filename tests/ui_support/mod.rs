//! What the window's kittests share: a window on its own engine, and
//! bounded waits for what it shows.

#![allow(dead_code)] // not every test crate that includes this needs all

use clap::Parser;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use muxscope::cli::Cli;
use muxscope::ui::MuxscopeApp;
use muxscope::ui::app::AppFiles;
use std::time::{Duration, Instant};

/// The window on an engine listening on `127.0.0.1:0`, with `args` after
/// that and `files` for its folders.
pub fn app(args: &[&str], files: AppFiles) -> Harness<'static, MuxscopeApp> {
    let cli = Cli::parse_from(
        ["muxscope", "--listen", "127.0.0.1:0"]
            .iter()
            .chain(args)
            .copied(),
    );
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| {
            muxscope::desktop::local_app(&cc.egui_ctx, &cli)
                .expect("engine starts")
                .with_files(files)
        })
}

/// Step until `check` holds, failing after a bounded wait.
pub fn step_until(
    h: &mut Harness<'static, MuxscopeApp>,
    what: &str,
    check: impl Fn(&mut MuxscopeApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check(h.state_mut()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Click the widget labelled `label` and let it take effect.
pub fn click(h: &mut Harness<'static, MuxscopeApp>, label: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
}

/// Step until the engine listens; its address.
pub fn listening(h: &mut Harness<'static, MuxscopeApp>) -> std::net::SocketAddr {
    use muxscope::protocol::ListenState;
    step_until(h, "listening", |a| {
        matches!(
            a.monitor.stats.as_ref().map(|s| &s.listen),
            Some(ListenState::Listening(_))
        )
    });
    match h.state().monitor.stats.as_ref().map(|s| s.listen.clone()) {
        Some(ListenState::Listening(addr)) => addr,
        _ => unreachable!(),
    }
}
