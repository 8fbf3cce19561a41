//! Stripped binaries (`go build -ldflags='-s -w'`): struct offsets from the built-in
//! table and runtime globals located from code, checked against real oracles.
//!
//! `-s -w` removes `.symtab` and DWARF but moves neither code nor data, so each toolchain's
//! test program is built twice and the plain build is the oracle: its `.symtab` addresses
//! must equal what the stripped build recovers from code, its DWARF offsets must equal the
//! table's, and the whole read plan must come out identical.

// Helpers of a test crate: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gobuild::Flavor;
use tracer::binary::layouts::offsets_table;
use tracer::binary::{anchors::globals, Arch, GoBinary, OffsetsSource};
use tracer::probes::plan;
use tracer::probes::plan::read_struct_fields;
use tracer::probes::ReadField;

use crate::harness::gobuild;

struct Pair {
    goarch: &'static str,
    plain: PathBuf,
    stripped: PathBuf,
}

/// The toolchains CI installs; with `GCTRACE_STRIPPED_ALL=1`, every toolchain under
/// /var/cache/gctrace-bpf/go (what `cargo xtask gen-offsets` installs: every release
/// in the offsets table).
fn toolchains(work: &Path) -> Vec<gobuild::Toolchain> {
    if std::env::var_os("GCTRACE_STRIPPED_ALL").is_some_and(|v| v == "1") {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/var/cache/gctrace-bpf/go")
            .expect("/var/cache/gctrace-bpf/go")
            .filter_map(|e| e.ok().map(|e| e.path().join("go/bin/go")))
            .collect();
        dirs.sort();
        gobuild::installed(std::iter::once(gobuild::debian_go()).chain(dirs), work)
    } else {
        gobuild::matrix(work)
    }
}

/// Builds (once per test binary run; cached on disk) plain and stripped programs for
/// every toolchain, amd64 and arm64.
fn pairs() -> &'static Vec<Pair> {
    static P: OnceLock<Vec<Pair>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = gobuild::work_dir("binary_stripped");
        let src = gobuild::source(&dir, gobuild::ALLOCATING_PROGRAM, "hello");
        let mut out = Vec::new();
        for tc in toolchains(&dir) {
            // Everything: amd64 only, to keep the build count down.
            let goarchs: &[&'static str] = if std::env::var_os("GCTRACE_STRIPPED_ALL").is_some() {
                &["amd64"]
            } else {
                &["amd64", "arm64"]
            };
            for &goarch in goarchs {
                let build = |flavor: Flavor| {
                    let kind = if flavor.stripped() {
                        "stripped"
                    } else {
                        "plain"
                    };
                    let path = dir.join(format!("hello-{}-{goarch}-{kind}", tc.version));
                    gobuild::build(&tc.go, &dir, &src, goarch, flavor, &path);
                    path
                };
                out.push(Pair {
                    goarch,
                    plain: build(Flavor::Plain),
                    stripped: build(Flavor::Stripped),
                });
            }
        }
        out
    })
}

/// `addr` as (section name, offset in it). `-s -w` leaves every section's contents
/// alone but can move whole sections: the build settings in `.go.buildinfo` record the
/// ldflags, and on Go 1.19 that pushes the data sections 32 bytes up. So a global's
/// address in the stripped build is its plain-build offset in the same section.
fn section_relative(path: &Path, addr: u64) -> (String, u64) {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.sections()
        .filter(|s| s.kind() != object::SectionKind::Metadata && s.address() != 0)
        .find(|s| (s.address()..s.address() + s.size()).contains(&addr))
        .map(|s| (s.name().unwrap().to_string(), addr - s.address()))
        .unwrap_or_else(|| panic!("{addr:#x} in no section of {}", path.display()))
}

fn open(p: &Path) -> GoBinary {
    GoBinary::open(p).unwrap_or_else(|e| panic!("{e}"))
}

