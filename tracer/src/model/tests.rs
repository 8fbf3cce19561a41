//! Hand-built event sequences, one per situation the model must handle.

use super::*;

/// Snapshot with every field the model uses known.
fn snap(gc_cycles: u32, num_gc: u32, user_forced: bool) -> RuntimeSnapshot {
    RuntimeSnapshot {
        gc_cycles: Some(gc_cycles),
        num_gc: Some(num_gc),
        user_forced: Some(user_forced),
        runtime_init_ns: Some(1_000),
        settings: Settings {
            gomaxprocs: Some(8),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn begin(ts_ns: u64, reason: StwReason) -> TraceEvent {
    TraceEvent::StwBegin { ts_ns, reason }
}

fn end(ts_ns: u64, snapshot: RuntimeSnapshot) -> TraceEvent {
    TraceEvent::StwEnd { ts_ns, snapshot }
}

fn req(ts_ns: u64, trigger: Trigger) -> TraceEvent {
    TraceEvent::GcRequested { ts_ns, trigger }
}

fn run(m: &mut Model, evs: &[TraceEvent]) -> Vec<Record> {
    evs.iter().flat_map(|e| m.apply(e)).collect()
}

fn gcs(recs: &[Record]) -> Vec<&GcRecord> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Gc(g) => Some(g),
            _ => None,
        })
        .collect()
}

fn stws(recs: &[Record]) -> Vec<&StwRecord> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Stw(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn stw(reason: StwReason, start_ns: u64, duration_ns: u64, cycle: Option<u32>) -> Record {
    Record::Stw(StwRecord {
        reason,
        start_ns,
        duration_ns,
        cycle,
    })
}

use StwReason::{GcMarkTerm as MT, GcSweepTerm as ST};

/// Cycle 5 with a heap trigger: sweep term 100..126, mark until 10_000, mark term
/// 10_000..10_003.
fn normal_cycle() -> Vec<TraceEvent> {
    vec![
        req(50, Trigger::Heap),
        begin(100, ST),
        end(126, snap(5, 4, false)),
        begin(10_000, MT),
        end(10_003, snap(5, 5, false)),
    ]
}

#[test]
fn normal_cycle_reports_stops_then_cycle() {
    let mut m = Model::new();
    let recs = run(&mut m, &normal_cycle());
    let expected_gc = GcRecord {
        cycle: 5,
        trigger: Some(Trigger::Heap),
        start_ns: 100,
        end_ns: 10_003,
        sweep_term_ns: 26,
        mark_ns: 10_000 - 126,
        mark_term_ns: 3,
        pause_ns: 29,
        runtime_init_ns: Some(1_000),
        gomaxprocs: Some(8),
        heap_start_bytes: None,
        heap_end_bytes: None,
        heap_live_bytes: None,
        heap_goal_bytes: None,
        ..Default::default()
    };
    assert_eq!(
        recs,
        vec![
            stw(ST, 100, 26, Some(5)),
            stw(MT, 10_000, 3, Some(5)),
            Record::Gc(expected_gc),
        ]
    );
    let fin = m.finish();
    assert_eq!(fin.len(), 1);
    let Record::Summary(s) = &fin[0] else {
        panic!("last record must be the summary: {fin:?}");
    };
    assert_eq!(s.cycles, 1);
    assert_eq!(s.pause_max_ns, Some(26));
    assert_eq!(s.pause_p50_ns, Some(3));
    assert_eq!(m.diagnostics(), Diagnostics::default());
}

/// The kernel pairs a stop's begin and end into one event (Go 1.22+): the records,
/// summary and diagnostics are those of the same stops sent as two events each.
#[test]
fn paired_stops_equal_begin_then_end() {
    let split = normal_cycle();
    let mut paired = Vec::new();
    let mut it = split.iter().cloned();
    while let Some(ev) = it.next() {
        match ev {
            TraceEvent::StwBegin { ts_ns, reason } => {
                let Some(TraceEvent::StwEnd {
                    ts_ns: end_ns,
                    snapshot,
                }) = it.next()
                else {
                    panic!("a begin without its end in the fixture");
                };
                paired.push(TraceEvent::Stw {
                    begin_ns: ts_ns,
                    reason,
                    end_ns,
                    snapshot,
                });
            }
            other => paired.push(other),
        }
    }
    assert_eq!(paired.len(), 3);
    let (mut a, mut b) = (Model::new(), Model::new());
    assert_eq!(run(&mut a, &split), run(&mut b, &paired));
    assert_eq!(a.finish(), b.finish());
    assert_eq!(a.diagnostics(), b.diagnostics());
}

#[test]
fn forced_cycle() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            req(50, Trigger::Forced),
            begin(100, ST),
            end(120, snap(1, 0, true)),
            begin(500, MT),
            end(510, snap(1, 1, true)),
        ],
    );
    let g = gcs(&recs);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].trigger, Some(Trigger::Forced));
}

