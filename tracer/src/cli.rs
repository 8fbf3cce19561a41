//! The command line. Tests and users depend on this contract; keep it stable.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;
use crate::probes::AllocMode;
use crate::session::{Discover, Matcher, Target, TraceOptions};

const AFTER_HELP: &str = "\
Examples:
  sudo gctrace-bpf --pid 1234                      attach to a running Go program
  sudo gctrace-bpf --pid 1234 --duration 60 --format json --output gc.ndjson
  sudo gctrace-bpf -- ./server -port 8080          start a program traced from its first instruction
  sudo gctrace-bpf --pid 1234 --pid 5678           several processes at once (or --pid 1234,5678)
  sudo gctrace-bpf --exe /usr/local/bin/server     every process running that binary, and
                                                   every one that starts later, until Ctrl-C

Output:
  gctrace  one line per GC cycle in the layout of GODEBUG=gctrace=1 ('?' where not known)
  json     newline-delimited JSON: a process record, then gc and stw (stop-the-world)
           records as they complete, then a summary with pause percentiles and lost events;
           every record has the \"pid\" of its process
  tui      live terminal UI (default with --pid or --exe on a terminal): pauses vs
           --slo-pause, cycles, heap, allocations; p picks the process shown; q quits, ? help

Several processes (--pid repeated, --exe): each has its own probes and figures; a
process that exits or cannot be traced is reported in one line and the others go on.
gctrace lines then start with \"[pid N] \", and --record/--pprof FILE write one file per
process, FILE with the pid before its extension (incident.gct -> incident.1234.gct).

Needs root, or CAP_BPF and CAP_PERFMON. The target is never modified or restarted; when
gctrace-bpf exits (or is killed) every probe is removed.";

/// What the garbage collector of a running Go program is doing, seen from eBPF.
#[derive(Debug, Parser)]
#[command(
    name = "gctrace-bpf",
    version,
    about,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub subcommand: Option<Command>,

    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what gctrace-bpf would do to a Go binary (probes, return sites, runtime
    /// variables, gaps) without attaching to anything.
    Inspect(InspectArgs),
    /// Replay a recording (made with --record) into any output, as the live run showed it.
    Replay(ReplayArgs),
    /// Postmortem summary of a recording: pause percentiles, worst pauses and their
    /// reasons, GC CPU, allocation rate, SLO breaches, the target's settings.
    Report(ReportArgs),
    /// Convert a recording for other tools: Perfetto/Chrome trace JSON, pprof.
    Export(ExportArgs),
    /// Print a shell completion script: `gctrace-bpf completions bash > /etc/bash_completion.d/gctrace-bpf`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `gctrace-bpf man | man -l -`.
    Man,
    /// For `cargo xtask gen-offsets`: print, as JSON, the DWARF layouts of the runtime
    /// structs the tracer reads in BINARY (which must have DWARF). Not a user command.
    #[command(hide = true, name = "dump-layouts")]
    DumpLayouts {
        #[arg(value_name = "BINARY")]
        binary: PathBuf,
    },
}

/// The service-level objectives the TUI's alerts and `report` check against: the same
/// flags, units and defaults for a live run, a replay and a report.
#[derive(Debug, Clone, Copy, Args)]
pub struct SloArgs {
    /// The pause SLO, checked against the p99 pause (e.g. 500us, 1ms, 0.2s; a bare
    /// number is milliseconds).
    #[arg(long, default_value = "1ms", value_name = "DURATION", value_parser = parse_pause)]
    pub slo_pause: Duration,

    /// The share of CPU the GC may take before it counts as thrashing, in percent.
    #[arg(long, default_value_t = 5.0, value_name = "PERCENT", value_parser = parse_percent)]
    pub slo_gc_cpu: f64,

    /// Findings: the pause p50 target (the p99 target is --slo-pause).
    #[arg(long, default_value = "0.5ms", value_name = "DURATION", value_parser = parse_pause)]
    pub slo_pause_p50: Duration,