/// The table's offsets equal the plain build's DWARF for every field the tracer reads,
/// and the stripped build gets them from the table.
#[test]
fn table_offsets_equal_dwarf() {
    let wanted = read_struct_fields();
    assert!(wanted.len() > 20, "{wanted:?}");
    for p in pairs() {
        let plain = open(&p.plain);
        let stripped = open(&p.stripped);
        let what = p.stripped.display();
        assert_eq!(plain.offsets_source(), OffsetsSource::Dwarf, "{what}");
        assert_eq!(stripped.offsets_source(), OffsetsSource::Table, "{what}");
        let table = offsets_table::builtin()
            .layouts(stripped.go_version(), stripped.arch())
            .unwrap_or_else(|| panic!("{what}: not in the table"));
        let mut found = 0;
        for (ty, field) in &wanted {
            let dwarf = plain.struct_field_offset(ty, field);
            let tab = table.get(*ty).and_then(|l| l.fields.get(*field)).copied();
            assert_eq!(tab, dwarf, "{what}: {ty}.{field}");
            assert_eq!(
                stripped.struct_field_offset(ty, field),
                dwarf,
                "{what}: {ty}.{field}"
            );
            found += usize::from(dwarf.is_some());
        }
        // Only alternative spellings (maxStackScan before 1.20) may be missing.
        assert!(
            found >= wanted.len() - 1,
            "{what}: {found}/{}",
            wanted.len()
        );
        // Whole layouts too (voting uses every member).
        for (_, ty) in globals::STRUCT_GLOBALS {
            assert_eq!(
                stripped.struct_layout(ty),
                plain.struct_layout(ty),
                "{what}: {ty}"
            );
        }
    }
}

/// Globals located from code in the stripped build equal `.symtab` in the plain build,
/// on both architectures (arm64: ADRP-based addressing).
#[test]
fn recovered_globals_equal_symtab() {
    for p in pairs() {
        let plain = open(&p.plain);
        let stripped = open(&p.stripped);
        let arch = if p.goarch == "amd64" {
            Arch::X86_64
        } else {
            Arch::Aarch64
        };
        assert_eq!(stripped.arch(), arch);
        let what = p.stripped.display();
        assert!(stripped.is_stripped() && !plain.is_stripped(), "{what}");
        let names = globals::STRUCT_GLOBALS
            .iter()
            .map(|(s, _)| *s)
            .chain(globals::SCALAR_GLOBALS.iter().copied());
        for name in names {
            let want = plain
                .data_symbol(name)
                .unwrap_or_else(|| panic!("{name} not in .symtab of {}", p.plain.display()));
            let got = stripped
                .data_symbol(name)
                .unwrap_or_else(|| panic!("{what}: {name} not located"));
            assert_eq!(
                section_relative(&p.stripped, got),
                section_relative(&p.plain, want),
                "{what}: {name} at {got:#x}, plain build {want:#x}"
            );
        }
        assert!(
            stripped.data_symbol_warnings().is_empty(),
            "{what}: {:?}",
            stripped.data_symbol_warnings()
        );
        let votes = stripped.data_symbol_votes();
        assert_eq!(votes.len(), globals::STRUCT_GLOBALS.len(), "{what}");
        for e in votes {
            eprintln!(
                "{what}: {} by {}: {} for, {} against",
                e.symbol, e.method, e.support, e.against
            );
            // Receiver sites: a stray minority at most; field votes: the runner-up base
            // (usually the winner shifted by a word) clearly behind; `&work.full`
            // (`putfull`/`trygetfull`, one or two sites): every site agrees.
            match e.method {
                "lfstack receiver" => {
                    assert!(e.support >= 1 && e.against == 0, "{what}: {e:?}");
                    continue;
                }
                _ => assert!(e.support >= globals::MIN_DISTINCT_FIELDS, "{what}: {e:?}"),
            }
            match e.method {
                "receiver" => assert!(e.support >= 4 * e.against, "{what}: {e:?}"),
                _ => assert!(e.support >= e.against + 3, "{what}: {e:?}"),
            }
        }
        assert_eq!(stripped.data_symbol("runtime.noSuchGlobal"), None);
    }
}

/// A plan's reads as (field, section and offset), comparable between a stripped build
/// and its plain twin, whose data may sit at other addresses. The goroutine count needs
/// the symbol table, so only the plain build has it: left out.
fn reads_by_section(
    path: &Path,
    reads: &[tracer::probes::ReadSlot],
) -> Vec<(tracer::probes::ReadField, (String, u64))> {
    reads
        .iter()
        .filter(|r| !plan::symbols_only(r.field))
        .map(|r| (r.field, section_relative(path, r.address)))
        .collect()
}

/// What stripped binaries are known not to have (each with a warning that says so): the
/// goroutine count and the non-heap memory, which need the symbol table (one warning
/// names both), and on arm64 what is located from amd64
/// code only: the Go 1.19-1.20 stop reasons (`m.preemptoff`) and, on 1.22+, the one-hit
/// non-GC stops (`stopTheWorldContext`; every stop is probed instead).
fn known_gap(warning: &str) -> bool {
    warning.contains("unknown: goroutine count")
}

