// No console window for a double-clicked release build on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use clap::Parser;
use muxscope::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.headless {
        muxscope::headless::run(cli.engine_config())
    } else {
        muxscope::desktop::run(cli)
    }
}