    /// Findings: GC cycles a second above which `gc-frequency` is reported.
    #[arg(long, default_value_t = 50.0, value_name = "PER_S")]
    pub max_gc_rate: f64,

    /// Findings: the window of the pause, GC CPU and frequency rules, in seconds (shorter
    /// reacts faster to a burst, longer ignores more of one).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = parse_window)]
    pub finding_window: f64,

    /// Findings: the window of the growth rules (heap-growth, goroutine-growth), in
    /// seconds; a trend must span a third of it.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = parse_window)]
    pub growth_window: f64,
}

impl SloArgs {
    /// The pause SLO in nanoseconds.
    pub fn pause_ns(&self) -> u64 {
        nanos(self.slo_pause)
    }

    /// What the TUI checks against.
    pub fn tui_slo(&self) -> crate::output::tui::Slo {
        crate::output::tui::Slo {
            pause_ns: self.pause_ns(),
            gc_cpu_percent: self.slo_gc_cpu,
        }
    }

    /// The findings' thresholds these flags set (the rest at the playbook's defaults).
    pub fn thresholds(&self) -> crate::model::findings::Thresholds {
        crate::model::findings::Thresholds {
            pause_p99_ns: nanos(self.slo_pause),
            pause_p50_ns: nanos(self.slo_pause_p50),
            gc_cpu_percent: self.slo_gc_cpu,
            cycles_per_s: self.max_gc_rate,
            window_s: self.finding_window,
            growth_window_s: self.growth_window,
            ..crate::model::findings::Thresholds::default()
        }
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format [default: tui on a terminal, else gctrace].
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// Write the output to FILE instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Pace events in real time multiplied by X (tui: 1 by default; other formats: as
    /// fast as possible unless given).
    #[arg(long, value_name = "X")]
    pub speed: Option<f64>,
    /// The TUI's alerts check these (as in a live run).
    #[command(flatten)]
    pub slo: SloArgs,
    /// Export the recording's metrics and cycles too (not with the TUI).
    #[command(flatten)]
    pub otlp: OtlpArgs,
}

/// `--otlp [ENDPOINT]` and `--otlp-protocol`.
#[derive(Debug, Args, Default)]
pub struct OtlpArgs {
    /// Also export the metrics, and each GC cycle and stop of the world as a span, over
    /// OTLP to an OpenTelemetry Collector at ENDPOINT (http://HOST:PORT; without a value,
    /// OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4317). OTEL_METRIC_EXPORT_INTERVAL,
    /// OTEL_BSP_SCHEDULE_DELAY and OTEL_EXPORTER_OTLP_TIMEOUT are honoured.
    #[arg(long, value_name = "ENDPOINT", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
    /// --otlp's wire protocol [default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf
    /// for port 4318 and grpc for any other].
    #[arg(long, value_enum, value_name = "PROTOCOL", requires = "otlp")]
    pub otlp_protocol: Option<crate::output::otlp::Protocol>,
}

impl OtlpArgs {
    /// The export's settings, if asked for; a bad endpoint or variable is a one-line error.
    pub fn config(&self) -> Result<Option<crate::output::otlp::Config>, String> {
        self.otlp
            .as_deref()
            .map(|e| {
                crate::output::otlp::Config::resolve(e, self.otlp_protocol, |k| {
                    std::env::var(k).ok()
                })
            })
            .transpose()
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The recording.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Pauses over the pause SLO are counted, and p99 is checked against it.
    #[command(flatten)]
    pub slo: SloArgs,
    /// Predict what another setting would do, from the recording's own cycles and the
    /// Go pacer's equations: cycles/s, GC CPU % and peak heap. SETTING is
    /// gogc=N|off[,limit=SIZE|off] or limit=SIZE|off, SIZE as GOMEMLIMIT takes it
    /// (512MiB, 2GiB, bytes); what it does not name stays as recorded. Repeatable, e.g.
    /// `--what-if gogc=200 --what-if gogc=off,limit=2GiB` [default: gogc=50, 200 and
    /// 400, and gogc=off at the recorded limit when one was set].
    #[arg(long = "what-if", value_name = "SETTING")]
    pub what_if: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write Chrome/Perfetto trace-event JSON (ui.perfetto.dev, chrome://tracing).
    #[arg(long, value_name = "OUT.json", required_unless_present = "pprof")]
    pub perfetto: Option<PathBuf>,
    /// Write the recorded allocation sites as a gzip'd pprof profile.
    #[arg(long, value_name = "OUT")]
    pub pprof: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The Go executable to analyse.
    #[arg(
        value_name = "BINARY",
        required_unless_present = "pid",
        conflicts_with = "pid"
    )]
    pub binary: Option<PathBuf>,

