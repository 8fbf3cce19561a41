//! Types shared by the kernel programs (`tracer-ebpf`) and the user-space tracer.
//!
//! Everything here is `#[repr(C)]` with explicit padding so that the BPF object and the
//! host agree byte for byte. The kernel side deliberately knows nothing about Go versions:
//! it copies registers and a few configured memory words into a [`RawEvent`], and user
//! space decides what they mean. That keeps the BPF programs tiny and lets a recording of
//! raw events be replayed through exactly the same decoding code as a live run.
#![no_std]

/// Number of Go ABI integer argument/result registers copied into every event.
///
/// amd64: RAX, RBX, RCX, RDI, RSI, R8. arm64: X0..X5.
pub const ARG_REGS: usize = 6;

/// Number of target-memory words the kernel reads on the probes that ask for them.
/// 64 since recording format 4 (32 before: every slot was taken once the pacer's
/// memory counters were added; the old 360-byte event is still read, see the tracer's
/// `recording::old_event`).
pub const MAX_READS: usize = 64;

/// Which probe produced an event. One BPF program per kind; each can be attached at
/// several addresses (all RET instructions of a function, for instance).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Entry of `runtime.gcStart(trigger gcTrigger)`.
    GcStart = 1,
    /// Entry of `runtime.stopTheWorldWithSema`.
    StopTheWorld = 2,
    /// Entry of `runtime.startTheWorldWithSema`.
    StartTheWorld = 3,
    /// A RET instruction of `runtime.startTheWorldWithSema` (the world is running again).
    StartTheWorldReturn = 4,
    /// Not a probe: user space read target memory itself (periodic samples, e.g. the
    /// allocation counter) and recorded it in the same shape, so recordings and the
    /// decoder treat it like any other event.
    UserSample = 5,
    /// Entry of an allocation function (`mallocgc`, or a size-specialised one the
    /// compiler calls directly in Go 1.27). Aggregated in kernel maps, never sent as
    /// events: it fires millions of times a second.
    Alloc = 6,
    /// Not a probe of its own: a RET of `runtime.startTheWorldWithSema` whose entry the
    /// same thread hit just before (Go 1.22+, where the entry carries the stop's start and
    /// reason). The kernel keeps the entry's registers until the return and sends one
    /// event for the whole stop instead of two, which halves what the ring buffer and the
    /// reader carry for a program that stops the world in a loop. Fields are those of
    /// [`ProbeKind::StartTheWorldReturn`] except `regs[1]` and `regs[2]`, the entry's
    /// second and third argument registers, and `regs[3]`, the entry's
    /// `bpf_ktime_get_ns()` (see [`StwEntry`]).
    StopPaired = 7,
    /// Entry of `runtime.mProf_Flush`, which `gcMarkTermination` calls once per cycle
    /// after the world has restarted and before it releases `worldsema`: `work` still
    /// holds the whole cycle (clocks, `pauseNS`, heap figures), nothing can overwrite it
    /// yet, and no goroutine is stopped. One hit per GC cycle. `regs[4]` is 1 when the
    /// frame word [`Config::frame_off`] was read into `regs[5]`.
    GcDone = 8,
    /// Go 1.19–1.20: a non-GC stop is about to begin (the call of
    /// `stopTheWorldWithSema` in `stopTheWorld`'s closure). `regs[0]` is the length of
    /// the reason string (`m.preemptoff`, the `stopTheWorld(reason string)` argument) and
    /// `regs[1..6]` its first 40 bytes; `regs[0]` is 0 when it could not be read.
    StopNamed = 9,
    /// Not a uprobe: `sched:sched_process_exec` (program `exec`), a process started a
    /// new program. Only `pid_tgid`, `ktime_ns` and `cpu` are set. Sent by the discovery
    /// object of `--exe` and `--all`, never decoded into the model.
    Exec = 10,
}

