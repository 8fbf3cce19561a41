//! Snapshots of every TUI view, rendered into a ratatui `TestBackend` from real recorded
//! traces (`tests/fixtures/`), from no data at all, and at awkward terminal sizes.
//!
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always` and `git diff`).

use crate::harness::tui_support;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tracer::model::records::Record;
use tracer::output::tui::{update, App, AppEvent, Config};
use tracer::probes::AllocMode;
use tui_support::{fixture, redact, screen};

/// The pid single-process events are tagged with.
const PID: u32 = 1;

fn key(app: &mut App, code: KeyCode) {
    update(app, AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn app_from(name: &str, allocs: AllocMode) -> (App, u32) {
    let mut app = App::new(Config {
        allocs,
        ..Config::default()
    });
    let mut pid = 0;
    for r in fixture(name) {
        if let Record::Process(p) = &r {
            pid = p.pid;
        }
        update(&mut app, AppEvent::Record(PID, r));
    }
    (app, pid)
}

fn sample() -> (App, u32) {
    app_from("trace-sample-1.27.ndjson", AllocMode::Rate)
}

fn allocs() -> (App, u32) {
    app_from("trace-allocs-1.27.ndjson", AllocMode::Exact)
}

fn snap(app: &App, pid: u32, w: u16, h: u16) -> String {
    redact(&screen(app, w, h), pid)
}

/// One step of a snapshot test: the keys pressed, then the screen at `w`×`h` as snapshot
/// `NAME_WxH`.
type Step<'a> = (&'a [KeyCode], &'a str, u16, u16);

/// The steps on the app of a fixture ([`sample`], [`allocs`], [`app_from`]) in turn; the
/// app after them.
fn shots((mut app, pid): (App, u32), steps: &[Step]) -> App {
    for (keys, name, w, h) in steps {
        for k in *keys {
            key(&mut app, *k);
        }
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), snap(&app, pid, *w, *h));
    }
    app
}

const fn view(n: char) -> [KeyCode; 1] {
    [KeyCode::Char(n)]
}

#[test]
fn overview() {
    shots(
        sample(),
        &[(&[], "overview", 80, 24), (&[], "overview", 120, 40)],
    );
}

#[test]
fn overview_with_breaches() {
    // 35 ms pauses against the 1 ms SLO: the alerts line says so.
    shots(allocs(), &[(&[], "overview_breach", 80, 24)]);
}

#[test]
fn overview_narrow_window() {
    let narrower = [KeyCode::Char('-'), KeyCode::Char('-')];
    shots(sample(), &[(&narrower, "overview_window10s", 80, 24)]);
}

#[test]
fn cycles() {
    use KeyCode::{Down, Enter, PageDown};
    shots(
        sample(),
        &[
            (&view('2'), "cycles", 80, 24),
            (&[Down, Down, Down, PageDown], "cycles_scrolled", 80, 24),
            (&[Enter], "cycle_detail", 80, 24),
        ],
    );
}

#[test]
fn pauses() {
    shots(sample(), &[(&view('3'), "pauses", 80, 24)]);
    shots(allocs(), &[(&view('3'), "pauses_allocs", 100, 30)]);
}

#[test]
fn allocations() {
    shots(sample(), &[(&view('4'), "allocations_rate_mode", 80, 24)]);
    shots(
        allocs(),
        &[
            (&view('4'), "allocations_exact", 80, 24),
            (&[], "allocations_exact", 120, 40),
        ],
    );
    // Sampled mode: estimates with their sampling error (a real `--allocs sample` run of
    // gcload -hotspot, its early cycles left out of the fixture).
    shots(
        app_from("trace-allocs-sampled-1.27.ndjson", AllocMode::Sample),
        &[(&view('4'), "allocations_sampled", 100, 30)],
    );
}

#[test]
fn empty() {
    let mut app = App::new(Config::default());
    for (i, c) in ['1', '2', '3', '4'].into_iter().enumerate() {
        key(&mut app, KeyCode::Char(c));
        insta::assert_snapshot!(format!("empty_view{}_80x24", i + 1), screen(&app, 80, 24));
    }
}

#[test]
fn tiny_terminal() {
    shots(sample(), &[(&[], "tiny", 40, 10)]);
}

#[test]
fn help_and_end_of_run() {
    let (app, pid) = sample();
    let mut app = shots((app, pid), &[(&view('?'), "help", 80, 24)]);
    key(&mut app, KeyCode::Char('?'));
    update(
        &mut app,
        AppEvent::Over(tracer::output::tui::Ended::TargetExited(Some(0))),
    );
    insta::assert_snapshot!("exited_80x24", snap(&app, pid, 80, 24));
}

/// Whatever the size and view, drawing never panics (below the minimum size it says
/// so on one line).
#[test]
fn every_size_draws() {
    for (mut app, _) in [sample(), allocs(), (App::new(Config::default()), 0)] {
        for view in ['1', '2', '3', '4'] {
            key(&mut app, KeyCode::Char(view));
            for detail in [false, true] {
                if detail {
                    key(&mut app, KeyCode::Enter);
                    key(&mut app, KeyCode::Char('?'));
                }
                for w in (0..=130).step_by(13) {
                    for h in (0..=45).step_by(6) {
                        let _ = screen(&app, w, h);
                    }
                }
                if detail {
                    key(&mut app, KeyCode::Enter);
                    key(&mut app, KeyCode::Char('?'));
                }
            }
        }
    }
}

/// The records of a fixture as the process `pid` (its process record says so too).
fn as_process(name: &str, pid: u32) -> Vec<Record> {
    fixture(name)
        .into_iter()
        .map(|r| match r {
            Record::Process(mut p) => {
                p.pid = pid;
                Record::Process(p)
            }
            other => other,
        })
        .collect()
}

/// A run tracing several processes, as the live session feeds it: two recorded traces
/// under pids 101 and 202, and the notice of the latest pick-up.
fn two_processes() -> App {
    let mut app = App::new(Config {
        several: true,
        ..Config::default()
    });
    for (pid, name) in [
        (101, "trace-sample-1.27.ndjson"),
        (202, "trace-allocs-1.27.ndjson"),
    ] {
        for r in as_process(name, pid) {
            update(&mut app, AppEvent::Record(pid, r));
        }
    }
    update(
        &mut app,
        AppEvent::Notice("tracing pid 202 (/tmp/gl/gcload-1.27, go1.27.3)".into()),
    );
    app
}

#[test]
fn several_processes_and_the_picker() {
    let mut app = two_processes();
    // The first process is shown; the header says which of how many.
    insta::assert_snapshot!("several_overview_80x24", screen(&app, 80, 24));
    key(&mut app, KeyCode::Char('p'));
    insta::assert_snapshot!("several_picker_80x24", screen(&app, 80, 24));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("several_second_shown_80x24", screen(&app, 80, 24));
    update(&mut app, AppEvent::Exited(202, Some(0)));
    update(
        &mut app,
        AppEvent::Notice("pid 202 exited (exit status 0)".into()),
    );
    insta::assert_snapshot!("several_one_exited_80x24", screen(&app, 80, 24));
    key(&mut app, KeyCode::Char('p'));
    insta::assert_snapshot!("several_picker_one_exited_100x30", screen(&app, 100, 30));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("several_help_80x24", screen(&app, 80, 24));
}

#[test]
fn several_processes_before_the_first_one() {
    let app = App::new(Config {
        several: true,
        ..Config::default()
    });
    insta::assert_snapshot!("several_waiting_80x24", screen(&app, 80, 24));
}

/// The picker, too, draws at any size without panicking.
#[test]
fn picker_draws_at_every_size() {
    let mut app = two_processes();
    key(&mut app, KeyCode::Char('p'));
    for w in (0..=130).step_by(13) {
        for h in (0..=45).step_by(3) {
            let _ = screen(&app, w, h);
        }
    }
}

#[test]
fn advice() {
    // A real run of `workloads/playbook -cause concat` (GOGC=800, --allocs sample, Go
    // 1.25), its finding records left out: the rule engine judges the records again.
    let (mut app, pid) = app_from("trace-playbook-concat-1.25.ndjson", AllocMode::Sample);
    key(&mut app, KeyCode::Char('5'));
    let text = snap(&app, pid, 120, 40);
    assert!(text.contains("alloc-string-concat"), "{text}");
    // The line of the workload's `s += ...` (marked `// playbook:concat`) when it ran.
    assert!(
        text.contains("at playbook/main.go:36 (main.concat)"),
        "{text}"
    );
    insta::assert_snapshot!("advice_120x40", text);
    // With no data: no findings, no goroutine count.
    let mut empty = App::new(Config::default());
    key(&mut empty, KeyCode::Char('5'));
    insta::assert_snapshot!("advice_empty_80x24", snap(&empty, 0, 80, 24));
}

#[test]
fn advice_what_if() {
    // A real run of `workloads/steady` (GOGC=100, Go 1.25, 12 s under the tracer): the
    // Advice view predicts GOGC 50, 200 and 400 from its cycles.
    let (mut app, pid) = app_from("trace-steady-1.25.ndjson", AllocMode::Rate);
    key(&mut app, KeyCode::Char('5'));
    let text = snap(&app, pid, 120, 40);
    for setting in ["GOGC 50", "GOGC 200", "GOGC 400"] {
        assert!(text.contains(setting), "{text}");
    }
    assert!(text.contains("cycles/s, GC CPU"), "{text}");
    assert!(!text.contains("? cycles/s"), "{text}");
    insta::assert_snapshot!("advice_what_if_120x40", text);
}