/// The planner reads the same variables at the same addresses from both builds.
#[test]
fn stripped_plan_reads_like_plain() {
    for p in pairs() {
        let what = p.stripped.display();
        let plain_bin = open(&p.plain);
        let plain = plan(&plain_bin).unwrap();
        let stripped = plan(&open(&p.stripped)).unwrap();
        assert_eq!(
            reads_by_section(&p.stripped, &stripped.reads),
            reads_by_section(&p.plain, &plain.reads),
            "{what}"
        );
        // The default plan's code-located facts equal the plain build's symbol table
        // (`runtime.stopTheWorldContext`, Go 1.22+) and DWARF (`g.m`, `m.preemptoff`,
        // Go 1.19-1.20), on amd64 and arm64 alike.
        assert_eq!(stripped.mode, plain.mode, "{what}");
        assert_eq!(
            stripped.stw_ctx.map(|a| section_relative(&p.stripped, a)),
            plain.stw_ctx.map(|a| section_relative(&p.plain, a)),
            "{what}: stopTheWorldContext"
        );
        assert_eq!(
            stripped.preemptoff, plain.preemptoff,
            "{what}: m.preemptoff"
        );
        // The runtime's object count (`--allocs sample`) is located through DWARF only:
        // three generations of `heapStatsDelta`, 71 counting words from `tinyAllocCount`,
        // 1,176 bytes each (1,168 from Go 1.25, which dropped `inPtrScalarBits`).
        let stride = if plain_bin.go_version().minor >= 25 {
            1168
        } else {
            1176
        };
        assert_eq!(
            plain.heap_stats.map(|h| (h.words, h.stride)),
            Some((71, stride)),
            "{what}: memstats.heapStats"
        );
        assert_eq!(stripped.heap_stats, None, "{what}");
        // The large objects' two slots sit where DWARF puts `largeAlloc` and
        // `largeAllocCount` beside the count's first word (`tinyAllocCount`), and only a
        // plan with that count has them.
        let at = |reads: &[tracer::probes::ReadSlot], f| {
            reads.iter().find(|r| r.field == f).map(|r| r.address)
        };
        let delta = |f| plain_bin.struct_field_offset("runtime.heapStatsDelta", f);
        let tiny = delta("tinyAllocCount").unwrap();
        let base = at(&plain.reads, ReadField::Mallocs).unwrap();
        for (field, name) in [
            (ReadField::LargeAllocBytes, "largeAlloc"),
            (ReadField::LargeAllocObjects, "largeAllocCount"),
        ] {
            let want = base + delta(name).unwrap() - tiny;
            assert_eq!(at(&plain.reads, field), Some(want), "{what}: {name}");
            assert_eq!(at(&stripped.reads, field), None, "{what}: {name}");
        }
        // Only the goroutine count, which needs the symbol table, may be unknown.
        assert!(
            stripped.warnings.iter().all(|w| known_gap(w)),
            "{what}: {:?}",
            stripped.warnings
        );
        let report = tracer::output::inspect::inspect(&p.stripped).unwrap();
        assert_eq!(report.offsets_source, "table", "{what}");
    }
}