/// What the `startTheWorldWithSema` entry program keeps for its return (per thread, in
/// the kernel map `STW_ENTRY`): the world restarts on the thread that stopped it, without a
/// goroutine switch in between (it runs on the system stack).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StwEntry {
    pub ktime_ns: u64,
    /// Argument registers 1 and 2 at the entry: `w worldStop`'s `reason` and
    /// `startedStopping` (`start` in Go 1.22).
    pub args: [u64; 2],
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 10] = [
        ProbeKind::GcStart,
        ProbeKind::StopTheWorld,
        ProbeKind::StartTheWorld,
        ProbeKind::StartTheWorldReturn,
        ProbeKind::UserSample,
        ProbeKind::Alloc,
        ProbeKind::StopPaired,
        ProbeKind::GcDone,
        ProbeKind::StopNamed,
        ProbeKind::Exec,
    ];

    /// The kinds implemented by a kernel program of their own.
    pub const PROBES: [ProbeKind; 7] = [
        ProbeKind::GcStart,
        ProbeKind::StopTheWorld,
        ProbeKind::StartTheWorld,
        ProbeKind::StartTheWorldReturn,
        ProbeKind::Alloc,
        ProbeKind::GcDone,
        ProbeKind::StopNamed,
    ];

    pub fn from_u32(v: u32) -> Option<ProbeKind> {
        Self::ALL.into_iter().find(|k| *k as u32 == v)
    }

    /// Name of the BPF program implementing this probe kind in the object file.
    pub const fn program_name(self) -> &'static str {
        match self {
            ProbeKind::GcStart => "gc_start",
            ProbeKind::StopTheWorld => "stw_stop",
            ProbeKind::StartTheWorld => "stw_start",
            ProbeKind::StartTheWorldReturn => "stw_start_ret",
            ProbeKind::UserSample => "user_sample",
            ProbeKind::Alloc => "alloc",
            // Sent by `stw_start_ret`, and by `stw_other_end` (see [`OTHER_STOP_END`]).
            ProbeKind::StopPaired => "stw_start_ret",
            ProbeKind::GcDone => "gc_done",
            ProbeKind::StopNamed => "stw_named",
            ProbeKind::Exec => "exec",
        }
    }
}

/// Program for the end of a non-GC stop on Go 1.22+ (a RET of `startTheWorld`'s closure):
/// sends a [`ProbeKind::StopPaired`] event whose entry registers are read from the
/// runtime's own `stopTheWorldContext` (the `worldStop` of the last non-GC stop, at
/// [`Config::stw_ctx_addr`]) instead of an entry probe: one hit per stop, none inside it.
pub const OTHER_STOP_END: &str = "stw_other_end";

/// Number of [`ProbeKind`] values that index [`Config::read_slots`].
pub const KIND_SLOTS: usize = 16;

/// One probe hit, exactly as the kernel saw it. 624 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// [`ProbeKind`] as u32.
    pub kind: u32,
    /// CPU the probe fired on.
    pub cpu: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, the clock of Go's `nanotime()`.
    pub ktime_ns: u64,
    /// `bpf_get_current_pid_tgid()`: tgid in the upper 32 bits, thread id in the lower.
    pub pid_tgid: u64,
    /// Address of the probed instruction in the target's address space.
    pub ip: u64,
    /// Go ABIInternal integer registers in argument order (see [`ARG_REGS`]).
    pub regs: [u64; ARG_REGS],
    /// Return address: `*(u64*)rsp` at a function entry on amd64, LR on arm64.
    pub ret_addr: u64,
    /// The current goroutine (`g`): R14 on amd64, X28 on arm64.
    pub g: u64,
    /// Words read from [`Config::read_addrs`], for the slots [`Config::read_slots`] names
    /// for this kind.
    pub reads: [u64; MAX_READS],
    /// Bit i set when `reads[i]` was read successfully.
    pub read_ok: u64,
    /// The thread's sequence number of this probe hit (1, 2, ... from attach), taken
    /// before the ring buffer reservation: a gap means events of the thread were lost.
    pub seq: u32,
    /// Explicit padding to a multiple of 8 bytes.
    pub _pad: u32,
}

// `Default` by hand: the standard library derives it for arrays of up to 32 only.
impl Default for RawEvent {
    fn default() -> RawEvent {
        RawEvent {
            kind: 0,
            cpu: 0,
            ktime_ns: 0,
            pid_tgid: 0,
            ip: 0,
            regs: [0; ARG_REGS],
            ret_addr: 0,
            g: 0,
            reads: [0; MAX_READS],
            read_ok: 0,
            seq: 0,
            _pad: 0,
        }
    }
}

