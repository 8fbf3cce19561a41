//! The Go runtime's `GODEBUG=gctrace=1` line, rebuilt from a [`GcRecord`].
//!
//! People (and their scripts) know this layout, so it is reproduced exactly, including
//! the runtime's number formatting (`itoaDiv`, `fmtNSAsMS` in runtime/mgc.go, ported
//! below digit for digit). What the tracer could not read from this binary (no DWARF, no
//! offsets for its Go version) is printed as `?` in place of the number.
//!
//! ```text
//! gc 7 @1.234s 2%: 0.026+0.32+0.003 ms clock, 0.10+0.12/0.27/0.59+0.014 ms cpu, 4->4->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 8 P (forced)
//! gc 7 @?s ?%: 0.026+0.32+0.003 ms clock, ?+?/?/?+? ms cpu, ?->?->? MB, ? MB goal, ? MB stacks, ? MB globals, ? P
//! ```

use std::io::{self, Write};

use super::Sink;
use crate::decode::events::Trigger;
use crate::model::records::{GcRecord, Record, Summary};

/// Writes one gctrace line per completed cycle, and a `# ` comment line for the summary.
pub struct GctraceSink<W: Write> {
    w: W,
    /// Start each line with `[pid N] ` (runs that may trace several processes).
    tag_pids: bool,
}

impl<W: Write> GctraceSink<W> {
    /// Lines exactly as the runtime prints them: for a run that traces one process.
    pub fn new(w: W) -> GctraceSink<W> {
        GctraceSink { w, tag_pids: false }
    }

    /// Lines of several processes interleave in one output, so each says whose it is:
    /// `[pid N] gc 7 @...` and `# [pid N] gctrace-bpf: ...` (the summary stays a comment).
    /// Tools that look for `gc N @` anywhere in a line still find the records.
    pub fn tagged(w: W) -> GctraceSink<W> {
        GctraceSink { w, tag_pids: true }
    }

    /// The writer back (tests, or to flush and close a file).
    pub fn into_inner(self) -> W {
        self.w
    }
}

