//! Stage 3, event decoding: raw kernel events → version-independent [`TraceEvent`]s
//! ([`events`]), and the kernel's allocation maps → [`AllocBatch`](events::AllocBatch)es
//! counted as the runtime counts them ([`alloc_maps`], [`sizeclass`]).
//!
//! The kernel programs copy registers without interpreting them; this is where the Go
//! register ABI of each version is applied. Decoding is a pure function of the event and
//! a [`DecodeSpec`] (which is small and serialisable), so a recording of raw events plus
//! its spec replays exactly like the live run.

use serde::{Deserialize, Serialize};
use tracer_common::{ProbeKind, RawEvent, MAX_READS};

pub(crate) mod alloc_maps;
pub mod events;
pub(crate) mod sizeclass;

use crate::binary::StwReason;
use crate::probes::{ProbePlan, ReadField, StwScheme};
use events::{GcFigures, LargeAllocs, RuntimeSnapshot, Settings, TraceEvent, Trigger};

/// A runtime timestamp passed in a register was taken before the probe fired, so it is
/// trusted only if it lies at most this long before the probe's own clock reading;
/// anything else means the register did not hold what this version's ABI says, and the
/// probe's clock is used instead. (No stop-the-world lasts a minute.)
const MAX_AGE_NS: u64 = 60_000_000_000;
/// Allowance for the runtime's clock read being a hair after ours (different CPUs).
const MAX_AHEAD_NS: u64 = 1_000_000;

/// Everything needed to interpret raw events of one traced process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeSpec {
    pub scheme: StwScheme,
    /// What read slot `i` of an event holds.
    pub reads: Vec<ReadField>,
    /// Run-time address range of `runtime.systemstack` (Go 1.19–1.20 only).
    pub systemstack: Option<(u64, u64)>,
}

impl DecodeSpec {
    /// The spec for `plan` applied to a process with load bias `bias`.
    pub fn new(plan: &ProbePlan, bias: u64) -> DecodeSpec {
        DecodeSpec {
            scheme: plan.scheme,
            reads: plan.reads.iter().map(|r| r.field).collect(),
            systemstack: plan
                .systemstack
                .map(|(lo, hi)| (lo.wrapping_add(bias), hi.wrapping_add(bias))),
        }
    }
}

/// Last sequence number seen per thread id. Thread ids are the kernel's, not an
/// attacker's, so a fast non-keyed hash is enough (SipHash showed in profiles).
type ThreadSeqs = std::collections::HashMap<u32, u32, foldhash::fast::FixedState>;

/// `slot_of` value for a field the spec does not read.
const NOT_READ: u8 = u8::MAX;

/// Stateless apart from counting what it could not use and following each thread's
/// sequence numbers (to notice lost events).
pub struct Decoder {
    spec: DecodeSpec,
    /// Read slot of each [`ReadField`] (indexed by discriminant), [`NOT_READ`] when the
    /// spec has none: the spec's list inverted once, because a world restart decodes
    /// some 25 fields and the decoder runs for every event (tens of thousands a second
    /// for a program that stops the world in a loop).
    slot_of: [u8; ReadField::COUNT],
    undecodable: u64,
    last_seq: ThreadSeqs,
}

impl Decoder {
    pub fn new(spec: DecodeSpec) -> Decoder {
        let mut slot_of = [NOT_READ; ReadField::COUNT];
        // The first slot of a field wins, as a search of the list would find it.
        for (i, field) in spec.reads.iter().enumerate().take(MAX_READS).rev() {
            slot_of[*field as usize] = i as u8;
        }
        Decoder {
            spec,
            slot_of,
            undecodable: 0,
            last_seq: ThreadSeqs::default(),
        }
    }

    /// How many events of this event's thread were lost just before it (0 when none, or
    /// when the event carries no sequence number: user-space samples, old recordings).
    /// Threads count from 1 at attach, so a thread first seen at 3 lost two.
    pub fn missing_before(&mut self, raw: &RawEvent) -> u32 {
        if raw.seq == 0 || raw.kind == ProbeKind::UserSample as u32 {
            return 0;
        }
        let prev = self.last_seq.insert(raw.pid_tgid as u32, raw.seq);
        raw.seq.wrapping_sub(prev.unwrap_or(0)).wrapping_sub(1)
    }

