//! The window: an in-process engine plus the egui front-end, started the way
//! a double-click starts it (no arguments, maybe no terminal, any working
//! directory) or with a layout file to open.

use crate::backend::{Backend, LocalBackend, RemoteBackend};
use crate::cli::Cli;
use crate::layout::{self, SessionLayout};
use crate::paths;
use crate::ui::MuxscopeApp;
use crate::ui::app::AppFiles;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};

pub const APP_NAME: &str = "muxscope";

/// The layout to restore if the process panics: (where, what).
static CRASH_SNAPSHOT: Mutex<Option<(PathBuf, String)>> = Mutex::new(None);
/// The last panic's message, shown by the window if it is still up.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Called by the app every few seconds with its current layout.
pub fn remember_for_crash(layout: &SessionLayout) {
    if let Ok(mut slot) = CRASH_SNAPSHOT.lock() {
        *slot = Some((paths::autosave_path(), layout::to_ron(layout)));
    }
}

/// The window's context, so Ctrl-C / SIGTERM can close it the normal way
/// (which saves the session) instead of killing it.
static WINDOW: OnceLock<egui::Context> = OnceLock::new();

fn close_window_on_termination() {
    let result = ctrlc::set_handler(|| match WINDOW.get() {
        Some(ctx) => {
            log::info!("termination signal: closing the window");
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        None => std::process::exit(130),
    });
    if let Err(e) = result {
        log::warn!(
            "cannot handle Ctrl-C/SIGTERM; the session is saved only on a normal close: {e}"
        );
    }
}

pub fn last_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|p| p.clone())
}

/// On a panic in any thread (UI or engine), write the last layout snapshot
/// so the user's arrangement survives, and log the message.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let message = format!("panic in thread '{thread}': {info}");
        log::error!("{message}");
        if let Ok(mut slot) = LAST_PANIC.try_lock() {
            *slot = Some(message);
        }
        if let Ok(slot) = CRASH_SNAPSHOT.try_lock()
            && let Some((path, text)) = slot.as_ref()
        {
            let _ = std::fs::write(path, text);
        }
        default(info);
    }));
}

/// What the session starts from: a named layout, the last session, or
/// defaults, plus anything that went wrong on the way (to show the user).
pub struct Startup {
    pub layout: SessionLayout,
    pub layout_path: Option<PathBuf>,
    /// A recording to open (`muxscope FILE.muxrec`, or a double-click on
    /// one): the window plays it back and starts no engine.
    pub recording: Option<PathBuf>,
    pub problems: Vec<String>,
}

/// Whether a file given on the command line is a recording.
pub fn is_recording(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e == crate::record::EXTENSION)
}

/// Decide the starting layout. Command-line `--listen`/`--mode` win over
/// the layout; a layout that fails to load is reported and left untouched.
pub fn startup(cli: &Cli, autosave: Option<&std::path::Path>) -> Startup {
    let mut problems = Vec::new();
    let mut layout_path = None;
    let mut layout = None;
    let recording = cli.layout.clone().filter(|p| is_recording(p));
    if let Some(path) = cli.layout.as_ref().filter(|p| !is_recording(p)) {
        match layout::load(path) {
            Ok(l) => {
                layout = Some(l);
                layout_path = Some(path.clone());
            }
            Err(e) => problems.push(format!(
                "Could not open the layout {e}. Starting with defaults; the file was left as it is."
            )),
        }
    } else if let Some(auto) = autosave.filter(|p| p.exists()) {
        // (also when a recording is opened: its panes are arranged as
        // the last session's)
        match layout::load(auto) {
            Ok(l) => layout = Some(l),
            Err(e) => {
                // Move it aside so the next autosave cannot overwrite it.
                let aside = auto.with_extension("ron.unreadable");
                let _ = std::fs::rename(auto, &aside);
                problems.push(format!(
                    "Could not restore the last session {e}. It was kept as {}.",
                    aside.display()
                ));
            }
        }
    }
    let mut layout = layout.unwrap_or_default();
    layout.lints = cli.lint_settings(layout.lints);
    if let Some(listen) = &cli.listen {
        layout.listen = listen.clone();
    }
    if let Some(mode) = cli.mode {
        layout.mode = mode;
    }
    Startup {
        layout,
        layout_path,
        recording,
        problems,
    }
}

/// Build the app on an in-process engine whose batches wake egui.
pub fn local_app(ctx: &egui::Context, cli: &Cli) -> std::io::Result<MuxscopeApp> {
    let start = startup(cli, None);
    app_from_startup(ctx, cli, start, AppFiles::default())
}

