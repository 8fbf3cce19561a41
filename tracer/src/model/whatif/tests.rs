use super::pacer::{gogc_goal, limit_goal, non_heap_from_limit_goal};
use super::*;
use crate::decode::events::Trigger;
use crate::model::records::{GcCpu, GcRecord};

const MIB: u64 = 1 << 20;

// The pacer equation against the runtime's own goals on recorded cycles is in
// tests/integration/what_if.rs, which reads the fixtures back with the TUI tests' parser.

#[test]
fn gogc_goal_minimum_scales_with_gogc_and_off_has_none() {
    assert_eq!(gogc_goal(100, MIB, 0, 0), Some(4 * MIB));
    assert_eq!(gogc_goal(50, MIB, 0, 0), Some(2 * MIB));
    assert_eq!(gogc_goal(200, 10 * MIB, MIB, MIB), Some(34 * MIB));
    assert_eq!(gogc_goal(-1, 10 * MIB, 0, 0), None);
}

#[test]
fn limit_goal_keeps_the_runtimes_headroom_and_inverts() {
    // 1.21+: 3 % of limit − non-heap, at least 1 MiB; 1.19: 1 MiB.
    assert_eq!(
        limit_goal(1000 * MIB, 100 * MIB, 10 * MIB, Some(25)),
        873 * MIB
    );
    assert_eq!(
        limit_goal(1000 * MIB, 100 * MIB, 10 * MIB, Some(19)),
        899 * MIB
    );
    assert_eq!(limit_goal(20 * MIB, 2 * MIB, MIB, Some(25)), 17 * MIB);
    // Never below the marked heap; non-heap over the limit: the marked heap.
    assert_eq!(
        limit_goal(100 * MIB, 90 * MIB, 50 * MIB, Some(25)),
        50 * MIB
    );
    assert_eq!(limit_goal(100 * MIB, 200 * MIB, 5 * MIB, Some(25)), 5 * MIB);
    for minor in [Some(19), Some(25)] {
        for (limit, non_heap) in [(1000 * MIB, 100 * MIB), (20 * MIB, 2 * MIB)] {
            let goal = limit_goal(limit, non_heap, MIB, minor);
            let back = non_heap_from_limit_goal(limit, goal, minor).unwrap();
            assert!(back.abs_diff(non_heap) <= 100, "{minor:?} {limit}: {back}");
        }
    }
}

#[test]
fn what_if_syntax() {
    let w = |s: &str| s.parse::<WhatIf>();
    assert_eq!(
        w("gogc=200"),
        Ok(WhatIf {
            gogc: Some(200),
            limit: None
        })
    );
    assert_eq!(
        w("gogc=off,limit=2GiB"),
        Ok(WhatIf {
            gogc: Some(-1),
            limit: Some(Limit::Bytes(2 << 30))
        })
    );
    assert_eq!(w("limit=off").map(|w| w.limit), Ok(Some(Limit::Off)));
    assert_eq!(
        w("limit=1048576").map(|w| w.limit),
        Ok(Some(Limit::Bytes(MIB)))
    );
    for bad in [
        "gogc",
        "gogc=-5",
        "gogc=abc",
        "limit=2GB",
        "limit=0",
        "x=1",
        "gogc=1,gogc=2",
        "",
    ] {
        let e = w(bad).expect_err(bad);
        assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
    }
}

/// Steady cycles as the pacer makes them for a program with a 40 MiB marked heap
/// (14 MiB of it allocated during the mark), heap growing at 256 MiB/s, triggers at
/// the pacer's lower bound, 20.1 ms of non-idle GC CPU a cycle.
fn steady(gogc: i32, limit: Option<u64>, goal_of: impl Fn(u64) -> u64, n: u32) -> Vec<GcRecord> {
    let live = 40 * MIB;
    let alloc = 14 * MIB;
    let rate = 256.0 * MIB as f64;
    let mut t = 1_000_000_000u64;
    (1..=n)
        .map(|i| {
            let goal = goal_of(live);
            let trigger = super::pacer::trigger(goal, live, u64::MAX);
            let end = trigger + alloc;
            t += ((end - live) as f64 / rate * 1e9) as u64;
            GcRecord {
                cycle: i,
                trigger: Some(Trigger::Heap),
                end_ns: t,
                mark_ns: 60_000_000,
                heap_start_bytes: Some(trigger),
                heap_end_bytes: Some(end),
                heap_live_bytes: Some(live),
                heap_goal_bytes: Some(goal),
                stacks_bytes: Some(0),
                globals_bytes: Some(0),
                gogc: Some(gogc),
                memory_limit_bytes: Some(limit.map_or(i64::MAX, |l| l as i64)),
                gomaxprocs: Some(2),
                cpu: Some(GcCpu {
                    sweep_term_ns: 50_000,
                    assist_ns: 1_000_000,
                    background_ns: 19_000_000,
                    idle_ns: 30_000_000,
                    mark_term_ns: 50_000,
                }),
                ..GcRecord::default()
            }
        })
        .collect()
}