    pub fn spec(&self) -> &DecodeSpec {
        &self.spec
    }

    /// Events that carried values this decoder could not interpret.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }

    /// Decode one raw event; `None` for events with no meaning on this version (counted
    /// in [`Decoder::undecodable`] when they should have had one).
    pub fn decode(&mut self, raw: &RawEvent) -> Option<TraceEvent> {
        let Some(kind) = ProbeKind::from_u32(raw.kind) else {
            self.undecodable += 1;
            return None;
        };
        match kind {
            ProbeKind::GcStart => match Trigger::from_kind(raw.regs[0]) {
                Some(trigger) => Some(TraceEvent::GcRequested {
                    ts_ns: raw.ktime_ns,
                    trigger,
                }),
                None => {
                    self.undecodable += 1;
                    None
                }
            },
            ProbeKind::StopTheWorld => {
                let reason = match self.spec.scheme {
                    // `reason stwReason` (uint8) is the first argument.
                    StwScheme::ReasonArg => StwReason::from_code(raw.regs[0] as u8),
                    StwScheme::CallerInferred => self.infer_reason(raw),
                    StwScheme::WorldStop => {
                        self.undecodable += 1;
                        return None;
                    }
                };
                Some(TraceEvent::StwBegin {
                    ts_ns: raw.ktime_ns,
                    reason,
                })
            }
            ProbeKind::StartTheWorld => {
                if self.spec.scheme != StwScheme::WorldStop {
                    self.undecodable += 1;
                    return None;
                }
                // startTheWorldWithSema(now int64, w worldStop): RAX = now, then the
                // struct's fields: RBX = reason (uint8), RCX = startedStopping (Go 1.23+;
                // `start` in 1.22, same meaning and register).
                let reason = StwReason::from_code(raw.regs[1] as u8);
                let ts_ns = runtime_time(raw.regs[2], raw.ktime_ns);
                Some(TraceEvent::StwBegin { ts_ns, reason })
            }
            ProbeKind::StartTheWorldReturn => Some(TraceEvent::StwEnd {
                // The int64 result (`now`, the runtime's own end of the pause) is in RAX.
                ts_ns: runtime_time(raw.regs[0], raw.ktime_ns),
                snapshot: self.snapshot(raw),
            }),
            ProbeKind::StopPaired => {
                if self.spec.scheme != StwScheme::WorldStop {
                    self.undecodable += 1;
                    return None;
                }
                // The return's event, with the entry's reason and start registers in
                // regs[1] and regs[2] and the entry's clock in regs[3].
                Some(TraceEvent::Stw {
                    begin_ns: runtime_time(raw.regs[2], raw.regs[3]),
                    reason: StwReason::from_code(raw.regs[1] as u8),
                    end_ns: runtime_time(raw.regs[0], raw.ktime_ns),
                    snapshot: self.snapshot(raw),
                })
            }
            ProbeKind::GcDone => Some(TraceEvent::GcDone {
                ts_ns: raw.ktime_ns,
                snapshot: self.snapshot(raw),
                mark_stop_start: (raw.regs[4] == 1).then_some(raw.regs[5]),
            }),
            ProbeKind::StopNamed => {
                // regs[0] = length of m.preemptoff, regs[1..6] its first 40 bytes.
                let mut text = [0u8; 40];
                for (i, word) in raw.regs[1..].iter().enumerate() {
                    text[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
                }
                let len = usize::try_from(raw.regs[0]).unwrap_or(usize::MAX);
                let reason = text
                    .get(..len)
                    .map_or(StwReason::Unknown, StwReason::from_text);
                Some(TraceEvent::StwBegin {
                    ts_ns: raw.ktime_ns,
                    reason,
                })
            }
            // Allocation probes aggregate in kernel maps and never emit events; exec
            // events go to discovery, never to a process's pipeline.
            ProbeKind::Alloc | ProbeKind::Exec => {
                self.undecodable += 1;
                None
            }
            // A sample with nothing readable (the target exited between two samples)
            // has nothing to say; nothing was lost.
            ProbeKind::UserSample => {
                let total_bytes = self.read(raw, ReadField::TotalAlloc);
                let settings = self.sampled_settings(raw);
                (total_bytes.is_some() || !settings.is_empty()).then_some(TraceEvent::Sample {
                    ts_ns: raw.ktime_ns,
                    total_bytes,
                    settings,
                    total_objects: self.read(raw, ReadField::Mallocs),
                    large: self.large(raw),
                })
            }
        }
    }

    fn read(&self, raw: &RawEvent, field: ReadField) -> Option<u64> {
        let i = usize::from(self.slot_of[field as usize]);
        if i >= raw.reads.len() || raw.read_ok & (1u64 << i) == 0 {
            return None;
        }
        Some(raw.reads[i])
    }

    fn snapshot(&self, raw: &RawEvent) -> RuntimeSnapshot {
        // Each read is 8 bytes little-endian; narrower fields live in the low bytes.
        RuntimeSnapshot {
            gc_cycles: self.read(raw, ReadField::GcCycles).map(|v| v as u32),
            num_gc: self.read(raw, ReadField::NumGc).map(|v| v as u32),
            user_forced: self.read(raw, ReadField::UserForced).map(|v| v & 0xff != 0),
            runtime_init_ns: self.read(raw, ReadField::RuntimeInit).filter(|v| *v != 0),
            settings: self.settings(raw),
            gc_end_ns: self.read(raw, ReadField::GcEnd).filter(|v| *v != 0),
            gc: self.figures(raw),
            total_alloc: self.read(raw, ReadField::TotalAlloc),
            pause_ns: self.read(raw, ReadField::PauseNs),
            num_forced_gc: self.read(raw, ReadField::NumForcedGc).map(|v| v as u32),
            goroutines: self.goroutines(raw),
            mallocs: self.read(raw, ReadField::Mallocs),
            large: self.large(raw),
        }
    }

    fn large(&self, raw: &RawEvent) -> Option<LargeAllocs> {
        Some(LargeAllocs {
            bytes: self.read(raw, ReadField::LargeAllocBytes)?,
            objects: self.read(raw, ReadField::LargeAllocObjects)?,
        })
    }

    /// GOGC, GOMEMLIMIT and GOMAXPROCS of a user-space sample, trusted only once the
    /// runtime has set them: `schedinit` runs `gcinit` (GOGC, GOMEMLIMIT) before
    /// `procresize` (GOMAXPROCS) and before `runtime.main` sets `runtimeInitTime`, so a
    /// non-zero `gomaxprocs` or `runtimeInitTime` in the same sample means they are the
    /// program's. A launched program sampled before its first instruction has zeros
    /// there, which are not its settings.
    fn sampled_settings(&self, raw: &RawEvent) -> Settings {
        let settings = self.settings(raw);
        let initialised = settings.gomaxprocs.is_some()
            || self
                .read(raw, ReadField::RuntimeInit)
                .is_some_and(|v| v != 0);
        if initialised {
            settings
        } else {
            Settings::default()
        }
    }

    /// GOGC, GOMEMLIMIT and GOMAXPROCS as read (a zero `gomaxprocs`, before
    /// `procresize`, is unknown). Each 8-byte read holds a narrower field in its low bytes.
    fn settings(&self, raw: &RawEvent) -> Settings {
        Settings {
            gogc: self
                .read(raw, ReadField::GcPercent)
                .map(|v| v as u32 as i32),
            memory_limit: self.read(raw, ReadField::MemoryLimit).map(|v| v as i64),
            gomaxprocs: self
                .read(raw, ReadField::Gomaxprocs)
                .map(|v| v as u32)
                .filter(|v| *v != 0),
        }
    }

    /// `gcount()` without its per-P term: `allglen` minus the global free lists and the
    /// system goroutines. Each P also caches up to 64 dead goroutines (`pp.gFree`), which
    /// `runtime.NumGoroutine()` subtracts too; they sit behind `allp` and are not read,
    /// so this is `NumGoroutine()` plus the dead goroutines cached on Ps.
    fn goroutines(&self, raw: &RawEvent) -> Option<u64> {
        let int32 = |f| self.read(raw, f).map(|v| i64::from(v as u32 as i32));
        let all = self.read(raw, ReadField::Allglen)? as i64;
        let no_stack = if self.slot_of[ReadField::SchedGFreeNoStack as usize] == NOT_READ {
            0
        } else {
            int32(ReadField::SchedGFreeNoStack)?
        };
        let n = all - int32(ReadField::SchedGFree)? - no_stack - int32(ReadField::SchedNgsys)?;
        // As gcount: the variables change concurrently; at least one goroutine runs.
        Some(n.max(1) as u64)
    }

    fn figures(&self, raw: &RawEvent) -> GcFigures {
        let r = |f| self.read(raw, f);
        let int32 = |f| r(f).map(|v| v as u32);
        let background = match (
            r(ReadField::DedicatedMarkTime),
            r(ReadField::FractionalMarkTime),
        ) {
            (Some(d), Some(f)) => Some(d.wrapping_add(f)),
            _ => None,
        };
        GcFigures {
            heap0: r(ReadField::Heap0),
            heap1: r(ReadField::Heap1),
            heap2: r(ReadField::Heap2),
            heap_goal: r(ReadField::HeapGoal),
            stacks: r(ReadField::StackScan),
            globals: r(ReadField::GlobalsScan),
            maxprocs: int32(ReadField::MaxProcs),
            stwprocs: int32(ReadField::StwProcs),
            // gctrace: util := int(memstats.gc_cpu_fraction * 100)
            cpu_percent: r(ReadField::GcCpuFraction)
                .map(f64::from_bits)
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| (f * 100.0) as u32),
            assist_ns: r(ReadField::AssistTime),
            background_ns: background,
            idle_ns: r(ReadField::IdleMarkTime),
            t_sweep_term: r(ReadField::TSweepTerm),
            t_mark: r(ReadField::TMark),
            t_mark_term: r(ReadField::TMarkTerm),
            non_heap: self.non_heap(raw),
        }
    }

