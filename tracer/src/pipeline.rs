//! The consumer side shared by live runs and replays: raw events → decoder → model →
//! output, with an optional recorder taking a copy of what goes in. Because replay feeds
//! the same raw events through this same code, it produces the same records.

use anyhow::{Context, Result};
use tracer_common::RawEvent;

use crate::decode::Decoder;
use crate::events::TraceEvent;
use crate::model::Model;
use crate::output::Sink;
use crate::recording::{End, Recorder};
use crate::records::Record;

pub struct Pipeline {
    /// The process whose events these are (records are written with it).
    pid: u32,
    pub decoder: Decoder,
    pub model: Model,
    sink: Box<dyn Sink + Send>,
    recorder: Option<Recorder>,
    /// Records the model completed for the current event, reused across events.
    pending: Vec<Record>,
}

impl Pipeline {
    pub fn new(
        pid: u32,
        decoder: Decoder,
        sink: Box<dyn Sink + Send>,
        recorder: Option<Recorder>,
    ) -> Self {
        Pipeline {
            pid,
            decoder,
            model: Model::new(),
            sink,
            recorder,
            pending: Vec::new(),
        }
    }

    pub fn emit(&mut self, records: Vec<Record>) -> Result<()> {
        for r in &records {
            self.sink
                .record(self.pid, r)
                .context("cannot write output")?;
        }
        Ok(())
    }

    /// One raw event, live or recorded.
    pub fn raw(&mut self, raw: &RawEvent) -> Result<()> {
        if let Some(rec) = self.recorder.as_mut() {
            rec.raw(raw).context("cannot write the recording")?;
        }
        let missing = self.decoder.missing_before(raw);
        if missing > 0 {
            self.apply(&TraceEvent::Gap { missing })?;
        }
        if let Some(ev) = self.decoder.decode(raw) {
            self.apply(&ev)?;
        }
        Ok(())
    }

    /// An event that did not come from the ring buffer (allocation batches).
    pub fn event(&mut self, ev: TraceEvent) -> Result<()> {
        if let (Some(rec), TraceEvent::Allocs(batch)) = (self.recorder.as_mut(), &ev) {
            rec.alloc_batch(batch)
                .context("cannot write the recording")?;
        }
        self.apply(&ev)
    }

    fn apply(&mut self, ev: &TraceEvent) -> Result<()> {
        self.model.apply_into(ev, &mut self.pending);
        let written = self
            .pending
            .iter()
            .try_for_each(|r| self.sink.record(self.pid, r));
        self.pending.clear();
        written.context("cannot write output")
    }

    /// Periodic: push output and recording blocks out.
    pub fn flush(&mut self) -> Result<()> {
        self.sink.flush().context("cannot write output")?;
        if let Some(rec) = self.recorder.as_mut() {
            rec.tick().context("cannot write the recording")?;
        }
        Ok(())
    }

    /// End of the run: account for lost events (the kernel's and the decoder's), write
    /// the final records and the summary, close the recording. Returns the total lost.
    pub fn finish(&mut self, kernel_lost: u64, exit_status: Option<i32>) -> Result<u64> {
        let lost = kernel_lost + self.decoder.undecodable();
        self.model.set_lost_events(lost);
        let records = self.model.finish();
        self.emit(records)?;
        self.sink.flush().context("cannot write output")?;
        if let Some(rec) = self.recorder.take() {
            rec.finish(End {
                lost_events: kernel_lost,
                exit_status,
            })
            .context("cannot write the recording")?;
        }
        Ok(lost)
    }
}
