//! Go 1.19–1.20 name their non-GC stops only in the string they pass to
//! `stopTheWorld(reason string)`, which the default plan reads from `m.preemptoff` (issue
//! 13 item 3). Against the binary's own DWARF and a real run on a stripped build, where
//! the offsets come from the runtime's code. Needs root for the run; skips unless
//! GCTRACE_INTEGRATION=1.

use crate::harness;

use harness::GcBuild;
use tracer::binary::GoBinary;
use tracer::probes::{code, plan, StopsMode};

/// `stopTheWorld`'s own store of its argument gives the offsets DWARF gives.
#[test]
fn preemptoff_from_code_equals_dwarf_on_go119() {
    if !harness::integration_enabled() {
        return;
    }
    let toolchain = harness::toolchain("1.19");
    let bin = GoBinary::open(&harness::build_gcload_as(&toolchain, GcBuild::Default))
        .expect("open gcload");
    let dwarf = (
        bin.struct_field_offset("runtime.g", "m"),
        bin.struct_field_offset("runtime.m", "preemptoff"),
    );
    let f = bin.function("runtime.stopTheWorld").expect("stopTheWorld");
    let from_code = code::preemptoff_from_code(&bin, &f);
    assert_eq!(
        from_code.map(|(g, o)| (Some(u64::from(g)), Some(u64::from(o)))),
        Some(dwarf),
        "offsets from stopTheWorld's code vs DWARF"
    );
    let stripped = GoBinary::open(&harness::build_gcload_as(&toolchain, GcBuild::Stripped))
        .expect("open stripped gcload");
    let p = plan(&stripped).expect("plan");
    assert_eq!(p.mode, StopsMode::Cycle, "warnings: {:?}", p.warnings);
    assert_eq!(p.preemptoff, from_code, "warnings: {:?}", p.warnings);
}

/// Every ReadMemStats stop of a stripped Go 1.19 program is named "read mem stats".
#[test]
fn stripped_go119_read_mem_stats_are_named() {
    if !harness::integration_enabled() {
        return;
    }
    let run = harness::traced_run(&harness::toolchain("1.19"), GcBuild::Stripped, "json", &[]);
    let memstats = run.assert_completed();
    let trace = harness::parse_trace(&run.trace_text);
    let named = trace
        .stw
        .iter()
        .filter(|s| s.reason == "read mem stats")
        .count() as u64;
    let unknown = trace.stw.iter().filter(|s| s.reason == "unknown").count();
    assert!(
        named >= memstats.read_mem_stats_calls && memstats.read_mem_stats_calls > 0 && unknown == 0,
        "{named} stops named \"read mem stats\", {unknown} unknown; the workload called \
         ReadMemStats {} times\n{}",
        memstats.read_mem_stats_calls,
        run.diag()
    );
}
