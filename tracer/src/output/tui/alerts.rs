//! The alerts line: the rule engine's active findings (the TUI judges nothing the
//! engine judges), and the one symptom only the screen's time window shows.

use super::app::App;

/// Non-GC stops per second (over the window, and at least 5 of them: two stops in the
/// first second are no pattern) that raise the frequent-stops alert.
pub const NON_GC_STOPS_PER_S_ALERT: f64 = 1.0;

/// Alerts for the alerts line, most urgent first: the rule engine's active findings
/// (docs/findings.md), then what only the screen's window shows.
pub fn alerts(app: &App) -> Vec<String> {
    let d = app.shown();
    let w = app.window_s();
    let window = d.window(w);
    let mut out = d.findings.alerts();
    let covered = d.covered_s(w);
    let non_gc = window.non_gc_stops();
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
