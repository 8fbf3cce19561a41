//! The TUI's frame loop, shared by live runs and replays, and generic over the ratatui
//! backend and the input stream: the terminal and crossterm's key events in a run, a
//! `TestBackend` and a scripted stream in tests.
//!
//! The session keeps its single-threaded `select!` loop; when the TUI is on it adds one
//! branch awaiting [`Live::step`], which waits for the next frame tick or key. Records
//! arrive through a [`TuiSink`] as the pipelines produce them (and news of the processes
//! through [`Live::feed`]) and are applied once per frame, so a burst of records costs
//! one redraw. Frames are at most [`FRAME`] apart
//! (10 fps) and drawn only when something changed, or once a second for the clocks.

use std::io::{self, Stdout};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream};
use futures_util::{Stream, StreamExt};
use ratatui::{
    backend::{Backend, CrosstermBackend},
    Terminal,
};
use tokio::time::{interval, Interval, MissedTickBehavior};

use super::app::{update, App, AppEvent, Config, Control};
use super::terminal::{self, Restore};
use super::{render, Slo, TuiSink};
use crate::clock::monotonic_ns;
use crate::output::Sink;
use crate::probes::AllocMode;

/// Time between frames: 10 fps is smooth enough for numbers that change per GC cycle
/// and keeps the tracer's own CPU low.
pub const FRAME: Duration = Duration::from_millis(100);
/// Redraw at least this often even when no record arrived (attached time, window).
pub const IDLE_REDRAW: Duration = Duration::from_secs(1);

/// The UI on the real terminal, reading crossterm's key events.
pub type TerminalLive = Live<CrosstermBackend<Stdout>, EventStream>;

pub struct Live<B: Backend, I> {
    app: App,
    rx: mpsc::Receiver<AppEvent>,
    tx: mpsc::Sender<AppEvent>,
    input: Option<I>,
    frame: Interval,
    last_draw: Option<Instant>,
    /// Frames drawn so far (for tests of the pacing).
    draws: u64,
    /// Replay: (recorded time at the start, wall clock at the start, speed); the UI's
    /// "now" then runs on the recording's clock.
    replay_clock: Option<(u64, Instant, f64)>,
    terminal: Terminal<B>,
    // Field order matters: the real terminal is restored after the rest is dropped.
    _restore: Option<Restore>,
}

impl TerminalLive {
    /// Takes over the terminal. Call after everything that may print has printed.
    pub fn start(slo: Slo, allocs: AllocMode) -> Result<TerminalLive> {
        Live::start_with(Config {
            slo_pause_ns: slo.pause_ns,
            slo_gc_cpu_percent: slo.gc_cpu_percent,
            allocs,
            several: false,
        })
    }

    /// [`Live::start`] with the whole configuration (several processes, …).
    pub fn start_with(config: Config) -> Result<TerminalLive> {
        let (terminal, restore) = terminal::enter().context("cannot set up the terminal UI")?;
        let mut live = Live::with_backend(config, terminal, EventStream::new());
        live._restore = Some(restore);
        Ok(live)
    }
}

impl<B, I> Live<B, I>
where
    B: Backend,
    I: Stream<Item = io::Result<Event>> + Unpin,
{
    /// The loop over any backend and input stream. Must run inside a tokio runtime (its
    /// frame timer is tokio's).
    pub fn with_backend(config: Config, terminal: Terminal<B>, input: I) -> Live<B, I> {
        let (tx, rx) = mpsc::channel();
        let mut app = App::new(config);
        if let Ok(size) = terminal.size() {
            update(&mut app, AppEvent::Resize(size.width, size.height));
        }
        let mut frame = interval(FRAME);
        frame.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Live {
            app,
            rx,
            tx,
            input: Some(input),
            frame,
            last_draw: None,
            draws: 0,
            replay_clock: None,
            terminal,
            _restore: None,
        }
    }

    /// Replays: the UI's clock shows the recording's time from `recorded_start_ns` on,
    /// running `speed` times faster than the wall clock.
    pub fn use_replay_clock(&mut self, recorded_start_ns: u64, speed: f64) {
        self.replay_clock = Some((recorded_start_ns, Instant::now(), speed.max(1e-3)));
    }

    fn now_ns(&self) -> u64 {
        match self.replay_clock {
            Some((t0, wall0, speed)) => t0 + (wall0.elapsed().as_nanos() as f64 * speed) as u64,
            None => monotonic_ns(),
        }
    }

    /// The pipeline's sink: records written to it show up at the next frame.
    pub fn sink(&self) -> Box<dyn Sink + Send> {
        Box::new(TuiSink::new(self.tx.clone()))
    }

    /// Where the session tells the UI what happens to its processes (exits, losses,
    /// notices); applied at the next frame, like records.
    pub fn feed(&self) -> mpsc::Sender<AppEvent> {
        self.tx.clone()
    }

    /// Events of process `pid` the kernel could not deliver so far.
    pub fn set_lost(&mut self, pid: u32, lost: u64) {
        update(&mut self.app, AppEvent::Lost(pid, lost));
    }

    /// The state shown (for tests).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The backend drawn into (for tests: a `TestBackend`'s buffer).
    pub fn backend(&self) -> &B {
        self.terminal.backend()
    }

    /// Frames drawn so far.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// Waits for the next frame or key and handles it. Cancel-safe: the session's
    /// `select!` drops it whenever another branch fires.
    pub async fn step(&mut self) -> Result<Control> {
        tokio::select! {
            _ = self.frame.tick() => {
                self.frame_now()?;
                Ok(Control::Continue)
            }
            ev = next_input(&mut self.input) => match ev {
                Some(Ok(Event::Key(k))) => Ok(update(&mut self.app, AppEvent::Key(k))),
                Some(Ok(Event::Resize(w, h))) => {
                    update(&mut self.app, AppEvent::Resize(w, h));
                    Ok(Control::Continue)
                }
                Some(Ok(_)) => Ok(Control::Continue),
                // No more input (stdin closed): keep showing; signals still end the run.
                Some(Err(_)) | None => {
                    self.input = None;
                    Ok(Control::Continue)
                }
            },
        }
    }

    /// Applies the records that arrived and redraws if anything changed.
    fn frame_now(&mut self) -> Result<()> {
        while let Ok(ev) = self.rx.try_recv() {
            update(&mut self.app, ev);
        }
        let now_ns = self.now_ns();
        update(&mut self.app, AppEvent::Tick { now_ns });
        let stale = self.last_draw.is_none_or(|t| t.elapsed() >= IDLE_REDRAW);
        if self.app.dirty || stale {
            render(&self.app, &mut self.terminal)?;
            self.app.dirty = false;
            self.last_draw = Some(Instant::now());
            self.draws += 1;
        }
        Ok(())
    }

    /// The run is over (`ended` is an [`AppEvent::Over`]): keep the final state on
    /// screen until the user quits or `interrupted` completes.
    pub async fn hold(
        &mut self,
        ended: AppEvent,
        interrupted: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.frame_now()?;
        update(&mut self.app, ended);
        self.frame_now()?;
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                c = self.step() => if c? == Control::Quit { return Ok(()) },
                _ = &mut interrupted => return Ok(()),
            }
        }
    }
}

/// The next input event; never, once input has ended.
async fn next_input<I>(input: &mut Option<I>) -> Option<io::Result<Event>>
where
    I: Stream<Item = io::Result<Event>> + Unpin,
{
    match input.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