    /// The non-heap memory as `memoryLimitHeapGoal` computes it (Go 1.19–1.27):
    /// `mappedReady − heapFree − heapAlloc`, `heapAlloc = totalAlloc − totalFree`. The
    /// four words are read one after another while the program runs; the runtime
    /// rereads them until `heapFree + heapAlloc ≤ mappedReady`, so a read that fails
    /// that check is torn and unknown.
    fn non_heap(&self, raw: &RawEvent) -> Option<u64> {
        let r = |f| self.read(raw, f);
        let alloc = r(ReadField::TotalAlloc)?.checked_sub(r(ReadField::TotalFree)?)?;
        let used = r(ReadField::HeapFree)?.checked_add(alloc)?;
        r(ReadField::MappedReady)?.checked_sub(used)
    }

    /// Go 1.19–1.20 pass no reason. GC stops call stopTheWorldWithSema directly through
    /// `systemstack` (so the return address lies in it) while other stops go through a
    /// closure of `stopTheWorld`; sweep termination happens with `gcphase == _GCoff`,
    /// mark termination with `_GCmark`.
    fn infer_reason(&self, raw: &RawEvent) -> StwReason {
        let Some((lo, hi)) = self.spec.systemstack else {
            return StwReason::Unknown;
        };
        if !(lo..hi).contains(&raw.ret_addr) {
            return StwReason::Unknown;
        }
        match self.read(raw, ReadField::GcPhase).map(|v| v as u32) {
            Some(0) => StwReason::GcSweepTerm,
            Some(_) => StwReason::GcMarkTerm,
            None => StwReason::Unknown,
        }
    }
}

