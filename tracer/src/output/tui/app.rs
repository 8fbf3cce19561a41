//! The terminal UI's state ([`App`]) and [`update`], the one place it changes: from
//! records, keys ([`super::keys`]) and ticks. Drawing ([`super::views`]) only reads it.
//! Per-process data and its derived figures are in [`super::data`].

use std::collections::BTreeMap;

use crossterm::event::KeyEvent;

use super::data::{Data, Ended, GC_HISTORY, STW_HISTORY};
use crate::model::records::Record;
use crate::probes::AllocMode;

/// Selectable time windows of the Overview, in seconds (`+` / `-`).
pub const WINDOWS_S: [u64; 7] = [10, 30, 60, 120, 300, 600, 1800];
const DEFAULT_WINDOW: usize = 2;

/// Processes whose trace has ended kept for the picker, beyond the ones still traced:
/// with `--exe` and short-lived processes the list would otherwise grow all day.
pub const ENDED_PROCESSES_KEPT: usize = 32;

/// What the UI is told at start: thresholds and the allocation mode of the run.
#[derive(Clone, Debug)]
pub struct Config {
    /// SLO for the p99 stop-the-world pause.
    pub slo_pause_ns: u64,
    /// SLO for the share of CPU the GC takes, in percent.
    pub slo_gc_cpu_percent: f64,
    pub allocs: AllocMode,
    /// The run may trace several processes (`--pid` repeated, `--exe`): the header says
    /// which one is shown and how many there are, and the picker is offered.
    pub several: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            slo_pause_ns: 1_000_000,
            slo_gc_cpu_percent: 5.0,
            allocs: AllocMode::Rate,
            several: false,
        }
    }
}

/// Everything that changes the UI.
// Events are handled one at a time and never stored, so the size of the record variant
// costs nothing worth a box per record.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AppEvent {
    /// A record of process `pid`. The first process seen is the one shown.
    Record(u32, Record),
    /// Process `pid` is gone (its exit code when known) while the run goes on.
    Exited(u32, Option<i32>),
    /// Events of process `pid` the kernel could not deliver so far (they are not in the
    /// figures).
    Lost(u32, u64),
    /// One line about the set of processes: picked up, exited, could not be traced.
    Notice(String),
    Key(KeyEvent),
    /// Time passes: `now_ns` is CLOCK_MONOTONIC, the clock of the records.
    Tick {
        now_ns: u64,
    },
    Resize(u16, u16),
    /// The whole run is over (its target exited, or tracing stopped): the data is final.
    Over(Ended),
}

/// What the caller should do after an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Cycles,
    Pauses,
    Allocations,
    Advice,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Cycles,
        View::Pauses,
        View::Allocations,
        View::Advice,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Cycles => "Cycles",
            View::Pauses => "Pauses",
            View::Allocations => "Allocations",
            View::Advice => "Advice",
        }
    }

    pub(super) fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Every process of the run and which one is on screen. The shown process's data is
/// [`App::live`] (so everything drawn reads one [`Data`], as with a single process);
/// the others wait in `parked`, still updated as their records arrive.
#[derive(Clone, Debug, Default)]
pub struct Processes {
    /// Pids in the order they were first seen: the picker's order.
    pub order: Vec<u32>,
    /// The pid whose data is `App::live`; None until the first record.
    pub shown: Option<u32>,
    pub parked: BTreeMap<u32, Data>,
    /// The latest notice about the set of processes.
    pub notice: Option<String>,
    /// The run as a whole is over (not just one of its processes).
    pub over: bool,
}

impl Processes {
    /// How many processes are still traced (their trace has not ended).
    pub fn traced(&self, live: &Data) -> usize {
        self.order
            .iter()
            .filter(|&&pid| self.data(live, pid).is_some_and(|d| d.ended.is_none()))
            .count()
    }

    /// The data of `pid` (`live` is the shown one's).
    pub fn data<'a>(&'a self, live: &'a Data, pid: u32) -> Option<&'a Data> {
        if self.shown == Some(pid) {
            Some(live)
        } else {
            self.parked.get(&pid)
        }
    }

    /// Position of the shown process in `order`.
    pub fn shown_index(&self) -> Option<usize> {
        let shown = self.shown?;
        self.order.iter().position(|&p| p == shown)
    }
}

/// Display state: which view, scrolling, freezing, help.
#[derive(Clone, Debug)]
pub struct Ui {
    pub view: View,
    pub window: usize,
    pub help: bool,
    /// Selected cycle, counted from the newest (0) so new cycles do not move it.
    pub cycle_sel: usize,
    /// The cycle whose details are shown (Enter), by number: it stays put while new
    /// cycles arrive.
    pub cycle_detail: Option<u32>,
    /// First pause shown, counted from the newest.
    pub pause_scroll: usize,
    pub size: (u16, u16),
    /// The process picker is open, with this row (an index into the process order)
    /// selected.
    pub picker: Option<usize>,
}

/// The whole UI state. [`update`] changes it; drawing only reads it.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Config,
    /// What tracing has seen so far (always current, also while frozen).
    pub live: Data,
    /// The copy on screen while the display is frozen.
    pub frozen: Option<Box<Data>>,
    pub ui: Ui,
    /// Something changed since the last frame (the live loop only draws then).
    pub dirty: bool,
    pub procs: Processes,
}

