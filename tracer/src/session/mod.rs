//! A live tracing session: find or start the targets, analyse and attach to each, then
//! stream every target's events through its own decoder → model → pipeline into one
//! shared output, until the targets exit, the duration passes, or the user interrupts.
//!
//! - [`traced`]: one traced process: analysis and attachment; [`target_loop`]: its own
//!   event loop, which detaches, drains and writes the summary on every way out;
//! - [`discovery`]: `--exe`: which processes run a binary, now and later;
//! - this module: the run as a whole: the options, the shared output or TUI, signals
//!   and `--duration`, what a run needs before its loop starts and after it ends;
//! - [`run_loop`]: the run's own loop: the TUI, signals, new processes, and a loop per
//!   target, started and ended;
//! - [`pipeline`]: one process's decoder → model → findings → output (and recorder),
//!   the same for a live run and a [`replay`], which feeds it from a recording;
//! - [`launch`]: starting a command held at its first instruction; [`target`]: facts
//!   about a traced process and our privileges; [`labels`] and [`cgroup`]: who the
//!   process is on a fleet and its CPU limit; [`alloc_sampling`]: when the allocation
//!   probes are on in a live run.
//!
//! One target (`--pid N`, or a command after `--`) is the same run with a single loop:
//! its output is what it always was (gctrace lines byte for byte as the runtime's).

mod alloc_sampling;
mod cgroup;
mod discovery;
mod feed;
mod fleet;
mod labels;
mod launch;
mod pipeline;
pub mod replay;
mod run_loop;
mod shared;
pub mod target;
mod target_loop;
mod traced;

use std::{collections::BTreeSet, ffi::OsString, io::Write, path::PathBuf, time::Duration};

use anyhow::{anyhow, Context, Result};
use tokio::{signal::unix::SignalKind, sync::watch};

use crate::{
    output::tui,
    output::{prometheus::Exporter, sink_for_processes, Format, SharedSink, Sink},
    probes::AllocMode,
};
use discovery::Discovery;
pub use discovery::{Discover, Matcher};
use launch::Launched;
use run_loop::{event_loop, RunInputs};
use traced::{Ended, Prepared};

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running process.
    Pid(u32),
    /// A command to start, traced from its first instruction.
    Command(Vec<OsString>),
    /// Several processes: these pids, and with `discover` every process it matches
    /// (`--exe`, `--all`), now or later. Each is traced on its own; one ending or failing
    /// ends only itself.
    Processes {
        pids: Vec<u32>,
        discover: Option<Discover>,
    },
}

#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub target: Target,
    pub allocs: AllocMode,
    /// Write an allocation profile here at the end (one per process with several).
    pub pprof: Option<PathBuf>,
    /// Record everything to this file, for replay, report and export (one per process
    /// with several).
    pub record: Option<PathBuf>,
    /// Ring buffer size override in KiB (tests: provoke overload).
    pub ring_kib: Option<u32>,
    /// How stops of the world are probed (`--every-stop`).
    pub stops: crate::probes::StopsMode,
    /// Sampled allocation tracing may slow the target by at most this many percent.
    pub overhead_budget: f64,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub duration: Option<Duration>,
    /// Also serve Prometheus metrics here (`--prometheus`).
    pub prometheus: Option<std::net::SocketAddr>,
    /// Also export over OTLP (`--otlp`).
    pub otlp: Option<crate::output::otlp::Config>,
    /// Thresholds the TUI checks against.
    pub slo: tui::Slo,
    /// Thresholds of the findings rule engine (docs/findings.md).
    pub findings: crate::model::findings::Thresholds,
}

/// Why the event loop ended (the run's, or one target's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TargetExited(Option<libc::c_int>),
    Duration,
    Signal(SignalKind),
    /// The user quit the TUI (q or Ctrl-C, which raw mode turns into a key).
    Quit,
    /// The target replaced its program (execve): the probes were on the old one.
    Exec,
}

