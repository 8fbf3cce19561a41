//! The live terminal UI (`--format tui`, the default on a terminal): what the GC is
//! doing right now, for an engineer in an incident.
//!
//! - [`data`]: one process's data and the figures derived from it; [`history`], the
//!   per-second aggregates its time windows read;
//! - [`app`]: the UI state ([`app::App`]) and [`app::update`], the one place it changes
//!   (keys in [`keys`]); pure and testable;
//! - [`alerts`]: the alerts line's rules;
//! - [`views`]: [`views::draw`], which renders the state into any ratatui backend, one
//!   file per view;
//! - [`terminal`]: raw mode and the alternate screen, always restored;
//! - [`live`]: the frame loop, generic over the ratatui backend and the input stream
//!   (the terminal in a run or a replay, a test backend in tests), and a [`TuiSink`] the
//!   pipeline writes records to.
//!
//! The model knows nothing of the UI: records reach it through the same [`Sink`]
//! interface as the JSON and gctrace outputs.

pub mod alerts;
pub mod app;
pub mod data;
pub(crate) mod findings;
/// The TUI's number formats live with the report's in [`crate::units`].
pub(crate) use crate::units as fmt;
pub(crate) mod history;
mod keys;
pub mod live;
pub(crate) mod terminal;
pub(crate) mod views;

use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::mpsc;

use anyhow::{bail, Result};
use ratatui::{backend::Backend, Terminal};

use crate::model::records::Record;
use crate::output::Sink;

pub use app::{update, App, AppEvent, Config, Control};
pub use data::Ended;
pub use live::{Live, TerminalLive};

/// Service-level objectives the UI checks pauses and GC CPU against (`--slo-pause`,
/// `--slo-gc-cpu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slo {
    pub pause_ns: u64,
    pub gc_cpu_percent: f64,
}

impl Default for Slo {
    fn default() -> Slo {
        Slo {
            pause_ns: 1_000_000,
            gc_cpu_percent: 5.0,
        }
    }
}

/// Refuses the TUI where it cannot work: it draws on the terminal, so not into a file
/// and not when standard output is redirected.
pub fn check_usable(output: Option<&Path>) -> Result<()> {
    if output.is_some() {
        bail!("--format tui draws on the terminal; with --output use --format gctrace or json");
    }
    if !io::stdout().is_terminal() {
        bail!("--format tui needs a terminal on standard output; use --format gctrace or json");
    }
    Ok(())
}

/// Draws one frame of `app` into any backend (the live terminal, or a test buffer).
pub fn render<B: Backend>(app: &App, terminal: &mut Terminal<B>) -> Result<()> {
    terminal
        .draw(|f| views::draw(app, f))
        .map_err(|e| anyhow::anyhow!("cannot draw the terminal UI: {e}"))?;
    Ok(())
}

/// The pipeline's end when the TUI is on: hands records over to the UI, which takes
/// them in at its next frame. Never blocks the pipeline.
pub struct TuiSink {
    tx: mpsc::Sender<AppEvent>,
}

impl TuiSink {
    pub fn new(tx: mpsc::Sender<AppEvent>) -> TuiSink {
        TuiSink { tx }
    }
}

impl Sink for TuiSink {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        // The UI going away first (it only does while exiting) loses nothing of value.
        let _ = self.tx.send(AppEvent::Record(pid, rec.clone()));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
