//! The what-if predictions written for people: one label per setting and one line of
//! figures, shared by the report (text, Markdown) and the TUI's Advice view. Unknown
//! figures are `?`.

use std::fmt::Write as _;

use super::{Inputs, Prediction};
use crate::units::mib_unit;

/// "GOGC 200", "GOGC off, limit 2.0 GiB", "GOGC ?".
pub fn label(p: &Prediction) -> String {
    let gogc = match p.gogc {
        Some(g) if g < 0 => "GOGC off".to_string(),
        Some(g) => format!("GOGC {g}"),
        None => "GOGC ?".to_string(),
    };
    match p.memory_limit_bytes {
        Some(l) if l >= 1 << 30 => {
            format!("{gogc}, limit {:.1} GiB", l as f64 / (1u64 << 30) as f64)
        }
        Some(l) => format!("{gogc}, limit {}", mib_unit(Some(l))),
        None => gogc,
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("?".into(), |c| format!("{c:.1}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("?".into(), |c| format!("{c:.1} %"))
}

/// "8.1 cycles/s, GC CPU 2.3 % (+ idle 9.0 %), peak heap 90.1 MiB": GC CPU as
/// gctrace's P% and the gc-thrashing finding count it, then what idle mark workers add
/// to it (`gc_cpu_total` less it; the sum is what the model predicts best).
pub fn figures(
    cycles_per_s: Option<f64>,
    gc_cpu: Option<f64>,
    gc_cpu_total: Option<f64>,
    peak: Option<u64>,
) -> String {
    let idle = match (gc_cpu, gc_cpu_total) {
        (Some(c), Some(t)) => format!(" (+ idle {})", pct(Some((t - c).max(0.0)))),
        (Some(_), None) => " (+ idle ?)".into(),
        (None, _) => String::new(),
    };
    format!(
        "{} cycles/s, GC CPU {}{idle}, peak heap {}",
        rate(cycles_per_s),
        pct(gc_cpu),
        mib_unit(peak)
    )
}

/// What the predictions start from, in one line.
pub fn basis(i: &Inputs) -> String {
    if i.cycles < super::inputs::MIN_PAIRS {
        return "not enough steady cycles recorded to predict from".into();
    }
    format!(
        "from the last {} cycles ({:.1} s): live heap {}, heap growth {}/s, now {}",
        i.cycles,
        i.span_s,
        mib_unit(i.heap_live_bytes),
        mib_unit(i.heap_growth_bytes_per_s.map(|g| g as u64)),
        figures(
            i.now_cycles_per_s,
            i.now_gc_cpu_percent,
            i.now_gc_cpu_total_percent,
            i.now_peak_heap_bytes
        )
    )
}

/// The report's What-if section body.
pub fn render(s: &mut String, inputs: &Inputs, preds: &[Prediction], markdown: bool) {
    let item = if markdown { "- " } else { "  " };
    let _ = writeln!(s, "{item}{}", basis(inputs));
    if markdown {
        let _ = writeln!(
            s,
            "\n| setting | cycles/s | GC CPU | + idle workers | peak heap | goal set by |\n\
             |---|---|---|---|---|---|"
        );
    }
    for p in preds {
        let by = p.bound_by.unwrap_or("?");
        if markdown {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {by} |",
                label(p),
                rate(p.cycles_per_s),
                pct(p.gc_cpu_percent),
                pct(p
                    .gc_cpu_total_percent
                    .zip(p.gc_cpu_percent)
                    .map(|(t, c)| (t - c).max(0.0))),
                mib_unit(p.peak_heap_bytes)
            );
        } else {
            let _ = writeln!(
                s,
                "  {:<26} {} (goal set by {by})",
                label(p),
                figures(
                    p.cycles_per_s,
                    p.gc_cpu_percent,
                    p.gc_cpu_total_percent,
                    p.peak_heap_bytes
                )
            );
        }
    }
    let mut notes: Vec<String> = Vec::new();
    for p in preds {
        for w in &p.warnings {
            let n = format!("{}: {w}", label(p));
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    }
    if !notes.is_empty() && markdown {
        let _ = writeln!(s);
    }
    for n in notes {
        let _ = writeln!(s, "{item}note: {n}");
    }
}
