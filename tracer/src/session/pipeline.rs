//! The consumer side shared by live runs and replays: raw events → decoder → model →
//! output, with an optional recorder taking a copy of what goes in. Because replay feeds
//! the same raw events through this same code, it produces the same records.

use anyhow::{Context, Result};
use tracer_common::RawEvent;

use crate::decode::events::TraceEvent;
use crate::decode::Decoder;
use crate::model::findings::{Engine, Thresholds};
use crate::model::records::Record;
use crate::model::Model;
use crate::output::Sink;
use crate::recording::{End, Recorder};

/// Records held back during a batch before they are written anyway (a bound on memory:
/// a 4 MiB ring holds some 11,000 events).
const MAX_PENDING: usize = 256;

pub struct Pipeline {
    /// The process whose events these are (records are written with it).
    pid: u32,
    pub decoder: Decoder,
    pub model: Model,
    sink: Box<dyn Sink + Send>,
    recorder: Option<Recorder>,
    /// Records the model completed and the output has not had yet (see
    /// [`Pipeline::raw_deferred`]); one vector reused for the whole run.
    pending: Vec<Record>,
    /// The findings rule engine, judging every record on its way to the output.
    pub findings: Engine,
    /// Findings of the record being judged (reused).
    found: Vec<Record>,
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
            findings: Engine::new(Thresholds::default()),
            found: Vec::new(),
        }
    }

    /// Judge with these thresholds instead of the playbook's defaults.
    pub fn with_thresholds(mut self, t: Thresholds) -> Self {
        self.findings = Engine::new(t);
        self
    }

    /// Run the rule engine over `recs`, putting each finding right after the record
    /// that made it start or end (so it precedes the summary, and time order holds).
    fn judge(findings: &mut Engine, found: &mut Vec<Record>, recs: &mut Vec<Record>) {
        let mut i = 0;
        while i < recs.len() {
            found.clear();
            findings.observe(&recs[i], found);
            let n = found.len();
            if n > 0 {
                recs.splice(i + 1..i + 1, found.drain(..));
            }
            i += 1 + n;
        }
    }

    /// Write records made outside the model (the process record), after any pending.
    pub fn emit(&mut self, mut records: Vec<Record>) -> Result<()> {
        self.write_pending()?;
        Self::judge(&mut self.findings, &mut self.found, &mut records);
        self.sink
            .records(self.pid, &records)
            .context("cannot write output")
    }

    /// One raw event, live or recorded; its records are written before it returns.
    pub fn raw(&mut self, raw: &RawEvent) -> Result<()> {
        self.raw_deferred(raw)?;
        self.write_pending()
    }

    /// [`Pipeline::raw`] for one of a batch (a ring-buffer drain): its records may wait
    /// for [`Pipeline::write_pending`], which the caller must call after the batch, so
    /// the output takes them a batch at a time.
    pub fn raw_deferred(&mut self, raw: &RawEvent) -> Result<()> {
        if let Some(rec) = self.recorder.as_mut() {
            rec.raw(raw).context("cannot write the recording")?;
        }
        let missing = self.decoder.missing_before(raw);
        if missing > 0 {
            self.model
                .apply_into(&TraceEvent::Gap { missing }, &mut self.pending);
        }
        if let Some(ev) = self.decoder.decode(raw) {
            self.model.apply_into(&ev, &mut self.pending);
        }
        if self.pending.len() >= MAX_PENDING {
            self.write_pending()?;
        }
        Ok(())
    }

    /// An event that did not come from the ring buffer (allocation batches).
    pub fn event(&mut self, ev: TraceEvent) -> Result<()> {
        if let (Some(rec), TraceEvent::Allocs(batch)) = (self.recorder.as_mut(), &ev) {
            rec.alloc_batch(batch)
                .context("cannot write the recording")?;
        }
        self.model.apply_into(&ev, &mut self.pending);
        self.write_pending()
    }

    /// Hand the records completed so far to the output.
    pub fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        Self::judge(&mut self.findings, &mut self.found, &mut self.pending);
        let written = self.sink.records(self.pid, &self.pending);
        self.pending.clear();
        written.context("cannot write output")
    }

    /// Periodic: push output and recording blocks out.
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending()?;
        self.sink.flush().context("cannot write output")?;
        if let Some(rec) = self.recorder.as_mut() {
            rec.tick().context("cannot write the recording")?;
        }
        Ok(())
    }

    /// End of the run: account for lost events (the kernel's and the decoder's), write
    /// the final records and the summary, close the recording. Returns the total lost.
    pub fn finish(&mut self, kernel_lost: u64, exit_status: Option<i32>) -> Result<u64> {
        self.write_pending()?;
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracer_common::ProbeKind;

    use super::*;
    use crate::decode::DecodeSpec;
    use crate::output::Sink;
    use crate::probes::StwScheme;

    /// Counts what reached the output, and in how many calls.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<(Vec<Record>, usize)>>);

    impl Sink for Seen {
        fn record(&mut self, _pid: u32, rec: &Record) -> io::Result<()> {
            let mut seen = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
            seen.0.push(rec.clone());
            seen.1 += 1;
            Ok(())
        }
        fn records(&mut self, _pid: u32, recs: &[Record]) -> io::Result<()> {
            let mut seen = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
            seen.0.extend_from_slice(recs);
            seen.1 += 1;
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seen {
        fn get(&self) -> (Vec<Record>, usize) {
            self.0.lock().map(|s| s.clone()).unwrap_or_default()
        }
    }

    /// A read-mem-stats stop as one paired event, thread 9, sequence `seq`.
    fn stop(seq: u32) -> RawEvent {
        let t = 1_000_000_000 + u64::from(seq) * 1_000;
        RawEvent {
            kind: ProbeKind::StopPaired as u32,
            ktime_ns: t + 500,
            pid_tgid: 9,
            regs: [t + 100, 7, t, t, 0, 0],
            seq,
            ..RawEvent::default()
        }
    }

    fn pipeline(seen: &Seen) -> Pipeline {
        let spec = DecodeSpec {
            scheme: StwScheme::WorldStop,
            reads: Vec::new(),
            systemstack: None,
        };
        Pipeline::new(1, Decoder::new(spec), Box::new(seen.clone()), None)
    }

    #[test]
    fn a_drain_reaches_the_output_in_batches_in_order() {
        let seen = Seen::default();
        let mut pipe = pipeline(&seen);
        for seq in 1..=10 {
            assert!(pipe.raw_deferred(&stop(seq)).is_ok());
        }
        assert_eq!(seen.get().0.len(), 0, "held until the batch ends");
        assert!(pipe.write_pending().is_ok());
        let (recs, calls) = seen.get();
        assert_eq!((recs.len(), calls), (10, 1));
        let starts: Vec<u64> = recs
            .iter()
            .filter_map(|r| match r {
                Record::Stw(s) => Some(s.start_ns),
                _ => None,
            })
            .collect();
        let expected: Vec<u64> = (1..=10).map(|s| 1_000_000_000 + s * 1_000).collect();
        assert_eq!(starts, expected);

        // A long batch is written as it goes, never held without bound.
        for seq in 11..=11 + MAX_PENDING as u32 {
            assert!(pipe.raw_deferred(&stop(seq)).is_ok());
        }
        assert_eq!(seen.get().0.len(), 10 + MAX_PENDING);
        // Single events and the end write at once.
        assert!(pipe.raw(&stop(12 + MAX_PENDING as u32)).is_ok());
        assert_eq!(seen.get().0.len(), 12 + MAX_PENDING);
        assert!(pipe.finish(0, None).is_ok());
        assert!(matches!(seen.get().0.last(), Some(Record::Summary(_))));
    }
}