/// Settings user space writes before attaching (array map [`CONFIG_MAP`], one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Only events from this process (tgid) are emitted; 0 = any but those in the
    /// `IGNORED_TGIDS` map (probes shared by every process of a binary).
    pub tgid: u32,
    /// Wake the reader when more than this many bytes wait in the event ring (half its
    /// size: the ring is sized at load time, the program cannot know it). 0: half of
    /// [`EVENTS_RING_BYTES`].
    pub wake_bytes: u32,
    /// Absolute addresses in the target to read 8 bytes from; 0 = unused slot.
    pub read_addrs: [u64; MAX_READS],
    /// Indexed by [`ProbeKind`] value: bit i set = read slot i on that probe. Reads cost
    /// little next to the probe hit itself, but there is no point paying for them twice.
    pub read_slots: [u64; KIND_SLOTS],
    /// Run-time address range of `runtime.mallocgc`: an allocation probe whose caller is
    /// in it is not counted (mallocgc itself was, Go 1.27 calls a size-specialised
    /// function from inside it).
    pub malloc_lo: u64,
    pub malloc_hi: u64,
    /// [`alloc_flags`] bits.
    pub alloc_flags: u32,
    /// Go 1.19–1.20: offset of `m.preemptoff` (a string) in `runtime.m`; 0 = unknown.
    pub preemptoff_off: u32,
    /// [`ProbeKind::GcDone`]: where the mark-termination `worldStop.startedStopping`
    /// lives, relative to the frame pointer at the probe (the caller's frame,
    /// `gcMarkTermination`'s); 0 = not read.
    pub frame_off: i64,
    /// Run-time address of `runtime.stopTheWorldContext` (Go 1.22+); 0 = unknown.
    pub stw_ctx_addr: u64,
    /// Offset of `g.m` in `runtime.g` (for [`Config::preemptoff_off`]).
    pub g_m_off: u32,
    /// [`config_flags`] bits.
    pub flags: u32,
    /// The read slot that carries the runtime's allocation count (`MemStats.Mallocs`'s
    /// sum over `memstats.heapStats`) instead of one word: its [`Config::read_addrs`]
    /// entry is `stats[0].tinyAllocCount`, and the kernel adds up the counting words
    /// ([`heap_stats_counts`]) of the [`HEAP_STATS_GENS`] generations, each
    /// [`Config::heap_stats_stride`] bytes apart. Used only when the stride is not 0.
    pub heap_stats_slot: u32,
    /// Words from `tinyAllocCount` to the end of `smallAllocCount` (71 in Go 1.19–1.27),
    /// at most [`HEAP_STATS_MAX_WORDS`].
    pub heap_stats_words: u32,
    /// `sizeof(runtime.heapStatsDelta)`; 0 = the slot is not summed (and not read).
    pub heap_stats_stride: u32,
    /// The read slot that carries the sum of [`HEAP_LARGE_BYTES_WORD`] over the
    /// generations read for [`Config::heap_stats_slot`] (the bytes of large objects,
    /// `MemStats.TotalAlloc`'s large part), from the same reads; [`NO_SLOT`]: none.
    pub heap_large_bytes_slot: u32,
    /// Likewise for [`HEAP_LARGE_OBJECTS_WORD`] (large objects allocated).
    pub heap_large_objects_slot: u32,
    pub _pad: u32,
}

/// A [`Config`] slot number that names no slot.
pub const NO_SLOT: u32 = u32::MAX;

/// Generations of `runtime.consistentHeapStats.stats` (a ring of three deltas whose sum is
/// the total; the runtime's own `unsafeRead` sums the three).
pub const HEAP_STATS_GENS: usize = 3;
/// Most counting words per generation the kernel reads (read 8 at a time).
pub const HEAP_STATS_MAX_WORDS: usize = 72;

/// Whether word `i` of a `heapStatsDelta`, counted from `tinyAllocCount`, is an object
/// count: `tinyAllocCount`, then `largeAlloc` (bytes: not counted), `largeAllocCount`,
/// and `smallAllocCount[0..]`. What `readmemstats_m` adds up for `MemStats.Mallocs`.
pub const fn heap_stats_counts(i: usize) -> bool {
    i != HEAP_LARGE_BYTES_WORD
}

/// Word of a `heapStatsDelta` (counted from `tinyAllocCount`) holding `largeAlloc`: bytes
/// of large objects allocated, each rounded to whole pages.
pub const HEAP_LARGE_BYTES_WORD: usize = 1;
/// Word holding `largeAllocCount`: large objects allocated.
pub const HEAP_LARGE_OBJECTS_WORD: usize = 2;

/// Allocations of more than this many bytes are large objects (Go's `maxSmallSize`),
/// which the runtime counts apart ([`HEAP_LARGE_BYTES_WORD`]). Since Go 1.22 an object
/// with pointers is large from 32,761 bytes (its malloc header must fit): those eight
/// sizes count with the small ones in [`AllocSiteValue::large_count`].
pub const LARGE_OBJECT_OVER: u64 = 32_768;

