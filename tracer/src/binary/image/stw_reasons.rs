//! Why the Go runtime stops the world: the reasons as this tracer knows them
//! ([`StwReason`]: the runtime's codes and its own words for them), and the runtime's own
//! names of them, `runtime.stwReasonStrings` (Go 1.21+: `var stwReasonStrings =
//! [...]string{stwUnknown: "unknown", ...}`), read from the binary. Decoding a stop's `stwReason` code assumes the numbering we know; for a
//! Go release newer than any we checked, this table says whether that still holds.
//!
//! The array is in `.data` (strings hold pointers): found by its symbol when `.symtab`
//! exists, else as the string headers whose first two entries are "unknown" and
//! "GC mark termination" (the runtime's first two reasons since Go 1.21).

use super::elf::{read_uint, ElfInfo};
use super::moduledata::Memory;

/// Why the world was stopped: the runtime's `stwReason` (Go 1.21+), or inferred from
/// the caller on older versions. The strings are the runtime's own (`stwReasonStrings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StwReason {
    Unknown,
    GcMarkTerm,
    GcSweepTerm,
    WriteHeapDump,
    GoroutineProfile,
    GoroutineProfileCleanup,
    AllGoroutinesStackTrace,
    ReadMemStats,
    AllThreadsSyscall,
    Gomaxprocs,
    StartTrace,
    StopTrace,
    /// A code this tracer does not know (a newer Go); kept so nothing is lost.
    Other(u8),
}

impl StwReason {
    /// From the runtime's `stwReason` code (Go 1.21+).
    pub fn from_code(code: u8) -> StwReason {
        use StwReason::*;
        match code {
            0 => Unknown,
            1 => GcMarkTerm,
            2 => GcSweepTerm,
            3 => WriteHeapDump,
            4 => GoroutineProfile,
            5 => GoroutineProfileCleanup,
            6 => AllGoroutinesStackTrace,
            7 => ReadMemStats,
            8 => AllThreadsSyscall,
            9 => Gomaxprocs,
            10 => StartTrace,
            11 => StopTrace,
            n => Other(n),
        }
    }

    /// The runtime's own wording (runtime/proc.go `stwReasonStrings`).
    pub fn as_str(self) -> &'static str {
        use StwReason::*;
        match self {
            Unknown => "unknown",
            GcMarkTerm => "GC mark termination",
            GcSweepTerm => "GC sweep termination",
            WriteHeapDump => "write heap dump",
            GoroutineProfile => "goroutine profile",
            GoroutineProfileCleanup => "goroutine profile cleanup",
            AllGoroutinesStackTrace => "all goroutines stack trace",
            ReadMemStats => "read mem stats",
            AllThreadsSyscall => "AllThreadsSyscall",
            Gomaxprocs => "GOMAXPROCS",
            StartTrace => "start trace",
            StopTrace => "stop trace",
            Other(_) => "other",
        }
    }

    /// From the runtime's own words: `stwReasonStrings` (Go 1.21+) or the string Go
    /// 1.19–1.20 pass to `stopTheWorld(reason string)`, mapped to the 1.21+ vocabulary
    /// (1.21 renamed them when it made them codes). Unknown text is [`StwReason::Unknown`].
    pub fn from_text(text: &[u8]) -> StwReason {
        use StwReason::*;
        match text {
            b"GC mark termination" => GcMarkTerm,
            b"GC sweep termination" => GcSweepTerm,
            b"write heap dump" => WriteHeapDump,
            b"profile" | b"goroutine profile" => GoroutineProfile,
            b"profile cleanup" | b"goroutine profile cleanup" => GoroutineProfileCleanup,
            b"stack trace" | b"all goroutines stack trace" => AllGoroutinesStackTrace,
            b"read mem stats" => ReadMemStats,
            b"doAllThreadsSyscall" | b"AllThreadsSyscall" => AllThreadsSyscall,
            b"GOMAXPROCS" => Gomaxprocs,
            b"start tracing" | b"start trace" => StartTrace,
            b"stop tracing" | b"stop trace" => StopTrace,
            _ => Unknown,
        }
    }

    /// Whether the stop belongs to a GC cycle.
    pub fn is_gc(self) -> bool {
        matches!(self, StwReason::GcMarkTerm | StwReason::GcSweepTerm)
    }
}

/// Entries read at most (the runtime has a dozen or so).
const MAX_ENTRIES: usize = 64;
const FIRST: &str = "unknown";
const SECOND: &str = "GC mark termination";

/// The array's strings, in code order, up to the first entry that is not a plausible
/// name; `None` when no such array is found.
pub(crate) fn read(data: &[u8], info: &ElfInfo, symbol: Option<u64>) -> Option<Vec<String>> {
    let mem = Memory::new(data, info);
    let string_at = |addr: u64| -> Option<String> {
        let ptr = mem.ptr(data, addr)?;
        let len = read_uint(mem.bytes(data, addr.checked_add(8)?, 8)?, 0, 8)?;
        if !(1..=64).contains(&len) {
            return None;
        }
        let s = std::str::from_utf8(mem.bytes(data, ptr, len)?).ok()?;
        s.bytes()
            .all(|b| (0x20..0x7f).contains(&b))
            .then(|| s.to_string())
    };
    let start = match symbol {
        Some(a) => a,
        None => {
            let s = info.section(".data")?;
            let mut found = None;
            let mut addr = s.addr.checked_add((8 - s.addr % 8) % 8)?;
            let end = s.addr.checked_add(s.size)?;
            while addr.checked_add(32)? <= end {
                if string_at(addr).as_deref() == Some(FIRST)
                    && string_at(addr + 16).as_deref() == Some(SECOND)
                {
                    found = Some(addr);
                    break;
                }
                addr += 8;
            }
            found?
        }
    };
    let mut out = Vec::new();
    for i in 0..MAX_ENTRIES as u64 {
        match string_at(start.checked_add(i * 16)?) {
            Some(s) => out.push(s),
            None => break,
        }
    }
    (out.first().map(String::as_str) == Some(FIRST)).then_some(out)
}
