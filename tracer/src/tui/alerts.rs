//! The alerts line's rules: symptoms of the shown process against the SLOs.

use super::app::App;

/// Consecutive cycles of growing live heap that raise the leak-suspicion alert.
pub const HEAP_GROWTH_ALERT: u32 = 5;
/// Non-GC stops per second (over the window, and at least 5 of them: two stops in the
/// first second are no pattern) that raise the frequent-stops alert.
pub const NON_GC_STOPS_PER_S_ALERT: f64 = 1.0;

/// Alerts for the alerts line, most urgent first, from the data on screen.
pub fn alerts(app: &App) -> Vec<String> {
    let d = app.shown();
    let w = app.window_s();
    let window = d.window(w);
    let mut out = Vec::new();
    if let Some([_, _, p99, _]) = window.percentiles() {
        if p99 > app.config.slo_pause_ns {
            out.push(format!(
                "p99 pause {} > SLO {}",
                super::fmt::dur(p99),
                super::fmt::dur(app.config.slo_pause_ns)
            ));
        }
    }
    let cpu = d
        .window_gc_cpu_percent(&window, w)
        .or(d.gc_cpu_percent().map(f64::from));
    if let Some(cpu) = cpu {
        if cpu > app.config.slo_gc_cpu_percent {
            out.push(format!(
                "GC thrashing: GC CPU {cpu:.1}% > {}%",
                app.config.slo_gc_cpu_percent
            ));
        }
    }
    if d.heap_growth_streak >= HEAP_GROWTH_ALERT {
        out.push(format!(
            "live heap grew {} cycles in a row: leak?",
            d.heap_growth_streak
        ));
    }
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
