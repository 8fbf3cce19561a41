//! The TUI's state machine: keys, freezing, alerts and bounded history, without a
//! terminal.

use crate::harness::tui_support;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tracer::binary::StwReason;
use tracer::model::records::{GcRecord, Record, StwRecord};
use tracer::output::tui::alerts::alerts;
use tracer::output::tui::app::View;
use tracer::output::tui::data::{GC_HISTORY, STW_HISTORY};
use tracer::output::tui::{update, App, AppEvent, Config, Control};
use tui_support::fixture;

/// The pid single-process events are tagged with.
const PID: u32 = 1;

fn press(app: &mut App, code: KeyCode, mods: KeyModifiers) -> Control {
    update(app, AppEvent::Key(KeyEvent::new(code, mods)))
}

fn key(app: &mut App, code: KeyCode) -> Control {
    press(app, code, KeyModifiers::NONE)
}

fn gc(cycle: u32, end_ns: u64, live: u64) -> Record {
    Record::Gc(GcRecord {
        cycle,
        start_ns: end_ns - 1_000_000,
        end_ns,
        heap_live_bytes: Some(live),
        ..Default::default()
    })
}

#[test]
fn q_and_ctrl_c_quit_other_keys_do_not() {
    let mut app = App::new(Config::default());
    assert_eq!(key(&mut app, KeyCode::Char('x')), Control::Continue);
    assert_eq!(key(&mut app, KeyCode::Char('c')), Control::Continue);
    assert_eq!(key(&mut app, KeyCode::Char('q')), Control::Quit);
    assert_eq!(
        press(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL),
        Control::Quit
    );
}

#[test]
fn views_switch_with_tab_and_digits() {
    let mut app = App::new(Config::default());
    assert_eq!(app.ui.view, View::Overview);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.ui.view, View::Cycles);
    key(&mut app, KeyCode::Char('4'));
    assert_eq!(app.ui.view, View::Allocations);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.ui.view, View::Advice);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.ui.view, View::Overview);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.ui.view, View::Advice);
    key(&mut app, KeyCode::Char('5'));
    assert_eq!(app.ui.view, View::Advice);
}

#[test]
fn window_changes_within_bounds() {
    let mut app = App::new(Config::default());
    assert_eq!(app.window_s(), 60);
    key(&mut app, KeyCode::Char('+'));
    assert_eq!(app.window_s(), 120);
    for _ in 0..20 {
        key(&mut app, KeyCode::Char('+'));
    }
    assert_eq!(app.window_s(), 1800);
    for _ in 0..20 {
        key(&mut app, KeyCode::Char('-'));
    }
    assert_eq!(app.window_s(), 10);
}

#[test]
fn freezing_keeps_the_screen_while_tracing_goes_on() {
    let mut app = App::new(Config::default());
    update(&mut app, AppEvent::Record(PID, gc(1, 10_000_000_000, 100)));
    key(&mut app, KeyCode::Char(' '));
    update(&mut app, AppEvent::Record(PID, gc(2, 11_000_000_000, 200)));
    assert_eq!(app.shown().cycles, 1, "frozen display unchanged");
    assert_eq!(app.live.cycles, 2, "tracing went on");
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(app.shown().cycles, 2);
}

/// An app given `recs` as the pipeline hands them to the TUI: through the findings rule
/// engine.
fn judged(recs: impl IntoIterator<Item = Record>) -> App {
    let mut app = App::new(Config::default());
    for r in tui_support::judged(recs.into_iter().collect()) {
        update(&mut app, AppEvent::Record(PID, r));
    }
    app
}

#[test]
fn a_growing_heap_finding_reaches_the_alerts_line_and_leaves_it() {
    // Two cycles a second, +1 MB each: sustained over 30 s.
    let app = judged((0..60u32).map(|i| {
        gc(
            i + 1,
            1_000_000_000 + 500_000_000 * u64::from(i),
            100 + u64::from(i) * 1_000_000,
        )
    }));
    let a = alerts(&app);
    assert!(
        a.iter().any(|a| a.starts_with("heap-growth: live heap")),
        "{a:?}"
    );
    assert_eq!(app.live.findings.active.len(), 1);
}