impl App {
    pub fn new(config: Config) -> App {
        App {
            config,
            live: Data::default(),
            frozen: None,
            ui: Ui {
                view: View::Overview,
                window: DEFAULT_WINDOW,
                help: false,
                cycle_sel: 0,
                cycle_detail: None,
                pause_scroll: 0,
                size: (80, 24),
                picker: None,
            },
            dirty: true,
            procs: Processes::default(),
        }
    }

    /// The data records of `pid` go to: the shown process's, or a parked one's (a pid
    /// seen for the first time joins the list; the first of all is shown).
    fn data_mut(&mut self, pid: u32) -> &mut Data {
        if self.procs.shown.is_none() {
            self.procs.shown = Some(pid);
        }
        if !self.procs.order.contains(&pid) {
            self.procs.order.push(pid);
            self.forget_old_processes();
        }
        if self.procs.shown == Some(pid) {
            &mut self.live
        } else {
            self.procs.parked.entry(pid).or_default()
        }
    }

    /// Drops the oldest ended processes (never the shown one) beyond
    /// [`ENDED_PROCESSES_KEPT`].
    fn forget_old_processes(&mut self) {
        let ended: Vec<u32> = self
            .procs
            .order
            .iter()
            .copied()
            .filter(|&p| {
                self.procs.shown != Some(p)
                    && self.procs.parked.get(&p).is_some_and(|d| d.ended.is_some())
            })
            .collect();
        for pid in ended
            .iter()
            .take(ended.len().saturating_sub(ENDED_PROCESSES_KEPT))
        {
            self.procs.parked.remove(pid);
            self.procs.order.retain(|p| p != pid);
        }
    }

    /// Puts process `pid` on screen (its data becomes `live`). Unfreezes, and starts its
    /// tables at the newest row: positions in another process's tables mean nothing here.
    pub fn show(&mut self, pid: u32) {
        if self.procs.shown == Some(pid) || !self.procs.order.contains(&pid) {
            return;
        }
        let data = self.procs.parked.remove(&pid).unwrap_or_default();
        let previous = std::mem::replace(&mut self.live, data);
        if let Some(old) = self.procs.shown {
            self.procs.parked.insert(old, previous);
        }
        self.procs.shown = Some(pid);
        self.frozen = None;
        self.ui.cycle_sel = 0;
        self.ui.cycle_detail = None;
        self.ui.pause_scroll = 0;
        self.dirty = true;
    }

    /// The data on screen: the frozen copy, or the live data.
    pub fn shown(&self) -> &Data {
        self.frozen.as_deref().unwrap_or(&self.live)
    }

    pub fn window_s(&self) -> u64 {
        WINDOWS_S[self.ui.window.min(WINDOWS_S.len() - 1)]
    }
}

/// Applies one event to the state.
pub fn update(app: &mut App, ev: AppEvent) -> Control {
    match ev {
        AppEvent::Record(pid, r) => {
            if app.procs.shown.is_some_and(|shown| shown != pid) {
                let picker_open = app.ui.picker.is_some();
                app.data_mut(pid).record(r);
                // The header counts processes; the picker lists their figures.
                app.dirty |= picker_open || app.config.several;
                return Control::Continue;
            }
            // A row picked below the newest stays picked as new rows arrive on top.
            if app.frozen.is_none() {
                match &r {
                    Record::Gc(_) if app.ui.cycle_sel > 0 => {
                        app.ui.cycle_sel = (app.ui.cycle_sel + 1).min(GC_HISTORY - 1);
                    }
                    Record::Stw(_) if app.ui.pause_scroll > 0 => {
                        app.ui.pause_scroll = (app.ui.pause_scroll + 1).min(STW_HISTORY - 1);
                    }
                    _ => {}
                }
            }
            app.data_mut(pid).record(r);
            app.dirty |= app.frozen.is_none();
        }
        AppEvent::Exited(pid, code) => {
            if app.procs.order.contains(&pid) {
                app.data_mut(pid).ended = Some(Ended::TargetExited(code));
                if app.procs.shown == Some(pid) {
                    app.frozen = None;
                }
                app.dirty = true;
            }
        }
        AppEvent::Lost(pid, n) => {
            if app.procs.shown.is_none_or(|shown| shown == pid) {
                if n != app.live.lost {
                    app.live.lost = app.live.lost.max(n);
                    app.dirty = true;
                }
            } else if let Some(d) = app.procs.parked.get_mut(&pid) {
                d.lost = d.lost.max(n);
            }
        }
        AppEvent::Notice(text) => {
            app.procs.notice = Some(text);
            app.dirty = true;
        }
        AppEvent::Key(k) => return app.key(k),
        AppEvent::Tick { now_ns } => {
            // Once a trace is over its time stands still: the final state stays as it was.
            for d in std::iter::once(&mut app.live).chain(app.procs.parked.values_mut()) {
                if d.ended.is_none() {
                    d.saw_time(now_ns);
                }
            }
        }
        AppEvent::Resize(w, h) => {
            app.ui.size = (w, h);
            app.dirty = true;
        }
        AppEvent::Over(how) => app.end_run(how),
    }
    Control::Continue
}

impl App {
    /// The run is over: every process whose trace was still going ends this way.
    fn end_run(&mut self, how: Ended) {
        for d in std::iter::once(&mut self.live).chain(self.procs.parked.values_mut()) {
            if d.ended.is_none() {
                d.ended = Some(how);
            }
        }
        // One process: the run's end is its end, whatever was said before.
        if !self.config.several {
            self.live.ended = Some(how);
        }
        self.procs.over = true;
        self.frozen = None;
        self.dirty = true;
    }
}