#[test]
fn time_trigger_when_not_forced_and_sysmon_asked() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            req(40, Trigger::Time),
            req(50, Trigger::Heap),
            begin(100, ST),
            end(120, snap(1, 0, false)),
            begin(500, MT),
            end(510, snap(1, 1, false)),
            // The Time request belonged to cycle 1 only.
            req(600, Trigger::Heap),
            begin(700, ST),
            end(720, snap(2, 1, false)),
            begin(900, MT),
            end(910, snap(2, 2, false)),
        ],
    );
    let g = gcs(&recs);
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].trigger, Some(Trigger::Time));
    assert_eq!(g[1].trigger, Some(Trigger::Heap));
}

#[test]
fn trigger_from_last_request_when_user_forced_unknown() {
    let unknown = |c: u32, n: u32| RuntimeSnapshot {
        user_forced: None,
        ..snap(c, n, false)
    };
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            req(40, Trigger::Forced),
            req(50, Trigger::Heap),
            begin(100, ST),
            end(120, unknown(1, 0)),
            begin(500, MT),
            end(510, unknown(1, 1)),
            // No request at all before cycle 2.
            begin(700, ST),
            end(720, unknown(2, 1)),
            begin(900, MT),
            end(910, unknown(2, 2)),
        ],
    );
    let g = gcs(&recs);
    assert_eq!(g[0].trigger, Some(Trigger::Heap));
    assert_eq!(g[1].trigger, None);
}

#[test]
fn mark_termination_restart_counts_every_stop() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            begin(100, ST),
            end(120, snap(3, 2, false)),
            // gcMarkDone stops, finds work, restarts the world: numgc still 2.
            begin(1_000, MT),
            end(1_040, snap(3, 2, false)),
            begin(2_000, MT),
            end(2_050, snap(3, 3, false)),
        ],
    );
    assert_eq!(
        stws(&recs).iter().map(|s| s.cycle).collect::<Vec<_>>(),
        vec![Some(3), Some(3), Some(3)]
    );
    let g = gcs(&recs);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].pause_ns, 20 + 40 + 50);
    assert_eq!(g[0].mark_ns, 2_000 - 120);
    assert_eq!(g[0].mark_term_ns, 50);
    assert_eq!(g[0].end_ns, 2_050);
    // The Gc record comes after the stop that completes it.
    assert!(matches!(recs.last(), Some(Record::Gc(_))));
}

#[test]
fn non_gc_stop_during_mark_is_not_part_of_the_cycle() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            begin(100, ST),
            end(120, snap(7, 6, false)),
            begin(300, StwReason::ReadMemStats),
            end(400, snap(7, 6, false)),
            begin(1_000, MT),
            end(1_010, snap(7, 7, false)),
        ],
    );
    let s = stws(&recs);
    assert_eq!(s[1].reason, StwReason::ReadMemStats);
    assert_eq!(s[1].cycle, None);
    assert_eq!(s[1].duration_ns, 100);
    let g = gcs(&recs);
    assert_eq!(g[0].pause_ns, 30);
    assert_eq!(g[0].mark_ns, 1_000 - 120);
}

