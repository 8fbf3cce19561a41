//! The terminal UI's state: everything [`super::ui::draw`] shows, kept up to date by
//! [`update`] from records, keys and ticks.
//!
//! A trace can run for days, so nothing here grows with it: recent records live in ring
//! buffers of fixed capacity, and figures "since attach" are running aggregates updated
//! once per record. A frame only looks at the bounded recent history.

use std::collections::{BTreeMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::alloc::AllocMode;
use crate::events::StwReason;
use crate::records::{
    AllocRecord, AllocSitesRecord, AllocTypesRecord, GcRecord, ProcessInfo, Record, StwRecord,
    Summary,
};

/// Cycles kept for the Cycles view and the heap chart (a busy program does a few per
/// second: minutes of history).
pub const GC_HISTORY: usize = 2048;
/// Stop-the-world pauses kept: the window percentiles are over at most this many.
pub const STW_HISTORY: usize = 8192;
/// Allocation-rate samples kept (one per second: over an hour).
pub const ALLOC_HISTORY: usize = 4096;

/// Selectable time windows of the Overview, in seconds (`+` / `-`).
pub const WINDOWS_S: [u64; 7] = [10, 30, 60, 120, 300, 600, 1800];
const DEFAULT_WINDOW: usize = 2;

/// Non-GC stops per second (over the window, and at least 5 of them: two stops in the
/// first second are no pattern) that raise the frequent-stops alert.
pub const NON_GC_STOPS_PER_S_ALERT: f64 = 1.0;

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
    /// A record of the process shown (runs and replays of one process).
    Record(Record),
    /// A record of process `pid` (the live session says whose every record is).
    ProcessRecord(u32, Record),
    /// Process `pid` is gone (its exit code when known) while the run goes on.
    ProcessExited(u32, Option<i32>),
    /// Events of process `pid` the kernel could not deliver so far.
    ProcessLost(u32, u64),
    /// One line about the set of processes: picked up, exited, could not be traced.
    Notice(String),
    Key(KeyEvent),
    /// Time passes: `now_ns` is CLOCK_MONOTONIC, the clock of the records.
    Tick {
        now_ns: u64,
    },
    Resize(u16, u16),
    /// The target is gone; its exit code when known (our own child), else None.
    TargetExited(Option<i32>),
    /// Tracing stopped for another reason (e.g. `--duration`): the data is final.
    Detached,
    /// Events the kernel could not deliver so far (they are not in the figures).
    Lost(u64),
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

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Why the run ended, shown until the user quits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    TargetExited(Option<i32>),
    Detached,
}

/// A fixed-capacity FIFO: pushing onto a full one drops the oldest entry.
#[derive(Clone, Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Ring<T> {
        Ring {
            items: VecDeque::with_capacity(cap.min(256)),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, v: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(v);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// `i`-th newest (0: the newest).
    pub fn nth_newest(&self, i: usize) -> Option<&T> {
        self.items.iter().rev().nth(i)
    }
}

/// Log-linear latency histogram of fixed size (16 buckets per power of two: ≤ 3 %
/// error), for pause percentiles since attach without keeping every pause.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const HIST_SUB_BITS: u32 = 4;
const HIST_SUB: u64 = 1 << HIST_SUB_BITS;

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            buckets: vec![0; (64 * HIST_SUB) as usize],
            count: 0,
            max: 0,
        }
    }
}

