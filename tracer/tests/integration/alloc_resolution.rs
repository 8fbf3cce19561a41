//! Allocation-profile resolution checked against the Go runtime itself.
//!
//! A program built with every installed toolchain (amd64: plain, stripped, PIE, stripped
//! PIE, and externally linked PIE when a C compiler exists) prints, for values of many
//! kinds of types, the address of the type descriptor (the type word of an `interface{}`)
//! and `reflect.TypeOf(v).String()`; and for several call sites (plain, inlined, method,
//! closure) `runtime.Caller(0)`'s pc, `runtime.FuncForPC(pc).Name()`, file and line plus
//! the inline-expanded frames from `runtime.CallersFrames`. Our answers from the file alone
//! must match. PIE runs are randomised, so the program also prints `main.main`'s runtime
//! address and we subtract the load bias.
//!
//! The pprof writer is checked by `go tool pprof -top` reading what we write.

// Helpers of a test crate: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gobuild::{Flavor, Toolchain};
use tracer::binary::{Frame, GoBinary};
use tracer::output::pprof::{write_alloc_profile, AllocSample};

use crate::harness::gobuild;

const PROGRAM: &str = r#"package main

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"unsafe"
)

type node struct {
	next *node
	val  int
}

type myInt int

type pair[K comparable, V any] struct {
	k K
	v V
}

type shape interface{ area() float64 }

type square struct{ side float64 }

func (s square) area() float64 { return s.side * s.side }

// typeWord is the first word of an empty interface: the *abi.Type of the dynamic value.
func typeWord(v any) uintptr {
	return (*[2]uintptr)(unsafe.Pointer(&v))[0]
}

func printType(v any) {
	fmt.Printf("TYPE\t%x\t%s\n", typeWord(v), reflect.TypeOf(v).String())
}