fn measure(gcs: &[GcRecord]) -> Inputs {
    let refs: Vec<&GcRecord> = gcs.iter().collect();
    Inputs::measure(&refs, "go1.25.5")
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= b.abs() * 1e-3 + 1e-9)
}

#[test]
fn predictions_follow_the_pacer_from_measured_cycles() {
    let gcs = steady(100, None, |l| 2 * l, 40);
    let inp = measure(&gcs);
    assert_eq!(inp.heap_live_bytes, Some(40 * MIB));
    assert_eq!(inp.mark_alloc_bytes, Some(14 * MIB));
    assert!(
        close(inp.heap_growth_bytes_per_s, 256.0 * MIB as f64),
        "{inp:?}"
    );
    // At the lower bound: the pacer's runway from its cons/mark, at least the distance.
    let r = inp.trigger_runway_bytes.unwrap();
    assert!(
        r >= 80 * MIB - super::pacer::trigger(80 * MIB, 40 * MIB, u64::MAX),
        "{r}"
    );
    // The setting it ran at comes back as measured.
    let now = predict(&inp, &WhatIf::default());
    assert!(
        close(now.cycles_per_s, inp.now_cycles_per_s.unwrap()),
        "{now:?} {inp:?}"
    );
    assert!(
        close(now.gc_cpu_percent, inp.now_gc_cpu_percent.unwrap()),
        "{now:?}"
    );
    assert!(
        now.peak_heap_bytes
            .unwrap()
            .abs_diff(inp.now_peak_heap_bytes.unwrap())
            < 4
    );
    // GOGC 200: the goal doubles the runway; the trigger stays at 45/64 of it (the
    // pacer's runway is smaller than the bound) and the mark allocates what it wanted
    // (no assists cut it now), black: the marked heap is 26 MiB of live data plus it.
    let p = predict(&inp, &"gogc=200".parse().unwrap());
    let goal = p.heap_goal_bytes.unwrap();
    let marked = goal / 3;
    assert!(marked > 40 * MIB && marked < 41 * MIB, "{p:?}");
    let peak = super::pacer::trigger(goal, marked, r) + (marked - 26 * MIB);
    assert!(
        p.peak_heap_bytes.unwrap().abs_diff(peak) < 8,
        "{p:?} {peak}"
    );
    let cycles = 256.0 * MIB as f64 / (peak - marked) as f64;
    assert!(close(p.cycles_per_s, cycles), "{p:?}");
    // No more than the cost a cycle had (assists fall away, about as much to scan).
    let per_cycle = now.gc_cpu_percent.unwrap() / now.cycles_per_s.unwrap();
    let cost = p.gc_cpu_percent.unwrap() / cycles;
    assert!(cost <= per_cycle * 1.02 && cost > per_cycle * 0.8, "{p:?}");
    assert_eq!(p.bound_by, Some("gogc"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // GOGC 25: 10 MiB of runway, 3 MiB of it after the trigger, the mark wants 14:
    // assists take marking over, cost more CPU a cycle, and the peak passes the goal.
    let p = predict(&inp, &"gogc=25".parse().unwrap());
    let goal = p.heap_goal_bytes.unwrap();
    assert!(p.peak_heap_bytes.unwrap() > goal, "{p:?}");
    assert!(
        p.gc_cpu_percent.unwrap() / p.cycles_per_s.unwrap() > per_cycle * 1.1,
        "{p:?}"
    );
    // GOGC=off, no limit: no cycles, no peak, said so.
    let p = predict(&inp, &"gogc=off".parse().unwrap());
    assert_eq!((p.cycles_per_s, p.peak_heap_bytes), (Some(0.0), None));
    assert_eq!(p.bound_by, Some("none"));
    assert!(!p.warnings.is_empty());
    // A limit on a recording whose goal no limit set: non-heap memory is unknown.
    unknown_because(&inp, "gogc=off,limit=2GiB", "non_heap_bytes");
    let d = default_settings(&inp);
    assert_eq!(
        d.iter().map(|w| w.gogc).collect::<Vec<_>>(),
        [Some(50), Some(200), Some(400)]
    );
}

#[test]
fn heap_minimum_binds_small_heaps() {
    let mut gcs = steady(100, None, |l| 2 * l, 40);
    for g in &mut gcs {
        g.heap_live_bytes = Some(MIB);
        g.heap_start_bytes = Some(3 * MIB);
        g.heap_end_bytes = Some(3 * MIB + MIB / 2);
        g.heap_goal_bytes = Some(4 * MIB);
    }
    let inp = measure(&gcs);
    let p = predict(&inp, &"gogc=200".parse().unwrap());
    assert_eq!(p.heap_goal_bytes, Some(8 * MIB));
    assert_eq!(p.bound_by, Some("heap-minimum"));
}

#[test]
fn a_limit_bound_recording_measures_non_heap_and_the_limiter_caps_cpu() {
    // GOGC=off under a 100 MiB limit with 10 MiB of non-heap memory.
    let limit = 100 * MIB;
    let gcs = steady(
        -1,
        Some(limit),
        |l| limit_goal(limit, 10 * MIB, l, Some(25)),
        40,
    );
    let inp = measure(&gcs);
    let n = inp.non_heap_bytes.expect("non-heap measured");
    assert!(n.abs_diff(10 * MIB) < 1024, "{n}");
    let now = predict(&inp, &WhatIf::default());
    assert_eq!(now.bound_by, Some("memory-limit"));
    assert!(
        close(now.cycles_per_s, inp.now_cycles_per_s.unwrap()),
        "{now:?}"
    );
    // A limit under the live data: more GC than half the CPU allows.
    let p = predict(&inp, &"limit=36MiB".parse().unwrap());
    assert_eq!(p.bound_by, Some("gc-cpu-limiter"), "{p:?}");
    assert_eq!(p.gc_cpu_percent, Some(50.0));
    assert!(
        p.peak_heap_bytes.unwrap() > p.heap_goal_bytes.unwrap(),
        "{p:?}"
    );
    // GOGC=100 under the same limit: GOGC's goal is under the limit's.
    let p = predict(&inp, &"gogc=100".parse().unwrap());
    assert_eq!(p.bound_by, Some("gogc"));
}

/// The prediction at `setting` from `inp` has no cycle rate, GC CPU or peak heap, and a
/// warning that says `why`.
fn unknown_because(inp: &Inputs, setting: &str, why: &str) {
    let p = predict(inp, &setting.parse().unwrap());
    assert_eq!(
        (p.cycles_per_s, p.gc_cpu_percent, p.peak_heap_bytes),
        (None, None, None),
        "{setting}: {p:?}"
    );
    assert!(p.warnings.iter().any(|w| w.contains(why)), "{p:?}");
}

#[test]
fn unknown_inputs_give_unknown_outputs_with_the_field_named() {
    let mut gcs = steady(100, None, |l| 2 * l, 40);
    for g in &mut gcs {
        g.cpu = None;
    }
    let inp = measure(&gcs);
    let p = predict(&inp, &"gogc=200".parse().unwrap());
    // The runway comes from the CPU figures too.
    assert_eq!((p.cycles_per_s, p.gc_cpu_percent), (None, None));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("trigger_runway_bytes")),
        "{p:?}"
    );
    let mut gcs = steady(100, None, |l| 2 * l, 40);
    for g in &mut gcs {
        g.stacks_bytes = None;
    }
    let p = predict(&measure(&gcs), &"gogc=200".parse().unwrap());
    assert_eq!((p.cycles_per_s, p.peak_heap_bytes), (None, None));
    assert!(
        p.warnings.iter().any(|w| w.contains("stacks_bytes")),
        "{p:?}"
    );
    // Too few cycles: nothing.
    let p = predict(&measure(&gcs[..2]), &"gogc=200".parse().unwrap());
    assert_eq!(p.cycles_per_s, None);
    assert!(!p.warnings.is_empty());
}

