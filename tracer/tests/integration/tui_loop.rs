//! The TUI's frame loop ([`tracer::output::tui::Live`]) over a `TestBackend` and a scripted key
//! stream, on tokio's paused clock: what is drawn when, freezing, and the end-of-run
//! screen. The same loop drives live runs and replays on the terminal.

use crate::harness::tui_support;

use std::io;
use std::pin::Pin;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures_util::Stream;
use ratatui::{backend::TestBackend, Terminal};
use tokio::sync::mpsc;
use tracer::model::records::Record;
use tracer::output::tui::live::FRAME;
use tracer::output::tui::{AppEvent, Config, Ended, Live};
use tracer::output::Sink as _;
use tui_support::{fixture, text};

type Keys = Pin<Box<dyn Stream<Item = io::Result<Event>>>>;

/// A loop drawing into an 80×24 test backend, and the sender of its key events.
fn live() -> (Live<TestBackend, Keys>, mpsc::UnboundedSender<Event>) {
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    let keys: Keys = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok(e), rx))
    }));
    let terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    (Live::with_backend(Config::default(), terminal, keys), tx)
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Runs the loop for `n` frames (the paused clock jumps from one to the next).
async fn frames(live: &mut Live<TestBackend, Keys>, n: u32) {
    for _ in 0..n {
        let start = tokio::time::Instant::now();
        while tokio::time::Instant::now() < start + FRAME {
            live.step().await.expect("step");
        }
    }
}

fn sample() -> Vec<Record> {
    fixture("trace-sample-1.27.ndjson")
}

#[tokio::test(start_paused = true)]
async fn draws_once_per_frame_with_data_and_not_without() {
    let (mut live, _keys) = live();
    frames(&mut live, 1).await;
    let first = live.draws();
    assert!(first >= 1, "the first frame is drawn");
    // Nothing new: no frame is drawn (the idle redraw is a second of wall time away).
    frames(&mut live, 5).await;
    assert_eq!(live.draws(), first);
    // A burst of records between two frames costs one redraw, and all of them show.
    let records = sample();
    let n = records.len();
    let mut sink = live.sink();
    for r in &records {
        sink.record(7, r).expect("sink");
    }
    frames(&mut live, 1).await;
    assert_eq!(live.draws(), first + 1);
    assert_eq!(live.app().live.cycles, 72, "{n} records applied");
    assert!(text(live.backend()).contains("cycles 72"));
    frames(&mut live, 3).await;
    assert_eq!(live.draws(), first + 1);
}

#[tokio::test(start_paused = true)]
async fn freezing_keeps_the_screen_while_tracing_goes_on() {
    let (mut live, keys) = live();
    let records = sample();
    let (before, after) = records.split_at(records.len() / 2);
    let mut sink = live.sink();
    for r in before {
        sink.record(7, r).expect("sink");
    }
    frames(&mut live, 1).await;
    let shown = live.app().live.cycles;
    keys.send(key(' ')).expect("key");
    frames(&mut live, 1).await;
    let frozen_screen = text(live.backend());
    assert!(frozen_screen.contains("FROZEN"), "{frozen_screen}");
    for r in after {
        sink.record(7, r).expect("sink");
    }
    frames(&mut live, 2).await;
    // The data goes on; the screen does not.
    assert!(live.app().live.cycles > shown);
    assert_eq!(text(live.backend()), frozen_screen);
    keys.send(key(' ')).expect("key");
    frames(&mut live, 1).await;
    let resumed = text(live.backend());
    assert!(
        resumed.contains("LIVE") && resumed.contains("cycles 72"),
        "{resumed}"
    );
}

#[tokio::test(start_paused = true)]
async fn end_of_run_screen_stays_until_q() {
    let (mut live, keys) = live();
    let mut sink = live.sink();
    for r in sample() {
        sink.record(7, &r).expect("sink");
    }
    let quit = keys.clone();
    let held = tokio::spawn(async move {
        tokio::time::sleep(FRAME * 20).await;
        quit.send(key('q')).expect("key");
    });
    let started = tokio::time::Instant::now();
    live.hold(
        AppEvent::Over(Ended::TargetExited(Some(3))),
        std::future::pending(),
    )
    .await
    .expect("hold");
    held.await.expect("key task");
    // It waited for the q, showing the run's end.
    assert!(tokio::time::Instant::now() - started >= FRAME * 20);
    let screen = text(live.backend());
    assert!(
        screen.contains("TARGET EXITED, status 3; q quits"),
        "{screen}"
    );
    assert!(screen.contains("cycles 72"), "{screen}");
}
