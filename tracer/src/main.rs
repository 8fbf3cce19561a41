//! `gctrace-bpf`: parse the command line, run, and turn every failure into one line on
//! stderr with exit status 1 (usage errors: 2, from clap).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use tracer::{
    cli::{Cli, Command, InspectArgs, InspectFormat},
    inspect, session, target,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.subcommand {
        Some(Command::Inspect(args)) => run_inspect(args),
        None => {
            let t = cli.trace;
            let format = t.resolved_format(std::io::stdout().is_terminal());
            let target = match t.pid {
                Some(pid) => session::Target::Pid(pid),
                None => session::Target::Command(t.command),
            };
            session::run(session::TraceOptions {
                target,
                allocs: t.allocs,
                overhead_budget: t.overhead_budget,
                format,
                output: t.output,
                duration: t.duration,
                slo: tracer::tui::Slo {
                    pause_ns: t.slo_pause.as_nanos().min(u128::from(u64::MAX)) as u64,
                    gc_cpu_percent: t.slo_gc_cpu,
                },
            })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("gctrace-bpf: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_inspect(args: InspectArgs) -> Result<i32> {
    let path = match (args.pid, args.binary) {
        (Some(pid), _) => {
            target::check_exists(pid)?;
            target::exe_link(pid)
        }
        (None, Some(path)) => path,
        (None, None) => anyhow::bail!("inspect needs a BINARY or --pid PID"),
    };
    let report = inspect::inspect(&path)?;
    match args.format {
        InspectFormat::Json => {
            println!(
                "{}",
                serde_json::to_string(&report).context("cannot encode the report")?
            )
        }
        InspectFormat::Text => print!("{}", inspect::render_text(&path, &report)),
    }
    Ok(0)
}