    /// Analyse the executable of this running process (read through /proc/PID/exe).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = InspectFormat::Text)]
    pub format: InspectFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Text,
    Json,
}

/// Options of a tracing run.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Attach to the running process with this (host) pid. Repeat it (or separate pids
    /// with commas) to trace several processes; the run ends when all have exited.
    #[arg(
        short,
        long,
        value_name = "PID",
        value_delimiter = ',',
        conflicts_with = "command",
        required_unless_present_any = ["command", "exe", "all"]
    )]
    pub pid: Vec<u32>,

    /// Trace every process whose executable is this file (matched by device and inode,
    /// so any name or symlink works), including processes that start later (checked
    /// every second). Runs until Ctrl-C, SIGTERM or --duration, waiting for processes
    /// when none is left.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "command",
        group = "discover"
    )]
    pub exe: Option<PathBuf>,

    /// Trace every Go process on the host, now and later (checked every second; whether
    /// a binary is Go is decided once per file). Runs until Ctrl-C, SIGTERM or --duration.
    #[arg(long, conflicts_with_all = ["command", "exe"], group = "discover")]
    pub all: bool,

    /// With --exe or --all: only processes in this cgroup subtree (the path as
    /// /proc/PID/cgroup gives it, e.g. /kubepods.slice or /system.slice/app.service).
    #[arg(long, value_name = "PATH", requires = "discover")]
    pub cgroup: Option<String>,

    /// With --exe or --all: trace at most this many processes at once; others found
    /// meanwhile are reported in one line each and left alone.
    #[arg(long, default_value_t = 64, value_name = "N", requires = "discover")]
    pub max_processes: usize,

    /// Output format [default: tui when attaching (--pid, --exe) with standard output on
    /// a terminal and no --output, otherwise gctrace].
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Write the output to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Allocation tracing: `rate` reads the runtime's own allocation counter (no probes,
    /// no cost); `sample` attaches allocation probes in short bursts to name the top
    /// allocation sites and types within --overhead-budget; `exact` counts every
    /// allocation (one probe hit each: slows allocation-heavy programs many times over).
    #[arg(long, value_enum, default_value_t = AllocMode::Rate, value_name = "MODE")]
    pub allocs: AllocMode,

    /// With --allocs sample|exact: at the end, write the allocations by call site as a
    /// gzip'd pprof profile (alloc_objects, alloc_space) for `go tool pprof FILE`. With
    /// several processes, one profile each, named like --record's files.
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,

    /// Also record everything to FILE (compact, crash-safe), for `gctrace-bpf replay`,
    /// `report` and `export` after the incident. A recording holds one process: with
    /// several, each gets FILE with its pid before the extension (x.gct -> x.PID.gct).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Size of the kernel's event ring buffer in KiB (a power of two, at least 4); for
    /// tests that provoke overload.
    #[arg(long, hide = true, value_name = "KIB", value_parser = parse_ring_kib)]
    pub ring_kib: Option<u32>,

    /// Probe every stop of the world where it starts and ends (two probe hits per stop,
    /// one inside the pause) instead of once per GC cycle after it: gives each
    /// mark-termination restart its own start time, at the cost of lengthening pauses.
    #[arg(long)]
    pub every_stop: bool,

    /// With --allocs sample: how much the allocation probes may add to the target's CPU
    /// time, in percent (on top of the GC probes every mode has; the allocation probes are
    /// attached in short bursts only while this account is in credit).
    #[arg(long, default_value_t = 2.0, value_name = "PERCENT", value_parser = parse_percent)]
    pub overhead_budget: f64,

    /// Also serve Prometheus metrics on http://ADDR/metrics while tracing (pauses, GC
    /// phases, cycles, heap, goal, allocation, lost events; labelled by pid and exe).
    /// ADDR is HOST:PORT (127.0.0.1:9101) or :PORT for every interface.
    #[arg(long, value_name = "ADDR", value_parser = crate::output::prometheus::parse_listen_addr)]
    pub prometheus: Option<SocketAddr>,

    #[command(flatten)]
    pub otlp: OtlpArgs,

    /// Detach after this many seconds (fractions allowed); the target keeps running.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub slo: SloArgs,

    /// Command to start and trace from its first instruction (after `--`). It inherits
    /// stdin, stdout, stderr and the environment; gctrace-bpf exits with its status.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

