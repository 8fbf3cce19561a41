//! The TUI's state machine: keys, freezing, alerts and bounded history, without a
//! terminal.

mod tui_support;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tracer::events::StwReason;
use tracer::records::{GcRecord, Record, StwRecord};
use tracer::tui::app::{alerts, View, GC_HISTORY, STW_HISTORY};
use tracer::tui::{update, App, AppEvent, Config, Control};
use tui_support::fixture;

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
    assert_eq!(app.ui.view, View::Overview);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.ui.view, View::Allocations);
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
    update(&mut app, AppEvent::Record(gc(1, 10_000_000_000, 100)));
    key(&mut app, KeyCode::Char(' '));
    update(&mut app, AppEvent::Record(gc(2, 11_000_000_000, 200)));
    assert_eq!(app.shown().cycles, 1, "frozen display unchanged");
    assert_eq!(app.live.cycles, 2, "tracing went on");
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(app.shown().cycles, 2);
}

#[test]
fn growing_heap_raises_the_leak_alert() {
    let mut app = App::new(Config::default());
    for i in 0..5u32 {
        update(
            &mut app,
            AppEvent::Record(gc(
                i + 1,
                1_000_000_000 * u64::from(i + 1),
                100 + u64::from(i),
            )),
        );
    }
    assert_eq!(app.live.heap_growth_streak, 4);
    assert!(!alerts(&app).iter().any(|a| a.contains("leak")));
    update(&mut app, AppEvent::Record(gc(6, 6_000_000_000, 200)));
    assert!(
        alerts(&app).iter().any(|a| a.contains("leak")),
        "{:?}",
        alerts(&app)
    );
    update(&mut app, AppEvent::Record(gc(7, 7_000_000_000, 50)));
    assert_eq!(app.live.heap_growth_streak, 0);
}

#[test]
fn slo_breach_and_frequent_stops_are_alerts() {
    let mut app = App::new(Config::default());
    for i in 0..20u64 {
        update(
            &mut app,
            AppEvent::Record(Record::Stw(StwRecord {
                reason: StwReason::ReadMemStats,
                start_ns: 1_000_000_000 + i * 100_000_000,
                duration_ns: if i == 0 { 5_000_000 } else { 20_000 },
                cycle: None,
            })),
        );
    }
    let a = alerts(&app);
    assert!(
        a.iter()
            .any(|a| a.contains("p99 pause 5.00ms > SLO 1.00ms")),
        "{a:?}"
    );
    assert!(a.iter().any(|a| a.contains("20 non-GC stops")), "{a:?}");
}

#[test]
fn history_is_bounded() {
    let mut app = App::new(Config::default());
    for i in 0..(STW_HISTORY as u64 + 100) {
        update(
            &mut app,
            AppEvent::Record(Record::Stw(StwRecord {
                reason: StwReason::GcSweepTerm,
                start_ns: 1 + i * 1000,
                duration_ns: 10,
                cycle: None,
            })),
        );
    }
    for i in 0..(GC_HISTORY as u64 + 10) {
        update(&mut app, AppEvent::Record(gc(i as u32, 10_000_000 + i, 1)));
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
        update(&mut app, AppEvent::Record(r));
    }
    let d = &app.live;
    assert_eq!(d.cycles, 72);
    assert_eq!(d.gc_stops, 144);
    assert_eq!(d.non_gc_stops, 6);
    let total = d.total_percentiles().expect("pauses");
    let summary = d.summary.as_ref().expect("summary");
    // The since-attach histogram agrees with the model's own summary within 3 %.
    let close = |a: u64, b: u64| (a as f64 - b as f64).abs() <= 0.03 * b as f64;
    assert!(
        close(total[0], summary.pause_p50_ns.unwrap_or(0)),
        "{total:?} {summary:?}"
    );
    assert!(
        close(total[2], summary.pause_p99_ns.unwrap_or(0)),
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
