// No console window for a double-clicked release build on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    use muxscope::cli::Cli;
    use std::process::ExitCode;

    let mut cli = Cli::parse();
    if let Some(muxscope::cli::Sub::Export(args)) = &cli.command {
        return args.run();
    }
    // A recording that cannot be replayed is a bad argument: one line, and
    // the exit code clap gives for those.
    match cli.load_replay() {
        Ok(Some(script)) => {
            for warning in &script.warnings {
                eprintln!("muxscope: {}: {warning}", script.file);
            }
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("muxscope: {}", muxscope::logging::terminal_safe(&e, 4096));
            return ExitCode::from(2);
        }
    }
    if cli.headless {
        match cli.headless_config() {
            Ok(config) => muxscope::headless::run_with_control(
                config,
                cli.control_options(),
                cli.lint_settings(Default::default()),
            ),
            Err(e) => {
                eprintln!("muxscope: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        muxscope::desktop::run(cli)
    }
}

/// The web viewer (built with Trunk): see `muxscope::web`.
#[cfg(target_arch = "wasm32")]
fn main() {
    muxscope::web::start();
}