/// Leave-one-out, amd64 and arm64: the stripped build analysed as if the table lacked
/// its release derives its offsets from code. Every offset it gives must equal the
/// plain build's DWARF (a wrong number is never acceptable) and every field must be
/// known, on every release of the matrix.
/// The globals located with derived layouts equal `.symtab`.
#[test]
fn leave_one_out_offsets_from_code_equal_dwarf() {
    for p in pairs() {
        let plain = open(&p.plain);
        let stripped = open(&p.stripped).without_table_entry();
        let what = p.stripped.display();
        assert_eq!(stripped.offsets_source(), OffsetsSource::Code, "{what}");
        let fields = plan::fields_read(&plain);
        assert!(fields.len() > 20, "{what}: {fields:?}");
        let mut unknown = Vec::new();
        for (ty, field) in &fields {
            let dwarf = plain.struct_field_offset(ty, field);
            assert!(dwarf.is_some(), "{what}: {ty}.{field} not in DWARF");
            match stripped.struct_field_offset(ty, field) {
                Some(got) => {
                    assert_eq!(Some(got), dwarf, "{what}: {ty}.{field} derived wrong");
                    assert_eq!(
                        stripped.field_source(ty, field),
                        tracer::binary::FieldSource::Code,
                        "{what}"
                    );
                }
                None => {
                    assert_eq!(
                        stripped.field_source(ty, field),
                        tracer::binary::FieldSource::Unknown,
                        "{what}"
                    );
                    unknown.push(format!("{ty}.{field}"));
                }
            }
        }
        eprintln!(
            "{what}: {}/{} fields derived, confirmed by {:?}",
            fields.len() - unknown.len(),
            fields.len(),
            stripped.derived_confirmed_by()
        );
        let plan = plan(&stripped).unwrap();
        // Complete everywhere, also on releases alone in their minor (1.19, 1.21, 1.22:
        // `work` and the pacer fields from their code anchors, the rest from confirmed
        // layouts), and the plan reads what the plain build's plan reads.
        assert!(unknown.is_empty(), "{what}: unknown {unknown:?}");
        let plain_plan = plan::plan(&plain).unwrap();
        assert_eq!(
            reads_by_section(&p.stripped, &plan.reads),
            reads_by_section(&p.plain, &plain_plan.reads),
            "{what}"
        );
    }
}

/// `inspect` on every test binary (plain and stripped, amd64 and arm64, every release)
/// reports every field it reads with a known offset and its source.
#[test]
fn inspect_reports_no_unknown_field() {
    for p in pairs() {
        for path in [&p.plain, &p.stripped] {
            let report = tracer::output::inspect::inspect(path).unwrap();
            let what = path.display();
            assert!(report.fields.len() > 20, "{what}");
            // Analysed on any machine, traceable only on its own architecture, and the
            // text says why not.
            let host = if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "amd64"
            };
            assert_eq!(report.traceable_here, p.goarch == host, "{what}");
            let refused = report
                .warnings
                .iter()
                .any(|w| w.starts_with("cannot be traced on this machine: built for"));
            assert_eq!(refused, p.goarch != host, "{what}: {:?}", report.warnings);
            for f in &report.fields {
                assert!(f.offset.is_some(), "{what}: {} unknown", f.field);
                let want = if path == &p.plain { "dwarf" } else { "table" };
                assert_eq!(f.source, want, "{what}: {}", f.field);
            }
            // Every struct field is known; the goroutine count alone needs the symbol
            // table, and says so.
            let text = tracer::output::inspect::render_text(path, &report);
            let unknown: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("unknown") && !known_gap(l))
                .collect();
            assert!(unknown.is_empty(), "{what}:\n{text}");
        }
    }
}

/// A release missing from the table (simulated by rewriting the build info's version
/// string in a stripped binary): offsets derived from code, confirmed against the
/// same minor's tabulated layouts, and nothing missing.
#[test]
fn unknown_release_without_dwarf_degrades_with_a_warning() {
    let p = pairs().iter().rev().find(|p| p.goarch == "amd64").unwrap();
    let mut data = std::fs::read(&p.stripped).unwrap();
    let real = open(&p.stripped).go_version().raw.clone();
    // Same length, so nothing else moves: "go1.27.3" -> "go1.27.9"-style.
    let mut fake = real.clone().into_bytes();
    *fake.last_mut().unwrap() = b'9';
    let mut replaced = 0;
    for i in 0..data.len().saturating_sub(fake.len()) {
        if data[i..].starts_with(real.as_bytes()) {
            data[i..i + fake.len()].copy_from_slice(&fake);
            replaced += 1;
        }
    }
    assert!(replaced > 0);
    let bin = GoBinary::parse(data, &p.stripped).unwrap();
    let fake = String::from_utf8(fake).unwrap();
    assert_eq!(bin.go_version().raw, fake);
    // Same minor as a tabulated release: its layouts are confirmed by the code.
    assert_eq!(bin.offsets_source(), OffsetsSource::Code);
    let plain = open(&p.plain);
    assert_eq!(
        bin.struct_field_offset("runtime.workType", "cycles"),
        plain.struct_field_offset("runtime.workType", "cycles")
    );
    let plan = plan(&bin).unwrap();
    // Only the goroutine count and the non-heap memory, which need the symbol table,
    // are unknown.
    assert!(
        plan.warnings
            .iter()
            .all(|w| w
                .ends_with("unknown: goroutine count, non-heap memory (memory-limit what-ifs)")),
        "{:?}",
        plan.warnings
    );
}