#[test]
fn steady_inputs_skip_forced_cycles_and_gaps() {
    let mut gcs = steady(100, None, |l| 2 * l, 20);
    gcs[10].trigger = Some(Trigger::Forced);
    gcs.remove(15);
    let inp = measure(&gcs);
    // 19 records: 18 pairs, minus the two touching the forced cycle and the gap.
    assert_eq!(inp.cycles, 15);
    assert_eq!(inp.mark_alloc_bytes, Some(14 * MIB));
}

#[test]
fn a_gc_that_would_need_more_than_every_cpu_is_outside_the_model() {
    let gcs = steady(100, None, |l| 2 * l, 40);
    let mut inp = measure(&gcs);
    // Marking a hundred times as costly: GOGC=50 would need more than both Ps.
    for v in [
        &mut inp.background_cpu_ns_per_byte,
        &mut inp.mark_cpu_ns_per_byte,
        &mut inp.assist_cpu_ns_per_byte,
    ] {
        *v = v.map(|x| x * 100.0);
    }
    unknown_because(&inp, "gogc=50", "beyond the model");
}

/// The same cycles with their marking split differently between idle and other
/// workers (as a busier or quieter machine splits it).
fn resplit(gcs: &[GcRecord], idle_ns: u64) -> Vec<GcRecord> {
    gcs.iter()
        .map(|g| {
            let mut g = g.clone();
            if let Some(c) = g.cpu.as_mut() {
                let mark = c.background_ns + c.idle_ns;
                c.idle_ns = idle_ns.min(mark);
                c.background_ns = mark - c.idle_ns;
            }
            g
        })
        .collect()
}

