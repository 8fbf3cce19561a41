//! Stage 5, the views: everything a person or a program reads.
//!
//! Streams of the model's [`Record`]s, written as they come: newline-delimited JSON for
//! programs, the Go runtime's own `GODEBUG=gctrace=1` text for people used to reading it,
//! and Prometheus metrics ([`prometheus`]) and OTLP export ([`otlp`]) next to either,
//! combined by a [`Tee`]. The live terminal UI ([`tui`]). Views of a whole recording:
//! [`report`], the Perfetto [`export`], allocation profiles ([`pprof`]). And [`inspect`],
//! the view of what binary analysis and the probe plan make of one executable.
//!
//! Sinks write each record with a single `write_all` of whole lines, so a line is never
//! torn when several writers share a pipe, and never buffer themselves: the caller picks
//! the buffering (a `BufWriter` for a file, stdout's line buffering for a terminal) and
//! calls [`Sink::flush`] when a batch of records has been written.

pub mod export;
pub(crate) mod files;
mod gctrace;
pub mod inspect;
mod json;
pub mod otlp;
pub mod pprof;
pub(crate) mod prometheus;
pub mod report;
mod tee;
pub mod tui;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::model::records::Record;

pub use gctrace::{fmt_ns_as_ms, itoa_div, GctraceSink};
pub use json::JsonSink;
pub use tee::Tee;

/// Something records can be written to.
pub trait Sink {
    /// Write one record of process `pid` (possibly nothing, if this view has no line
    /// for it). The model does not know which process it models; whoever feeds it does.
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()>;
    /// Push everything written so far to the underlying writer's destination.
    fn flush(&mut self) -> io::Result<()>;

    /// Several records of one process, in order: what [`Sink::record`] would do with each.
    /// A sink shared between pipelines takes its lock once for the lot (a lock per record
    /// was a tenth of the tracer's CPU at 20,000 stops a second).
    fn records(&mut self, pid: u32, recs: &[Record]) -> io::Result<()> {
        recs.iter().try_for_each(|r| self.record(pid, r))
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        (**self).record(pid, rec)
    }

