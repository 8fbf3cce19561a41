//! The run's own loop, beside the targets' loops ([`super::traced`]): it owns the
//! terminal or the shared output, catches Ctrl-C and SIGTERM, counts down `--duration`,
//! starts a loop for each process `--exe`/`--all` finds, and when the run ends tells
//! every target's loop, waits for their summaries and gives the terminal back.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use anyhow::{anyhow, Result};
use tokio::{
    signal::unix::{Signal, SignalKind},
    sync::watch,
    task::{JoinError, JoinSet},
};

use super::discovery::{over_ceiling, Discovery};
use super::fleet::{Fleet, Step};
use super::target_loop;
use super::traced::{Ended, Notices, Prepared, RunContext};
use super::{ended_line, launch, picked_up, shared_sink, ExitWatch, Stop, Target, TraceOptions};
use crate::output::tui::{self, AppEvent, Control};
use crate::output::{prometheus::Exporter, Format, SharedSink};

/// The TUI's next frame or key (never, without the TUI).
async fn tui_step(tui: &mut Option<tui::TerminalLive>) -> Result<Control> {
    match tui {
        Some(t) => t.step().await,
        None => std::future::pending().await,
    }
}

/// The next process `--exe`/`--all` found, or line it has to say (never, without).
async fn fleet_step(fleet: &mut Option<Fleet>) -> Step {
    match fleet {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// The TUI, which takes the terminal, if it is the output.
fn start_tui(opts: &TraceOptions, several: bool) -> Result<Option<tui::TerminalLive>> {
    Ok(match opts.format {
        Format::Tui => Some(tui::TerminalLive::start_with(tui::Config {
            slo_pause_ns: opts.slo.pause_ns,
            slo_gc_cpu_percent: opts.slo.gc_cpu_percent,
            allocs: opts.allocs,
            several,
        })?),
        _ => None,
    })
}

/// Completes once `duration` has passed from its first poll (never without one).
fn after(duration: Option<Duration>) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(async move {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    })
}

/// A target's loop as it ended: how, or why it failed.
fn outcome(joined: Result<Result<Ended>, JoinError>) -> Result<Ended> {
    joined
        .map_err(|e| anyhow!("a target's trace failed: {e}"))
        .and_then(|r| r)
}

/// What the run's loop starts from: the targets prepared before it (attached, or found
/// unfit) and the exporters started before them.
pub(super) struct RunInputs {
    pub prepared: Vec<Prepared>,
    /// Targets that could not be traced (several only: with one, that is the run's error).
    pub not_traced: Vec<String>,
    /// The launched command's exit, when the run started one.
    pub launched: Option<ExitWatch>,
    /// `--exe`/`--all`: what finds processes from now on, and `--max-processes`.
    pub exe_watch: Option<(Discovery, usize)>,
    pub exporter: Option<Exporter>,
    pub otlp: Option<crate::output::otlp::Exporter>,
}

/// The run: one loop per target on this thread, and this one for what concerns them
/// all (signals, `--duration`, the TUI, new processes of `--exe`), until the run ends;
/// then every target's loop ends too, each writing its own summary.
pub(super) async fn event_loop(inputs: RunInputs, opts: TraceOptions) -> Result<Stop> {
    let mut run = RunLoop::start(inputs, opts)?;
    let stop = run.until_stop().await?;
    run.finish(stop).await
}

/// The run's own loop: what it keeps while the targets' loops run, and one method per
/// thing that wakes it.
///
/// Fields drop in declaration order: a run ended by an error stops watching for
/// processes and ends the targets' loops before the TUI gives the terminal back.
struct RunLoop {
    /// Events lost per target, told once the TUI is gone.
    total_lost: Vec<(u32, u64)>,
    /// Completes when `--duration` has passed (never without).
    deadline: Pin<Box<dyn Future<Output = ()>>>,
    sigterm: Signal,
    sigint: Signal,
    /// `--exe`/`--all`: the processes found from now on.
    fleet: Option<Fleet>,
    /// `--max-processes`: at most this many targets at once.
    max_processes: usize,
    /// Every target's loop.
    targets: JoinSet<Result<Ended>>,
    /// What every target's loop shares with the run.
    ctx: RunContext,
    /// Tells every target's loop that the run has ended, and why.
    stop_tx: watch::Sender<Option<Stop>>,
    notices: Notices,
    /// The output every target writes to (to see whether it failed).
    output: SharedSink,
    /// The TUI, which has the terminal while it lives.
    tui: Option<tui::TerminalLive>,
    opts: Arc<TraceOptions>,
    several: bool,
}

impl RunLoop {
    /// Take the terminal (TUI) or open the output, start a loop for every target
    /// prepared, start watching for `--exe`/`--all`, then catch Ctrl-C and SIGTERM.
    fn start(inputs: RunInputs, opts: TraceOptions) -> Result<RunLoop> {
        let RunInputs {
            prepared,
            not_traced,
            launched,
            exe_watch,
            exporter,
            otlp,
        } = inputs;
        let several = matches!(opts.target, Target::Processes { .. });
        let opts = Arc::new(opts);
        // The TUI takes the terminal from here on; the pipelines' records go to it.
        let tui = start_tui(&opts, several)?;
        let sink = shared_sink(
            &opts,
            tui.as_ref(),
            several,
            exporter.as_ref(),
            otlp.as_ref(),
        )?;
        let output = sink.clone();
        let notices = Notices {
            tui: tui.as_ref().map(tui::TerminalLive::feed),
            several,
        };
        let (stop_tx, stop_rx) = watch::channel(None::<Stop>);
        let ctx = RunContext {
            opts: opts.clone(),
            sink,
            notices: notices.clone(),
            stop: stop_rx,
            exporter,
            otlp,
        };
        let mut targets: JoinSet<Result<Ended>> = JoinSet::new();
        for line in not_traced {
            notices.say(line);
        }
        // Traced with probes of their own: shared probes must leave them alone.
        let given: Vec<u32> = prepared.iter().map(|p| p.process.pid).collect();
        for p in prepared {
            if several {
                notices.say(picked_up(&p, &opts));
            }
            targets.spawn_local(target_loop::run(p, launched.clone(), ctx.clone()));
        }
        let max_processes = exe_watch.as_ref().map_or(usize::MAX, |(_, max)| *max);
        let fleet = exe_watch.map(|(w, _)| {
            let fleet = Fleet::start(w, given, opts.clone(), &mut |line| notices.say(line));
            if targets.is_empty() && fleet.found_at_start == 0 {
                notices.say(format!(
                    "{} yet; waiting for one (Ctrl-C ends)",
                    fleet.waiting_for()
                ));
            }
            fleet
        });

        let sigint = tokio::signal::unix::signal(SignalKind::interrupt())?;
        let sigterm = tokio::signal::unix::signal(SignalKind::terminate())?;
        Ok(RunLoop {
            total_lost: Vec::new(),
            deadline: after(opts.duration),
            sigterm,
            sigint,
            fleet,
            max_processes,
            targets,
            ctx,
            stop_tx,
            notices,
            output,
            tui,
            opts,
            several,
        })
    }

    /// Handle whatever comes first, until the run has to end: why it ends.
    async fn until_stop(&mut self) -> Result<Stop> {
        loop {
            let stop = tokio::select! {
                _ = &mut self.deadline => Some(Stop::Duration),
                _ = self.sigint.recv() => Some(Stop::Signal(SignalKind::interrupt())),
                _ = self.sigterm.recv() => Some(Stop::Signal(SignalKind::terminate())),
                ctl = tui_step(&mut self.tui) => (ctl? == Control::Quit).then_some(Stop::Quit),
                Some(joined) = self.targets.join_next(), if !self.targets.is_empty() => {
                    self.on_target_ended(joined)?
                }
                step = fleet_step(&mut self.fleet) => {
                    self.on_fleet_step(step);
                    None
                }
            };
            if let Some(stop) = stop {
                return Ok(stop);
            }
        }
    }

    /// A target's loop ended before the run did: its losses are kept for the end, and
    /// with several targets its end is told. Without `--exe`, the last one ends the run.
    fn on_target_ended(
        &mut self,
        joined: Result<Result<Ended>, JoinError>,
    ) -> Result<Option<Stop>> {
        let end = match outcome(joined) {
            Ok(end) => end,
            // One target: its failure is the run's, as it always was. The output failing
            // fails every target: the run ends (the others detach as their loops are
            // dropped).
            Err(e) if !self.several || self.output.failed() => return Err(e),
            Err(e) => {
                self.notices.say(format!("{e:#}"));
                return Ok(None);
            }
        };
        self.total_lost.push((end.pid, end.lost));
        if self.several {
            if let Some(line) = ended_line(&end) {
                self.notices.say(line);
            }
            if let Stop::TargetExited(status) = end.stop {
                self.notices
                    .to_tui(AppEvent::Exited(end.pid, status.map(launch::exit_code)));
            }
        }
        // Without --exe, the run is over when its last target is.
        if self.fleet.is_none() && self.targets.is_empty() {
            return Ok(Some(match (self.several, end.stop) {
                (true, Stop::TargetExited(_)) => Stop::TargetExited(None),
                (_, stop) => stop,
            }));
        }
        Ok(None)
    }

    /// `--exe`/`--all` found a process and prepared it (traced from now on, below the
    /// ceiling), or has a line to tell.
    fn on_fleet_step(&mut self, step: Step) {
        match step {
            Step::Traced(p, warnings) => {
                let pid = p.process.pid;
                if self.targets.len() >= self.max_processes {
                    self.notices.say(over_ceiling(pid, self.max_processes));
                    return;
                }
                // Picked up first, then what it lacks (the TUI shows the latest line).
                self.notices.say(picked_up(&p, &self.opts));
                for w in warnings {
                    self.notices.say(format!("pid {pid}: warning: {w}"));
                }
                self.targets
                    .spawn_local(target_loop::run(*p, None, self.ctx.clone()));
            }
            Step::Say(line) => self.notices.say(line),
        }
    }

    /// The run has ended: end every target's loop, leave the TUI's last state on screen
    /// until it has been read, then tell the events lost.
    async fn finish(mut self, stop: Stop) -> Result<Stop> {
        self.end_targets(stop).await?;
        self.hold_final_state(stop).await?;
        // The terminal is given back before anything more is written to stderr.
        drop(self.tui.take());
        self.report_lost();
        Ok(stop)
    }

    /// Processes being attached at this moment are detached as soon as they are ready
    /// (dropping them removes their probes); every target's loop then ends with its own
    /// summary.
    async fn end_targets(&mut self, stop: Stop) -> Result<()> {
        if let Some(f) = self.fleet.as_mut() {
            f.finish().await;
            if f.gone_early > 0 {
                self.notices.say(format!(
                    "{} process(es) found exited before they could be attached: not traced",
                    f.gone_early
                ));
            }
        }
        let _ = self.stop_tx.send(Some(stop));
        let mut failed = None;
        while let Some(joined) = self.targets.join_next().await {
            match outcome(joined) {
                Ok(end) => self.total_lost.push((end.pid, end.lost)),
                Err(e) if !self.several || self.output.failed() => failed = Some(e),
                Err(e) => self.notices.say(format!("{e:#}")),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The TUI's final state stays on screen until the user has read it and quits (or a
    /// signal comes), unless the user ended the run already.
    async fn hold_final_state(&mut self, stop: Stop) -> Result<()> {
        let Some(t) = self.tui.as_mut() else {
            return Ok(());
        };
        let ended = match stop {
            Stop::TargetExited(status) => Some(AppEvent::Over(tui::Ended::TargetExited(
                status.map(launch::exit_code),
            ))),
            Stop::Duration | Stop::Exec => Some(AppEvent::Over(tui::Ended::Detached)),
            Stop::Signal(_) | Stop::Quit => None,
        };
        if let Some(ended) = ended {
            let (sigint, sigterm) = (&mut self.sigint, &mut self.sigterm);
            t.hold(ended, async {
                tokio::select! {
                    _ = sigint.recv() => {}
                    _ = sigterm.recv() => {}
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Events lost in total, per target that lost any.
    fn report_lost(&self) {
        for &(pid, lost) in &self.total_lost {
            if lost == 0 {
                continue;
            }
            if self.several {
                eprintln!("gctrace-bpf: pid {pid}: {lost} events lost in total");
            } else {
                eprintln!("gctrace-bpf: {lost} events lost in total");
            }
        }
    }
}