// printPC prints a call site as runtime.Caller saw it, then the whole logical stack at
// that PC (inlined functions expanded) as CallersFrames gives it for the return address.
func printPC(pc uintptr, file string, line int) {
	fmt.Printf("PC\t%x\t%s\t%s\t%d\n", pc, runtime.FuncForPC(pc).Name(), file, line)
	// The trailing 0 makes CallersFrames expand the inlined frames at pc (it only does
	// so when more PCs follow); it yields no frame itself.
	frames := runtime.CallersFrames([]uintptr{pc + 1, 0})
	for {
		f, more := frames.Next()
		if f.Function == "" {
			break
		}
		fmt.Printf("FRAME\t%x\t%s\t%s\t%d\n", pc, f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
}

//go:noinline
func plainSite() {
	pc, file, line, _ := runtime.Caller(0)
	printPC(pc, file, line)
}

// inlinedSite is small enough to be inlined into its callers.
func inlinedSite() (uintptr, string, int) {
	pc, file, line, _ := runtime.Caller(0)
	return pc, file, line
}

//go:noinline
func (n *node) method() {
	pc, file, line, _ := runtime.Caller(0)
	printPC(pc, file, line)
}

//go:noinline
func callsInlined() {
	printPC(inlinedSite())
}

// stackSite and callsStack are small enough to be inlined (into each other and main).
// runtime.Callers (in printStack, skipping itself and printStack) expands inlined frames in every Go version, unlike CallersFrames for a
// lone PC before Go 1.23, so this prints the full logical stack at a PC that lies in
// code inlined two levels deep.
func stackSite() {
	printStack()
}

func callsStack() {
	stackSite()
}

//go:noinline
func printStack() {
	var buf [16]uintptr
	pcs := buf[:runtime.Callers(2, buf[:])]
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Printf("STACK\t%x\t%s\t%s\t%d\n", pcs[0]-1, f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
}

func main() {
	// Runtime address of main.main, so the reader can compute a PIE load bias.
	fmt.Printf("MAIN\t%x\n", reflect.ValueOf(main).Pointer())
	printType(&node{})
	printType(node{})
	printType([]byte("x"))
	printType([]int{1})
	printType(map[string]int{})
	printType(map[int]*node{})
	printType("s")
	printType(42)
	printType(myInt(1))
	printType(&[]string{})
	printType(struct {
		a int
		b string
	}{})
	printType([4]uint16{})
	printType(make(chan int))
	printType(func(int) string { return "" })
	printType(errors.New("e"))
	printType(pair[int, string]{})
	printType(shape(square{}))
	printType(3.5)

	pc, file, line, _ := runtime.Caller(0)
	printPC(pc, file, line)
	plainSite()
	printPC(inlinedSite())
	callsInlined()
	(&node{}).method()
	callsStack()
	func() {
		pc, file, line, _ := runtime.Caller(0)
		printPC(pc, file, line)
	}()
}
"#;

struct Build {
    /// `go env GOVERSION`.
    version: String,
    /// "amd64", or "arm64": that cannot run here, and is checked against its `.symtab`
    /// instead (plain builds only).
    goarch: &'static str,
    flavor: Flavor,
    path: PathBuf,
}

impl Build {
    /// Whether it runs here (amd64), so the program's own answers can be had.
    fn runs(&self) -> bool {
        self.goarch == "amd64"
    }
}

const WORK: &str = "alloc_resolution";

fn work_dir() -> PathBuf {
    gobuild::work_dir(WORK)
}

fn go_cmd(go: &Path) -> Command {
    gobuild::go_cmd(go, &work_dir())
}

fn toolchains() -> Vec<Toolchain> {
    gobuild::matrix(&work_dir())
}

fn builds() -> &'static [Build] {
    static B: OnceLock<Vec<Build>> = OnceLock::new();
    B.get_or_init(|| {
        let dir = work_dir();
        let src = gobuild::source(&dir, PROGRAM, "alloctest");
        let have_cc = gobuild::have_cc();
        let mut out = Vec::new();
        let mut planned = Vec::new();
        for tc in toolchains() {
            let targets = Flavor::ALL
                .into_iter()
                .map(|f| ("amd64", f))
                .chain([("arm64", Flavor::Plain)]);
            for (goarch, flavor) in targets {
                if flavor.external() && !have_cc {
                    continue;
                }
                let path = dir.join(format!("alloc-{}-{goarch}-{flavor:?}", tc.version));
                planned.push(gobuild::Planned {
                    go: tc.go.clone(),
                    goarch,
                    flavor,
                    out: path.clone(),
                });
                out.push(Build {
                    version: tc.version.clone(),
                    goarch,
                    flavor,
                    path,
                });
            }
        }
        gobuild::build_all(&dir, &src, &planned);
        out
    })
}

/// What one run of the program printed.
#[derive(Default)]
struct Oracle {
    main_addr: u64,
    /// (runtime address of the type descriptor, reflect's string)
    types: Vec<(u64, String)>,
    /// (pc, FuncForPC name, file, line)
    pcs: Vec<(u64, String, String, u32)>,
    /// (pc, CallersFrames' frames at pc, innermost first)
    frames: Vec<(u64, Vec<Frame>)>,
    /// PC inside code inlined two levels deep, and the whole logical stack there.
    stack: Option<(u64, Vec<Frame>)>,
}

fn run(b: &Build) -> Oracle {
    let o = Command::new(&b.path).output().unwrap();
    assert!(o.status.success(), "running {}", b.path.display());
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    let mut out = Oracle::default();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[..] {
            ["MAIN", a] => out.main_addr = hex(a),
            ["TYPE", a, name] => out.types.push((hex(a), name.to_string())),
            ["PC", pc, func, file, l] => {
                out.pcs
                    .push((hex(pc), func.into(), file.into(), l.parse().unwrap()))
            }
            ["FRAME", pc, func, file, l] => {
                let frame = Frame {
                    function: func.into(),
                    file: file.into(),
                    line: l.parse().unwrap(),
                };
                match out.frames.last_mut() {
                    Some((p, fs)) if *p == hex(pc) => fs.push(frame),
                    _ => out.frames.push((hex(pc), vec![frame])),
                }
            }
            ["STACK", pc, func, file, l] => {
                let frame = Frame {
                    function: func.into(),
                    file: file.into(),
                    line: l.parse().unwrap(),
                };
                out.stack
                    .get_or_insert_with(|| (hex(pc), Vec::new()))
                    .1
                    .push(frame);
            }
            _ => panic!("unexpected output line {line:?}"),
        }
    }
    assert!(out.main_addr != 0 && out.types.len() >= 12 && out.pcs.len() >= 6);
    out
}

/// Load bias of the run: where main.main ran minus where the file puts it.
fn bias(bin: &GoBinary, oracle: &Oracle) -> u64 {
    let f = bin.function("main.main").expect("main.main");
    oracle.main_addr.wrapping_sub(f.address)
}

/// Every build that runs here (amd64), each run once: the build, its name for failure
/// messages, the binary opened, what its run printed, and where the run loaded it
/// ([`bias`]).
fn ran() -> impl Iterator<Item = (&'static Build, String, GoBinary, Oracle, u64)> {
    builds().iter().filter(|b| b.runs()).map(|b| {
        let what = format!("{} ({:?})", b.path.display(), b.flavor);
        let bin = GoBinary::open(&b.path).unwrap_or_else(|e| panic!("{e}"));
        let oracle = run(b);
        let bias = bias(&bin, &oracle);
        (b, what, bin, oracle, bias)
    })
}

#[test]
fn type_names_match_reflect() {
    for (b, what, bin, oracle, bias) in ran() {
        if !b.flavor.pie() {
            assert_eq!(bias, 0, "{what}: non-PIE must run at link-time addresses");
        }
        for (addr, name) in &oracle.types {
            let got = bin.type_name(addr.wrapping_sub(bias));
            assert_eq!(
                got.as_deref(),
                Some(name.as_str()),
                "{what}: type at {addr:#x}"
            );
            // Cached answer is the same.
            assert_eq!(
                bin.type_name(addr.wrapping_sub(bias)).as_deref(),
                Some(name.as_str())
            );
        }
        // Not type descriptors: nil, an address in the text, far outside the binary.
        assert_eq!(bin.type_name(0), None, "{what}");
        let main = bin.function("main.main").unwrap();
        assert_eq!(bin.type_name(main.address), None, "{what}");
        assert_eq!(bin.type_name(u64::MAX - 3), None, "{what}");
        eprintln!(
            "{what}: {} type names ok ({})",
            oracle.types.len(),
            b.version
        );
    }
}

#[test]
fn pcs_match_runtime_caller() {
    for (b, what, bin, oracle, bias) in ran() {
        for (pc, func, file, line) in &oracle.pcs {
            let got = bin.symbolize(pc.wrapping_sub(bias));
            let want = Frame {
                function: func.clone(),
                file: file.clone(),
                line: *line,
            };
            assert_eq!(got.as_ref(), Some(&want), "{what}: pc {pc:#x}");
        }
        let mut inlined = 0;
        for (pc, frames) in &oracle.frames {
            let got = bin
                .symbolize_inline(pc.wrapping_sub(bias))
                .unwrap_or_default();
            // Go 1.19's CallersFrames does not expand inlined frames for a lone PC, so
            // what it printed is a prefix of the full logical stack.
            assert!(
                got.starts_with(frames),
                "{what}: pc {pc:#x}: {got:#?} vs {frames:#?}"
            );
            if frames.len() > 1 {
                assert_eq!(&got, frames, "{what}: pc {pc:#x}");
                inlined += 1;
            }
        }
        // CallersFrames expands inlining for a lone PC only since Go 1.23.
        if !["go1.19", "go1.21", "go1.22"]
            .iter()
            .any(|v| b.version.starts_with(v))
        {
            assert!(inlined >= 2, "{what}: expected inlined call sites");
        }
        // stackSite inlined into callsStack inlined into main.main: three logical frames
        // at one physical PC, checked against runtime.Callers in every version.
        let (pc, stack) = oracle.stack.as_ref().expect("STACK lines");
        let got = bin
            .symbolize_inline(pc.wrapping_sub(bias))
            .unwrap_or_default();
        assert_eq!(got.len(), 3, "{what}: {got:#?}");
        assert_eq!(got[..], stack[..3], "{what}");
        assert_eq!(got[2].function, "main.main", "{what}");
        assert_eq!(bin.symbolize(0), None, "{what}");
        assert_eq!(bin.symbolize(u64::MAX), None, "{what}");
    }
}

/// Every function of the program, at its entry and middle, symbolizes to itself (the
/// physical frame is last), cross-checking the functab search against `.symtab`; and
/// sweeping arbitrary addresses through both lookups never panics.
#[test]
fn every_function_symbolizes_to_itself() {
    for b in builds().iter().filter(|b| b.flavor == Flavor::Plain) {
        let bin = GoBinary::open(&b.path).unwrap_or_else(|e| panic!("{e}"));
        let mut checked = 0;
        for f in bin.functions_with_prefix("") {
            // .symtab names assembly ABI0 entries "x.abi0"; the pclntab says "x".
            let name = f.name.strip_suffix(".abi0").unwrap_or(&f.name);
            // The linker writes "[...]" for the bracketed part (instantiations, array
            // types) in pclntab names, as the runtime prints them, and keeps the '·'
            // that .symtab spells '.'.
            let before_bracket = |s: &str| s.split('[').next().unwrap_or(s).replace('·', ".");
            for pc in [f.address, f.address + f.size / 2] {
                // Skip markers such as runtime.text that share an address with a function.
                if bin.function_at(pc).as_ref() != Some(&f) {
                    continue;
                }
                let frames = bin.symbolize_inline(pc).unwrap_or_default();
                let physical = frames.last().map(|fr| before_bracket(&fr.function));
                assert_eq!(
                    physical,
                    Some(before_bracket(name)),
                    "{}: pc {pc:#x}",
                    b.path.display()
                );
            }
            checked += 1;
        }
        assert!(
            checked > 1000,
            "{}: only {checked} functions",
            b.path.display()
        );
        let main = bin.function("main.main").unwrap();
        for addr in (main.address.saturating_sub(1 << 22)..main.address + (1 << 22)).step_by(4093) {
            let _ = bin.type_name(addr);
            let _ = bin.symbolize_inline(addr);
        }
    }
}

/// arm64 builds cannot run here. `.symtab` has no type descriptor symbols, but it names
/// every itab "go.itab.T,I" ("go:itab." since Go 1.21), whose first two words point at
/// the descriptors of interface I and type T; those names are reflect's strings.
#[test]
fn arm64_type_names_match_itab_symbols() {
    use object::{Object, ObjectSection, ObjectSymbol};
    for b in builds().iter().filter(|b| !b.runs()) {
        let what = b.path.display().to_string();
        let bin = GoBinary::open(&b.path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bin.arch(), tracer::binary::Arch::Aarch64);
        let data = std::fs::read(&b.path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let word = |addr: u64| -> u64 {
            let sect = file
                .sections()
                .find(|s| s.address() <= addr && addr + 8 <= s.address() + s.size())
                .unwrap();
            let bytes = sect.data().unwrap();
            let off = (addr - sect.address()) as usize;
            u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
        };
        let mut checked = 0;
        for sym in file.symbols() {
            let name = sym.name().unwrap_or_default();
            let Some(rest) = name
                .strip_prefix("go.itab.")
                .or_else(|| name.strip_prefix("go:itab."))
            else {
                continue;
            };
            // Interface names have no comma (type names may): split at the last one.
            let (ty, iface) = rest.rsplit_once(',').unwrap();
            let addr = sym.address();
            let (ty, iface) = (short_pkgs(ty), short_pkgs(iface));
            assert_eq!(bin.type_name(word(addr + 8)), Some(ty), "{what}: {name}");
            assert_eq!(bin.type_name(word(addr)), Some(iface), "{what}: {name}");
            checked += 1;
        }
        // Go 1.27 moved itabs into the type data (moduledata.itaboffset) without symbols;
        // there only the functab check below applies.
        if !b.version.starts_with("go1.27") {
            assert!(checked >= 5, "{what}: only {checked} itabs");
        }
        let main = bin.function("main.main").unwrap();
        let frame = bin.symbolize(main.address).unwrap();
        assert_eq!(frame.function, "main.main");
        assert!(frame.file.ends_with("/src/main.go"), "{frame:?}");
    }
}

/// Symbols qualify names by import path ("internal/reflectlite.rtype"), reflect by package
/// name ("reflectlite.rtype"): drop every path prefix up to its last '/'.
fn short_pkgs(s: &str) -> String {
    let mut out = String::new();
    let mut token = String::new();
    for c in s.chars().chain(std::iter::once('\0')) {
        if c.is_alphanumeric() || "_./-".contains(c) {
            token.push(c);
            continue;
        }
        out.push_str(token.rsplit('/').next().unwrap_or(&token));
        token.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

fn frame(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: "/src/app/main.go".into(),
        line,
    }
}

fn pprof_top(go: &Path, profile: &Path, index: &str) -> String {
    let o = go_cmd(go)
        .args(["tool", "pprof", "-top", &format!("-sample_index={index}")])
        .arg(profile)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pprof: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The first row of `go tool pprof -top` output that names a function of the program.
fn first_main_row(top: &str) -> &str {
    top.lines()
        .find(|l| l.contains("main."))
        .unwrap_or_default()
}

#[test]
fn pprof_reads_our_profile() {
    let go = toolchains().pop().expect("a Go toolchain").go;
    let samples = vec![
        AllocSample {
            stack: vec![frame("main.newNode", 12), frame("main.main", 40)],
            objects: 1000,
            bytes: 3 << 20,
        },
        AllocSample {
            stack: vec![
                frame("main.newBuf", 20),
                frame("main.fill", 30),
                frame("main.main", 41),
            ],
            objects: 5000,
            bytes: 1 << 20,
        },
    ];
    let dir = work_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("alloc.pb.gz");
    let file = std::fs::File::create(&path).unwrap();
    write_alloc_profile(
        file,
        &samples,
        512 * 1024,
        1_700_000_000_000_000_000,
        5_000_000_000,
    )
    .unwrap();

    let space = pprof_top(&go, &path, "alloc_space");
    // Total 4 MiB; the top flat entry is newNode with 3 MiB (75%).
    assert!(space.contains("4MB total"), "{space}");
    let first = first_main_row(&space);
    assert!(
        first.contains("main.newNode") && first.contains("3MB") && first.contains("75.00%"),
        "{space}"
    );
    assert!(space.contains("main.newBuf"), "{space}");

    let objects = pprof_top(&go, &path, "alloc_objects");
    assert!(objects.contains("6000 total"), "{objects}");
    let first = first_main_row(&objects);
    assert!(
        first.contains("main.newBuf") && first.contains("5000"),
        "{objects}"
    );
}