impl LatencyHistogram {
    fn index(v: u64) -> usize {
        if v < HIST_SUB {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros();
        let shift = exp - HIST_SUB_BITS;
        (u64::from(shift) * HIST_SUB + (v >> shift)) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < HIST_SUB {
            return i;
        }
        let shift = (i - HIST_SUB) / HIST_SUB;
        let top = i - shift * HIST_SUB;
        (top << shift) + ((1u64 << shift) >> 1)
    }

    pub fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// Nearest-rank percentile, within the bucket error, never above the exact max.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::value(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Upper bounds (exclusive, ns) of the Pauses view's latency histogram bars; the last
/// bar holds everything longer.
pub const LATENCY_BARS_NS: [u64; 13] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];

/// The traced data: what a frozen display keeps a copy of.
#[derive(Clone, Debug)]
pub struct Data {
    pub process: Option<ProcessInfo>,
    pub gcs: Ring<GcRecord>,
    pub stws: Ring<StwRecord>,
    pub allocs: Ring<AllocRecord>,
    pub alloc_types: Option<AllocTypesRecord>,
    pub alloc_sites: Option<AllocSitesRecord>,
    pub summary: Option<Summary>,
    /// Every pause since attach.
    pub pauses: LatencyHistogram,
    /// Counts per bar of [`LATENCY_BARS_NS`] (+1 for the overflow bar), since attach.
    pub latency_bars: [u64; LATENCY_BARS_NS.len() + 1],
    pub gc_stops: u64,
    pub non_gc_stops: u64,
    /// Stops per reason since attach (a dozen reasons at most).
    pub reasons: BTreeMap<StwReason, u64>,
    pub cycles: u64,
    /// First and latest CLOCK_MONOTONIC time seen (records or ticks).
    pub first_ns: Option<u64>,
    pub now_ns: u64,
    pub lost: u64,
    pub ended: Option<Ended>,
    /// Findings of the rule engine, as their records arrived.
    pub findings: super::findings::Board,
}

impl Default for Data {
    fn default() -> Data {
        Data {
            process: None,
            gcs: Ring::new(GC_HISTORY),
            stws: Ring::new(STW_HISTORY),
            allocs: Ring::new(ALLOC_HISTORY),
            alloc_types: None,
            alloc_sites: None,
            summary: None,
            pauses: LatencyHistogram::default(),
            latency_bars: [0; LATENCY_BARS_NS.len() + 1],
            gc_stops: 0,
            non_gc_stops: 0,
            reasons: BTreeMap::new(),
            cycles: 0,
            first_ns: None,
            now_ns: 0,
            lost: 0,
            ended: None,
            findings: Default::default(),
        }
    }
}

impl Data {
    fn saw_time(&mut self, ns: u64) {
        if ns == 0 {
            return;
        }
        if self.first_ns.is_none() {
            self.first_ns = Some(ns);
        }
        self.now_ns = self.now_ns.max(ns);
    }

    fn record(&mut self, rec: Record) {
        match rec {
            Record::Process(p) => self.process = Some(p),
            Record::Gc(g) => {
                self.saw_time(g.end_ns);
                self.cycles += 1;
                self.gcs.push(g);
            }
            Record::Stw(s) => {
                self.saw_time(s.start_ns.saturating_add(s.duration_ns));
                self.pauses.record(s.duration_ns);
                let bar = LATENCY_BARS_NS
                    .iter()
                    .position(|&b| s.duration_ns < b)
                    .unwrap_or(LATENCY_BARS_NS.len());
                self.latency_bars[bar] += 1;
                *self.reasons.entry(s.reason).or_insert(0) += 1;
                if s.reason.is_gc() {
                    self.gc_stops += 1;
                } else {
                    self.non_gc_stops += 1;
                }
                self.stws.push(s);
            }
            Record::Alloc(a) => {
                self.saw_time(a.ts_ns);
                self.allocs.push(a);
            }
            Record::AllocTypes(t) => {
                self.saw_time(t.ts_ns);
                self.alloc_types = Some(t);
            }
            Record::AllocSites(s) => {
                self.saw_time(s.ts_ns);
                self.alloc_sites = Some(s);
            }
            Record::Finding(f) => {
                self.saw_time(f.ts_ns);
                self.findings.record(f);
            }
            Record::Summary(s) => {
                self.lost = self.lost.max(s.lost_events);
                self.summary = Some(s);
            }
        }
    }

    /// Start of the visible window.
    pub fn window_start(&self, window_s: u64) -> u64 {
        self.now_ns
            .saturating_sub(window_s.saturating_mul(1_000_000_000))
    }

    /// Seconds since the first event seen.
    pub fn attached_s(&self) -> f64 {
        match self.first_ns {
            Some(f) => self.now_ns.saturating_sub(f) as f64 / 1e9,
            None => 0.0,
        }
    }

    /// The latest cycle, for the settings in force (GOGC, GOMEMLIMIT, GOMAXPROCS).
    pub fn latest_gc(&self) -> Option<&GcRecord> {
        self.gcs.last()
    }

    /// Pauses in the window, oldest first.
    pub fn window_stws(&self, window_s: u64) -> impl DoubleEndedIterator<Item = &StwRecord> {
        let start = self.window_start(window_s);
        self.stws
            .iter()
            .filter(move |s| s.start_ns.saturating_add(s.duration_ns) >= start)
    }

    /// Cycles that ended in the window, oldest first.
    pub fn window_gcs(&self, window_s: u64) -> impl DoubleEndedIterator<Item = &GcRecord> {
        let start = self.window_start(window_s);
        self.gcs.iter().filter(move |g| g.end_ns >= start)
    }

    /// The length of the window actually covered by the trace, in seconds (a window
    /// longer than the time attached is only as long as the time attached).
    pub fn covered_s(&self, window_s: u64) -> f64 {
        (window_s as f64).min(self.attached_s())
    }

