//! `gctrace-bpf`: parse the command line, run, and turn every failure into one line on
//! stderr with exit status 1 (usage errors: 2, from clap).

use std::process::ExitCode;

use clap::Parser;
use tracer::{
    cli::Cli,
    session::{self, Target, TraceOptions},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = match cli.pid {
        Some(pid) => Target::Pid(pid),
        None => Target::Command(cli.command),
    };
    let opts = TraceOptions {
        target,
        format: cli.format,
        output: cli.output,
        duration: cli.duration,
    };
    match session::run(opts) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("gctrace-bpf: {e:#}");
            ExitCode::from(1)
        }
    }
}