#[test]
fn all_gc_cpu_follows_the_bytes_to_scan_not_the_workers_split() {
    let gcs = steady(100, None, |l| 2 * l, 40);
    let inp = measure(&gcs);
    // As recorded: 50.1 ms a cycle with idle workers, 20.1 ms without.
    let now = predict(&inp, &WhatIf::default());
    assert!(
        close(
            now.gc_cpu_total_percent,
            inp.now_gc_cpu_total_percent.unwrap()
        ),
        "{now:?} {inp:?}"
    );
    let total_per_cycle = now.gc_cpu_total_percent.unwrap() / now.cycles_per_s.unwrap();
    let busy_per_cycle = now.gc_cpu_percent.unwrap() / now.cycles_per_s.unwrap();
    assert!(
        (total_per_cycle / busy_per_cycle - 50.1 / 20.1).abs() < 1e-3,
        "{now:?}"
    );
    // Another split of the same work: the same total a cycle at every setting (the
    // cycles may move: the pacer's runway counts idle workers); only the part outside
    // idle workers shrinks.
    let quiet = measure(&resplit(&gcs, 45_000_000));
    let per_cycle = |p: &Prediction, v: Option<f64>| v.unwrap() / p.cycles_per_s.unwrap();
    for setting in ["gogc=50", "gogc=200", "gogc=400"] {
        let w: WhatIf = setting.parse().unwrap();
        let (a, b) = (predict(&inp, &w), predict(&quiet, &w));
        // (Within 2 %: another trigger moves the mark's black allocation, so the
        // bytes to scan, a little.)
        let ratio = per_cycle(&b, b.gc_cpu_total_percent) / per_cycle(&a, a.gc_cpu_total_percent);
        assert!((ratio - 1.0).abs() < 0.02, "{setting}: {a:?} {b:?}");
        assert!(
            per_cycle(&b, b.gc_cpu_percent) < per_cycle(&a, a.gc_cpu_percent) * 0.8,
            "{setting}: {a:?} {b:?}"
        );
    }
    // GOGC 200: the total a cycle scales with the bytes to scan (stops fixed).
    let p = predict(&inp, &"gogc=200".parse().unwrap());
    let marked = p.heap_goal_bytes.unwrap() / 3;
    let stop = 100_000.0;
    let per_byte = (50.1e6 - stop) / (40 * MIB) as f64;
    let want = p.cycles_per_s.unwrap() * (stop + per_byte * marked as f64) / 2e9 * 100.0;
    assert!(close(p.gc_cpu_total_percent, want), "{p:?} {want}");
    // GOGC 25: assists take marking over, but the work is the work: the total a cycle
    // is the scan's, never below the part outside idle workers.
    let p = predict(&inp, &"gogc=25".parse().unwrap());
    let (total, busy) = (p.gc_cpu_total_percent.unwrap(), p.gc_cpu_percent.unwrap());
    assert!(total >= busy, "{p:?}");
    assert!(
        total / p.cycles_per_s.unwrap() < total_per_cycle * 1.02,
        "{p:?}"
    );
    // Without the cycles' CPU figures the total is unknown, not guessed.
    let mut blind = gcs.clone();
    for g in &mut blind {
        g.cpu = None;
    }
    let p = predict(&measure(&blind), &"gogc=200".parse().unwrap());
    assert_eq!(p.gc_cpu_total_percent, None);
    // (Said by the input it lacks: the cycles' CPU figures feed the runway too.)
    assert!(
        p.warnings.iter().any(|w| w.contains("unknown")),
        "{:?}",
        p.warnings
    );
}
