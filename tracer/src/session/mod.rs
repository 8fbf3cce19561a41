//! A live tracing session: find or start the target, analyse it, attach, then stream
//! events through decoder → model → output until the target exits, the duration passes,
//! or the user interrupts. Every exit path detaches the probes, drains what the kernel
//! already delivered, and writes the summary.

use std::{
    ffi::OsString,
    io::Write,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFd, signal::unix::SignalKind, sync::oneshot};
use tracer_common::{ProbeKind, RawEvent};

use crate::clock::monotonic_ns;
use crate::{
    alloc::{AllocMode, LiveAllocs},
    binary::{process::load_bias, GoBinary, OffsetsSource},
    decode::{DecodeSpec, Decoder},
    events::TraceEvent,
    launch::{self, Launched},
    model::AllocModel,
    output::{sink_for, Format},
    pipeline::Pipeline,
    pprof,
    probes::{loader::HOST_ARCH, plan, plan_allocs, Probes, ReadField},
    recording::{Header, Recorder},
    records::{ProcessInfo, Record},
    target,
    tui::{self, AppEvent, Control},
};

/// How often the ring buffer is drained. Events are submitted without waking us (a
/// wakeup costs the traced thread more than the rest of the probe), so this bounds the
/// display latency; the kernel side forces a wakeup when the ring is half full.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// How often user space reads the runtime's allocation counter itself (no probe: a read
/// of /proc/PID/mem costs the target nothing).
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running process.
    Pid(u32),
    /// A command to start, traced from its first instruction.
    Command(Vec<OsString>),
}

#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub target: Target,
    pub allocs: AllocMode,
    /// Write an allocation profile here at the end.
    pub pprof: Option<PathBuf>,
    /// Record everything to this file, for replay, report and export.
    pub record: Option<PathBuf>,
    /// Ring buffer size override in KiB (tests: provoke overload).
    pub ring_kib: Option<u32>,
    /// Sampled allocation tracing may slow the target by at most this many percent.
    pub overhead_budget: f64,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub duration: Option<Duration>,
    /// Thresholds the TUI checks against.
    pub slo: tui::Slo,
}