/// A runtime `nanotime()` value from a register, checked against the probe's clock.
fn runtime_time(value: u64, probe_ns: u64) -> u64 {
    if value != 0 && value <= probe_ns + MAX_AHEAD_NS && probe_ns - value.min(probe_ns) < MAX_AGE_NS
    {
        value
    } else {
        probe_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scheme: StwScheme) -> DecodeSpec {
        DecodeSpec {
            scheme,
            reads: vec![ReadField::GcCycles, ReadField::NumGc, ReadField::GcPhase],
            systemstack: Some((0x1000, 0x1100)),
        }
    }

    fn raw(kind: ProbeKind) -> RawEvent {
        RawEvent {
            kind: kind as u32,
            ktime_ns: 500_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn world_stop_entry_uses_runtime_start_and_reason() {
        let mut d = Decoder::new(spec(StwScheme::WorldStop));
        let mut e = raw(ProbeKind::StartTheWorld);
        e.regs = [0, 2, 499_999_000_000, 0, 0, 0];
        assert_eq!(
            d.decode(&e),
            Some(TraceEvent::StwBegin {
                ts_ns: 499_999_000_000,
                reason: StwReason::GcSweepTerm
            })
        );
    }

    #[test]
    fn return_reads_now_and_snapshot() {
        let mut d = Decoder::new(spec(StwScheme::WorldStop));
        let mut e = raw(ProbeKind::StartTheWorldReturn);
        e.regs[0] = 499_999_500_000;
        e.reads[0] = 0xdead_0000_0007; // upper bytes belong to the next field
        e.reads[1] = 6;
        e.read_ok = 0b01; // numgc read failed
        let Some(TraceEvent::StwEnd { ts_ns, snapshot }) = d.decode(&e) else {
            panic!("not an StwEnd");
        };
        assert_eq!(ts_ns, 499_999_500_000);
        assert_eq!(snapshot.gc_cycles, Some(7));
        assert_eq!(snapshot.num_gc, None);
    }

    #[test]
    fn paired_stop_carries_entry_start_and_reason() {
        let mut d = Decoder::new(spec(StwScheme::WorldStop));
        let mut e = raw(ProbeKind::StopPaired);
        // Return: RAX = now. Entry: reason, startedStopping, and the entry's clock.
        e.regs = [499_999_900_000, 7, 499_999_000_000, 499_999_100_000, 0, 0];
        e.reads[0] = 12;
        e.read_ok = 0b1;
        let Some(TraceEvent::Stw {
            begin_ns,
            reason,
            end_ns,
            snapshot,
        }) = d.decode(&e)
        else {
            panic!("not a paired stop");
        };
        assert_eq!(begin_ns, 499_999_000_000);
        assert_eq!(reason, StwReason::ReadMemStats);
        assert_eq!(end_ns, 499_999_900_000);
        assert_eq!(snapshot.gc_cycles, Some(12));
        // A start register not older than the entry's clock allows falls back to it.
        e.regs[2] = 42;
        let Some(TraceEvent::Stw { begin_ns, .. }) = d.decode(&e) else {
            panic!("not a paired stop");
        };
        assert_eq!(begin_ns, 499_999_100_000);
        // Only the world-stop scheme pairs; elsewhere it is garbage.
        let mut old = Decoder::new(spec(StwScheme::ReasonArg));
        assert_eq!(old.decode(&e), None);
        assert_eq!(old.undecodable(), 1);
    }

    #[test]
    fn implausible_register_time_falls_back_to_probe_clock() {
        let mut d = Decoder::new(spec(StwScheme::WorldStop));
        let mut e = raw(ProbeKind::StartTheWorldReturn);
        e.regs[0] = 42;
        let Some(TraceEvent::StwEnd { ts_ns, .. }) = d.decode(&e) else {
            panic!("not an StwEnd");
        };
        assert_eq!(ts_ns, 500_000_000_000);
    }

    #[test]
    fn old_go_reason_from_caller_and_phase() {
        let mut d = Decoder::new(spec(StwScheme::CallerInferred));
        let mut e = raw(ProbeKind::StopTheWorld);
        e.ret_addr = 0x1050;
        e.read_ok = 0b100;
        e.reads[2] = 0;
        let reason = |d: &mut Decoder, e: &RawEvent| match d.decode(e) {
            Some(TraceEvent::StwBegin { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(&mut d, &e), StwReason::GcSweepTerm);
        e.reads[2] = 1;
        assert_eq!(reason(&mut d, &e), StwReason::GcMarkTerm);
        e.ret_addr = 0x2000;
        assert_eq!(reason(&mut d, &e), StwReason::Unknown);
    }

    #[test]
    fn go121_reason_argument() {
        let mut d = Decoder::new(spec(StwScheme::ReasonArg));
        let mut e = raw(ProbeKind::StopTheWorld);
        e.regs[0] = 7;
        assert_eq!(
            d.decode(&e),
            Some(TraceEvent::StwBegin {
                ts_ns: 500_000_000_000,
                reason: StwReason::ReadMemStats
            })
        );
    }

    #[test]
    fn go119_reason_from_preemptoff_bytes() {
        let mut d = Decoder::new(spec(StwScheme::CallerInferred));
        let mut e = raw(ProbeKind::StopNamed);
        let text = b"read mem stats\0\0garbage after it........";
        e.regs[0] = 14;
        for i in 0..5 {
            e.regs[1 + i] = u64::from_le_bytes(text[i * 8..i * 8 + 8].try_into().unwrap());
        }
        let reason = |d: &mut Decoder, e: &RawEvent| match d.decode(e) {
            Some(TraceEvent::StwBegin { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(&mut d, &e), StwReason::ReadMemStats);
        // Unread (0) or longer than what was copied: unknown, never a guess.
        e.regs[0] = 0;
        assert_eq!(reason(&mut d, &e), StwReason::Unknown);
        e.regs[0] = 41;
        assert_eq!(reason(&mut d, &e), StwReason::Unknown);
    }

    #[test]
    fn gc_done_carries_the_frame_word_only_when_read() {
        let mut d = Decoder::new(spec(StwScheme::WorldStop));
        let mut e = raw(ProbeKind::GcDone);
        e.regs[4] = 1;
        e.regs[5] = 123;
        let start = |d: &mut Decoder, e: &RawEvent| match d.decode(e) {
            Some(TraceEvent::GcDone {
                mark_stop_start, ..
            }) => mark_stop_start,
            other => panic!("{other:?}"),
        };
        assert_eq!(start(&mut d, &e), Some(123));
        e.regs[4] = 0;
        assert_eq!(start(&mut d, &e), None);
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut d = Decoder::new(spec(StwScheme::WorldStop));
        let mut e = raw(ProbeKind::GcStart);
        e.regs[0] = 99;
        assert_eq!(d.decode(&e), None);
        e.kind = 1234;
        assert_eq!(d.decode(&e), None);
        assert_eq!(d.undecodable(), 2);
    }

    /// A sample's settings count only once the runtime has set them: a launched program
    /// read before it ran has zeros there, and GOGC 0 is a real setting.
    #[test]
    fn sampled_settings_only_after_runtime_init() {
        let spec = DecodeSpec {
            scheme: StwScheme::WorldStop,
            reads: vec![
                ReadField::TotalAlloc,
                ReadField::GcPercent,
                ReadField::MemoryLimit,
                ReadField::Gomaxprocs,
                ReadField::RuntimeInit,
            ],
            systemstack: None,
        };
        let mut d = Decoder::new(spec);
        let mut e = raw(ProbeKind::UserSample);
        e.read_ok = 0b11111;
        e.reads[..5].copy_from_slice(&[0, 0, 0, 0, 0]);
        assert_eq!(
            d.decode(&e),
            Some(TraceEvent::Sample {
                ts_ns: e.ktime_ns,
                total_bytes: Some(0),
                settings: Settings::default(),
                total_objects: None,
                large: None,
            })
        );
        e.reads[..5].copy_from_slice(&[4096, u64::from(u32::MAX), i64::MAX as u64, 4, 77]);
        assert_eq!(
            d.decode(&e),
            Some(TraceEvent::Sample {
                ts_ns: e.ktime_ns,
                total_bytes: Some(4096),
                settings: Settings {
                    gogc: Some(-1),
                    memory_limit: Some(i64::MAX),
                    gomaxprocs: Some(4),
                },
                total_objects: None,
                large: None,
            })
        );
        // Nothing readable: no event.
        e.read_ok = 0;
        assert_eq!(d.decode(&e), None);
    }
}