impl<W: Write> Sink for GctraceSink<W> {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        let line = match (rec, self.tag_pids) {
            (Record::Gc(g), false) => gc_line(g),
            (Record::Gc(g), true) => format!("[pid {pid}] {}", gc_line(g)),
            (Record::Summary(s), false) => summary_line(s),
            (Record::Summary(s), true) => {
                let line = summary_line(s);
                format!("# [pid {pid}] {}", line.strip_prefix("# ").unwrap_or(&line))
            }
            // Not the runtime's: a comment line, as the summary is.
            (Record::Finding(f), tagged) => {
                let tag = if tagged {
                    format!("[pid {pid}] ")
                } else {
                    String::new()
                };
                format!(
                    "# {tag}finding {} {} ({}): {}\n",
                    f.state.as_str(),
                    f.id.as_str(),
                    f.severity.as_str(),
                    f.summary
                )
            }
            // gctrace has no line for these; JSON carries them.
            (
                Record::Process(_)
                | Record::Stw(_)
                | Record::Alloc(_)
                | Record::Settings(_)
                | Record::AllocTypes(_)
                | Record::AllocSites(_),
                _,
            ) => return Ok(()),
        };
        self.w.write_all(line.as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// The runtime's `itoaDiv`: `val / 10^dec` in decimal with exactly `dec` decimals.
/// Ported as is, quirks included (with `dec == 0` and `val < 10` the runtime prints a
/// leading zero, e.g. "05"; `fmtNSAsMS` never asks for that).
pub fn itoa_div(val: u64, dec: usize) -> String {
    // u64::MAX has 20 digits; plus '.' and a leading '0' this fits like the runtime's [24]byte.
    let mut buf = [0u8; 24];
    let dec = dec.min(20);
    let mut val = val;
    let mut i = buf.len() - 1;
    let idec = i - dec;
    while val >= 10 || i >= idec {
        buf[i] = b'0' + (val % 10) as u8;
        i -= 1;
        if i == idec {
            buf[i] = b'.';
            i -= 1;
        }
        val /= 10;
    }
    buf[i] = b'0' + val as u8;
    String::from_utf8_lossy(&buf[i..]).into_owned()
}

/// The runtime's `fmtNSAsMS`: milliseconds, whole from 10 ms on, else two significant
/// digits with at most three decimals ("0.026", "0.32", "1.2"); "0" under 1 µs.
pub fn fmt_ns_as_ms(ns: u64) -> String {
    if ns >= 10_000_000 {
        return itoa_div(ns / 1_000_000, 0);
    }
    let mut x = ns / 1_000;
    if x == 0 {
        return "0".to_owned();
    }
    let mut dec = 3;
    while x >= 100 {
        x /= 10;
        dec -= 1;
    }
    itoa_div(x, dec)
}

fn or_unknown(v: Option<String>) -> String {
    v.unwrap_or_else(|| "?".to_owned())
}

/// Bytes as the runtime prints heap sizes: whole MiB, truncated (`>>20`).
fn mb(bytes: Option<u64>) -> String {
    or_unknown(bytes.map(|b| (b >> 20).to_string()))
}

/// One `gc N @Ts P%: ...` line, newline included.
pub(super) fn gc_line(g: &GcRecord) -> String {
    // The runtime's own timestamps when known, so the line equals the runtime's; else
    // the probes' measurements.
    let (start, clock) = match g.runtime_clock {
        Some([st, m, mt, end]) => (st, [m - st, mt - m, end - mt]),
        None => (g.start_ns, [g.sweep_term_ns, g.mark_ns, g.mark_term_ns]),
    };
    // Runtime: itoaDiv(uint64(tSweepTerm-runtimeInitTime)/1e6, 3): seconds, ms precision.
    let at = or_unknown(
        g.runtime_init_ns
            .map(|init| itoa_div(start.saturating_sub(init) / 1_000_000, 3)),
    );
    let procs = or_unknown(g.gomaxprocs.map(|p| p.to_string()));
    let forced = if g.trigger == Some(Trigger::Forced) {
        " (forced)"
    } else {
        ""
    };
    let util = or_unknown(g.cpu_percent.map(|p| p.to_string()));
    let cpu = match g.cpu {
        Some(c) => format!(
            "{}+{}/{}/{}+{}",
            fmt_ns_as_ms(c.sweep_term_ns),
            fmt_ns_as_ms(c.assist_ns),
            fmt_ns_as_ms(c.background_ns),
            fmt_ns_as_ms(c.idle_ns),
            fmt_ns_as_ms(c.mark_term_ns)
        ),
        None => "?+?/?/?+?".to_owned(),
    };
    format!(
        "gc {} @{}s {}%: {}+{}+{} ms clock, {} ms cpu, {}->{}->{} MB, {} MB goal, {} MB stacks, {} MB globals, {} P{}\n",
        g.cycle,
        at,
        util,
        fmt_ns_as_ms(clock[0]),
        fmt_ns_as_ms(clock[1]),
        fmt_ns_as_ms(clock[2]),
        cpu,
        mb(g.heap_start_bytes),
        mb(g.heap_end_bytes),
        mb(g.heap_live_bytes),
        mb(g.heap_goal_bytes),
        mb(g.stacks_bytes),
        mb(g.globals_bytes),
        procs,
        forced,
    )
}

/// The closing `# ` comment: cycles, pause percentiles in the same ms formatting as the
/// clock triple, lost events. A comment so that tools parsing gctrace lines skip it.
pub(super) fn summary_line(s: &Summary) -> String {
    let ms = |ns: Option<u64>| or_unknown(ns.map(fmt_ns_as_ms));
    format!(
        "# gctrace-bpf: {} GC cycles, stop-the-world pause p50 {} ms, p99 {} ms, max {} ms, {} lost events\n",
        s.cycles,
        ms(s.pause_p50_ns),
        ms(s.pause_p99_ns),
        ms(s.pause_max_ns),
        s.lost_events,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::StwReason;
    use crate::model::records::{ProcessInfo, StwRecord};

    #[test]
    fn fmt_ns_as_ms_matches_the_runtime() {
        // By hand from the Go code: x = ns/1e3; while x >= 100 { x /= 10; dec-- }.
        assert_eq!(fmt_ns_as_ms(26_000), "0.026"); // x=26, dec=3
        assert_eq!(fmt_ns_as_ms(320_000), "0.32"); // x=320 -> 32, dec=2
        assert_eq!(fmt_ns_as_ms(3_000), "0.003"); // x=3, dec=3
        assert_eq!(fmt_ns_as_ms(12_345_678), "12"); // >= 10 ms: whole ms
        assert_eq!(fmt_ns_as_ms(0), "0");
        assert_eq!(fmt_ns_as_ms(999), "0"); // x=0
        assert_eq!(fmt_ns_as_ms(1_234_567), "1.2"); // x=1234 -> 12, dec=1
        assert_eq!(fmt_ns_as_ms(9_999_999), "9.9"); // truncated, not rounded
        assert_eq!(fmt_ns_as_ms(10_000_000), "10");
        assert_eq!(fmt_ns_as_ms(100_000), "0.10"); // x=100 -> 10, dec=2: trailing 0 kept
        assert_eq!(fmt_ns_as_ms(5_000_000), "5.0");
        assert_eq!(fmt_ns_as_ms(99_000), "0.099");
        assert_eq!(fmt_ns_as_ms(u64::MAX), "18446744073709");
    }

    #[test]
    fn itoa_div_matches_the_runtime() {
        assert_eq!(itoa_div(1_234, 3), "1.234");
        assert_eq!(itoa_div(5, 3), "0.005");
        assert_eq!(itoa_div(0, 3), "0.000");
        assert_eq!(itoa_div(120_000, 3), "120.000");
        assert_eq!(itoa_div(42, 0), "42");
        assert_eq!(itoa_div(5, 0), "05"); // the runtime's quirk, kept
        assert_eq!(itoa_div(u64::MAX, 3), "18446744073709551.615");
    }

    fn record() -> GcRecord {
        GcRecord {
            cycle: 7,
            trigger: Some(Trigger::Heap),
            start_ns: 1_000_000_000 + 1_234_567_890,
            end_ns: 0,
            sweep_term_ns: 26_000,
            mark_ns: 320_000,
            mark_term_ns: 3_000,
            pause_ns: 29_000,
            runtime_init_ns: Some(1_000_000_000),
            gomaxprocs: Some(8),
            heap_start_bytes: Some((4 << 20) + 12_345),
            heap_end_bytes: Some(5 << 20),
            heap_live_bytes: Some(1 << 19),
            heap_goal_bytes: Some(8 << 20),
            ..Default::default()
        }
    }

    #[test]
    fn every_field_known() {
        let g = GcRecord {
            stacks_bytes: Some(3 << 20),
            globals_bytes: Some(1 << 20),
            cpu_percent: Some(2),
            cpu: Some(crate::model::records::GcCpu {
                sweep_term_ns: 100_000,
                assist_ns: 120_000,
                background_ns: 270_000,
                idle_ns: 590_000,
                mark_term_ns: 14_000,
            }),
            ..record()
        };
        assert_eq!(
            gc_line(&g),
            "gc 7 @1.234s 2%: 0.026+0.32+0.003 ms clock, 0.10+0.12/0.27/0.59+0.014 ms cpu, 4->5->0 MB, 8 MB goal, 3 MB stacks, 1 MB globals, 8 P\n"
        );
    }

    #[test]
    fn runtime_clock_wins_over_measured_timings() {
        let base = 1_000_000_000;
        let g = GcRecord {
            runtime_clock: Some([
                base + 2_000_000_000,
                base + 2_000_050_000,
                base + 2_000_450_000,
                base + 2_000_457_000,
            ]),
            ..record()
        };
        assert!(gc_line(&g).starts_with("gc 7 @2.000s ?%: 0.050+0.40+0.007 ms clock, "));
    }

    #[test]
    fn full_line() {
        assert_eq!(
            gc_line(&record()),
            "gc 7 @1.234s ?%: 0.026+0.32+0.003 ms clock, ?+?/?/?+? ms cpu, 4->5->0 MB, 8 MB goal, ? MB stacks, ? MB globals, 8 P\n"
        );
    }

    #[test]
    fn unknown_fields_and_forced() {
        let g = GcRecord {
            trigger: Some(Trigger::Forced),
            runtime_init_ns: None,
            gomaxprocs: None,
            heap_start_bytes: None,
            heap_end_bytes: None,
            heap_live_bytes: None,
            heap_goal_bytes: None,
            mark_ns: 12_345_678,
            ..record()
        };
        assert_eq!(
            gc_line(&g),
            "gc 7 @?s ?%: 0.026+12+0.003 ms clock, ?+?/?/?+? ms cpu, ?->?->? MB, ? MB goal, ? MB stacks, ? MB globals, ? P (forced)\n"
        );
    }

    #[test]
    fn early_cycle_timestamp() {
        let g = GcRecord {
            start_ns: 1_000_000_000 + 5_600_000,
            ..record()
        };
        assert!(gc_line(&g).starts_with("gc 7 @0.005s ?%: "));
    }

    #[test]
    fn summary_comment() {
        let s = Summary {
            cycles: 12,
            pause_p50_ns: Some(26_000),
            pause_p99_ns: Some(320_000),
            pause_max_ns: Some(12_345_678),
            alloc_bytes: None,
            alloc_objects: None,
            lost_events: 3,
        };
        assert_eq!(
            summary_line(&s),
            "# gctrace-bpf: 12 GC cycles, stop-the-world pause p50 0.026 ms, p99 0.32 ms, max 12 ms, 3 lost events\n"
        );
        assert_eq!(
            summary_line(&Summary::default()),
            "# gctrace-bpf: 0 GC cycles, stop-the-world pause p50 ? ms, p99 ? ms, max ? ms, 0 lost events\n"
        );
    }

    #[test]
    fn only_gc_and_summary_write_lines() -> io::Result<()> {
        let mut sink = GctraceSink::new(Vec::new());
        sink.record(
            4242,
            &Record::Process(ProcessInfo {
                gomaxprocs: Some(2),
                ..ProcessInfo::new(1, "x", "go1.25.5", "x86_64")
            }),
        )?;
        sink.record(
            4242,
            &Record::Stw(StwRecord {
                reason: StwReason::GcSweepTerm,
                start_ns: 1,
                duration_ns: 2,
                cycle: Some(7),
            }),
        )?;
        sink.record(4242, &Record::Gc(record()))?;
        sink.record(4242, &Record::Summary(Summary::default()))?;
        sink.flush()?;
        let text = String::from_utf8(sink.into_inner()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("gc 7 @1.234s"));
        assert!(lines[1].starts_with("# "));
        Ok(())
    }

    #[test]
    fn tagged_lines_name_their_process() -> io::Result<()> {
        let mut sink = GctraceSink::tagged(Vec::new());
        sink.record(12, &Record::Gc(record()))?;
        sink.record(34, &Record::Summary(Summary::default()))?;
        let text = String::from_utf8(sink.into_inner()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!("[pid 12] {}", gc_line(&record()).trim_end())
        );
        assert_eq!(
            lines[1],
            "# [pid 34] gctrace-bpf: 0 GC cycles, stop-the-world pause p50 ? ms, p99 ? ms, max ? ms, 0 lost events"
        );
        Ok(())
    }
}