#[test]
fn attach_mid_cycle_reports_only_stops() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            // Attached during concurrent mark of cycle 9.
            begin(1_000, MT),
            end(1_010, snap(9, 9, false)),
            // Next cycle is complete and numbered by the runtime.
            begin(2_000, ST),
            end(2_020, snap(10, 9, false)),
            begin(3_000, MT),
            end(3_010, snap(10, 10, false)),
        ],
    );
    assert_eq!(recs[0], stw(MT, 1_000, 10, Some(9)));
    let g = gcs(&recs);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cycle, 10);
    assert_eq!(m.diagnostics().mark_terms_without_cycle, 1);
}

#[test]
fn unknown_snapshot_fields_complete_lazily_with_own_numbering() {
    let unknown = RuntimeSnapshot::default();
    let mut m = Model::new();
    let mut recs = run(
        &mut m,
        &[
            begin(100, ST),
            end(120, unknown),
            begin(1_000, MT),
            end(1_010, unknown),
            // Restart: the second mark termination is the real one.
            begin(1_500, MT),
            end(1_530, unknown),
        ],
    );
    assert!(gcs(&recs).is_empty(), "cannot know it is complete yet");
    // The next sweep termination's begin completes cycle 1.
    let at_next = m.apply(&begin(5_000, ST));
    let g = gcs(&at_next);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cycle, 1);
    assert_eq!(g[0].pause_ns, 20 + 10 + 30);
    assert_eq!(g[0].mark_term_ns, 30);
    assert_eq!(g[0].end_ns, 1_530);
    assert_eq!(g[0].runtime_init_ns, None);
    assert!(m.diagnostics().relative_numbering);
    recs.extend(at_next);
    // Cycle 2 is completed by finish().
    recs.extend(run(
        &mut m,
        &[end(5_020, unknown), begin(6_000, MT), end(6_010, unknown)],
    ));
    let fin = m.finish();
    let g = gcs(&fin);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cycle, 2);
    assert!(matches!(fin.last(), Some(Record::Summary(s)) if s.cycles == 2));
    assert_eq!(
        stws(&recs).iter().map(|s| s.cycle).collect::<Vec<_>>(),
        vec![Some(1), Some(1), Some(1), Some(2), Some(2)]
    );
}

#[test]
fn number_from_numgc_when_cycles_unknown() {
    let s = |n: u32| RuntimeSnapshot {
        gc_cycles: None,
        ..snap(0, n, false)
    };
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            begin(100, ST),
            end(120, s(41)),
            begin(500, MT),
            end(510, s(42)),
        ],
    );
    assert_eq!(gcs(&recs)[0].cycle, 42);
    assert!(!m.diagnostics().relative_numbering);
}

#[test]
fn incomplete_cycle_is_never_reported() {
    let mut m = Model::new();
    let mut recs = run(
        &mut m,
        &[
            begin(100, ST),
            end(120, snap(1, 0, false)),
            // Restart attempt only (numgc still 0), then the trace ends.
            begin(500, MT),
            end(510, snap(1, 0, false)),
        ],
    );
    recs.extend(m.finish());
    assert!(gcs(&recs).is_empty());
    assert_eq!(m.diagnostics().discarded_cycles, 1);
    assert!(matches!(recs.last(), Some(Record::Summary(s)) if s.cycles == 0));
}

#[test]
fn orphan_end_and_dropped_begin() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            // Attached in the middle of a stop.
            end(50, snap(1, 0, false)),
            begin(100, StwReason::Gomaxprocs),
            // Its end was lost.
            begin(200, StwReason::ReadMemStats),
            end(260, snap(1, 0, false)),
        ],
    );
    assert_eq!(recs, vec![stw(StwReason::ReadMemStats, 200, 60, None)]);
    let d = m.diagnostics();
    assert_eq!(d.orphan_stw_ends, 1);
    assert_eq!(d.dropped_stw_begins, 1);
    m.set_lost_events(3);
    // Orphans are not lost events.
    assert_eq!(m.summary().lost_events, 3);
}

#[test]
fn negative_duration_saturates() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            begin(100, StwReason::ReadMemStats),
            end(90, snap(1, 0, false)),
        ],
    );
    assert_eq!(recs, vec![stw(StwReason::ReadMemStats, 100, 0, None)]);
}