// `Default` by hand, as for [`RawEvent`].
impl Default for Config {
    fn default() -> Config {
        Config {
            tgid: 0,
            wake_bytes: 0,
            read_addrs: [0; MAX_READS],
            read_slots: [0; KIND_SLOTS],
            malloc_lo: 0,
            malloc_hi: 0,
            alloc_flags: 0,
            preemptoff_off: 0,
            frame_off: 0,
            stw_ctx_addr: 0,
            g_m_off: 0,
            flags: 0,
            heap_stats_slot: 0,
            heap_stats_words: 0,
            heap_stats_stride: 0,
            heap_large_bytes_slot: NO_SLOT,
            heap_large_objects_slot: NO_SLOT,
            _pad: 0,
        }
    }
}

/// Bits of [`Config::flags`].
pub mod config_flags {
    /// The addresses in the config are link-time ones, and the kernel adds the probed
    /// process's load bias: the probe's run-time address (the instruction pointer at the
    /// hit) minus its link-time address (the attach cookie). One config then serves every
    /// process of a PIE binary, each mapped at its own address, from its first hit.
    pub const BIAS_FROM_IP: u32 = 1;
}

/// Bits of [`Config::alloc_flags`].
pub mod alloc_flags {
    /// Walk the user stack (frame pointers) and count per call site and type.
    pub const SITES: u32 = 1;
}

/// Key of [`ALLOC_SIZES_MAP`]: what the runtime needs to count an allocation as it does
/// (the type decides tiny vs not, the size the size class).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocSizeKey {
    /// `*_type` argument (run-time address; 0 for untyped allocations).
    pub typ: u64,
    /// Requested size in bytes.
    pub size: u64,
}

/// User stack frames kept per allocation site.
pub const SITE_FRAMES: usize = 16;

/// Key of [`ALLOC_SITES_MAP`]. The stack is part of the key (not an id into a stack map,
/// whose hash collisions silently lose stacks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocSiteKey {
    pub typ: u64,
    /// The direct caller (return address at the probed entry): the frame-pointer walk
    /// cannot see it because the probed function has not pushed its frame yet.
    pub ret_addr: u64,
    /// The user stack from `bpf_get_stack` (frame pointers), innermost first: the probed
    /// instruction, then return addresses; zero-filled past its end.
    pub frames: [u64; SITE_FRAMES],
}

/// Value of [`ALLOC_SITES_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocSiteValue {
    pub count: u64,
    /// Requested bytes (not rounded to the size class).
    pub bytes: u64,
    /// Of those, the allocations of more than [`LARGE_OBJECT_OVER`] bytes: the runtime
    /// counts large objects apart, so a sample's large and small parts can each be scaled
    /// to the runtime's own count of its kind.
    pub large_count: u64,
    pub large_bytes: u64,
}

/// Indices into the per-CPU counter array [`COUNTERS_MAP`].
pub mod counter {
    /// Events dropped because the ring buffer was full.
    pub const LOST: u32 = 0;
    /// Probe hits of the traced process (events emitted or lost).
    pub const HITS: u32 = 1;
    /// Probe hits from other processes mapping the same binary (filtered out).
    pub const FOREIGN: u32 = 2;
    /// Allocations counted.
    pub const ALLOCS: u32 = 3;
    /// Allocations not counted because an aggregation map was full.
    pub const ALLOCS_DROPPED: u32 = 4;
    /// Bytes (requested) of those allocations.
    pub const ALLOC_BYTES_DROPPED: u32 = 5;
    /// Allocation probe hits whose caller was mallocgc (counted there already).
    pub const ALLOCS_NESTED: u32 = 6;
    /// Number of counters.
    pub const COUNT: u32 = 7;
}

/// Ring buffer carrying [`RawEvent`]s to user space.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU `u64` counters, indexed by [`counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// LRU hash of tgid → events lost (ring full) by that process, filled when
/// [`Config::tgid`] is 0 (probes shared by every process of a binary).
pub const LOST_BY_TGID_MAP: &str = "LOST_BY_TGID";
/// LRU hash of tgid → 1: processes whose hits the shared probes ignore.
pub const IGNORED_TGIDS_MAP: &str = "IGNORED_TGIDS";
/// Array of one [`Config`].
pub const CONFIG_MAP: &str = "CONFIG";
/// Per-CPU hash of [`AllocSizeKey`] → count.
pub const ALLOC_SIZES_MAP: &str = "ALLOC_SIZES";
/// Per-CPU hash of [`AllocSiteKey`] → [`AllocSiteValue`].
pub const ALLOC_SITES_MAP: &str = "ALLOC_SITES";
/// Capacity of the allocation maps; past it allocations are counted as dropped.
pub const ALLOC_SIZES_ENTRIES: u32 = 1 << 16;
pub const ALLOC_SITES_ENTRIES: u32 = 1 << 15;
/// Ring buffer size in bytes (power of two, multiple of the page size). The reader drains
/// every 100 ms or when the ring is half full. A program that stops the world in a loop
/// writes about 15 MB of events a second; 4 MiB lets the timer do the draining at that
/// rate, where 1 MiB forced three times as many wake-ups (each costs the tracer a
/// context switch and a poll; 20 % less CPU at 40,000 events/s, measured).
pub const EVENTS_RING_BYTES: u32 = 4 << 20;