impl TraceArgs {
    /// The format to use. The TUI is the default only where it can work and nothing else
    /// shares the screen: attaching to running processes, with stdout a terminal and no
    /// --output (a started command writes to the same terminal, and scripts read stdout).
    pub fn resolved_format(&self, stdout_is_terminal: bool) -> Format {
        let attaching = !self.pid.is_empty() || self.exe.is_some() || self.all;
        match self.format {
            Some(f) => f,
            None if stdout_is_terminal && self.output.is_none() && attaching => Format::Tui,
            None => Format::Gctrace,
        }
    }

    /// The run these arguments ask for, in the format [`TraceArgs::resolved_format`]
    /// picks. An error is a usage error: a bad `--otlp` endpoint or `OTEL_*` variable.
    pub fn into_options(self, stdout_is_terminal: bool) -> Result<TraceOptions, String> {
        let otlp = self.otlp.config()?;
        let format = self.resolved_format(stdout_is_terminal);
        let matcher = match (self.exe, self.all) {
            (Some(path), _) => Some(Matcher::Exe(path)),
            (None, true) => Some(Matcher::AllGo),
            (None, false) => None,
        };
        let target = match (&self.pid[..], matcher) {
            ([pid], None) => Target::Pid(*pid),
            ([], None) => Target::Command(self.command),
            (pids, matcher) => Target::Processes {
                pids: pids.to_vec(),
                discover: matcher.map(|matcher| Discover {
                    matcher,
                    cgroup: self.cgroup,
                    max_processes: self.max_processes,
                }),
            },
        };
        Ok(TraceOptions {
            target,
            allocs: self.allocs,
            pprof: self.pprof,
            record: self.record,
            ring_kib: self.ring_kib,
            stops: if self.every_stop {
                crate::probes::StopsMode::Every
            } else {
                crate::probes::StopsMode::Cycle
            },
            overhead_budget: self.overhead_budget,
            format,
            output: self.output,
            duration: self.duration,
            prometheus: self.prometheus,
            otlp,
            slo: self.slo.tui_slo(),
            findings: self.slo.thresholds(),
        })
    }
}

fn parse_ring_kib(s: &str) -> Result<u32, String> {
    let k: u32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a size in KiB"))?;
    if k < 4 || !k.is_power_of_two() || k > 1 << 20 {
        return Err(format!("'{s}' must be a power of two from 4 to 1048576"));
    }
    Ok(k)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a percentage"))?;
    if !(p > 0.0 && p <= 100.0) {
        return Err(format!("'{s}' must be between 0 and 100"));
    }
    Ok(p)
}

/// A findings window: at least 3 s (judged once a second, over a few judgements) and at
/// most an hour (the window's cycles are kept in memory).
fn parse_window(s: &str) -> Result<f64, String> {
    let w: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(3.0..=3600.0).contains(&w) {
        return Err(format!("'{s}' must be between 3 and 3600 seconds"));
    }
    Ok(w)
}