#[test]
fn runtime_numbering_mismatch_discards_cycle() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            begin(100, ST),
            end(120, snap(1, 0, false)),
            // Cycle 1's mark termination and cycle 2's sweep termination were lost.
            begin(900, MT),
            end(910, snap(2, 2, false)),
        ],
    );
    assert!(gcs(&recs).is_empty());
    assert_eq!(stws(&recs)[1].cycle, Some(2));
    assert_eq!(m.diagnostics().discarded_cycles, 1);
}

#[test]
fn percentiles_over_all_stops() {
    let mut m = Model::new();
    assert_eq!(m.summary().pause_p50_ns, None);
    assert_eq!(m.summary().pause_max_ns, None);
    let mut evs = Vec::new();
    // 100 non-GC stops of 1..=100 µs.
    for i in 1..=100u64 {
        let t = i * 1_000_000;
        evs.push(begin(t, StwReason::ReadMemStats));
        evs.push(end(t + i * 1_000, snap(1, 0, false)));
    }
    run(&mut m, &evs);
    let s = m.summary();
    let within = |got: Option<u64>, exact: u64| {
        let got = got.unwrap_or(0) as f64;
        (got - exact as f64).abs() / exact as f64 <= 0.01
    };
    assert!(within(s.pause_p50_ns, 50_000), "{s:?}");
    assert!(within(s.pause_p99_ns, 99_000), "{s:?}");
    assert_eq!(s.pause_max_ns, Some(100_000));
    assert_eq!(s.cycles, 0);
    assert_eq!(s.alloc_bytes, None);
}

#[test]
fn finish_emits_exactly_one_summary_last() {
    let mut m = Model::new();
    run(&mut m, &normal_cycle());
    m.set_lost_events(7);
    let fin = m.finish();
    assert_eq!(
        fin.iter()
            .filter(|r| matches!(r, Record::Summary(_)))
            .count(),
        1
    );
    assert!(matches!(fin.last(), Some(Record::Summary(s)) if s.lost_events == 7));
}

#[test]
fn old_go_mark_termination_ends_at_runtime_t_end() {
    // Go < 1.22: the runtime ends the pause at work.tEnd, before restarting the world.
    let mut m = Model::new();
    let mut last = snap(1, 1, false);
    last.gc_end_ns = Some(2_600);
    let recs = run(
        &mut m,
        &[
            begin(1_000, ST),
            end(1_100, snap(1, 0, false)),
            begin(2_000, MT),
            end(2_900, last),
        ],
    );
    let g = gcs(&recs);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].end_ns, 2_600);
    assert_eq!(g[0].mark_term_ns, 600);
    assert_eq!(g[0].pause_ns, 100 + 600);
    // A stale tEnd (from the previous cycle) is ignored.
    let mut stale = snap(2, 2, false);
    stale.gc_end_ns = Some(2_600);
    let recs = run(
        &mut m,
        &[
            begin(5_000, ST),
            end(5_100, snap(2, 1, false)),
            begin(6_000, MT),
            end(6_300, stale),
        ],
    );
    assert_eq!(gcs(&recs)[0].mark_term_ns, 300);
}

fn sample(ts_ns: u64, total: Option<u64>, gogc: Option<i32>, procs: Option<u32>) -> TraceEvent {
    TraceEvent::Sample {
        ts_ns,
        total_bytes: total,
        settings: Settings {
            gogc,
            memory_limit: gogc.map(|_| i64::MAX),
            gomaxprocs: procs,
        },
        total_objects: None,
        large: None,
    }
}

