//! `gctrace-bpf`: parse the command line, run, and turn every failure into one line on
//! stderr with exit status 1 (usage errors: 2, from clap).

use std::io::IsTerminal;
use std::process::ExitCode;

use std::io::Write as _;

use anyhow::{Context, Result};
use clap::Parser;
use tracer::{
    cli::{
        Cli, Command, ExportArgs, InspectArgs, InspectFormat, ReplayArgs, ReportArgs, ReportFormat,
        TraceArgs,
    },
    output::inspect,
    session::{self, target},
};

fn main() -> ExitCode {
    // Diagnostics for developers (which probe mechanism, measured costs): silent unless
    // GCTRACE_LOG is set (e.g. GCTRACE_LOG=info); they would scribble over the TUI.
    env_logger::Builder::from_env(env_logger::Env::new().filter("GCTRACE_LOG")).init();
    exit_code(run(Cli::parse()))
}

/// Do what the command line asks; the exit code it ends with.
fn run(cli: Cli) -> Result<i32> {
    match cli.subcommand {
        Some(Command::Inspect(args)) => run_inspect(args),
        Some(Command::Replay(args)) => run_replay(args),
        Some(Command::Report(args)) => run_report(args),
        Some(Command::Export(args)) => run_export(args),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "gctrace-bpf", &mut std::io::stdout());
            Ok(0)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map(|()| 0)
                .context("cannot write the manual page")
        }
        Some(Command::DumpLayouts { binary }) => inspect::dump_layouts(&binary).map(|json| {
            println!("{json}");
            0
        }),
        None => run_trace(cli.trace),
    }
}

/// The exit status for a run's outcome: its code, or 1 after one line on stderr.
fn exit_code(result: Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        // The reader went away (`gctrace-bpf man | head`): nothing left to say.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gctrace-bpf: {}", tracer::errors::chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn run_trace(args: TraceArgs) -> Result<i32> {
    match args.into_options(std::io::stdout().is_terminal()) {
        Ok(opts) => session::run(opts),
        Err(e) => {
            // A bad endpoint or OTEL_* variable is a usage error.
            eprintln!("gctrace-bpf: {e}");
            Ok(2)
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

fn output_writer(path: Option<&std::path::Path>) -> Result<Box<dyn std::io::Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

fn run_replay(args: ReplayArgs) -> Result<i32> {
    use std::io::IsTerminal;
    let format = args.format.unwrap_or(
        if args.output.is_none() && std::io::stdout().is_terminal() {
            tracer::output::Format::Tui
        } else {
            tracer::output::Format::Gctrace
        },
    );
    if format == tracer::output::Format::Tui {
        if args.otlp.otlp.is_some() {
            anyhow::bail!(
                "--otlp replays into gctrace or json output, not the TUI (add --format json)"
            );
        }
        tracer::output::tui::check_usable(args.output.as_deref())?;
        tracer::session::replay::replay_tui(
            &args.file,
            args.slo.tui_slo(),
            args.speed.unwrap_or(1.0),
        )?;
        return Ok(0);
    }
    let sink = tracer::output::sink_for(format, output_writer(args.output.as_deref())?)?;
    let Some(config) = args.otlp.config().map_err(anyhow::Error::msg)? else {
        tracer::session::replay::replay(&args.file, sink, args.speed)?;
        return Ok(0);
    };
    // The recording's clocks place its events in time.
    let header = tracer::recording::Reader::open(&args.file)?.header;
    let offset = i128::from(header.start_unix_ns) - i128::from(header.start_monotonic_ns);
    let otlp = tracer::output::otlp::Exporter::start_with_clock(config, offset)?;
    tracer::session::replay::replay(&args.file, otlp.tee(sink), args.speed)?;
    let stats = otlp.finish();
    eprintln!(
        "gctrace-bpf: {}",
        tracer::output::otlp::summary_line(otlp.config(), &stats)
    );
    Ok(0)
}

fn run_report(args: ReportArgs) -> Result<i32> {
    // Parsed here rather than by clap so a bad setting is one line (a usage error: 2).
    let mut what_if = Vec::new();
    for w in &args.what_if {
        match w.parse::<tracer::model::whatif::WhatIf>() {
            Ok(w) => what_if.push(w),
            Err(e) => {
                eprintln!("gctrace-bpf: bad --what-if '{w}': {e}");
                return Ok(2);
            }
        }
    }
    let reader = tracer::recording::Reader::open(&args.file)?;
    let slo_ns = args.slo.pause_ns();
    let records = tracer::session::replay::records_judged(&reader, args.slo.thresholds())?;
    let report = tracer::output::report::build(
        &records,
        slo_ns,
        reader.damage.clone(),
        (!what_if.is_empty()).then_some(&what_if[..]),
    );
    match args.format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string(&report).context("cannot encode the report")?
        ),
        ReportFormat::Text => print!("{}", tracer::output::report::render(&report, false)),
        ReportFormat::Markdown => print!("{}", tracer::output::report::render(&report, true)),
    }
    Ok(0)
}

fn run_export(args: ExportArgs) -> Result<i32> {
    let reader = tracer::recording::Reader::open(&args.file)?;
    if let Some(d) = &reader.damage {
        eprintln!(
            "gctrace-bpf: warning: {} is {d}; exporting what is intact",
            args.file.display()
        );
    }
    if let Some(out) = &args.perfetto {
        let records = tracer::session::replay::records(&reader)?;
        let doc = tracer::output::export::perfetto(&records);
        let mut w = output_writer(Some(out))?;
        serde_json::to_writer(&mut w, &doc).context("cannot write the trace")?;
        w.flush().context("cannot write the trace")?;
    }
    if let Some(out) = &args.pprof {
        // Replayed only when asked for: a Perfetto export alone needs just the records.
        let model = tracer::session::replay::model(&reader)?;
        tracer::output::pprof::write_profile(out, model.allocs(), reader.header.start_unix_ns, 0)?;
    }
    Ok(0)
}
