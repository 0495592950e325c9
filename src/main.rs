use clap::Parser;
use muxscope::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    muxscope::headless::run(cli.engine_config())
}