/// Settings are reported when first read and when they change, never repeated; an
/// unknown field keeps its last value; a sample without the counter still says them.
#[test]
fn settings_reported_when_known_and_when_changed() {
    let mut m = Model::new();
    let recs = run(
        &mut m,
        &[
            sample(10, None, None, None),
            sample(20, Some(1 << 20), Some(100), Some(4)),
            sample(30, Some(2 << 20), Some(100), Some(4)),
            sample(40, Some(3 << 20), None, Some(4)),
            sample(50, None, Some(-1), Some(2)),
        ],
    );
    let settings: Vec<&SettingsRecord> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Settings(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(
        settings,
        [
            &SettingsRecord {
                ts_ns: 20,
                gogc: Some(100),
                memory_limit_bytes: Some(i64::MAX),
                gomaxprocs: Some(4),
            },
            &SettingsRecord {
                ts_ns: 50,
                gogc: Some(-1),
                memory_limit_bytes: Some(i64::MAX),
                gomaxprocs: Some(2),
            },
        ]
    );
    let allocs = recs
        .iter()
        .filter(|r| matches!(r, Record::Alloc(_)))
        .count();
    assert_eq!(allocs, 3);
}

/// The runtime's object count sets the sampled objects total, over the window of the byte
/// counter: it counts only when the first reading had it too.
#[test]
fn sampled_objects_total_is_the_runtime_count_over_the_bytes_window() {
    let batch = crate::decode::events::AllocBatch {
        ts_ns: 10,
        sampled: true,
        objects: 10,
        bytes: 160,
        by_class: vec![(16, 10)],
        ..Default::default()
    };
    let reading = |ts_ns: u64, bytes: u64, objects: Option<u64>| TraceEvent::Sample {
        ts_ns,
        total_bytes: Some(bytes),
        settings: Settings {
            gomaxprocs: Some(2),
            ..Settings::default()
        },
        total_objects: objects,
        large: None,
    };
    let mut m = Model::new();
    m.apply(&reading(1, 1_000, Some(100)));
    m.apply(&TraceEvent::Allocs(Box::new(batch.clone())));
    m.apply(&reading(2, 1_000 + 1_600_000, Some(100 + 1_000_000)));
    let (types, _) = m.allocs().snapshot();
    assert_eq!((types.objects, types.bytes), (1_000_000, 1_600_000));
    // A bound, not a statistical error: two Ps' caches against a million objects.
    assert_eq!(types.objects_error_permille, Some(30));
    assert_eq!(m.summary().alloc_objects, Some(1_000_000));
    // First reading without the count: the bursts' estimate (objects per byte).
    let mut m = Model::new();
    m.apply(&reading(1, 1_000, None));
    m.apply(&TraceEvent::Allocs(Box::new(batch)));
    m.apply(&reading(2, 1_000 + 1_600_000, Some(1_000_000)));
    assert_eq!(m.allocs().totals(), (100_000, 1_600_000));
}

/// The end of a trace snapshots the allocation aggregates only when batches came after
/// the last snapshot: an identical second snapshot would be judged as fresh evidence
/// (the code-level findings need two judgements in a row).
#[test]
fn the_final_allocation_snapshot_is_owed_only_for_new_batches() {
    let batch = |ts_ns: u64| {
        TraceEvent::Allocs(Box::new(crate::decode::events::AllocBatch {
            ts_ns,
            objects: 1,
            bytes: 16,
            by_class: vec![(16, 1)],
            ..Default::default()
        }))
    };
    let snapshots = |recs: &[Record]| {
        recs.iter()
            .filter(|r| matches!(r, Record::AllocSites(_)))
            .count()
    };
    // One batch: no periodic snapshot yet, so the end owes one.
    let mut m = Model::new();
    assert_eq!(snapshots(&m.apply(&batch(1))), 0);
    assert_eq!(snapshots(&m.finish()), 1);
    // A batch 5 s on makes a periodic snapshot; nothing after it: none at the end.
    let mut m = Model::new();
    m.apply(&batch(1));
    assert_eq!(snapshots(&m.apply(&batch(5_000_000_001))), 1);
    assert_eq!(snapshots(&m.finish()), 0);
    // One more batch after it: the end owes one again.
    let mut m = Model::new();
    m.apply(&batch(1));
    m.apply(&batch(5_000_000_001));
    m.apply(&batch(5_000_000_002));
    assert_eq!(snapshots(&m.finish()), 1);
    // No allocation probes at all: no snapshot.
    assert_eq!(snapshots(&Model::new().finish()), 0);
}
