//! Saving a layout through the File menu and opening it again, driven
//! through the accessibility tree like a user would.

mod temp_dir;
mod ui_support;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use muxscope::layout::{self, Theme};
use muxscope::monitor::Column;
use muxscope::protocol::Mode;
use muxscope::ui::MuxscopeApp;
use muxscope::ui::app::AppFiles;
use std::path::PathBuf;
use temp_dir::TempDir;
use ui_support::step_until;

fn app_with_layouts_dir(dir: PathBuf) -> Harness<'static, MuxscopeApp> {
    let files = AppFiles {
        layouts_dir: Some(dir.clone()),
        recent_list: Some(dir.join("recent.ron")),
        ..AppFiles::default()
    };
    ui_support::app(&[], files)
}

/// Click through labels in order, letting each click take effect.
fn click_through(h: &mut Harness<'static, MuxscopeApp>, labels: &[&str]) {
    for label in labels {
        h.get_by_label(label).click();
        h.run_steps(2);
    }
}

/// Step until the engine reports `mode`.
fn wait_for_mode(h: &mut Harness<'static, MuxscopeApp>, mode: Mode) {
    step_until(h, &format!("{mode} mode"), |a| {
        a.monitor.stats.as_ref().is_some_and(|s| s.mode == mode)
    });
}

#[test]
fn save_through_the_menu_then_reopen() {
    let dir = TempDir::new("layout-ui");
    let mut h = app_with_layouts_dir(dir.to_path_buf());
    step_until(&mut h, "engine stats", |a| a.monitor.stats.is_some());

    // Arrange something worth saving: a filter typed by hand, a hidden
    // column, light theme, manual mode.
    h.get_by_label("Filter").click();
    h.run_steps(2);
    h.get_by_label("Filter").type_text("closed");
    h.run_steps(2);
    {
        let app = h.state_mut();
        app.panes.connections.hidden_columns.insert(Column::Peer);
        app.theme = Theme::Light;
    }
    h.get_by_label("manual").click();
    wait_for_mode(&mut h, Mode::Manual);

    click_through(&mut h, &["File", "Save layout as…", "Save"]);

    let saved = dir.join("session.muxscope.ron");
    let on_disk = layout::load(&saved).expect("the menu wrote a readable layout");
    assert_eq!(on_disk.connections.filter, "closed");
    assert!(on_disk.connections.hidden_columns.contains(&Column::Peer));
    assert_eq!(on_disk.theme, Theme::Light);
    assert_eq!(on_disk.mode, Mode::Manual);
    assert_eq!(h.state().layout_path.as_deref(), Some(saved.as_path()));

    // Change everything back, then reopen through the menu.
    {
        let app = h.state_mut();
        app.panes.connections.filter.clear();
        app.panes.connections.hidden_columns.clear();
        app.theme = Theme::Dark;
    }
    h.get_by_label("echo").click();
    wait_for_mode(&mut h, Mode::Echo);

    click_through(
        &mut h,
        &["File", "Open layout…", "session.muxscope.ron", "Open"],
    );

    let app = h.state();
    assert_eq!(app.panes.connections.filter, "closed");
    assert!(app.panes.connections.hidden_columns.contains(&Column::Peer));
    assert_eq!(app.theme, Theme::Light);
    // The layout's mode reaches the engine.
    wait_for_mode(&mut h, Mode::Manual);
    // The recent list remembers it.
    assert_eq!(
        h.state()
            .recent
            .first()
            .map(|p| p.file_name().unwrap().to_owned()),
        Some("session.muxscope.ron".into())
    );
}

#[test]
fn opening_a_broken_layout_shows_why_and_changes_nothing() {
    let dir = TempDir::new("layout-ui-bad");
    let bad = dir.join("broken.muxscope.ron");
    let contents = b"(\n  version: 1,\n  zoom: \"huge\",\n)";
    std::fs::write(&bad, contents).unwrap();
    let mut h = app_with_layouts_dir(dir.to_path_buf());
    step_until(&mut h, "engine stats", |a| a.monitor.stats.is_some());
    let before = h.state().layout();

    click_through(
        &mut h,
        &["File", "Open layout…", "broken.muxscope.ron", "Open"],
    );

    let notice = h
        .state()
        .notices
        .last()
        .expect("the failure is shown")
        .clone();
    assert!(notice.is_error);
    assert!(
        notice.text.contains("broken.muxscope.ron"),
        "{}",
        notice.text
    );
    assert!(notice.text.contains("line 3"), "{}", notice.text);
    // The message is on screen, not only in the model.
    assert!(h.query_by_label_contains("line 3").is_some());
    assert_eq!(h.state().layout(), before);
    assert_eq!(std::fs::read(&bad).unwrap(), contents);
}

/// Step until the engine runs a scenario with `rules` rules (0: none).
fn wait_for_scenario(h: &mut Harness<'static, MuxscopeApp>, rules: usize) {
    step_until(h, &format!("a scenario with {rules} rules"), |a| {
        let running = a.monitor.stats.as_ref().and_then(|s| s.scenario.as_ref());
        running.map_or(0, |s| s.file.rules.len()) == rules
    });
}

#[test]
fn a_layout_remembers_the_scenario_it_ran_and_runs_it_again() {
    let dir = TempDir::new("layout-scenario");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/line-protocol.muxscope-scenario.ron"
    );
    let scenario = dir.join("lp.muxscope-scenario.ron");
    std::fs::copy(example, &scenario).unwrap();
    let before = std::fs::read(&scenario).unwrap();
    let mut h = app_with_layouts_dir(dir.to_path_buf());
    step_until(&mut h, "engine stats", |a| a.monitor.stats.is_some());

    click_through(
        &mut h,
        &["File", "Open scenario…", "lp.muxscope-scenario.ron", "Open"],
    );
    wait_for_scenario(&mut h, 6);
    click_through(&mut h, &["File", "Save layout as…", "Save"]);
    let saved = dir.join("session.muxscope.ron");
    let on_disk = layout::load(&saved).expect("the menu wrote a readable layout");
    assert_eq!(on_disk.scenario.as_deref(), Some(scenario.as_path()));

    click_through(&mut h, &["Stop scenario"]);
    wait_for_scenario(&mut h, 0);
    click_through(
        &mut h,
        &["File", "Open layout…", "session.muxscope.ron", "Open"],
    );
    wait_for_scenario(&mut h, 6);

    // A broken scenario file is reported, the running one stays, and the
    // file is left as it is.
    let broken = dir.join("broken.muxscope-scenario.ron");
    std::fs::write(&broken, "(version: 1, rules: [(on: Nope)])").unwrap();
    click_through(
        &mut h,
        &[
            "File",
            "Open scenario…",
            "broken.muxscope-scenario.ron",
            "Open",
        ],
    );
    let notice = h
        .state()
        .notices
        .last()
        .map(|n| n.text.clone())
        .unwrap_or_default();
    assert!(
        notice.contains("broken.muxscope-scenario.ron") && notice.contains("line 1"),
        "{notice}"
    );
    h.run_steps(5);
    wait_for_scenario(&mut h, 6);
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "(version: 1, rules: [(on: Nope)])"
    );
    assert_eq!(std::fs::read(&scenario).unwrap(), before, "never rewritten");
}