/// Run a session; returns the process exit code (the command's own in launch mode).
pub fn run(opts: TraceOptions) -> Result<i32> {
    target::check_privileges()?;
    if opts.format == Format::Tui {
        tui::check_usable(opts.output.as_deref())?;
    }
    let (exporter, otlp) = start_exporters(&opts)?;
    let Targets {
        prepared,
        not_traced,
        launched,
        exe_watch,
    } = prepare_targets(&opts)?;
    // Everything that needed the power to attach is done (the process is still single
    // threaded, so this holds for every thread it will start) — unless processes found
    // later still need attaching, or sampled allocation probes come and go.
    let keep_attach = opts.allocs == AllocMode::Sample || exe_watch.is_some();
    if let Err(e) = target::drop_capabilities(keep_attach) {
        eprintln!("gctrace-bpf: warning: cannot drop capabilities: {e}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let child = launched.as_ref().map(|c| ChildExit::watch(c.pid));
    let local = tokio::task::LocalSet::new();
    let inputs = RunInputs {
        prepared,
        not_traced,
        launched: child.as_ref().map(|c| c.exit.clone()),
        exe_watch,
        exporter,
        otlp: otlp.clone(),
    };
    let stop = runtime.block_on(local.run_until(event_loop(inputs, opts.clone())));
    // What the run produced is sent even when it ended in an error.
    if let Some(o) = &otlp {
        let stats = o.finish();
        eprintln!(
            "gctrace-bpf: {}",
            crate::output::otlp::summary_line(o.config(), &stats)
        );
    }
    exit_code(child, stop?)
}

/// The exporters asked for, started before anything is started or attached: a taken
/// port fails the run alone.
fn start_exporters(
    opts: &TraceOptions,
) -> Result<(Option<Exporter>, Option<crate::output::otlp::Exporter>)> {
    let exporter = opts.prometheus.map(Exporter::start).transpose()?;
    if let Some(e) = &exporter {
        eprintln!(
            "gctrace-bpf: serving Prometheus metrics on http://{}/metrics",
            e.local_addr()
        );
    }
    let otlp = opts
        .otlp
        .clone()
        .map(crate::output::otlp::Exporter::start)
        .transpose()?;
    if let Some(o) = &otlp {
        if opts.format == Format::Tui {
            o.hold_warnings();
        }
        let c = o.config();
        eprintln!(
            "gctrace-bpf: exporting OTLP to {} ({})",
            c.endpoint,
            c.protocol.as_str()
        );
    }
    Ok((exporter, otlp))
}

/// The targets as the event loop gets them: analysed and attached, before the loop runs.
struct Targets {
    prepared: Vec<Prepared>,
    /// Targets that could not be traced (several only: with one, that is the run's error).
    not_traced: Vec<String>,
    /// The command started (resumed once its probes were on).
    launched: Option<Launched>,
    /// `--exe`/`--all`: what finds processes from now on, and `--max-processes`.
    exe_watch: Option<(Discovery, usize)>,
}

/// Find or start the targets, and prepare each.
fn prepare_targets(opts: &TraceOptions) -> Result<Targets> {
    let mut targets = Targets {
        prepared: Vec::new(),
        not_traced: Vec::new(),
        launched: None,
        exe_watch: None,
    };
    match &opts.target {
        Target::Pid(pid) => {
            target::check_exists(*pid)?;
            targets.prepared.push(prepare_now(*pid, opts)?);
        }
        Target::Command(argv) => {
            let mut child = launch::spawn_stopped(argv)?;
            // Everything up to resuming the child happens on this thread (ptrace's rule).
            match prepare_now(child.pid, opts) {
                Ok(p) => targets.prepared.push(p),
                Err(e) => {
                    child.abort();
                    return Err(e);
                }
            }
            child
                .resume()
                .context("cannot resume the started command")?;
            targets.launched = Some(child);
        }
        Target::Processes { pids, discover } => {
            prepare_processes(&mut targets, pids, discover.as_ref(), opts)?
        }
    }
    Ok(targets)
}

/// Several targets: each pid given once, and with `discover` what finds the others.
fn prepare_processes(
    targets: &mut Targets,
    pids: &[u32],
    discover: Option<&Discover>,
    opts: &TraceOptions,
) -> Result<()> {
    let mut pids: Vec<u32> = pids.to_vec();
    let mut unique = BTreeSet::new();
    pids.retain(|p| unique.insert(*p));
    if let Some(d) = discover {
        // Processes running now are found once the run's loop starts.
        let mut watch = Discovery::new(d.matcher.clone(), d.cgroup.clone())?;
        for &pid in &pids {
            watch.claim(pid);
        }
        targets.exe_watch = Some((watch, d.max_processes));
    }
    for pid in pids {
        let attempt = target::check_exists(pid)
            .map_err(anyhow::Error::from)
            .and_then(|()| prepare_now(pid, opts));
        match attempt {
            Ok(p) => targets.prepared.push(p),
            Err(e) => targets.not_traced.push(format!("{e:#}; not traced")),
        }
    }
    if targets.prepared.is_empty() && targets.exe_watch.is_none() {
        for line in &targets.not_traced {
            eprintln!("gctrace-bpf: {line}");
        }
        return Err(anyhow!("none of the processes given could be traced"));
    }
    Ok(())
}

/// The run's exit code: the started command's own (waiting for it if the run ended
/// first), else 0.
fn exit_code(child: Option<ChildExit>, stop: Stop) -> Result<i32> {
    match (child, stop) {
        (Some(_), Stop::TargetExited(Some(status))) => Ok(launch::exit_code(status)),
        (Some(child), _) => {
            let pid = child.pid;
            // Detached early (duration or signal): the command keeps running; we report
            // its exit status once it ends, as a wrapper should.
            if let Stop::Signal(kind) = stop {
                if kind == SignalKind::terminate() {
                    let _ = crate::sys::kill(pid, rustix::process::Signal::TERM);
                }
            }
            if stop == Stop::Quit {
                // Quitting the TUI is its Ctrl-C: in raw mode the terminal did not send
                // the command the SIGINT it would otherwise have got.
                let _ = crate::sys::kill(pid, rustix::process::Signal::INT);
            }
            let status = child
                .waiter
                .join()
                .map_err(|_| anyhow!("waiting for the command failed"))?
                .context("waiting for the command")?;
            Ok(launch::exit_code(status))
        }
        (None, _) => Ok(0),
    }
}

/// The wait status of the launched command once it has exited (None inside: it could
/// not be waited for), or None while it runs.
type ExitWatch = watch::Receiver<Option<Option<libc::c_int>>>;

/// [`traced::prepare`] before the event loop: its warnings go to stderr at once, which
/// the TUI has not taken yet.
fn prepare_now(pid: u32, opts: &TraceOptions) -> Result<Prepared> {
    let mut warnings = Vec::new();
    let prepared = traced::prepare(pid, opts, &mut warnings);
    for w in warnings {
        eprintln!("gctrace-bpf: warning: {w}");
    }
    prepared
}

/// Our own child's exit, reaped by exactly one waiter thread: two waiters (the target's
/// loop and, after an early end, the session) would race for the one wait status.
struct ChildExit {
    pid: u32,
    /// What the target's loop awaits.
    exit: ExitWatch,
    waiter: std::thread::JoinHandle<std::io::Result<libc::c_int>>,
}

impl ChildExit {
    fn watch(pid: u32) -> ChildExit {
        let (tx, exit) = watch::channel(None);
        let waiter = std::thread::spawn(move || {
            let status = launch::wait_exit(pid);
            let _ = tx.send(Some(status.as_ref().ok().copied()));
            status
        });
        ChildExit { pid, exit, waiter }
    }
}

/// The line that says a process is traced from now on (several targets only).
fn picked_up(p: &Prepared, opts: &TraceOptions) -> String {
    let info = &p.process;
    let mut msg = format!(
        "tracing pid {} ({}, {})",
        info.pid, info.exe, info.go_version
    );
    if let Some(path) = &opts.record {
        msg.push_str(&format!(
            ", recording to {}",
            crate::output::files::per_process_path(path, info.pid).display()
        ));
    }
    msg
}

/// How a target's trace ended before the run did, in one line (several targets only;
/// an exec was told as it was found).
fn ended_line(end: &Ended) -> Option<String> {
    Some(match end.stop {
        Stop::TargetExited(Some(status)) => format!(
            "pid {} exited ({}); its summary is written",
            end.pid,
            launch::describe_status(status)
        ),
        Stop::TargetExited(None) => format!("pid {} exited; its summary is written", end.pid),
        Stop::Exec => return None,
        Stop::Duration | Stop::Signal(_) | Stop::Quit => format!("pid {} detached", end.pid),
    })
}

/// Output buffer size: a program stopping the world in a loop makes megabytes of JSON a
/// second, and each write(2) has a fixed cost on top of its bytes.
const OUTPUT_BUFFER_BYTES: usize = 64 * 1024;

fn open_output(opts: &TraceOptions) -> Result<Box<dyn Write + Send>> {
    Ok(match &opts.output {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            OUTPUT_BUFFER_BYTES,
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            OUTPUT_BUFFER_BYTES,
            std::io::stdout(),
        )),
    })
}

/// Where every target's records go: the TUI, or the output in the chosen format; and
/// the exporters asked for.
fn shared_sink(
    opts: &TraceOptions,
    tui: Option<&tui::TerminalLive>,
    several: bool,
    exporter: Option<&Exporter>,
    otlp: Option<&crate::output::otlp::Exporter>,
) -> Result<SharedSink> {
    let primary: Box<dyn Sink + Send> = match tui {
        Some(t) => t.sink(),
        None => sink_for_processes(opts.format, open_output(opts)?, several)?,
    };
    let primary = match exporter {
        Some(e) => e.tee(primary),
        None => primary,
    };
    Ok(SharedSink::new(match otlp {
        Some(o) => o.tee(primary),
        None => primary,
    }))
}
