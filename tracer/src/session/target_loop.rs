//! One target's event loop: ring buffer → decoder → model → the run's shared output,
//! plus its exit, its exec, the samples of its allocation counter and its allocation
//! probes. Every way out of [`run`] detaches the probes, drains what the kernel already
//! delivered and writes the summary.

use std::{
    future::Future,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use anyhow::{Context, Result};
use tokio::{sync::watch, time::Interval};

use super::alloc_sampling::LiveAllocs;
use super::feed::{watch_fd, Events};
use super::pipeline::Pipeline;
use super::traced::{
    Ended, Notices, Prepared, RunContext, Sampler, DRAIN_INTERVAL, SAMPLE_INTERVAL,
};
use super::{launch, target, ExitWatch, Stop, TraceOptions};
use crate::clock::monotonic_ns;
use crate::decode::events::TraceEvent;
use crate::model::records::Record;
use crate::output::files::per_process_path;
use crate::output::pprof::write_profile;
use crate::output::prometheus::Exporter;
use crate::output::tui::AppEvent;
use crate::probes::AllocMode;
use crate::recording::{Header, Recorder};

/// Sleeps until the sampled allocation probes need attention (forever if never).
async fn burst_timer(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Trace one prepared target until it exits, execs, or the run stops (`ctx.stop`).
/// `launched` is set when it is our own child: its exit, with the status, comes from the
/// session's one waiter thread.
pub(super) async fn run(
    prepared: Prepared,
    launched: Option<ExitWatch>,
    ctx: RunContext,
) -> Result<Ended> {
    let mut target = TargetLoop::start(prepared, launched, ctx)?;
    let end = target.until_stop().await?;
    target.finish(end).await
}

/// Completes once the target has exited, with its wait status when it is our child.
type Exited = Pin<Box<dyn Future<Output = Option<libc::c_int>>>>;

/// One target's event loop: what it keeps between wake-ups, and one method per thing
/// that wakes it.
///
/// Fields drop in declaration order: a loop ended by an error drops its pipeline (and
/// recording) before its probes, and those before the allocation probes' state.
struct TargetLoop {
    /// Samples the runtime's counters ([`SAMPLE_INTERVAL`]).
    sample_tick: Interval,
    /// Drains the ring buffer and flushes the output ([`DRAIN_INTERVAL`]).
    drain_tick: Interval,
    exited: Exited,
    pipe: Pipeline,
    events: Events,
    /// The program the probes are in; an execve replaces it.
    exe_identity: Option<(u64, u64)>,
    otlp: Option<crate::output::otlp::Exporter>,
    exporter: Option<Exporter>,
    /// Set once by the session when the run as a whole ends.
    stop: watch::Receiver<Option<Stop>>,
    notices: Notices,
    opts: Arc<TraceOptions>,
    allocs: Option<LiveAllocs>,
    sampler: Sampler,
    pid: u32,
    /// When tracing started, for the allocation profile's time span.
    started_ns: u64,
    started_unix_ns: i64,
    /// The kernel's count of lost events as last told on stderr.
    lost_reported: u64,
}

impl TargetLoop {
    /// Open the target's events, recording and pipeline, write what is known of the
    /// process so far, and start watching for its exit.
    fn start(
        prepared: Prepared,
        launched: Option<ExitWatch>,
        ctx: RunContext,
    ) -> Result<TargetLoop> {
        let Prepared {
            header,
            source,
            decoder,
            process,
            sampler,
            first_sample,
            allocs,
            pidfd,
        } = prepared;
        let RunContext {
            opts,
            sink,
            notices,
            stop,
            exporter,
            otlp,
        } = ctx;
        let pid = sampler.pid;
        let exe_identity = target::exe_identity(pid);
        let events = Events::open(source)?;
        let recorder = record(&opts, &header, pid, notices.several)?;
        let mut pipe =
            Pipeline::new(pid, decoder, sink.handle(), recorder).with_thresholds(opts.findings);
        pipe.findings
            .set_cpu_limit(crate::session::cgroup::cpu_limit_cores(pid));
        pipe.emit(vec![Record::Process(process)])?;
        if let Some(raw) = first_sample {
            pipe.raw(&raw)?;
        }
        pipe.flush()?;
        let exited = exit_of(pidfd, launched)?;

        let started_ns = monotonic_ns();
        let started_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let drain_tick = tokio::time::interval(DRAIN_INTERVAL);
        let sample_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + SAMPLE_INTERVAL,
            SAMPLE_INTERVAL,
        );
        Ok(TargetLoop {
            sample_tick,
            drain_tick,
            exited,
            pipe,
            events,
            exe_identity,
            otlp,
            exporter,
            stop,
            notices,
            opts,
            allocs,
            sampler,
            pid,
            started_ns,
            started_unix_ns,
            lost_reported: 0,
        })
    }

    /// Handle whatever comes first, until the trace has to end: why it ends.
    async fn until_stop(&mut self) -> Result<Stop> {
        loop {
            let stop = tokio::select! {
                status = &mut self.exited => Some(Stop::TargetExited(status)),
                changed = self.stop.changed() => Some(self.why_run_stopped(changed)),
                batch = self.events.next_batch(&mut self.pipe) => {
                    batch?;
                    None
                }
                _ = self.sample_tick.tick() => self.on_sample_tick()?,
                _ = burst_timer(self.allocs.as_ref().and_then(LiveAllocs::next_deadline)) => {
                    self.on_burst_deadline()?;
                    None
                }
                _ = self.drain_tick.tick() => {
                    self.on_drain_tick()?;
                    None
                }
            };
            if let Some(stop) = stop {
                return Ok(stop);
            }
        }
    }

    /// Why the session ended the run. It keeps the sender until every target has ended;
    /// without it there is nobody left to show anything to.
    fn why_run_stopped(&self, changed: Result<(), watch::error::RecvError>) -> Stop {
        let why = changed.ok().and_then(|()| *self.stop.borrow());
        why.unwrap_or(Stop::Quit)
    }

    /// Every [`SAMPLE_INTERVAL`]: end the trace if the process replaced its program,
    /// else sample the runtime's counters, and with `--allocs exact` count the
    /// allocations so far.
    fn on_sample_tick(&mut self) -> Result<Option<Stop>> {
        // Drain first so the sample lands after the events that preceded it.
        self.events.drain(&mut self.pipe)?;
        let pid = self.pid;
        if target::replaced_program(pid, self.exe_identity) {
            self.notices.say(format!(
                "pid {pid} replaced its program (exec of {}); the new program is not traced, {}",
                target::exe_display(pid),
                if self.notices.several {
                    "its trace ends"
                } else {
                    "stopping"
                }
            ));
            return Ok(Some(Stop::Exec));
        }
        if let Some(raw) = self.sampler.sample() {
            self.pipe.raw(&raw)?;
        }
        let exact = self
            .allocs
            .as_mut()
            .filter(|a| a.mode() == AllocMode::Exact);
        if let (Some(a), Some(probes)) = (exact, self.events.own_probes()) {
            if let Some(batch) = a.batch(probes, monotonic_ns())? {
                self.pipe.event(TraceEvent::Allocs(Box::new(batch)))?;
            }
        }
        Ok(None)
    }

    /// The sampled allocation probes' next burst starts or ends.
    fn on_burst_deadline(&mut self) -> Result<()> {
        if let (Some(a), Some(probes)) = (self.allocs.as_mut(), self.events.own_probes()) {
            if let Some(batch) = a.steer(probes, monotonic_ns())? {
                self.pipe.event(TraceEvent::Allocs(Box::new(batch)))?;
            }
        }
        Ok(())
    }

    /// Every [`DRAIN_INTERVAL`]: everything the kernel delivered, out; and the count of
    /// lost events, to the exporters and to whoever watches (the TUI, else stderr when
    /// it grew).
    fn on_drain_tick(&mut self) -> Result<()> {
        self.events.drain(&mut self.pipe)?;
        self.pipe.flush()?;
        let (pid, lost) = (self.pid, self.events.lost()?);
        if let Some(e) = &self.exporter {
            e.set_lost_events(pid, lost);
        }
        if let Some(o) = &self.otlp {
            o.set_lost_events(pid, lost);
        }
        if self.notices.tui.is_some() {
            self.notices.to_tui(AppEvent::Lost(pid, lost));
        } else if lost > self.lost_reported {
            self.notices
                .about(pid, format!("{lost} events lost so far (ring buffer full)"));
            self.lost_reported = lost;
        }
        Ok(())
    }

    /// Detach first so nothing arrives after the final drain, then account for it all:
    /// the last allocations, the summary, the allocation profile.
    async fn finish(mut self, end: Stop) -> Result<Ended> {
        let (pid, several) = (self.pid, self.notices.several);
        let kernel_lost = self.events.finish(&mut self.pipe).await?;
        if let (Some(a), Some(probes)) = (self.allocs.as_mut(), self.events.own_probes()) {
            if let Some(batch) = a.batch(probes, monotonic_ns())? {
                self.pipe.event(TraceEvent::Allocs(Box::new(batch)))?;
            }
            let c = probes.counters()?;
            if c.allocs_dropped > 0 {
                eprintln!(
                    "gctrace-bpf: {}{} allocations ({} bytes) not counted: allocation maps full",
                    if several {
                        format!("pid {pid}: ")
                    } else {
                        String::new()
                    },
                    c.allocs_dropped,
                    c.alloc_bytes_dropped
                );
            }
        }
        let exit_status = match end {
            Stop::TargetExited(Some(status)) => Some(launch::exit_code(status)),
            _ => None,
        };
        let lost = self.pipe.finish(kernel_lost, exit_status)?;
        self.notices.to_tui(AppEvent::Lost(pid, lost));
        if let Some(path) = &self.opts.pprof {
            write_profile(
                &file_for(path, pid, several),
                self.pipe.model.allocs(),
                self.started_unix_ns,
                monotonic_ns() - self.started_ns,
            )?;
        }
        Ok(Ended {
            pid,
            stop: end,
            lost,
        })
    }
}

/// The target's exit. Our own child is reaped by the session's waiter thread (its status
/// is the exit code); any other process is watched through a pidfd. A process without a
/// pidfd (shared probes: it had exited when its first event was read) is gone already.
fn exit_of(pidfd: Option<OwnedFd>, launched: Option<ExitWatch>) -> Result<Exited> {
    let pidfd = match (launched.is_some(), pidfd) {
        (false, Some(fd)) => Some(watch_fd(fd).context("cannot watch the target process")?),
        _ => None,
    };
    Ok(Box::pin(async move {
        match (pidfd, launched) {
            (Some(fd), _) => {
                let _ = fd.readable().await;
                None
            }
            (None, Some(mut exit)) => match exit.wait_for(Option::is_some).await {
                Ok(status) => (*status).flatten(),
                Err(_) => None,
            },
            (None, None) => None,
        }
    }))
}

/// The recording `--record` asks for, started with `header`.
fn record(
    opts: &TraceOptions,
    header: &Header,
    pid: u32,
    several: bool,
) -> Result<Option<Recorder>> {
    let Some(path) = &opts.record else {
        return Ok(None);
    };
    let path = file_for(path, pid, several);
    let recorder = Recorder::create(&path, header)
        .with_context(|| format!("cannot create recording {}", path.display()))?;
    Ok(Some(recorder))
}

/// A file named by the user (`--record`, `--pprof`): with several targets, one per
/// process, named with its pid.
fn file_for(path: &Path, pid: u32, several: bool) -> PathBuf {
    if several {
        per_process_path(path, pid)
    } else {
        path.to_path_buf()
    }
}
