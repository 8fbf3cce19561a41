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
pub const MAX_READS: usize = 32;

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
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 5] = [
        ProbeKind::GcStart,
        ProbeKind::StopTheWorld,
        ProbeKind::StartTheWorld,
        ProbeKind::StartTheWorldReturn,
        ProbeKind::UserSample,
    ];

    /// The kinds implemented by a kernel program.
    pub const PROBES: [ProbeKind; 4] = [
        ProbeKind::GcStart,
        ProbeKind::StopTheWorld,
        ProbeKind::StartTheWorld,
        ProbeKind::StartTheWorldReturn,
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
        }
    }
}

/// One probe hit, exactly as the kernel saw it. 360 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    pub read_ok: u32,
    pub _pad: u32,
}

/// Settings user space writes before attaching (array map [`CONFIG_MAP`], one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Only events from this process (tgid) are emitted; 0 = any.
    pub tgid: u32,
    pub _pad: u32,
    /// Absolute addresses in the target to read 8 bytes from; 0 = unused slot.
    pub read_addrs: [u64; MAX_READS],
    /// Indexed by [`ProbeKind`] value: bit i set = read slot i on that probe. Reads cost
    /// little next to the probe hit itself, but there is no point paying for them twice.
    pub read_slots: [u32; 8],
}

/// Indices into the per-CPU counter array [`COUNTERS_MAP`].
pub mod counter {
    /// Events dropped because the ring buffer was full.
    pub const LOST: u32 = 0;
    /// Probe hits of the traced process (events emitted or lost).
    pub const HITS: u32 = 1;
    /// Probe hits from other processes mapping the same binary (filtered out).
    pub const FOREIGN: u32 = 2;
    /// Number of counters.
    pub const COUNT: u32 = 3;
}

/// Ring buffer carrying [`RawEvent`]s to user space.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU `u64` counters, indexed by [`counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Array of one [`Config`].
pub const CONFIG_MAP: &str = "CONFIG";
/// Ring buffer size in bytes (power of two, multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 1 << 20;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are #[repr(C)], contain only integers, and have no implicit
    // padding (fields are ordered and padded explicitly), so any bit pattern is valid.
    unsafe impl aya::Pod for super::RawEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn layout_is_stable() {
        assert_eq!(core::mem::size_of::<RawEvent>(), 360);
        assert_eq!(core::mem::size_of::<Config>(), 8 + 8 * MAX_READS + 32);
        // read_ok and read_slots are u32 bitmasks over the slots.
        const { assert!(MAX_READS <= 32) };
    }

    #[test]
    fn kinds_round_trip() {
        for k in ProbeKind::ALL {
            assert_eq!(ProbeKind::from_u32(k as u32), Some(k));
        }
        assert_eq!(ProbeKind::from_u32(0), None);
    }
}
