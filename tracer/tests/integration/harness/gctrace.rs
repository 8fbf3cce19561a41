//! The Go runtime's own GODEBUG=gctrace=1 lines, parsed: the oracle most live tests
//! judge the tracer against (and the tracer's gctrace output, read the same way).

use std::collections::BTreeMap;

/// A duration as gctrace prints it: fmtNSAsMS truncates to two significant digits
/// (at most three decimals), or to whole milliseconds from 10 ms on, so the true value
/// lies in `[lo_ns, hi_ns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsRange {
    pub lo_ns: u64,
    pub hi_ns: u64,
}

impl MsRange {
    /// How far `ns` lies outside the range (0 inside).
    pub fn distance(&self, ns: u64) -> u64 {
        if ns < self.lo_ns {
            self.lo_ns - ns
        } else {
            ns.saturating_sub(self.hi_ns)
        }
    }
}

impl std::fmt::Display for MsRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}) ns", self.lo_ns, self.hi_ns)
    }
}

/// One `gc N @Ts P%: a+b+c ms clock, ...` line. The cycle and the clock triple are
/// required; every other figure is `None` when it is missing or not a number (the
/// tracer prints `?` for what it could not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcTraceLine {
    pub cycle: u32,
    /// `@T s`: milliseconds since the runtime started (printed with 3 decimals).
    pub at_ms: Option<u64>,
    /// `P%`: GC CPU utilisation since the program started.
    pub util_pct: Option<u32>,
    /// Sweep termination, concurrent mark, mark termination (wall clock).
    pub clock: [MsRange; 3],
    /// CPU: sweep termination, assist, background, idle, mark termination.
    pub cpu: Option<[MsRange; 5]>,
    /// `heap0->heap1->heap2 MB`: heap at GC start, at mark end, live (MiB, truncated).
    pub heap_mb: Option<[u64; 3]>,
    pub goal_mb: Option<u64>,
    pub stacks_mb: Option<u64>,
    pub globals_mb: Option<u64>,
    /// `N P`: GOMAXPROCS.
    pub procs: Option<u32>,
    /// Ends with " (forced)": runtime.GC() or debug.FreeOSMemory.
    pub forced: bool,
    /// The record itself, from "gc " to the end of the line (trailing space trimmed).
    pub text: String,
}

/// Parses a duration printed by the runtime's fmtNSAsMS.
pub fn parse_ms(text: &str) -> Option<MsRange> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 6 {
        return None;
    }
    if text.contains('.') && frac.is_empty() {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let scale = 10u64.pow(6 - frac.len() as u32);
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()? * scale
    };
    let lo_ns = int * 1_000_000 + frac_ns;
    let ulp = if !frac.is_empty() {
        scale
    } else if lo_ns == 0 {
        // "0": under one microsecond.
        1_000
    } else {
        1_000_000
    };
    Some(MsRange {
        lo_ns,
        hi_ns: lo_ns + ulp,
    })
}

/// Finds a gctrace record in a line (which may carry other text before it, when writes
/// interleave).
pub fn parse_gctrace_line(line: &str) -> Option<GcTraceLine> {
    let mut from = 0;
    while let Some(pos) = line[from..].find("gc ") {
        let start = from + pos;
        if let Some(parsed) = parse_gctrace_at(&line[start..]) {
            return Some(parsed);
        }
        from = start + 3;
    }
    None
}

fn parse_gctrace_at(text: &str) -> Option<GcTraceLine> {
    let rest = text.strip_prefix("gc ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return None;
    }
    let cycle = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(" @")?;
    // "0.012s 2%: " (Go 1.27 may insert " (checking for goroutine leaks)" before ": ").
    let colon = rest.find(": ")?;
    let mut head = rest[..colon].split_whitespace();
    let at_ms = head
        .next()
        .and_then(|t| t.strip_suffix('s'))
        .and_then(parse_ms)
        // "0.012" parsed as milliseconds is 12 µs: the value is seconds.
        .map(|r| r.lo_ns / 1_000);
    let util_pct = head
        .next()
        .and_then(|p| p.strip_suffix('%'))
        .and_then(|p| p.parse().ok());
    let rest = &rest[colon + 2..];
    let clock_end = rest.find(" ms clock")?;
    let mut parts = rest[..clock_end].split('+');
    let clock = [
        parse_ms(parts.next()?)?,
        parse_ms(parts.next()?)?,
        parse_ms(parts.next()?)?,
    ];
    if parts.next().is_some() {
        return None;
    }
    let tail = rest[clock_end..]
        .strip_prefix(" ms clock")?
        .trim_end()
        .strip_prefix(", ")
        .unwrap_or("");
    let forced = tail.ends_with(" (forced)");
    let tail = tail.strip_suffix(" (forced)").unwrap_or(tail);
    let mut line = GcTraceLine {
        cycle,
        at_ms,
        util_pct,
        clock,
        cpu: None,
        heap_mb: None,
        goal_mb: None,
        stacks_mb: None,
        globals_mb: None,
        procs: None,
        forced,
        text: text.trim_end().to_owned(),
    };
    let num = |s: &str| s.parse::<u64>().ok();
    for part in tail.split(", ") {
        if let Some(cpu) = part.strip_suffix(" ms cpu") {
            // "a+b/c/d+e"
            let mut plus = cpu.split('+');
            let (st, mid, mt) = (plus.next(), plus.next(), plus.next());
            let mut slash = mid.unwrap_or("").split('/');
            line.cpu = (|| {
                Some([
                    parse_ms(st?)?,
                    parse_ms(slash.next()?)?,
                    parse_ms(slash.next()?)?,
                    parse_ms(slash.next()?)?,
                    parse_ms(mt?)?,
                ])
            })();
        } else if let Some(goal) = part.strip_suffix(" MB goal") {
            line.goal_mb = num(goal);
        } else if let Some(stacks) = part.strip_suffix(" MB stacks") {
            line.stacks_mb = num(stacks);
        } else if let Some(globals) = part.strip_suffix(" MB globals") {
            line.globals_mb = num(globals);
        } else if let Some(heap) = part.strip_suffix(" MB") {
            let v: Vec<Option<u64>> = heap.split("->").map(num).collect();
            if let [Some(a), Some(b), Some(c)] = v[..] {
                line.heap_mb = Some([a, b, c]);
            }
        } else if let Some(procs) = part.strip_suffix(" P") {
            line.procs = procs.parse().ok();
        }
    }
    Some(line)
}