#[test]
fn slo_breach_and_frequent_stops_are_alerts() {
    let app = judged((0..50u64).map(|i| {
        Record::Stw(StwRecord {
            reason: StwReason::ReadMemStats,
            start_ns: 1_000_000_000 + i * 100_000_000,
            duration_ns: if i == 0 { 5_000_000 } else { 20_000 },
            cycle: None,
        })
    }));
    let a = alerts(&app);
    assert!(
        a.iter()
            .any(|a| a.starts_with("pause-slo: pause p99 5.00 ms")),
        "{a:?}"
    );
    assert!(a.iter().any(|a| a.contains("50 non-GC stops")), "{a:?}");
}

#[test]
fn history_is_bounded() {
    let mut app = App::new(Config::default());
    for i in 0..(STW_HISTORY as u64 + 100) {
        update(
            &mut app,
            AppEvent::Record(
                PID,
                Record::Stw(StwRecord {
                    reason: StwReason::GcSweepTerm,
                    start_ns: 1 + i * 1000,
                    duration_ns: 10,
                    cycle: None,
                }),
            ),
        );
    }
    for i in 0..(GC_HISTORY as u64 + 10) {
        update(
            &mut app,
            AppEvent::Record(PID, gc(i as u32, 10_000_000 + i, 1)),
        );
    }
    assert_eq!(app.live.stws.len(), STW_HISTORY);
    assert_eq!(app.live.gcs.len(), GC_HISTORY);
    // Figures since attach still count everything.
    assert_eq!(app.live.gc_stops, STW_HISTORY as u64 + 100);
    assert_eq!(app.live.cycles, GC_HISTORY as u64 + 10);
}

#[test]
fn figures_from_a_real_trace() {
    let mut app = App::new(Config::default());
    for r in fixture("trace-sample-1.27.ndjson") {
        update(&mut app, AppEvent::Record(PID, r));
    }
    let d = &app.live;
    assert_eq!(d.cycles, 72);
    assert_eq!(d.gc_stops, 144);
    assert_eq!(d.non_gc_stops, 6);
    let total = d.total_percentiles().expect("pauses");
    let summary = d.summary.as_ref().expect("summary");
    // The since-attach figures are the model's own summary: one histogram for both.
    assert_eq!(
        Some(total[0]),
        summary.pause_p50_ns,
        "{total:?} {summary:?}"
    );
    assert_eq!(
        Some(total[2]),
        summary.pause_p99_ns,
        "{total:?} {summary:?}"
    );
    assert_eq!(Some(total[3]), summary.pause_max_ns);
    // Scrolling stops at the oldest cycle.
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::End);
    assert_eq!(app.ui.cycle_sel, 71);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.ui.cycle_sel, 71);
    key(&mut app, KeyCode::Home);
    assert_eq!(app.ui.cycle_sel, 0);
}

fn several() -> App {
    App::new(Config {
        several: true,
        ..Config::default()
    })
}

/// The process record the tracer writes for process `pid`, read back from its JSON.
fn process(pid: u32) -> Record {
    tui_support::parse_line(&format!(
        r#"{{"type":"process","pid":{pid},"exe":"/bin/p{pid}","go_version":"go1.27.3","arch":"x86_64","gomaxprocs":2}}"#
    ))
    .expect("a process line")
}

#[test]
fn records_of_several_processes_stay_apart() {
    let mut app = several();
    update(&mut app, AppEvent::Record(1, process(1)));
    update(&mut app, AppEvent::Record(2, process(2)));
    update(&mut app, AppEvent::Record(2, gc(1, 10_000_000_000, 100)));
    update(&mut app, AppEvent::Record(2, gc(2, 11_000_000_000, 100)));
    update(&mut app, AppEvent::Record(1, gc(1, 12_000_000_000, 100)));
    // The first process seen is shown; the other's records are kept for later.
    assert_eq!(app.procs.order, [1, 2]);
    assert_eq!(app.procs.shown, Some(1));
    assert_eq!(app.live.cycles, 1);
    assert_eq!(app.procs.parked[&2].cycles, 2);
    assert_eq!(app.procs.traced(&app.live), 2);
}