fn parse_pause(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
    ]
    .iter()
    .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
    .unwrap_or((t, 1e-3));
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (like 500us, 1ms, 0.2s)"))?;
    let secs = v * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(format!("'{s}' must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gctrace-bpf").chain(args.iter().copied()))
    }

    #[test]
    fn pid_or_command_is_required() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--pid", "1", "--", "ls"]).is_err());
        let c = parse(&["--format", "json", "--", "ls", "-l"])
            .unwrap()
            .trace;
        assert_eq!(c.command, vec![OsString::from("ls"), OsString::from("-l")]);
        assert_eq!(c.format, Some(Format::Json));
        let c = parse(&["-p", "42", "-d", "1.5"]).unwrap().trace;
        assert_eq!(c.pid, vec![42]);
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        // A command named like a subcommand, after --, is a command.
        let c = parse(&["--", "inspect"]).unwrap();
        assert!(c.subcommand.is_none());
        assert_eq!(c.trace.command, vec![OsString::from("inspect")]);
    }

    #[test]
    fn several_targets() {
        let c = parse(&["--pid", "1", "--pid", "2", "-p", "3,4"])
            .unwrap()
            .trace;
        assert_eq!(c.pid, vec![1, 2, 3, 4]);
        let c = parse(&["--exe", "/usr/bin/server"]).unwrap().trace;
        assert!(c.pid.is_empty());
        assert_eq!(c.exe, Some(PathBuf::from("/usr/bin/server")));
        assert_eq!(c.resolved_format(true), Format::Tui);
        let c = parse(&["--exe", "/x", "--pid", "5"]).unwrap().trace;
        assert_eq!((c.pid, c.exe), (vec![5], Some(PathBuf::from("/x"))));
        assert!(parse(&["--exe", "/x", "--", "ls"]).is_err());
        let c = parse(&[
            "--all",
            "--cgroup",
            "/kubepods.slice",
            "--max-processes",
            "3",
        ])
        .unwrap()
        .trace;
        assert!(c.all && c.pid.is_empty());
        assert_eq!(
            (c.cgroup.as_deref(), c.max_processes),
            (Some("/kubepods.slice"), 3)
        );
        assert_eq!(parse(&["--all"]).unwrap().trace.max_processes, 64);
        // Narrowing needs something to narrow; --all with --exe or a command is nonsense.
        assert!(parse(&["--pid", "5", "--cgroup", "/a"]).is_err());
        assert!(parse(&["--pid", "5", "--max-processes", "3"]).is_err());
        assert!(parse(&["--all", "--exe", "/x"]).is_err());
        assert!(parse(&["--all", "--", "ls"]).is_err());
        assert!(parse(&["--pid", "1", "--pid", "2", "--", "ls"]).is_err());
        assert!(parse(&["--pid", "1,x"]).is_err());
    }

    #[test]
    fn arguments_become_the_run_options() {
        let options = |args: &[&str]| parse(args).unwrap().trace.into_options(false);
        let o = options(&["-p", "7", "-d", "2", "--every-stop"]).unwrap();
        assert!(matches!(o.target, Target::Pid(7)));
        assert_eq!(o.duration, Some(Duration::from_secs(2)));
        assert_eq!(o.stops, crate::probes::StopsMode::Every);
        assert_eq!(o.format, Format::Gctrace);
        let o = options(&["-f", "json", "--", "ls"]).unwrap();
        assert!(matches!(&o.target, Target::Command(argv) if argv == &[OsString::from("ls")]));
        assert_eq!(o.stops, crate::probes::StopsMode::Cycle);
        assert_eq!(o.format, Format::Json);
        let o = options(&["-p", "1,2"]).unwrap();
        assert!(matches!(
            &o.target,
            Target::Processes { pids, discover: None } if pids == &[1, 2]
        ));
        let o = options(&[
            "--exe",
            "/x",
            "-p",
            "5",
            "--cgroup",
            "/a",
            "--max-processes",
            "3",
        ])
        .unwrap();
        let Target::Processes {
            pids,
            discover: Some(d),
        } = o.target
        else {
            panic!("{:?}", o.target);
        };
        assert_eq!(pids, vec![5]);
        assert_eq!(d.matcher, Matcher::Exe(PathBuf::from("/x")));
        assert_eq!((d.cgroup.as_deref(), d.max_processes), (Some("/a"), 3));
        let o = options(&["--all", "--slo-pause", "2ms", "--slo-gc-cpu", "7"]).unwrap();
        assert!(matches!(
            &o.target,
            Target::Processes { pids, discover: Some(d) } if pids.is_empty() && d.matcher == Matcher::AllGo
        ));
        assert_eq!(o.slo.pause_ns, 2_000_000);
        assert_eq!(o.slo.gc_cpu_percent, 7.0);
        assert_eq!(o.findings.pause_p99_ns, 2_000_000);
        // A bad OTLP endpoint is the caller's usage error.
        assert!(options(&["-p", "1", "--otlp", "https://collector:4317"]).is_err());
    }

    #[test]
    fn tui_is_the_default_only_on_a_terminal() {
        let c = parse(&["-p", "1"]).unwrap().trace;
        assert_eq!(c.resolved_format(true), Format::Tui);
        assert_eq!(c.resolved_format(false), Format::Gctrace);
        let c = parse(&["-p", "1", "-o", "x"]).unwrap().trace;
        assert_eq!(c.resolved_format(true), Format::Gctrace);
        let c = parse(&["-p", "1", "-f", "json"]).unwrap().trace;
        assert_eq!(c.resolved_format(true), Format::Json);
        let c = parse(&["--", "ls"]).unwrap().trace;
        assert_eq!(c.resolved_format(true), Format::Gctrace);
        let c = parse(&["-p", "1", "-f", "tui", "--slo-pause", "500us"])
            .unwrap()
            .trace;
        assert_eq!(c.resolved_format(false), Format::Tui);
        assert_eq!(c.slo.slo_pause, Duration::from_micros(500));
        assert_eq!(c.slo.slo_gc_cpu, 5.0);
        let t = parse(&["-p", "1", "--finding-window", "4", "--growth-window", "12s"])
            .unwrap()
            .trace
            .slo
            .thresholds();
        assert_eq!((t.window_s, t.growth_window_s), (4.0, 12.0));
        assert!(parse(&["-p", "1", "--finding-window", "1"]).is_err());
        // The same flags, units and defaults in a replay and a report.
        for sub in ["replay", "report"] {
            let c = parse(&[sub, "f.gct", "--slo-pause", "5", "--slo-gc-cpu", "10"]).unwrap();
            let slo = match c.subcommand {
                Some(Command::Replay(a)) => a.slo,
                Some(Command::Report(a)) => a.slo,
                other => panic!("{other:?}"),
            };
            assert_eq!(slo.slo_pause, Duration::from_millis(5), "{sub}");
            assert_eq!(slo.slo_gc_cpu, 10.0, "{sub}");
            assert_eq!(slo.thresholds().window_s, 10.0, "{sub}");
        }
        assert_eq!(parse_pause("2"), Ok(Duration::from_millis(2)));
        assert_eq!(parse_pause("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_pause("-1ms").is_err());
    }

    #[test]
    fn inspect_takes_a_binary_or_a_pid() {
        let c = parse(&["inspect", "/bin/x", "--format", "json"]).unwrap();
        let Some(Command::Inspect(a)) = c.subcommand else {
            panic!("not inspect");
        };
        assert_eq!(a.binary, Some(PathBuf::from("/bin/x")));
        assert_eq!(a.format, InspectFormat::Json);
        assert!(parse(&["inspect", "--pid", "3"]).is_ok());
        assert!(parse(&["inspect"]).is_err());
        assert!(parse(&["inspect", "/bin/x", "--pid", "3"]).is_err());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--pid", "x"][..],
            &["--pid", "1", "-d", "-3"],
            &["--pid", "1", "-f", "xml"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