/// Reading events out of bytes and writing them as bytes (user space only): the ring
/// buffer hands over slots of bytes, recordings store an event's bytes as a frame.
#[cfg(feature = "user")]
mod bytes {
    extern crate alloc;

    use alloc::borrow::Cow;
    use core::mem::size_of;

    use super::RawEvent;

    impl RawEvent {
        /// The event at the start of `bytes` (a ring-buffer slot, a recording frame):
        /// borrowed in place when the bytes are aligned for it, copied out when not.
        /// `None` when `bytes` is shorter than an event. In place matters: copying every
        /// event out of the ring cost a sixth of the tracer's CPU at tens of thousands of
        /// events a second.
        pub fn from_bytes(bytes: &[u8]) -> Option<Cow<'_, RawEvent>> {
            let ptr = bytes
                .get(..size_of::<RawEvent>())?
                .as_ptr()
                .cast::<RawEvent>();
            // SAFETY: `ptr` points to size_of::<RawEvent>() initialised bytes borrowed for
            // the returned lifetime, and RawEvent is #[repr(C)] plain integers, so any bit
            // pattern is a valid event; the reference is taken only when the pointer is
            // aligned for it, read_unaligned copes with any alignment otherwise.
            Some(unsafe {
                if ptr.is_aligned() {
                    Cow::Borrowed(&*ptr)
                } else {
                    Cow::Owned(ptr.read_unaligned())
                }
            })
        }

        /// The event's bytes, as [`RawEvent::from_bytes`] reads them back.
        pub fn as_bytes(&self) -> &[u8] {
            // SAFETY: RawEvent is #[repr(C)] plain integers with explicit padding fields
            // (no implicit padding), so all size_of::<RawEvent>() bytes behind `self` are
            // initialised, and they stay borrowed as long as `self`.
            unsafe {
                core::slice::from_raw_parts(
                    (self as *const RawEvent).cast::<u8>(),
                    size_of::<RawEvent>(),
                )
            }
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are #[repr(C)], contain only integers, and have no implicit
    // padding (fields are ordered and padded explicitly), so any bit pattern is valid.
    unsafe impl aya::Pod for super::RawEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AllocSizeKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AllocSiteKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AllocSiteValue {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn layout_is_stable() {
        assert_eq!(core::mem::size_of::<RawEvent>(), 624);
        assert_eq!(
            core::mem::size_of::<Config>(),
            8 + 8 * MAX_READS + 8 * KIND_SLOTS + 24 + 24 + 24
        );
        assert_eq!(core::mem::size_of::<AllocSiteKey>(), 16 + 8 * SITE_FRAMES);
        assert_eq!(core::mem::size_of::<AllocSiteValue>(), 32);
        // read_ok and read_slots are u64 bitmasks over the slots.
        const { assert!(MAX_READS <= 64) };
    }

    #[cfg(feature = "user")]
    #[test]
    fn bytes_round_trip() {
        let mut ev = RawEvent {
            kind: ProbeKind::GcDone as u32,
            ktime_ns: 0x0102_0304_0506_0708,
            seq: 7,
            ..RawEvent::default()
        };
        ev.reads[MAX_READS - 1] = u64::MAX;
        let bytes = ev.as_bytes();
        assert_eq!(bytes.len(), core::mem::size_of::<RawEvent>());
        assert_eq!(RawEvent::from_bytes(bytes).as_deref(), Some(&ev));
        // Off by one byte: not aligned for the event, read by copy.
        let mut shifted = std::vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(bytes);
        assert_eq!(RawEvent::from_bytes(&shifted[1..]).as_deref(), Some(&ev));
        assert_eq!(RawEvent::from_bytes(&bytes[1..]), None);
    }

    #[test]
    fn kinds_round_trip() {
        for k in ProbeKind::ALL {
            assert_eq!(ProbeKind::from_u32(k as u32), Some(k));
        }
        assert_eq!(ProbeKind::from_u32(0), None);
    }
}
