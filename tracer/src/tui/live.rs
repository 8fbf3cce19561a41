//! The TUI inside the session's event loop.
//!
//! The session keeps its single-threaded `select!` loop; when the TUI is on it adds one
//! branch awaiting [`Live::step`], which waits for the next frame tick or key. Records
//! arrive through a [`TuiSink`] as the pipelines produce them (and news of the processes
//! through [`Live::feed`]) and are applied once per frame, so a burst of records costs
//! one redraw. Frames are at most [`FRAME`] apart
//! (10 fps) and drawn only when something changed, or once a second for the clocks.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use tokio::time::{interval, Interval, MissedTickBehavior};

use super::app::{update, App, AppEvent, Config, Control};
use super::terminal::TerminalGuard;
use super::{render, Slo, TuiSink};
use crate::alloc::AllocMode;
use crate::clock::monotonic_ns;
use crate::output::Sink;

/// Time between frames: 10 fps is smooth enough for numbers that change per GC cycle
/// and keeps the tracer's own CPU low.
pub const FRAME: Duration = Duration::from_millis(100);
/// Redraw at least this often even when no record arrived (attached time, window).
const IDLE_REDRAW: Duration = Duration::from_secs(1);

pub struct Live {
    // Field order matters: the guard restores the terminal after the rest is dropped.
    app: App,
    rx: mpsc::Receiver<AppEvent>,
    tx: mpsc::Sender<AppEvent>,
    input: Option<EventStream>,
    frame: Interval,
    last_draw: Option<Instant>,
    /// Replay: (recorded time at the start, wall clock at the start, speed); the UI's
    /// "now" then runs on the recording's clock.
    replay_clock: Option<(u64, Instant, f64)>,
    guard: TerminalGuard,
}

impl Live {
    /// Takes over the terminal. Call after everything that may print has printed.
    pub fn start(slo: Slo, allocs: AllocMode) -> Result<Live> {
        Live::start_with(Config {
            slo_pause_ns: slo.pause_ns,
            slo_gc_cpu_percent: slo.gc_cpu_percent,
            allocs,
            several: false,
        })
    }

    /// [`Live::start`] with the whole configuration (several processes, …).
    pub fn start_with(config: Config) -> Result<Live> {
        let guard = TerminalGuard::new().context("cannot set up the terminal UI")?;
        let (tx, rx) = mpsc::channel();
        let mut app = App::new(config);
        if let Ok(size) = guard.terminal.size() {
            update(&mut app, AppEvent::Resize(size.width, size.height));
        }
        let mut frame = interval(FRAME);
        frame.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Ok(Live {
            app,
            rx,
            tx,
            input: Some(EventStream::new()),
            frame,
            last_draw: None,
            replay_clock: None,
            guard,
        })
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
            render(&self.app, &mut self.guard.terminal)?;
            self.app.dirty = false;
            self.last_draw = Some(Instant::now());
        }
        Ok(())
    }

    /// The run is over (`ended` is an [`AppEvent::Over`]):
    /// keep the final state on screen until the user quits or `interrupted` completes.
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

/// The next terminal event; never, once input has ended.
async fn next_input(input: &mut Option<EventStream>) -> Option<std::io::Result<Event>> {
    match input.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