fn app_from_startup(
    ctx: &egui::Context,
    cli: &Cli,
    start: Startup,
    files: AppFiles,
) -> std::io::Result<MuxscopeApp> {
    let mut config = cli.engine_config();
    config.listen = Some(start.layout.listen.clone());
    config.mode = start.layout.mode;
    let mut problems = start.problems;
    // `--scenario`, else the one the layout ran: started with the engine,
    // so the first client already meets it. A replay answers instead.
    let scenario_path = cli.scenario.clone().or(start.layout.scenario.clone());
    let scenario_path = scenario_path.filter(|_| cli.replay_script.is_none());
    if let Some(script) = &cli.replay_script {
        problems.extend(
            script
                .warnings
                .iter()
                .map(|w| format!("{}: {w}", script.file)),
        );
    }
    let scenario_path = match scenario_path.as_deref().map(crate::cli::load_scenario) {
        Some(Ok((file, scenario))) => {
            if cli.mode.is_none() {
                config.mode = file.otherwise.into();
            }
            if cli.faults.is_empty() && !scenario.faults().is_none() {
                config.faults = scenario.faults().clone();
            }
            config.scenario = Some(Arc::new(scenario));
            scenario_path
        }
        Some(Err(e)) => {
            problems.push(format!("Could not start the scenario: {e}"));
            None
        }
        None => None,
    };
    let waker = ctx.clone();
    config.notify = Some(Arc::new(move || waker.request_repaint()));
    if let Some(path) = &start.recording {
        match crate::backend::ReplayBackend::open_file(path) {
            Ok(replay) => {
                let mut app = MuxscopeApp::new(Box::new(replay), "").with_files(files);
                app.apply_layout(start.layout, false);
                for p in problems {
                    app.notify(p, true);
                }
                return Ok(app);
            }
            // The window opens on a live engine instead, and says why.
            Err(e) => problems.push(format!("{e}. Started the live engine instead.")),
        }
    }
    let backend: Box<dyn Backend> = match &cli.attach {
        // `--attach URL`: a headless muxscope's engine instead of our own.
        Some(url) => {
            let waker = ctx.clone();
            Box::new(RemoteBackend::connect(url.clone(), move || {
                waker.request_repaint()
            }))
        }
        None => match LocalBackend::spawn(config.clone()) {
            Ok(local) => Box::new(local),
            // A recording that cannot be written must not keep the window
            // from opening: it opens without, and says why.
            Err(e) if config.record.is_some() => {
                problems.push(format!("Not recording: {e}"));
                config.record = None;
                Box::new(LocalBackend::spawn(config)?)
            }
            Err(e) => return Err(e),
        },
    };
    // Attached to another muxscope, this window has asked for no address.
    let requested = if cli.attach.is_some() {
        ""
    } else {
        &start.layout.listen
    };
    let mut app = MuxscopeApp::new(backend, requested).with_files(files);
    let mut layout = start.layout;
    layout.scenario = scenario_path;
    app.apply_layout(layout, false);
    app.layout_path = start.layout_path;
    if let Some(script) = &cli.replay_script {
        app.notify(script.summary_line(), false);
    }
    for p in problems {
        app.notify(p, true);
    }
    Ok(app)
}

fn icon() -> Option<egui::IconData> {
    eframe::icon_data::from_png_bytes(include_bytes!("../assets/icon-256.png")).ok()
}

pub fn native_options() -> eframe::NativeOptions {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title(APP_NAME)
        .with_app_id(APP_NAME)
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size([640.0, 400.0]);
    if let Some(icon) = icon() {
        viewport = viewport.with_icon(icon);
    }
    eframe::NativeOptions {
        viewport,
        ..Default::default()
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let log = crate::logging::init();
    install_panic_hook();
    close_window_on_termination();
    let autosave = paths::autosave_path();
    let files = AppFiles {
        autosave: Some(autosave.clone()),
        layouts_dir: Some(paths::layouts_dir()),
        recent_list: Some(paths::recent_path()),
        log: log.clone(),
        recordings_dir: Some(paths::recordings_dir()),
        crash_snapshot: Some(remember_for_crash),
        ..AppFiles::default()
    };
    let _ = std::fs::create_dir_all(paths::layouts_dir());
    let start = startup(&cli, Some(&autosave));
    log::info!("starting window; layout {:?}", start.layout_path);
    let result = eframe::run_native(
        APP_NAME,
        native_options(),
        Box::new(move |cc| {
            let _ = WINDOW.set(cc.egui_ctx.clone());
            Ok(Box::new(app_from_startup(
                &cc.egui_ctx,
                &cli,
                start,
                files,
            )?))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!(
                "muxscope: cannot open the window: {e}\n\
                 (no display? run `muxscope --headless` to use it without a window)"
            );
            log::error!("{message}");
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