#[test]
fn the_picker_and_brackets_choose_the_process_shown() {
    let mut app = several();
    for pid in [1, 2, 3] {
        update(&mut app, AppEvent::Record(pid, process(pid)));
        update(
            &mut app,
            AppEvent::Record(pid, gc(pid, 10_000_000_000, 100)),
        );
    }
    let shown = |app: &App| app.live.process.as_ref().map(|p| p.pid);
    key(&mut app, KeyCode::Char(']'));
    assert_eq!((app.procs.shown, shown(&app)), (Some(2), Some(2)));
    key(&mut app, KeyCode::Char('['));
    key(&mut app, KeyCode::Char('['));
    assert_eq!(shown(&app), Some(3), "wraps around");
    // The picker opens on the shown process; Enter shows the selected one.
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(app.ui.picker, Some(2));
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    assert_eq!(app.ui.picker, Some(0));
    // Keys of the views do nothing while it is open; q still quits.
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.ui.view, View::Overview);
    key(&mut app, KeyCode::Enter);
    assert_eq!((app.ui.picker, shown(&app)), (None, Some(1)));
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(key(&mut app, KeyCode::Char('q')), Control::Quit);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.ui.picker, None);
}

#[test]
fn switching_processes_unfreezes_and_resets_the_tables() {
    let mut app = several();
    for pid in [1, 2] {
        update(&mut app, AppEvent::Record(pid, process(pid)));
        for c in 1..5 {
            update(
                &mut app,
                AppEvent::Record(pid, gc(c, 10_000_000_000 + u64::from(c), 100)),
            );
        }
    }
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char(' '));
    assert!(app.frozen.is_some());
    key(&mut app, KeyCode::Char(']'));
    assert!(app.frozen.is_none());
    assert_eq!(app.ui.cycle_sel, 0);
    assert_eq!(app.ui.view, View::Cycles, "the view stays");
}

#[test]
fn one_process_ending_leaves_the_others_traced() {
    let mut app = several();
    for pid in [1, 2] {
        update(&mut app, AppEvent::Record(pid, process(pid)));
    }
    update(&mut app, AppEvent::Exited(2, Some(0)));
    assert_eq!(app.procs.traced(&app.live), 1);
    assert!(!app.procs.over);
    update(
        &mut app,
        AppEvent::Over(tracer::output::tui::Ended::Detached),
    );
    assert!(app.procs.over);
    assert_eq!(app.procs.traced(&app.live), 0);
    // The process that exited keeps saying so; the other was detached.
    assert!(matches!(
        app.procs.parked[&2].ended,
        Some(tracer::output::tui::Ended::TargetExited(Some(0)))
    ));
    assert!(matches!(
        app.live.ended,
        Some(tracer::output::tui::Ended::Detached)
    ));
}

#[test]
fn ended_processes_are_forgotten_beyond_a_bound() {
    let mut app = several();
    let n = tracer::output::tui::app::ENDED_PROCESSES_KEPT as u32 + 10;
    for pid in 1..=n {
        update(&mut app, AppEvent::Record(pid, process(pid)));
        if pid > 1 {
            update(&mut app, AppEvent::Exited(pid, None));
        }
    }
    update(&mut app, AppEvent::Record(n + 1, process(n + 1)));
    // The shown one and the one still traced are kept, and the newest ended ones.
    assert!(app.procs.order.contains(&1));
    assert!(app.procs.order.contains(&(n + 1)));
    assert_eq!(
        app.procs.order.len(),
        tracer::output::tui::app::ENDED_PROCESSES_KEPT + 2
    );
    assert_eq!(app.procs.parked.len(), app.procs.order.len() - 1);
}

/// Without several processes the keys of the picker do nothing.
#[test]
fn one_process_has_no_picker() {
    let mut app = App::new(Config::default());
    update(&mut app, AppEvent::Record(7, process(7)));
    key(&mut app, KeyCode::Char('p'));
    key(&mut app, KeyCode::Char(']'));
    assert_eq!(app.ui.picker, None);
    assert_eq!(app.procs.shown, Some(7));
}