    fn records(&mut self, pid: u32, recs: &[Record]) -> io::Result<()> {
        (**self).records(pid, recs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}

/// Output format, as chosen on the command line (`--format gctrace|json|tui`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// The Go runtime's `GODEBUG=gctrace=1` lines; `?` where the tracer cannot know.
    #[default]
    Gctrace,
    /// Newline-delimited JSON, one object per record.
    Json,
    /// The live terminal UI (default when standard output is a terminal).
    Tui,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Gctrace => "gctrace",
            Format::Json => "json",
            Format::Tui => "tui",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?} (expected \"gctrace\", \"json\" or \"tui\")")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Same names as the command line; case-insensitive like clap's `ignore_case`.
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        match s.to_ascii_lowercase().as_str() {
            "gctrace" => Ok(Format::Gctrace),
            "json" => Ok(Format::Json),
            "tui" => Ok(Format::Tui),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// `output` owns the formats that write to a [`Write`]r (gctrace, JSON); the TUI owns its
/// own sink ([`crate::output::tui::TerminalLive::sink`]), and [`Format::Tui`] is only the command
/// line's way to choose it. Asking `output` for a TUI writer is this error, where it used
/// to give the gctrace text silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the terminal UI is not an output writer (its sink is the TUI's own)")]
pub struct NotAWriter;

/// The sink for `format`, writing to `w`; [`NotAWriter`] for the TUI.
pub fn sink_for(
    format: Format,
    w: Box<dyn Write + Send>,
) -> Result<Box<dyn Sink + Send>, NotAWriter> {
    sink_for_processes(format, w, false)
}

/// Like [`sink_for`], for a run that may trace `several` processes into one output: the
/// gctrace text then names the process of each line (JSON always carries `"pid"`).
pub fn sink_for_processes(
    format: Format,
    w: Box<dyn Write + Send>,
    several: bool,
) -> Result<Box<dyn Sink + Send>, NotAWriter> {
    Ok(match (format, several) {
        (Format::Gctrace, false) => Box::new(GctraceSink::new(w)),
        (Format::Gctrace, true) => Box::new(GctraceSink::tagged(w)),
        (Format::Json, _) => Box::new(JsonSink::new(w)),
        (Format::Tui, _) => return Err(NotAWriter),
    })
}

/// One sink shared by the pipelines of several processes (each a handle from
/// [`SharedSink::handle`]): their records go to one output, each written whole, in the
/// order they arrive.
#[derive(Clone)]
pub struct SharedSink {
    sink: Arc<Mutex<Box<dyn Sink + Send>>>,
    /// A write failed: the output is gone for every pipeline, not just the one that saw it.
    failed: Arc<AtomicBool>,
}

impl SharedSink {
    pub fn new(sink: Box<dyn Sink + Send>) -> SharedSink {
        SharedSink {
            sink: Arc::new(Mutex::new(sink)),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether writing to the output has failed (a closed pipe, a full disk).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn note<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        r
    }

    /// A sink for one more pipeline.
    pub fn handle(&self) -> Box<dyn Sink + Send> {
        Box::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Sink + Send>> {
        // A pipeline that panicked while writing leaves at worst a torn line; the others
        // keep writing rather than losing their records.
        self.sink.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sink for SharedSink {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        let r = self.lock().record(pid, rec);
        self.note(r)
    }

    fn records(&mut self, pid: u32, recs: &[Record]) -> io::Result<()> {
        let r = self.lock().records(pid, recs);
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.lock().flush();
        self.note(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::Summary;

    /// A `Write + Send` whose bytes the test can read after the sink consumed it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn format_names() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("GCTRACE".parse::<Format>(), Ok(Format::Gctrace));
        assert!("text".parse::<Format>().is_err());
        assert_eq!(Format::Json.to_string(), "json");
        use clap::ValueEnum;
        let names: Vec<String> = Format::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        assert_eq!(names, ["gctrace", "json", "tui"]);
    }

    #[test]
    fn sink_for_picks_the_format() -> io::Result<()> {
        let summary = Record::Summary(Summary::default());
        for (format, prefix) in [
            (Format::Json, "{\"type\":\"summary\""),
            (Format::Gctrace, "# "),
        ] {
            let buf = Shared::default();
            let mut sink = sink_for(format, Box::new(buf.clone())).map_err(io::Error::other)?;
            sink.record(1, &summary)?;
            sink.flush()?;
            let text = String::from_utf8(buf.0.lock().map(|v| v.clone()).unwrap_or_default())
                .unwrap_or_default();
            assert!(text.starts_with(prefix), "{format}: {text}");
            assert!(text.ends_with('\n'));
        }
        assert_eq!(
            sink_for(Format::Tui, Box::new(Shared::default())).err(),
            Some(NotAWriter)
        );
        Ok(())
    }

    #[test]
    fn shared_sink_writes_every_pipeline_to_one_output() -> io::Result<()> {
        let buf = Shared::default();
        let shared = SharedSink::new(
            sink_for_processes(Format::Json, Box::new(buf.clone()), true)
                .map_err(io::Error::other)?,
        );
        let (mut a, mut b) = (shared.handle(), shared.handle());
        a.record(1, &Record::Summary(Summary::default()))?;
        b.record(2, &Record::Summary(Summary::default()))?;
        a.flush()?;
        let text = String::from_utf8(buf.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        let pids: Vec<bool> = text
            .lines()
            .zip(["\"pid\":1}", "\"pid\":2}"])
            .map(|(l, end)| l.ends_with(end))
            .collect();
        assert_eq!(pids, [true, true], "{text}");
        Ok(())
    }

    /// A batch through the shared sink writes exactly what record-by-record would.
    #[test]
    fn batch_equals_one_by_one() -> io::Result<()> {
        let recs = [
            Record::Summary(Summary::default()),
            Record::Summary(Summary {
                cycles: 3,
                ..Summary::default()
            }),
        ];
        let text = |batch: bool| -> io::Result<String> {
            let buf = Shared::default();
            let mut sink = SharedSink::new(
                sink_for_processes(Format::Json, Box::new(buf.clone()), true)
                    .map_err(io::Error::other)?,
            )
            .handle();
            if batch {
                sink.records(7, &recs)?;
            } else {
                recs.iter().try_for_each(|r| sink.record(7, r))?;
            }
            sink.flush()?;
            let bytes = buf.0.lock().map(|v| v.clone()).unwrap_or_default();
            Ok(String::from_utf8(bytes).unwrap_or_default())
        };
        let (batch, single) = (text(true)?, text(false)?);
        assert_eq!(batch.lines().count(), 2);
        assert_eq!(batch, single);
        Ok(())
    }
}