    /// p50, p90, p99, max of the pauses in the window.
    pub fn window_percentiles(&self, window_s: u64) -> Option<[u64; 4]> {
        let mut v: Vec<u64> = self.window_stws(window_s).map(|s| s.duration_ns).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |p: f64| {
            let rank = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Some([at(50.0), at(90.0), at(99.0), v[v.len() - 1]])
    }

    /// p50, p90, p99, max since attach.
    pub fn total_percentiles(&self) -> Option<[u64; 4]> {
        Some([
            self.pauses.percentile(50.0)?,
            self.pauses.percentile(90.0)?,
            self.pauses.percentile(99.0)?,
            self.pauses.max()?,
        ])
    }

    /// The runtime's own GC CPU share (since the program started; gctrace's `P%`).
    pub fn gc_cpu_percent(&self) -> Option<u32> {
        self.gcs.iter().rev().find_map(|g| g.cpu_percent)
    }

    /// GC CPU share over the window: the cycles' CPU time (stops × Ps, assists,
    /// background workers; idle workers only use otherwise idle Ps, so not them) over
    /// the window's CPU capacity.
    pub fn window_gc_cpu_percent(&self, window_s: u64) -> Option<f64> {
        let procs = self
            .latest_gc()
            .and_then(|g| g.gomaxprocs)
            .or(self.process.as_ref().and_then(|p| p.gomaxprocs))?;
        let covered = self.covered_s(window_s);
        if covered <= 0.0 || procs == 0 {
            return None;
        }
        let mut ns = 0u64;
        let mut any = false;
        for g in self.window_gcs(window_s) {
            if let Some(c) = g.cpu {
                any = true;
                ns = ns
                    .saturating_add(c.sweep_term_ns + c.assist_ns + c.background_ns)
                    .saturating_add(c.mark_term_ns);
            }
        }
        any.then(|| ns as f64 / (covered * 1e9 * f64::from(procs)) * 100.0)
    }

    pub fn cycles_per_s(&self, window_s: u64) -> Option<f64> {
        let covered = self.covered_s(window_s);
        (covered > 0.0).then(|| self.window_gcs(window_s).count() as f64 / covered)
    }

    pub fn latest_alloc_rate(&self) -> Option<u64> {
        self.allocs.iter().rev().find_map(|a| a.rate_bytes_per_s)
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

    /// Shows the process `by` places after the shown one in the list (wrapping).
    fn cycle_process(&mut self, by: isize) {
        let n = self.procs.order.len();
        if n < 2 {
            return;
        }
        let at = self.procs.shown_index().unwrap_or(0) as isize;
        let next = (at + by).rem_euclid(n as isize) as usize;
        self.show(self.procs.order[next]);
    }

    /// Keys while the picker is open: move, pick, close; q still quits.
    fn picker_key(&mut self, at: usize, k: KeyEvent) -> Control {
        let n = self.procs.order.len();
        let last = n.saturating_sub(1);
        match k.code {
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                return Control::Quit
            }
            KeyCode::Char('q') | KeyCode::Char('Q') => return Control::Quit,
            KeyCode::Esc | KeyCode::Char('p') => self.ui.picker = None,
            KeyCode::Up | KeyCode::Char('k') => self.ui.picker = Some(at.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.ui.picker = Some((at + 1).min(last)),
            KeyCode::Home => self.ui.picker = Some(0),
            KeyCode::End => self.ui.picker = Some(last),
            KeyCode::Enter => {
                if let Some(&pid) = self.procs.order.get(at) {
                    self.show(pid);
                }
                self.ui.picker = None;
            }
            _ => return Control::Continue,
        }
        self.dirty = true;
        Control::Continue
    }

    /// The data on screen: the frozen copy, or the live data.
    pub fn shown(&self) -> &Data {
        self.frozen.as_deref().unwrap_or(&self.live)
    }

    pub fn window_s(&self) -> u64 {
        WINDOWS_S[self.ui.window.min(WINDOWS_S.len() - 1)]
    }

    /// Rows a page of the Cycles or Pauses table holds (for PgUp / PgDn).
    fn page(&self) -> usize {
        usize::from(self.ui.size.1.saturating_sub(10)).max(1)
    }

    fn key(&mut self, k: KeyEvent) -> Control {
        if k.kind == KeyEventKind::Release {
            return Control::Continue;
        }
        if let Some(at) = self.ui.picker {
            return self.picker_key(at, k);
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('c') if ctrl => return Control::Quit,
            KeyCode::Char('q') | KeyCode::Char('Q') => return Control::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => self.ui.help = !self.ui.help,
            KeyCode::Esc => {
                self.ui.help = false;
                self.ui.cycle_detail = None;
            }
            KeyCode::Tab => self.ui.view = View::ALL[(self.ui.view.index() + 1) % View::ALL.len()],
            KeyCode::BackTab => {
                let n = View::ALL.len();
                self.ui.view = View::ALL[(self.ui.view.index() + n - 1) % n]
            }
            KeyCode::Char(c @ '1'..='5') => {
                self.ui.view = View::ALL[usize::from(c as u8 - b'1')];
            }
            KeyCode::Char(' ') => {
                self.frozen = match self.frozen {
                    Some(_) => None,
                    None => Some(Box::new(self.live.clone())),
                };
            }
            KeyCode::Char('+') | KeyCode::Char('=') => {
                self.ui.window = (self.ui.window + 1).min(WINDOWS_S.len() - 1);
            }
            KeyCode::Char('-') | KeyCode::Char('_') => {
                self.ui.window = self.ui.window.saturating_sub(1);
            }
            KeyCode::Char('p') if self.config.several => {
                self.ui.help = false;
                self.ui.picker = Some(self.procs.shown_index().unwrap_or(0));
            }
            KeyCode::Char(']') if self.config.several => self.cycle_process(1),
            KeyCode::Char('[') if self.config.several => self.cycle_process(-1),
            KeyCode::Enter if self.ui.view == View::Cycles => {
                self.ui.cycle_detail = match self.ui.cycle_detail {
                    Some(_) => None,
                    None => self
                        .shown()
                        .gcs
                        .nth_newest(self.ui.cycle_sel)
                        .map(|g| g.cycle),
                };
            }
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1),
            KeyCode::PageUp => self.scroll(-(self.page() as isize)),
            KeyCode::PageDown => self.scroll(self.page() as isize),
            KeyCode::Home => self.scroll(isize::MIN / 2),
            KeyCode::End => self.scroll(isize::MAX / 2),
            _ => return Control::Continue,
        }
        self.dirty = true;
        Control::Continue
    }

    /// Moves the selection of the current table; positive is towards older entries.
    fn scroll(&mut self, by: isize) {
        let gcs = self.shown().gcs.len();
        let stws = self.shown().stws.len();
        let (pos, len) = match self.ui.view {
            View::Cycles => (&mut self.ui.cycle_sel, gcs),
            View::Pauses => (&mut self.ui.pause_scroll, stws),
            _ => return,
        };
        let max = len.saturating_sub(1) as isize;
        *pos = (*pos as isize).saturating_add(by).clamp(0, max.max(0)) as usize;
    }
}

/// Applies one event to the state.
pub fn update(app: &mut App, ev: AppEvent) -> Control {
    match ev {
        AppEvent::ProcessRecord(pid, r) => {
            if app.procs.shown.is_none_or(|shown| shown == pid) {
                app.data_mut(pid);
                return update(app, AppEvent::Record(r));
            }
            let picker_open = app.ui.picker.is_some();
            app.data_mut(pid).record(r);
            // The header counts processes; the picker lists their figures.
            app.dirty |= picker_open || app.config.several;
        }
        AppEvent::ProcessExited(pid, code) => {
            if app.procs.order.contains(&pid) {
                app.data_mut(pid).ended = Some(Ended::TargetExited(code));
                if app.procs.shown == Some(pid) {
                    app.frozen = None;
                }
                app.dirty = true;
            }
        }
        AppEvent::ProcessLost(pid, n) => {
            if app.procs.shown.is_none_or(|shown| shown == pid) {
                return update(app, AppEvent::Lost(n));
            }
            if let Some(d) = app.procs.parked.get_mut(&pid) {
                d.lost = d.lost.max(n);
            }
        }
        AppEvent::Notice(text) => {
            app.procs.notice = Some(text);
            app.dirty = true;
        }
        AppEvent::Record(r) => {
            if let (None, Record::Process(p)) = (app.procs.shown, &r) {
                app.data_mut(p.pid);
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
            app.live.record(r);
            app.dirty |= app.frozen.is_none();
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
        AppEvent::TargetExited(code) => app.end_run(Ended::TargetExited(code)),
        AppEvent::Detached => app.end_run(Ended::Detached),
        AppEvent::Lost(n) => {
            if n != app.live.lost {
                app.live.lost = app.live.lost.max(n);
                app.dirty = true;
            }
        }
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

/// Alerts for the alerts line, most urgent first: the rule engine's active findings
/// (docs/findings.md), then what only the screen's window shows.
pub fn alerts(app: &App) -> Vec<String> {
    let d = app.shown();
    let w = app.window_s();
    let mut out = d.findings.alerts();
    let covered = d.covered_s(w);
    let non_gc = d.window_stws(w).filter(|s| !s.reason.is_gc()).count();
    if covered > 0.0 && non_gc >= 5 && non_gc as f64 / covered >= NON_GC_STOPS_PER_S_ALERT {
        out.push(format!(
            "{non_gc} non-GC stops in {}: who stops the world?",
            super::fmt::secs(covered)
        ));
    }
    if d.lost > 0 {
        out.push(format!("{} events lost", d.lost));
    }
    out
}
