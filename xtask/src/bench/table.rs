//! The rows the report's tables share: a series compares the program alone with
//! gctrace-bpf and one other column (bpftrace, or another mode), and the same measures
//! come back in every such table, so each kind of row is written in one place.

use std::fmt::Write as _;

use super::*;

/// One table's three columns of runs: alone, gctrace-bpf, and what it is compared with.
#[derive(Clone, Copy)]
pub(super) struct Columns<'a> {
    pub(super) alone: &'a [Sample],
    pub(super) ours: &'a [Sample],
    pub(super) other: &'a [Sample],
}

/// A markdown table's header line and its alignment line (the first column left, the
/// others right).
pub(super) fn head(md: &mut String, columns: &[&str]) {
    let _ = writeln!(md, "| {} |", columns.join(" | "));
    let _ = writeln!(
        md,
        "|---|{}",
        "---:|".repeat(columns.len().saturating_sub(1))
    );
}

/// `| name | alone | ours (ratio×) | other (ratio×) |`: medians of `f` in seconds, each
/// traced column with its ratio to alone at `decimals` places.
pub(super) fn ratio_row(
    md: &mut String,
    name: &str,
    c: Columns<'_>,
    decimals: usize,
    f: &dyn Fn(&Sample) -> u64,
) {
    let (a, o, b) = (med(c.alone, f), med(c.ours, f), med(c.other, f));
    let _ = writeln!(
        md,
        "| {name} | {} | {} ({:.*}×) | {} ({:.*}×) |",
        s3(a),
        s3(o),
        decimals,
        ratio(o, a),
        s3(b),
        decimals,
        ratio(b, a)
    );
}

/// `| name | | Δ ours | Δ other |`: the paired median difference of `f` from alone.
pub(super) fn delta_row(md: &mut String, name: &str, c: Columns<'_>, f: impl Fn(&Sample) -> u64) {
    let _ = writeln!(
        md,
        "| {name} | | {} | {} |",
        ms_delta(paired_delta(c.alone, c.ours, &f)),
        ms_delta(paired_delta(c.alone, c.other, &f))
    );
}

/// `| name | | ours | other |`: the median CPU time of the tool itself.
pub(super) fn tool_cpu_row(md: &mut String, name: &str, c: Columns<'_>) {
    let _ = writeln!(
        md,
        "| {name} | | {} | {} |",
        s3(med(c.ours, Sample::tool_cpu_ns)),
        s3(med(c.other, Sample::tool_cpu_ns))
    );
}

/// A row of the cost-per-hit table: hits per run, then µs per hit of the CPU and of
/// the system-time delta, for gctrace-bpf and for the other column.
pub(super) fn per_hit_row(
    md: &mut String,
    series: &str,
    c: Columns<'_>,
    ours_hits: f64,
    other_hits: f64,
) {
    let _ = writeln!(
        md,
        "| {series} | {ours_hits:.0} / {other_hits:.0} | {} / {} | {} / {} |",
        per_hit(paired_delta(c.alone, c.ours, |s| s.cpu_ns), ours_hits),
        per_hit(paired_delta(c.alone, c.ours, |s| s.sys_ns), ours_hits),
        per_hit(paired_delta(c.alone, c.other, |s| s.cpu_ns), other_hits),
        per_hit(paired_delta(c.alone, c.other, |s| s.sys_ns), other_hits),
    );
}

/// The default mode's columns: alone, gctrace-bpf `--allocs rate`, and bpftrace on the
/// same GC probe sites.
pub(super) fn gc_columns(series: &Series) -> Columns<'_> {
    Columns {
        alone: series.of(Variant::Alone),
        ours: series.of(Variant::Tracer(AllocMode::Rate)),
        other: series.of(Variant::Bpftrace(ProbeSet::Gc)),
    }
}
