//! The window: an in-process engine plus the egui front-end.

use crate::backend::LocalBackend;
use crate::cli::Cli;
use crate::ui::MuxscopeApp;
use std::process::ExitCode;
use std::sync::Arc;

pub const APP_NAME: &str = "muxscope";

/// Build the app on an in-process engine whose batches wake egui.
pub fn local_app(ctx: &egui::Context, cli: &Cli) -> std::io::Result<MuxscopeApp> {
    let mut config = cli.engine_config();
    let waker = ctx.clone();
    config.notify = Some(Arc::new(move || waker.request_repaint()));
    let listen = config.listen.clone().unwrap_or_default();
    let backend = LocalBackend::spawn(config)?;
    Ok(MuxscopeApp::new(Box::new(backend), &listen))
}

pub fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(APP_NAME)
            .with_app_id(APP_NAME)
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0]),
        ..Default::default()
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let result = eframe::run_native(
        APP_NAME,
        native_options(),
        Box::new(move |cc| Ok(Box::new(local_app(&cc.egui_ctx, &cli)?))),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "muxscope: cannot open the window: {e}\n\
                 (no display? run `muxscope --headless` to use it without a window)"
            );
            ExitCode::FAILURE
        }
    }
}
