//! Replaying a recording through the live pipeline (same decoder, same model), into any
//! output: the records equal those of the live run.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use crate::decode::events::TraceEvent;
use crate::decode::Decoder;
use crate::model::findings::Thresholds;
use crate::model::records::Record;
use crate::output::Sink;
use crate::recording::{Item, Reader};
use crate::session::pipeline::Pipeline;

/// A sink that keeps the records (for reports and exports).
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Record>>>);

impl Sink for Collect {
    fn record(&mut self, _pid: u32, rec: &Record) -> std::io::Result<()> {
        if let Ok(mut v) = self.0.lock() {
            v.push(rec.clone());
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a replay found besides its records.
pub struct Replayed {
    /// Why the recording ended early, if it did.
    pub damage: Option<String>,
    pub exit_status: Option<i32>,
}

/// Open `path`, warn on stderr when it is cut, and replay it into `sink`. With `pace`,
/// events are delayed to their recorded spacing divided by the factor (for live views).
pub fn replay(path: &Path, sink: Box<dyn Sink + Send>, pace: Option<f64>) -> Result<Replayed> {
    let reader = Reader::open(path)?;
    if let Some(d) = &reader.damage {
        eprintln!(
            "gctrace-bpf: warning: {} is {d}; replaying what is intact",
            path.display()
        );
    }
    replay_reader(&reader, sink, pace)
}

pub fn replay_reader(
    reader: &Reader,
    sink: Box<dyn Sink + Send>,
    pace: Option<f64>,
) -> Result<Replayed> {
    replay_judged(reader, sink, pace, Thresholds::default())
}

/// [`replay_reader`] with the findings judged against `thresholds`.
pub fn replay_judged(
    reader: &Reader,
    sink: Box<dyn Sink + Send>,
    pace: Option<f64>,
    thresholds: Thresholds,
) -> Result<Replayed> {
    let mut pipe = Pipeline::new(
        reader.header.process.pid,
        Decoder::new(reader.header.decode.clone()),
        sink,
        None,
    )
    .with_thresholds(thresholds);
    pipe.emit(vec![Record::Process(reader.header.process.clone())])?;
    let mut kernel_lost = 0;
    let mut exit_status = None;
    let mut clock: Option<(u64, std::time::Instant)> = None;
    for item in &reader.items {
        match item {
            Item::Raw(raw) => {
                if let Some(speed) = pace.filter(|s| *s > 0.0) {
                    let (t0, wall0) =
                        *clock.get_or_insert((raw.ktime_ns, std::time::Instant::now()));
                    let due = Duration::from_nanos(raw.ktime_ns.saturating_sub(t0)).div_f64(speed);
                    if let Some(wait) = due.checked_sub(wall0.elapsed()) {
                        std::thread::sleep(wait);
                        pipe.flush()?;
                    }
                }
                pipe.raw(raw)?;
            }
            Item::Allocs(batch) => pipe.event(TraceEvent::Allocs(Box::new(batch.clone())))?,
            Item::End(end) => {
                kernel_lost = end.lost_events;
                exit_status = end.exit_status;
            }
        }
    }
    pipe.finish(kernel_lost, exit_status)?;
    Ok(Replayed {
        damage: reader.damage.clone(),
        exit_status,
    })
}

/// Every record of a recording, in order.
pub fn records(reader: &Reader) -> Result<Vec<Record>> {
    records_judged(reader, Thresholds::default())
}

/// Every record of a recording, in order, the findings judged against `thresholds`.
pub fn records_judged(reader: &Reader, thresholds: Thresholds) -> Result<Vec<Record>> {
    let collect = Collect::default();
    replay_judged(reader, Box::new(collect.clone()), None, thresholds)?;
    let records = collect.0.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(records)
}

/// The model after replaying a recording (for profiles of its allocation sites).
pub fn model(reader: &Reader) -> Result<crate::model::Model> {
    let mut pipe = Pipeline::new(
        reader.header.process.pid,
        Decoder::new(reader.header.decode.clone()),
        Box::new(Collect::default()),
        None,
    );
    for item in &reader.items {
        match item {
            Item::Raw(raw) => pipe.raw(raw)?,
            Item::Allocs(batch) => pipe.event(TraceEvent::Allocs(Box::new(batch.clone())))?,
            Item::End(_) => {}
        }
    }
    Ok(pipe.model)
}

/// Replay into the terminal UI, paced at `speed` × real time (1 by default), then keep the
/// final state on screen until q.
pub fn replay_tui(path: &Path, slo: crate::output::tui::Slo, speed: f64) -> Result<()> {
    use crate::output::tui::{AppEvent, Control, Ended, TerminalLive};
    let reader = Reader::open(path)?;
    let allocs = reader.header.allocs;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut live = TerminalLive::start(slo, allocs)?;
        let first_ts = reader
            .items
            .iter()
            .find_map(|i| match i {
                Item::Raw(r) => Some(r.ktime_ns),
                _ => None,
            })
            .unwrap_or(0);
        live.use_replay_clock(first_ts, speed);
        let mut pipe = Pipeline::new(
            reader.header.process.pid,
            Decoder::new(reader.header.decode.clone()),
            live.sink(),
            None,
        );
        pipe.emit(vec![Record::Process(reader.header.process.clone())])?;
        let wall0 = tokio::time::Instant::now();
        let mut kernel_lost = 0;
        let mut exit_status = None;
        let mut items = reader.items.iter().peekable();
        loop {
            // Feed everything that is due by the recording's clock.
            let mut next_due = None;
            while let Some(item) = items.peek() {
                if let Item::Raw(r) = item {
                    let due = wall0
                        + Duration::from_nanos(r.ktime_ns.saturating_sub(first_ts)).div_f64(speed);
                    if due > tokio::time::Instant::now() {
                        next_due = Some(due);
                        break;
                    }
                }
                match items.next() {
                    Some(Item::Raw(r)) => pipe.raw(r)?,
                    Some(Item::Allocs(b)) => pipe.event(TraceEvent::Allocs(Box::new(b.clone())))?,
                    Some(Item::End(e)) => {
                        kernel_lost = e.lost_events;
                        exit_status = e.exit_status;
                    }
                    None => break,
                }
            }
            let Some(due) = next_due else { break };
            tokio::select! {
                c = live.step() => if c? == Control::Quit { return Ok(()) },
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        let lost = pipe.finish(kernel_lost, exit_status)?;
        live.set_lost(reader.header.process.pid, lost);
        let ended = match exit_status {
            Some(s) => AppEvent::Over(Ended::TargetExited(Some(s))),
            None => AppEvent::Over(Ended::Detached),
        };
        live.hold(ended, std::future::pending()).await
    })
}