/// Why the event loop ended.
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

    let mut launched: Option<Launched> = None;
    let pid = match &opts.target {
        Target::Pid(pid) => {
            target::check_exists(*pid)?;
            *pid
        }
        Target::Command(argv) => {
            let child = launch::spawn_stopped(argv)?;
            let pid = child.pid;
            launched = Some(child);
            pid
        }
    };

    // Everything up to resuming the child happens on this thread (ptrace's rule).
    let prepared = prepare(pid, &opts);
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            if let Some(child) = launched.take() {
                child.abort();
            }
            return Err(e);
        }
    };
    if let Some(child) = launched.as_mut() {
        child
            .resume()
            .context("cannot resume the started command")?;
    }
    // Everything that needed the power to attach is done (the process is still single
    // threaded, so this holds for every thread it will start).
    if let Err(e) = target::drop_capabilities(opts.allocs == AllocMode::Sample) {
        eprintln!("gctrace-bpf: warning: cannot drop capabilities: {e}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let launched_pid = launched.as_ref().map(|c| c.pid);
    let stop = runtime.block_on(event_loop(prepared, &opts, launched_pid))?;

    match (launched_pid, stop) {
        (Some(_), Stop::TargetExited(Some(status))) => Ok(launch::exit_code(status)),
        (Some(pid), _) => {
            // Detached early (duration or signal): the command keeps running; we report
            // its exit status once it ends, as a wrapper should.
            if let Stop::Signal(kind) = stop {
                if kind == SignalKind::terminate() {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                }
            }
            if stop == Stop::Quit {
                // Quitting the TUI is its Ctrl-C: in raw mode the terminal did not send
                // the command the SIGINT it would otherwise have got.
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
            }
            let status = launch::wait_exit(pid).context("waiting for the command")?;
            Ok(launch::exit_code(status))
        }
        (None, _) => Ok(0),
    }
}

/// Analysis and attachment, done before the target runs (launch mode).
struct Prepared {
    /// What a recording of this run starts with.
    header: Header,
    probes: Probes,
    decoder: Decoder,
    process: ProcessInfo,
    sampler: Sampler,
    /// Taken before the target ran (launch) or at attach: the allocation baseline.
    first_sample: Option<RawEvent>,
    /// Allocation probes, unless `--allocs rate`.
    allocs: Option<LiveAllocs>,
}

/// Periodic reads of target memory by user space, shaped as raw events
/// ([`ProbeKind::UserSample`]) so they are decoded, modelled and recorded like the rest.
struct Sampler {
    pid: u32,
    /// (read slot index, run-time address) of the counters sampled.
    slots: Vec<(usize, u64)>,
}

impl Sampler {
    fn sample(&self) -> Option<RawEvent> {
        if self.slots.is_empty() {
            return None;
        }
        let mut raw = RawEvent {
            kind: ProbeKind::UserSample as u32,
            ktime_ns: monotonic_ns(),
            pid_tgid: u64::from(self.pid) << 32 | u64::from(self.pid),
            ..Default::default()
        };
        for &(i, addr) in &self.slots {
            if let Ok(b) = target::read_memory::<8>(self.pid, addr) {
                raw.reads[i] = u64::from_le_bytes(b);
                raw.read_ok |= 1 << i;
            }
        }
        (raw.read_ok != 0).then_some(raw)
    }
}

fn prepare(pid: u32, opts: &TraceOptions) -> Result<Prepared> {
    let exe = target::exe_link(pid);
    let exe_name = target::exe_display(pid);
    let bin = GoBinary::open(&exe).map_err(|e| anyhow!("pid {pid} ({exe_name}): {e}"))?;
    if bin.arch() != HOST_ARCH {
        return Err(anyhow!(
            "pid {pid} ({exe_name}) is a {} program; this tracer runs on {}",
            bin.arch().as_str(),
            HOST_ARCH.as_str()
        ));
    }
    let plan = plan(&bin).map_err(|e| anyhow!("pid {pid} ({exe_name}): {e}"))?;
    for w in &plan.warnings {
        eprintln!("gctrace-bpf: warning: {w}");
    }
    let bias = load_bias(pid, &bin).map_err(|e| anyhow!("pid {pid} ({exe_name}): {e}"))?;
    let alloc_plan = match opts.allocs {
        AllocMode::Rate => None,
        _ => Some(plan_allocs(&bin).map_err(|e| anyhow!("pid {pid} ({exe_name}): {e}"))?),
    };
    let mut probes = Probes::attach(
        pid,
        &exe,
        &plan,
        bias,
        alloc_plan.as_ref().map(|p| (p, true)),
        opts.ring_kib.map(|k| k.saturating_mul(1024)),
    )?;
    let gomaxprocs_addr = plan
        .reads
        .iter()
        .find(|r| r.field == ReadField::Gomaxprocs)
        .map(|r| r.address.wrapping_add(bias));
    let sampler = Sampler {
        pid,
        slots: plan
            .reads
            .iter()
            .enumerate()
            .filter(|(_, r)| r.field == ReadField::TotalAlloc)
            .map(|(i, r)| (i, r.address.wrapping_add(bias)))
            .collect(),
    };
    let first_sample = sampler.sample();
    let process = ProcessInfo {
        pid,
        exe: exe_name,
        go_version: bin.go_version().raw.clone(),
        arch: bin.arch().as_str().to_string(),
        gomaxprocs: target::gomaxprocs(pid, gomaxprocs_addr),
    };
    let decode = DecodeSpec::new(&plan, bias);
    let header = Header {
        tracer_version: env!("CARGO_PKG_VERSION").to_string(),
        process: process.clone(),
        decode: decode.clone(),
        offsets_source: match bin.offsets_source() {
            OffsetsSource::Dwarf => "dwarf",
            OffsetsSource::Table => "table",
            OffsetsSource::None => "none",
        }
        .to_string(),
        allocs: format!("{:?}", opts.allocs).to_lowercase(),
        start_unix_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        start_monotonic_ns: monotonic_ns(),
    };
    let allocs = match alloc_plan {
        None => None,
        Some(alloc_plan) => {
            let cost = if opts.allocs == AllocMode::Sample {
                probes.measure_hit_cost()?
            } else {
                Duration::ZERO
            };
            let mut live = LiveAllocs::new(
                opts.allocs,
                alloc_plan,
                bin,
                pid,
                bias,
                opts.overhead_budget,
                cost,
            );
            live.start(&mut probes)?;
            Some(live)
        }
    };
    Ok(Prepared {
        probes,
        decoder: Decoder::new(decode),
        process,
        header,
        sampler,
        first_sample,
        allocs,
    })
}

fn open_output(opts: &TraceOptions) -> Result<Box<dyn Write + Send>> {
    Ok(match &opts.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

/// Move every raw event the kernel has delivered into the pipeline.
fn drain(pipe: &mut Pipeline, ring: &mut RingBuf<MapData>) -> Result<usize> {
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        if item.len() < std::mem::size_of::<RawEvent>() {
            continue;
        }
        // SAFETY: the slot holds at least size_of::<RawEvent>() bytes written by the
        // kernel program as a RawEvent; read_unaligned copes with any alignment.
        let raw: RawEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        drop(item);
        pipe.raw(&raw)?;
    }
    Ok(n)
}

/// Write the allocation sites as a pprof profile.
pub fn write_profile(
    path: &Path,
    allocs: &AllocModel,
    start_unix_ns: i64,
    duration_ns: u64,
) -> Result<()> {
    if !allocs.active() {
        eprintln!(
            "gctrace-bpf: no allocation profile written to {}: it needs --allocs sample or exact",
            path.display()
        );
        return Ok(());
    }
    let samples: Vec<pprof::AllocSample> = allocs
        .all_sites()
        .into_iter()
        .map(|s| pprof::AllocSample {
            stack: s
                .frames
                .into_iter()
                .map(|f| crate::binary::Frame {
                    function: f.function,
                    file: f.file,
                    line: f.line,
                })
                .collect(),
            objects: s.objects,
            bytes: s.bytes,
        })
        .collect();
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let period = if allocs.exact() { 1 } else { 0 };
    pprof::write_alloc_profile(
        std::io::BufWriter::new(file),
        &samples,
        period,
        start_unix_ns,
        i64::try_from(duration_ns).unwrap_or(i64::MAX),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Sleeps until the sampled allocation probes need attention (forever if never).
async fn burst_timer(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The TUI's next frame or key (never, without the TUI).
async fn tui_step(tui: &mut Option<tui::Live>) -> Result<Control> {
    match tui {
        Some(t) => t.step().await,
        None => std::future::pending().await,
    }
}

/// Register a descriptor we own with the event loop, for readability.
fn watch<T: AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor (a ring-buffer map or a pidfd) and keeps it open
    // and unchanged until the AsyncFd, which owns `inner`, is dropped.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

async fn event_loop(
    prepared: Prepared,
    opts: &TraceOptions,
    launched: Option<u32>,
) -> Result<Stop> {
    let Prepared {
        header,
        mut probes,
        decoder,
        process,
        sampler,
        first_sample,
        mut allocs,
    } = prepared;
    let pid = sampler.pid;
    // The program the probes are in; an execve replaces it.
    let exe_identity = target::exe_identity(pid);
    let ring = probes.take_events()?;
    let mut ring = watch(ring).context("cannot poll the ring buffer")?;
    let recorder = match &opts.record {
        Some(path) => Some(
            Recorder::create(path, &header)
                .with_context(|| format!("cannot create recording {}", path.display()))?,
        ),
        None => None,
    };
    // The TUI takes the terminal from here on; the pipeline's records go to it.
    let mut tui = match opts.format {
        Format::Tui => Some(tui::Live::start(opts.slo, opts.allocs)?),
        _ => None,
    };
    let sink = match &tui {
        Some(t) => t.sink(),
        None => sink_for(opts.format, open_output(opts)?),
    };
    let mut pipe = Pipeline::new(pid, decoder, sink, recorder);
    pipe.emit(vec![Record::Process(process)])?;
    if let Some(raw) = first_sample {
        pipe.raw(&raw)?;
    }
    pipe.flush()?;

    // Target exit: our own child is reaped by a waiter thread (its status is the exit
    // code); any other process is watched through a pidfd.
    let (exit_tx, mut exit_rx) = oneshot::channel::<Option<libc::c_int>>();
    let pidfd = match launched {
        Some(child) => {
            std::thread::spawn(move || {
                let _ = exit_tx.send(launch::wait_exit(child).ok());
            });
            None
        }
        None => {
            drop(exit_tx);
            Some(watch(
                pidfd_open(pid).context("cannot watch the target process")?,
            )?)
        }
    };
    let target_gone = async {
        match &pidfd {
            Some(fd) => {
                let _ = fd.readable().await;
                None
            }
            None => (&mut exit_rx).await.ok().flatten(),
        }
    };
    tokio::pin!(target_gone);

    let mut sigint = tokio::signal::unix::signal(SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate())?;
    let deadline = async {
        match opts.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let started_ns = monotonic_ns();
    let started_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    let mut sample_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + SAMPLE_INTERVAL,
        SAMPLE_INTERVAL,
    );
    let mut lost_reported = 0;

    let stop = loop {
        tokio::select! {
            status = &mut target_gone => break Stop::TargetExited(status),
            _ = &mut deadline => break Stop::Duration,
            _ = sigint.recv() => break Stop::Signal(SignalKind::interrupt()),
            _ = sigterm.recv() => break Stop::Signal(SignalKind::terminate()),
            ctl = tui_step(&mut tui) => {
                if ctl? == Control::Quit {
                    break Stop::Quit;
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(&mut pipe, guard.get_inner_mut())?;
                guard.clear_ready();
            }
            _ = sample_tick.tick() => {
                // Drain first so the sample lands after the events that preceded it.
                drain(&mut pipe, ring.get_mut())?;
                if target::exe_identity(pid) != exe_identity && target::exists(pid) {
                    if tui.is_none() {
                        eprintln!(
                            "gctrace-bpf: pid {pid} replaced its program (exec of {}); the new program is not traced, stopping",
                            target::exe_display(pid)
                        );
                    }
                    break Stop::Exec;
                }
                if let Some(raw) = sampler.sample() {
                    pipe.raw(&raw)?;
                }
                if let Some(a) = allocs.as_mut().filter(|a| a.mode() == AllocMode::Exact) {
                    if let Some(batch) = a.batch(&probes, monotonic_ns())? {
                        pipe.event(TraceEvent::Allocs(Box::new(batch)))?;
                    }
                }
            }
            _ = burst_timer(allocs.as_ref().and_then(LiveAllocs::next_deadline)) => {
                if let Some(a) = allocs.as_mut() {
                    if let Some(batch) = a.steer(&mut probes, monotonic_ns())? {
                        pipe.event(TraceEvent::Allocs(Box::new(batch)))?;
                    }
                }
            }
            _ = tick.tick() => {
                drain(&mut pipe, ring.get_mut())?;
                pipe.flush()?;
                let lost = probes.counters()?.lost;
                if let Some(t) = tui.as_mut() {
                    t.set_lost(lost);
                } else if lost > lost_reported {
                    eprintln!("gctrace-bpf: {} events lost so far (ring buffer full)", lost);
                    lost_reported = lost;
                }
            }
        }
    };

    // Detach first so nothing arrives after the final drain, then account for it all.
    let counters = probes.counters()?;
    probes.detach();
    drain(&mut pipe, ring.get_mut())?;
    if let Some(a) = allocs.as_mut() {
        if let Some(batch) = a.batch(&probes, monotonic_ns())? {
            pipe.event(TraceEvent::Allocs(Box::new(batch)))?;
        }
        let c = probes.counters()?;
        if c.allocs_dropped > 0 {
            eprintln!(
                "gctrace-bpf: {} allocations ({} bytes) not counted: allocation maps full",
                c.allocs_dropped, c.alloc_bytes_dropped
            );
        }
    }
    let exit_status = match stop {
        Stop::TargetExited(Some(status)) => Some(launch::exit_code(status)),
        _ => None,
    };
    let lost = pipe.finish(counters.lost, exit_status)?;
    if let Some(path) = &opts.pprof {
        write_profile(
            path,
            pipe.model.allocs(),
            started_unix_ns,
            monotonic_ns() - started_ns,
        )?;
    }
    if let Some(t) = tui.as_mut() {
        // The final state stays on screen until the user has read it.
        let ended = match stop {
            Stop::TargetExited(status) => {
                Some(AppEvent::TargetExited(status.map(launch::exit_code)))
            }
            Stop::Duration | Stop::Exec => Some(AppEvent::Detached),
            Stop::Signal(_) | Stop::Quit => None,
        };
        if let Some(ended) = ended {
            t.set_lost(lost);
            t.hold(ended, async {
                tokio::select! {
                    _ = sigint.recv() => {}
                    _ = sigterm.recv() => {}
                }
            })
            .await?;
        }
    }
    drop(tui);
    if lost > 0 {
        eprintln!("gctrace-bpf: {lost} events lost in total");
    }
    Ok(stop)
}