/// Every gctrace record in a stderr capture, by cycle (the last one wins for a
/// repeated cycle number, which would be a runtime oddity).
pub fn parse_gctrace(stderr: &str) -> BTreeMap<u32, GcTraceLine> {
    stderr
        .lines()
        .filter_map(parse_gctrace_line)
        .map(|l| (l.cycle, l))
        .collect()
}

impl GcTraceLine {
    /// gctrace's `heap0->heap1->heap2 MB, goal MB`, in the order of [`HeapRec::mb`].
    pub fn heap_and_goal_mb(&self) -> [Option<u64>; 4] {
        let heap = self.heap_mb.map(|h| h.map(Some)).unwrap_or([None; 3]);
        [heap[0], heap[1], heap[2], self.goal_mb]
    }
}

/// Self-test of the parsers above (needs neither root nor GCTRACE_INTEGRATION).
pub fn self_test() {
    assert_eq!(
        parse_ms("0.026"),
        Some(MsRange {
            lo_ns: 26_000,
            hi_ns: 27_000
        })
    );
    assert_eq!(
        parse_ms("1.8"),
        Some(MsRange {
            lo_ns: 1_800_000,
            hi_ns: 1_900_000
        })
    );
    assert_eq!(
        parse_ms("0.39"),
        Some(MsRange {
            lo_ns: 390_000,
            hi_ns: 400_000
        })
    );
    assert_eq!(
        parse_ms("12"),
        Some(MsRange {
            lo_ns: 12_000_000,
            hi_ns: 13_000_000
        })
    );
    assert_eq!(
        parse_ms("0"),
        Some(MsRange {
            lo_ns: 0,
            hi_ns: 1_000
        })
    );
    assert_eq!(parse_ms(""), None);
    assert_eq!(parse_ms("1."), None);
    assert_eq!(parse_ms("x"), None);

    let line = "gc 10 @0.500s 2%: 0.22+10+0.004 ms clock, 0.44+0/1.4/17+0.008 ms cpu, \
                55->55->31 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)";
    let parsed = parse_gctrace_line(line).expect("parses");
    assert_eq!(parsed.cycle, 10);
    assert!(parsed.forced);
    assert_eq!(parsed.clock[0].lo_ns, 220_000);
    assert_eq!(parsed.clock[1].lo_ns, 10_000_000);
    assert_eq!(parsed.clock[1].hi_ns, 11_000_000);
    assert_eq!(parsed.clock[2].hi_ns, 5_000);
    assert_eq!(parsed.at_ms, Some(500));
    assert_eq!(parsed.util_pct, Some(2));
    let cpu = parsed.cpu.expect("cpu parses");
    assert_eq!(cpu[0].lo_ns, 440_000);
    assert_eq!(cpu[1], parse_ms("0").expect("0"));
    assert_eq!(cpu[2].lo_ns, 1_400_000);
    assert_eq!(cpu[3].lo_ns, 17_000_000);
    assert_eq!(cpu[4].lo_ns, 8_000);
    assert_eq!(parsed.heap_mb, Some([55, 55, 31]));
    assert_eq!(parsed.goal_mb, Some(61));
    assert_eq!(parsed.stacks_mb, Some(0));
    assert_eq!(parsed.globals_mb, Some(0));
    assert_eq!(parsed.procs, Some(2));
    assert_eq!(parsed.text, line);

    // The tracer prints `?` for what it could not read: those figures are None.
    let unknown = "gc 7 @?s ?%: 0.026+0.32+0.003 ms clock, ?+?/?/?+? ms cpu, ?->?->? MB, \
                   ? MB goal, ? MB stacks, ? MB globals, ? P";
    let parsed = parse_gctrace_line(unknown).expect("parses");
    assert_eq!(
        (parsed.at_ms, parsed.util_pct, parsed.cpu),
        (None, None, None)
    );
    assert_eq!(
        (parsed.heap_mb, parsed.goal_mb, parsed.procs),
        (None, None, None)
    );
    assert!(!parsed.forced);

    let noisy = "some other output gc 3 @0.034s 6% (checking for goroutine leaks): \
                 0.10+2.6+0.004 ms clock, 0.20+1.7/0.88/1.5+0.008 ms cpu, 8->9->7 MB, \
                 10 MB goal, 0 MB stacks, 0 MB globals, 2 P";
    let parsed = parse_gctrace_line(noisy).expect("parses");
    assert_eq!(parsed.cycle, 3);
    assert!(!parsed.forced);
    assert_eq!(parsed.at_ms, Some(34));
    assert_eq!(parsed.util_pct, Some(6));
    assert_eq!(parsed.heap_mb, Some([8, 9, 7]));
    assert_eq!(parsed.goal_mb, Some(10));
    assert_eq!(parsed.procs, Some(2));
    assert_eq!(parse_gctrace_line("gc 3 is not a trace line"), None);
    assert_eq!(parse_gctrace_line("scvg: 0 MB released"), None);
}
