use super::*;
use crate::decode::events::{Frame, SiteStat};
use crate::model::records::{
    AllocSitesRecord, AllocTypesRecord, GcCpu, GcRecord, ProcessInfo, StwRecord,
};

const S: u64 = 1_000_000_000;

/// A cycle ending at `t` s with `cpu_ms` of GC CPU (background), live heap `live`.
fn cycle(n: u32, t: f64, cpu_ms: u64, live: u64) -> Record {
    let end = (t * 1e9) as u64;
    Record::Gc(GcRecord {
        cycle: n,
        start_ns: end - 1_000_000,
        end_ns: end,
        gomaxprocs: Some(2),
        heap_live_bytes: Some(live),
        heap_end_bytes: Some(live * 2),
        cpu: Some(GcCpu {
            background_ns: cpu_ms * 1_000_000,
            ..GcCpu::default()
        }),
        ..GcRecord::default()
    })
}

/// A cycle as [`cycle`] makes it, ending with `g` goroutines.
fn with_g(n: u32, t: f64, g: u64) -> Record {
    match cycle(n, t, 1, 4 << 20) {
        Record::Gc(mut c) => {
            c.goroutines = Some(g);
            Record::Gc(c)
        }
        r => r,
    }
}

fn feed(e: &mut Engine, recs: &[Record]) -> Vec<FindingRecord> {
    let mut out = Vec::new();
    for r in recs {
        e.observe(r, &mut out);
    }
    out.into_iter()
        .filter_map(|r| match r {
            Record::Finding(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn ids(fs: &[FindingRecord]) -> Vec<(FindingId, FindingState)> {
    fs.iter().map(|f| (f.id, f.state)).collect()
}

/// 10 cycles a second, each `cpu_ms` of GC CPU, from `from` s to `to` s.
fn steady(from: f64, to: f64, cpu_ms: u64) -> Vec<Record> {
    let mut v = Vec::new();
    let mut t = from;
    let mut n = (from * 10.0) as u32;
    while t < to {
        v.push(cycle(n, t, cpu_ms, 4 << 20));
        t += 0.1;
        n += 1;
    }
    v
}

#[test]
fn thrashing_needs_sustained_evidence_and_ends_the_same_way() {
    let mut e = Engine::new(Thresholds::default());
    // 20 ms of GC CPU every 100 ms on 2 Ps: 10 %.
    let first = feed(&mut e, &steady(1.0, 3.05, 20));
    assert!(first.is_empty(), "two judgements are not enough: {first:?}");
    let started = feed(&mut e, &steady(3.1, 6.0, 20));
    assert_eq!(
        ids(&started),
        [(FindingId::GcThrashing, FindingState::Start)]
    );
    let f = &started[0];
    assert_eq!(f.severity, Severity::Warning);
    let cpu = f
        .evidence
        .iter()
        .find(|e| e.0 == "gc_cpu_percent")
        .map(|e| e.1);
    assert!(cpu.is_some_and(|c| (9.0..=11.0).contains(&c)), "{f:?}");
    assert!(f.summary.contains("GC CPU"), "{}", f.summary);
    assert_eq!(e.active().count(), 1);
    // CPU drops to 1 %: the finding ends once the 10 s window forgets the busy part and
    // three judgements in a row agree.
    let later = feed(&mut e, &steady(6.0, 30.0, 2));
    assert_eq!(ids(&later), [(FindingId::GcThrashing, FindingState::End)]);
    assert_eq!(e.active().count(), 0);
    assert_eq!(e.history().len(), 1);
    assert!(e.history()[0].1.is_some());
}

#[test]
fn frequency_over_target_is_a_finding() {
    let mut e = Engine::new(Thresholds {
        cycles_per_s: 5.0,
        ..Thresholds::default()
    });
    let fs = feed(&mut e, &steady(1.0, 6.0, 0));
    assert_eq!(ids(&fs), [(FindingId::GcFrequency, FindingState::Start)]);
}

#[test]
fn one_slow_pause_is_not_an_slo_breach_but_a_slow_window_is() {
    let stop = |t: f64, d: u64| {
        Record::Stw(StwRecord {
            reason: crate::binary::StwReason::GcSweepTerm,
            start_ns: (t * 1e9) as u64,
            duration_ns: d,
            cycle: None,
        })
    };
    let mut e = Engine::new(Thresholds::default());
    // 200 stops of 50 µs over 10 s, one of 20 ms: p99 stays at 50 µs.
    let mut recs: Vec<Record> = (0..200)
        .map(|i| stop(1.0 + i as f64 * 0.05, 50_000))
        .collect();
    recs[100] = stop(6.0, 20_000_000);
    assert!(feed(&mut e, &recs).is_empty());
    // Then every tenth stop is 3 ms: p99 3 ms for more than three judgements.
    let recs: Vec<Record> = (0..100)
        .map(|i| {
            let d = if i % 10 == 0 { 3_000_000 } else { 50_000 };
            stop(11.0 + i as f64 * 0.05, d)
        })
        .collect();
    let fs = feed(&mut e, &recs);
    assert_eq!(ids(&fs), [(FindingId::PauseSlo, FindingState::Start)]);
    let p99 = fs[0]
        .evidence
        .iter()
        .find(|e| e.0 == "pause_p99_ms")
        .map(|e| e.1);
    assert_eq!(p99, Some(3.0));
}

#[test]
fn a_steadily_growing_heap_is_a_finding_a_noisy_flat_one_is_not() {
    let mut e = Engine::new(Thresholds::default());
    // Flat with one big cycle in the middle.
    let flat: Vec<Record> = (0..60)
        .map(|i| {
            let live = if i == 30 { 40 << 20 } else { 10 << 20 };
            cycle(i, 1.0 + f64::from(i) * 0.5, 1, live)
        })
        .collect();
    assert!(feed(&mut e, &flat).is_empty());
    // Then +1 MiB a cycle, two cycles a second.
    let growing: Vec<Record> = (0..60)
        .map(|i| {
            cycle(
                60 + i,
                31.0 + f64::from(i) * 0.5,
                1,
                (10 << 20) + (u64::from(i) << 20),
            )
        })
        .collect();
    let fs = feed(&mut e, &growing);
    assert_eq!(ids(&fs), [(FindingId::HeapGrowth, FindingState::Start)]);
    let per_min = fs[0]
        .evidence
        .iter()
        .find(|e| e.0 == "growth_bytes_per_min")
        .map(|e| e.1)
        .unwrap_or(0.0);
    // 2 MiB/s = 120 MiB/min, judged over a window that still holds flat cycles when the
    // rise becomes sustained: between half and all of it.
    let mib_per_min = per_min / f64::from(1 << 20);
    assert!((60.0..=125.0).contains(&mib_per_min), "{mib_per_min}");
}

#[test]
fn goroutine_growth_must_exceed_what_ps_cache() {
    let mut e = Engine::new(Thresholds::default());
    // +100 over 30 s on 2 Ps: within the 164 margin.
    let small: Vec<Record> = (0..60)
        .map(|i| with_g(i, 1.0 + f64::from(i) * 0.5, 200 + u64::from(i) * 2))
        .collect();
    assert!(feed(&mut e, &small).is_empty());
    let big: Vec<Record> = (0..60)
        .map(|i| with_g(60 + i, 31.0 + f64::from(i) * 0.5, 400 + u64::from(i) * 50))
        .collect();
    let fs = feed(&mut e, &big);
    assert_eq!(
        ids(&fs),
        [(FindingId::GoroutineGrowth, FindingState::Start)]
    );
}

/// The demo's leak phase, as recorded: a busy phase of ~450 cycles/s with a flat count,
/// then 16 s of a leak at ~3 cycles/s (7 → 2,700 goroutines). Thirds by cycle count saw
/// only the busy phase; thirds of time see the rise.
#[test]
fn goroutine_growth_is_judged_by_time_when_the_cycle_rate_drops() {
    let mut e = Engine::new(Thresholds::default());
    let mut recs: Vec<Record> = (0..3600)
        .map(|i| with_g(i, 1.0 + f64::from(i) / 450.0, 7))
        .collect();
    recs.extend((0..48).map(|i| {
        let t = 9.0 + f64::from(i) / 3.0;
        with_g(3600 + i, t, 7 + u64::from(i) * 56)
    }));
    let fs = feed(&mut e, &recs);
    assert!(
        ids(&fs).contains(&(FindingId::GoroutineGrowth, FindingState::Start)),
        "{:?}",
        ids(&fs)
    );
}

#[test]
fn gomaxprocs_over_the_cgroup_limit() {
    let mut e = Engine::new(Thresholds::default());
    e.set_cpu_limit(Some(1.0));
    let fs = feed(&mut e, &steady(1.0, 5.0, 0));
    assert_eq!(
        ids(&fs),
        [(FindingId::GomaxprocsOverCpuLimit, FindingState::Start)]
    );
    let mut e = Engine::new(Thresholds::default());
    e.set_cpu_limit(Some(1.5));
    assert!(
        feed(&mut e, &steady(1.0, 5.0, 0)).is_empty(),
        "2 Ps fit 1.5 CPUs rounded up"
    );
}

#[test]
fn memory_limit_spiral_needs_the_heap_near_the_limit_and_cpu_climbing() {
    let limited = |n: u32, t: f64, cpu: u64, heap_end: u64| match cycle(n, t, cpu, 1 << 20) {
        Record::Gc(mut c) => {
            c.memory_limit_bytes = Some(100 << 20);
            c.heap_end_bytes = Some(heap_end);
            Record::Gc(c)
        }
        r => r,
    };
    let mut e = Engine::new(Thresholds::default());
    let mut recs = Vec::new();
    for i in 0..300u32 {
        let t = 1.0 + f64::from(i) * 0.1;
        // CPU climbs from 2 % to 20 %; the heap sits at 95 % of the limit.
        let cpu = 2 + u64::from(i) * 40 / 300;
        recs.push(limited(i, t, cpu, 95 << 20));
    }
    let fs = feed(&mut e, &recs);
    assert!(
        ids(&fs).contains(&(FindingId::MemoryLimitSpiral, FindingState::Start)),
        "{:?}",
        ids(&fs)
    );
}

fn site(function: &str, line: u32, via: &str, bytes: u64) -> SiteStat {
    SiteStat {
        frames: vec![
            Frame {
                function: "strconv.AppendInt".into(),
                file: "/go/src/strconv/itoa.go".into(),
                line: 60,
            },
            Frame {
                function: function.into(),
                file: "/src/app/main.go".into(),
                line,
            },
        ],
        via: via.into(),
        type_name: "uint8".into(),
        counts: crate::decode::events::AllocCounts::exact(1, bytes),
    }
}

fn snapshot(ts: u64, total: u64, sites: Vec<SiteStat>) -> [Record; 2] {
    [
        Record::AllocTypes(AllocTypesRecord {
            ts_ns: ts,
            exact: true,
            objects: 1,
            bytes: total,
            counted_objects: 1,
            objects_error_permille: None,
            dropped_objects: 0,
            types: Vec::new(),
            size_classes: Vec::new(),
        }),
        Record::AllocSites(AllocSitesRecord {
            ts_ns: ts,
            exact: true,
            sites,
        }),
    ]
}

#[test]
fn code_level_findings_name_the_users_line_after_two_snapshots() {
    let mut e = Engine::new(Thresholds::default());
    let mut out = Vec::new();
    e.observe(
        &Record::Process(ProcessInfo {
            gomaxprocs: Some(2),
            ..ProcessInfo::new(1, "x", "go1.25.5", "x86_64")
        }),
        &mut out,
    );
    let total = 500 << 20;
    let sites = || {
        vec![
            site("main.grow", 41, "runtime.growslice", 300 << 20),
            site("main.other", 7, "runtime.newobject", 150 << 20),
            // 4 % of the bytes: under the 10 % share.
            site("main.box", 50, "runtime.convT64", 20 << 20),
            site("main.concat", 32, "runtime.concatstring2", 30 << 20),
        ]
    };
    let fs = feed(&mut e, &snapshot(S, 0, Vec::new()));
    assert!(fs.is_empty());
    let fs = feed(&mut e, &snapshot(6 * S, total, sites()));
    assert!(fs.is_empty(), "one snapshot is not enough: {fs:?}");
    let fs = feed(&mut e, &snapshot(11 * S, total, sites()));
    assert_eq!(
        ids(&fs),
        [(FindingId::AllocSliceGrowth, FindingState::Start)]
    );
    let f = &fs[0];
    assert_eq!(f.sites.len(), 1);
    assert_eq!(
        (f.sites[0].function.as_str(), f.sites[0].line),
        ("main.grow", 41)
    );
    assert_eq!(f.severity, Severity::Critical, "60 % of the bytes");
    assert!(f.summary.contains("main.go:41"), "{}", f.summary);
}

#[test]
fn causes_by_runtime_function() {
    use super::sites::cause;
    assert_eq!(
        cause("runtime.concatstring3"),
        Some(FindingId::AllocStringConcat)
    );
    assert_eq!(
        cause("runtime.concatstrings"),
        Some(FindingId::AllocStringConcat)
    );
    assert_eq!(
        cause("runtime.growslice"),
        Some(FindingId::AllocSliceGrowth)
    );
    assert_eq!(
        cause("runtime.convTstring"),
        Some(FindingId::AllocInterfaceBoxing)
    );
    assert_eq!(
        cause("runtime.mapassign_fast64"),
        Some(FindingId::AllocMapGrowth)
    );
    assert_eq!(
        cause("internal/runtime/maps.(*table).grow"),
        Some(FindingId::AllocMapGrowth)
    );
    assert_eq!(cause("runtime.makemap"), None);
    assert_eq!(cause("runtime.makeslice"), None);
    assert_eq!(cause("runtime.newobject"), None);
    assert_eq!(cause(""), None);
}
