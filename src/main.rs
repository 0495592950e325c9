// No console window for a double-clicked release build on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use clap::Parser;
use muxscope::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.headless {
        match cli.headless_config() {
            Ok(config) => muxscope::headless::run(config),
            Err(e) => {
                eprintln!("muxscope: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        muxscope::desktop::run(cli)
    }
}
