//! Kernel programs of gctrace-bpf: uprobes on the Go runtime.
//!
//! Each program copies the Go register-ABI argument registers (never the C ABI: Go passes
//! arguments in RAX, RBX, RCX, ... on amd64), the return address, the current `g`, and a
//! few configured words of target memory into a [`RawEvent`] and submits it to a ring
//! buffer without waking user space (user space drains on a short timer; a wakeup costs
//! more than the rest of the program). Meaning is assigned in user space.
//!
//! There are no uretprobes here: Go moves goroutine stacks, and a hijacked return address
//! crashes the target. Function exits are plain uprobes placed on RET instructions.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_get_smp_processor_id,
        bpf_ktime_get_ns, bpf_probe_read_user,
    },
    macros::{map, tracepoint, uprobe},
    maps::{Array, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{ProbeContext, TracePointContext},
    EbpfContext,
};
use heap_stats::heap_stats_sums;
use tracer_common::{
    alloc_flags, config_flags, counter, AllocSiteKey, AllocSiteValue, AllocSizeKey, Config,
    ProbeKind, RawEvent, StwEntry, ALLOC_SITES_ENTRIES, ALLOC_SIZES_ENTRIES, ARG_REGS,
    EVENTS_RING_BYTES, KIND_SLOTS, LARGE_OBJECT_OVER, MAX_READS, SITE_FRAMES,
};

mod heap_stats;

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Per-thread event sequence numbers (LRU: threads come and go), keyed by the whole
/// pid_tgid: probes shared by every process of a binary see thread ids of ended
/// processes reused by new ones, whose numbering must start again at 1.
#[map(name = "THREAD_SEQ")]
static THREAD_SEQ: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16384, 0);

/// Events lost (ring full) per process, for probes shared by every process of a binary
/// ([`Config::tgid`] 0): each process's summary says how many of its own were lost.
#[map(name = "LOST_BY_TGID")]
static LOST_BY_TGID: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Processes user space does not trace although they run a probed binary (outside the
/// cgroup, past the ceiling): their hits are counted as foreign and cost no event.
#[map(name = "IGNORED_TGIDS")]
static IGNORED_TGIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);

/// `startTheWorldWithSema` entries waiting for their return, per thread (LRU: an entry
/// whose return was never seen, at attach or detach, is overwritten or evicted).
#[map(name = "STW_ENTRY")]
static STW_ENTRY: LruHashMap<u32, StwEntry> = LruHashMap::with_max_entries(1024, 0);

#[map(name = "ALLOC_SIZES")]
static ALLOC_SIZES: PerCpuHashMap<AllocSizeKey, u64> =
    PerCpuHashMap::with_max_entries(ALLOC_SIZES_ENTRIES, 0);

#[map(name = "ALLOC_SITES")]
static ALLOC_SITES: PerCpuHashMap<AllocSiteKey, AllocSiteValue> =
    PerCpuHashMap::with_max_entries(ALLOC_SITES_ENTRIES, 0);

/// `BPF_F_USER_STACK` for `bpf_get_stack`.
const USER_STACK: u64 = 256;

/// `BPF_RB_AVAIL_DATA` for `bpf_ringbuf_query`.
const RB_AVAIL_DATA: u64 = 0;

/// `sched:sched_process_exec`: a process replaced its program. Sent at once (forced
/// wakeup) as a [`ProbeKind::Exec`] event so user space can look at the process while it
/// still runs, however short its life: its binary, cgroup and labels, and a pidfd.
#[tracepoint]
pub fn exec(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        bump(counter::LOST);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned ring-buffer slot of the right
    // size; it is zeroed, then the fields that matter are written before submission.
    unsafe {
        ev.write(RawEvent::default());
        (*ev).kind = ProbeKind::Exec as u32;
        (*ev).cpu = bpf_get_smp_processor_id();
        (*ev).ktime_ns = bpf_ktime_get_ns();
        (*ev).pid_tgid = pid_tgid;
    }
    entry.submit(BPF_RB_FORCE_WAKEUP as u64);
    0
}

#[uprobe]
pub fn gc_start(ctx: ProbeContext) -> u32 {
    emit(&ctx, ProbeKind::GcStart)
}

#[uprobe]
pub fn stw_stop(ctx: ProbeContext) -> u32 {
    emit(&ctx, ProbeKind::StopTheWorld)
}

/// Entry of `runtime.mProf_Flush`, called by `gcMarkTermination` once the world runs
/// again: one event per GC cycle with what `work` holds, and the mark-termination
/// `worldStop.startedStopping` from the caller's frame when user space found where.
#[uprobe]
pub fn gc_done(ctx: ProbeContext) -> u32 {
    match ours() {
        Some((pid_tgid, config)) => {
            send_patched(&ctx, pid_tgid, config, ProbeKind::GcDone, Patch::Frame)
        }
        None => 0,
    }
}

/// Go 1.19–1.20, just before a non-GC stop: the reason string `stopTheWorld` put in
/// `m.preemptoff`, read here because the runtime keeps no reason code.
#[uprobe]
pub fn stw_named(ctx: ProbeContext) -> u32 {
    match ours() {
        Some((pid_tgid, config)) => {
            send_patched(&ctx, pid_tgid, config, ProbeKind::StopNamed, Patch::Named)
        }
        None => 0,
    }
}

/// Go 1.22+, a RET of `startTheWorld`'s closure (the world runs again, RAX = `now`): the
/// whole non-GC stop in one event, its reason and start read from the runtime's
/// `stopTheWorldContext`, which no other stop can overwrite before `worldsema` is released.
#[uprobe]
pub fn stw_other_end(ctx: ProbeContext) -> u32 {
    match ours() {
        Some((pid_tgid, config)) => send_patched(
            &ctx,
            pid_tgid,
            config,
            ProbeKind::StopPaired,
            Patch::Context,
        ),
        None => 0,
    }
}

/// Entry of `startTheWorldWithSema` (Go 1.22+): nothing is sent yet. The registers that
/// say when and why the world stopped wait in [`STW_ENTRY`] for the return on the same
/// thread, which sends one [`ProbeKind::StopPaired`] event for the whole stop.
#[uprobe]
pub fn stw_start(ctx: ProbeContext) -> u32 {
    let Some((pid_tgid, _)) = ours() else {
        return 0;
    };
    bump(counter::HITS);
    let regs = arg_regs(&ctx);
    let entry = StwEntry {
        // SAFETY: a helper with no arguments, callable from any program.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        args: [regs[1], regs[2]],
    };
    if STW_ENTRY.insert(pid_tgid as u32, entry, 0).is_err() {
        // Cannot happen with an LRU map; should it, the return is sent unpaired and the
        // stop's start is missing (counted by the model as an orphan end).
        bump(counter::LOST);
    }
    0
}

#[uprobe]
pub fn stw_start_ret(ctx: ProbeContext) -> u32 {
    let Some((pid_tgid, config)) = ours() else {
        return 0;
    };
    let tid = pid_tgid as u32;
    // SAFETY: the value is copied out at once; only this thread writes its own entry.
    let entry = unsafe { STW_ENTRY.get(tid) }.copied();
    match entry {
        Some(entry) => {
            let _ = STW_ENTRY.remove(tid);
            send_patched(
                &ctx,
                pid_tgid,
                config,
                ProbeKind::StopPaired,
                Patch::Paired(entry),
            )
        }
        None => send(&ctx, pid_tgid, config, ProbeKind::StartTheWorldReturn),
    }
}

/// Allocation entry: `mallocgc(size uintptr, typ *_type, needzero bool)` and the Go 1.27
/// size-specialised functions with the same signature. Counted in per-CPU maps; user space
/// reads them on its own schedule. Nothing goes through the ring buffer.
#[uprobe]
pub fn alloc(ctx: ProbeContext) -> u32 {
    let Some((_, config)) = ours() else {
        return 0;
    };
    let mut ev = RawEvent::default();
    fill_regs(&ctx, &mut ev);
    if ev.ret_addr >= config.malloc_lo && ev.ret_addr < config.malloc_hi {
        bump(counter::ALLOCS_NESTED);
        return 0;
    }
    let (size, typ) = (ev.regs[0], ev.regs[1]);
    let key = AllocSizeKey { typ, size };
    let counted = match ALLOC_SIZES.get_ptr_mut(key) {
        // SAFETY: per-CPU value of this CPU; no other writer while the program runs.
        Some(p) => unsafe {
            *p += 1;
            true
        },
        None => ALLOC_SIZES.insert(key, 1u64, 0).is_ok(),
    };
    if !counted {
        add(counter::ALLOCS_DROPPED, 1);
        add(counter::ALLOC_BYTES_DROPPED, size);
        return 0;
    }
    bump(counter::ALLOCS);
    if config.alloc_flags & alloc_flags::SITES != 0 {
        let mut site = AllocSiteKey {
            typ,
            ret_addr: ev.ret_addr,
            frames: [0; SITE_FRAMES],
        };
        // SAFETY: the buffer is the key's own frames array and the size passed is its
        // size; the kernel walks the user frame pointers with fault-tolerant reads and
        // writes at most that many bytes.
        unsafe {
            aya_ebpf::helpers::bpf_get_stack(
                ctx.as_ptr(),
                site.frames.as_mut_ptr().cast(),
                (SITE_FRAMES * 8) as u32,
                USER_STACK,
            );
        }
        match ALLOC_SITES.get_ptr_mut(site) {
            // SAFETY: per-CPU value of this CPU.
            Some(p) => unsafe {
                (*p).count += 1;
                (*p).bytes += size;
                if size > LARGE_OBJECT_OVER {
                    (*p).large_count += 1;
                    (*p).large_bytes += size;
                }
            },
            None => {
                let large = u64::from(size > LARGE_OBJECT_OVER);
                let _ = ALLOC_SITES.insert(
                    site,
                    AllocSiteValue {
                        count: 1,
                        bytes: size,
                        large_count: large,
                        large_bytes: large * size,
                    },
                    0,
                );
            }
        }
    }
    0
}

/// This thread's next event sequence number (a gap tells user space events of this
/// thread were lost). Per thread, not per CPU: a stop's begin and end come from one
/// thread, which may move between CPUs in between.
#[inline(always)]
fn next_seq(pid_tgid: u64) -> u32 {
    match THREAD_SEQ.get_ptr_mut(pid_tgid) {
        // SAFETY: a thread runs on one CPU at a time, so only it updates its own entry.
        Some(p) => unsafe {
            *p = (*p).wrapping_add(1);
            *p
        },
        None => {
            let _ = THREAD_SEQ.insert(pid_tgid, 1u32, 0);
            1
        }
    }
}

#[inline(always)]
fn bump(index: u32) {
    add(index, 1)
}

#[inline(always)]
fn add(index: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs
        // (programs are not preempted on the same CPU between get and write).
        unsafe { *p += n };
    }
}

/// The current pid_tgid and the config, when the hit belongs to the traced process
/// (uprobes fire for every process running the binary: the others are counted).
#[inline(always)]
fn ours() -> Option<(u64, &'static Config)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let config = CONFIG.get(0)?;
    let tgid = (pid_tgid >> 32) as u32;
    let foreign = if config.tgid == 0 {
        // SAFETY: the value is only tested for presence.
        unsafe { IGNORED_TGIDS.get(tgid) }.is_some()
    } else {
        tgid != config.tgid
    };
    if foreign {
        bump(counter::FOREIGN);
        return None;
    }
    Some((pid_tgid, config))
}

/// Send one event of `kind` for this probe hit.
#[inline(always)]
fn emit(ctx: &ProbeContext, kind: ProbeKind) -> u32 {
    match ours() {
        Some((pid_tgid, config)) => send(ctx, pid_tgid, config, kind),
        None => 0,
    }
}

/// What an event carries beyond the probed thread's registers.
enum Patch {
    None,
    /// The entry of the stop a [`ProbeKind::StopPaired`] event completes.
    Paired(StwEntry),
    /// The word at frame pointer + [`Config::frame_off`] in `regs[5]` (`regs[4]` = 1).
    Frame,
    /// The reason string of `m.preemptoff` (see [`ProbeKind::StopNamed`]).
    Named,
    /// `stopTheWorldContext`'s reason and start, as a paired entry would carry them.
    Context,
}

#[inline(always)]
fn send(ctx: &ProbeContext, pid_tgid: u64, config: &Config, kind: ProbeKind) -> u32 {
    send_patched(ctx, pid_tgid, config, kind, Patch::None)
}

/// Fill and submit an event for a hit of the traced process.
#[inline(always)]
fn send_patched(
    ctx: &ProbeContext,
    pid_tgid: u64,
    config: &Config,
    kind: ProbeKind,
    patch: Patch,
) -> u32 {
    bump(counter::HITS);

    // Wake the reader only when the ring is filling up; otherwise it drains on its timer.
    let wake = match config.wake_bytes {
        0 => EVENTS_RING_BYTES / 2,
        n => n,
    };
    let flags = if EVENTS.query(RB_AVAIL_DATA) > wake as u64 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    } as u64;

    let seq = next_seq(pid_tgid);
    // Added to every address the config names (0 unless one config serves many processes).
    let bias = load_bias(ctx, config);
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        bump(counter::LOST);
        if config.tgid == 0 {
            let tgid = (pid_tgid >> 32) as u32;
            match LOST_BY_TGID.get_ptr_mut(tgid) {
                // SAFETY: a plain counter; a rare race between CPUs may lose an
                // increment of a count that is already non-zero.
                Some(p) => unsafe { *p += 1 },
                None => {
                    let _ = LOST_BY_TGID.insert(tgid, 1u64, 0);
                }
            }
        }
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned ring-buffer slot of the right
    // size; every field is written below before the slot is submitted.
    unsafe {
        (*ev).kind = kind as u32;
        (*ev).cpu = bpf_get_smp_processor_id();
        (*ev).ktime_ns = bpf_ktime_get_ns();
        (*ev).pid_tgid = pid_tgid;
        fill_regs(ctx, &mut *ev);
        match patch {
            Patch::None => {}
            Patch::Paired(entry) => {
                (*ev).regs[1] = entry.args[0];
                (*ev).regs[2] = entry.args[1];
                (*ev).regs[3] = entry.ktime_ns;
            }
            Patch::Frame => {
                (*ev).regs[4] = 0;
                (*ev).regs[5] = 0;
                if config.frame_off != 0 {
                    let at = frame_pointer(ctx).wrapping_add(config.frame_off as u64);
                    if let Ok(v) = bpf_probe_read_user(at as *const u64) {
                        (*ev).regs[4] = 1;
                        (*ev).regs[5] = v;
                    }
                }
            }
            Patch::Named => {
                (*ev).regs = [0; ARG_REGS];
                if config.preemptoff_off != 0 {
                    let m = bpf_probe_read_user(
                        (*ev).g.wrapping_add(u64::from(config.g_m_off)) as *const u64
                    )
                    .unwrap_or(0);
                    let at = m.wrapping_add(u64::from(config.preemptoff_off));
                    if m != 0 {
                        if let Ok(s) = bpf_probe_read_user(at as *const [u64; 2]) {
                            if let Ok(bytes) = bpf_probe_read_user(s[0] as *const [u64; 5]) {
                                (*ev).regs[0] = s[1];
                                (*ev).regs[1] = bytes[0];
                                (*ev).regs[2] = bytes[1];
                                (*ev).regs[3] = bytes[2];
                                (*ev).regs[4] = bytes[3];
                                (*ev).regs[5] = bytes[4];
                            }
                        }
                    }
                }
            }
            Patch::Context => {
                (*ev).regs[1] = 0;
                (*ev).regs[2] = 0;
                if config.stw_ctx_addr != 0 {
                    let at = config.stw_ctx_addr.wrapping_add(bias);
                    if let Ok(w) = bpf_probe_read_user(at as *const [u64; 2]) {
                        (*ev).regs[1] = w[0];
                        (*ev).regs[2] = w[1];
                    }
                }
                (*ev).regs[3] = (*ev).ktime_ns;
            }
        }
        (*ev).read_ok = 0;
        (*ev).seq = seq;
        (*ev)._pad = 0;
        // A paired stop reads what its return reads.
        let slots_of = match kind {
            ProbeKind::StopPaired => ProbeKind::StartTheWorldReturn,
            k => k,
        };
        let slots = config.read_slots[slots_of as usize & (KIND_SLOTS - 1)];
        let mut i = 0;
        while i < MAX_READS {
            (*ev).reads[i] = 0;
            let addr = config.read_addrs[i];
            if addr != 0 && slots & (1u64 << i) != 0 {
                if let Ok(v) = bpf_probe_read_user(addr.wrapping_add(bias) as *const u64) {
                    (*ev).reads[i] = v;
                    (*ev).read_ok |= 1u64 << i;
                }
            }
            i += 1;
        }
        // The allocation count's slot holds a sum, not the word at its address, and so
        // do the large objects' slots beside it (from the same reads).
        let hs = config.heap_stats_slot as usize & (MAX_READS - 1);
        if config.heap_stats_stride != 0 && slots & (1u64 << hs) != 0 {
            let lb = config.heap_large_bytes_slot;
            let lo = config.heap_large_objects_slot;
            let mut mask = 1u64 << hs;
            if lb < MAX_READS as u32 {
                mask |= 1u64 << lb;
            }
            if lo < MAX_READS as u32 {
                mask |= 1u64 << lo;
            }
            (*ev).read_ok &= !mask;
            let base = config.read_addrs[hs].wrapping_add(bias);
            if let Some(sums) = heap_stats_sums(base, config) {
                (*ev).reads[hs] = sums.objects;
                if lb < MAX_READS as u32 {
                    (*ev).reads[lb as usize & (MAX_READS - 1)] = sums.large_bytes;
                }
                if lo < MAX_READS as u32 {
                    (*ev).reads[lo as usize & (MAX_READS - 1)] = sums.large_objects;
                }
                (*ev).read_ok |= mask;
            }
        }
    }
    entry.submit(flags);
    0
}

#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn fill_regs(ctx: &ProbeContext, ev: &mut RawEvent) {
    ev.regs = arg_regs(ctx);
    // SAFETY: ctx.regs is the kernel-provided pt_regs of the probed user thread; the
    // read of the return address goes through bpf_probe_read_user, which tolerates faults.
    unsafe {
        let r = &*ctx.regs;
        ev.ip = r.rip;
        ev.g = r.r14;
        ev.ret_addr = bpf_probe_read_user(r.rsp as *const u64).unwrap_or(0);
    }
}

/// What to add to the config's addresses for the probed process: 0 when they are its
/// own already; with [`config_flags::BIAS_FROM_IP`], the instruction pointer at the hit
/// (the probe's run-time address: the kernel sets it back to the breakpoint before the
/// program runs) minus the probe's link-time address, which user space gave as the
/// attach cookie.
#[inline(always)]
fn load_bias(ctx: &ProbeContext, config: &Config) -> u64 {
    if config.flags & config_flags::BIAS_FROM_IP == 0 {
        return 0;
    }
    // SAFETY: a helper taking the program's own context pointer.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if cookie == 0 {
        return 0;
    }
    instruction_pointer(ctx).wrapping_sub(cookie)
}

/// The instruction pointer (RIP) of the probed thread.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn instruction_pointer(ctx: &ProbeContext) -> u64 {
    // SAFETY: ctx.regs is the kernel-provided pt_regs of the probed user thread.
    unsafe { (*ctx.regs).rip }
}

/// The instruction pointer (PC) of the probed thread.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn instruction_pointer(ctx: &ProbeContext) -> u64 {
    use aya_ebpf::bindings::user_pt_regs;
    // SAFETY: on arm64 the kernel's pt_regs begins with user_pt_regs (regs[31], sp, pc).
    unsafe { (*(ctx.regs as *const user_pt_regs)).pc }
}

/// The frame pointer register (RBP): at a function's entry, still its caller's.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn frame_pointer(ctx: &ProbeContext) -> u64 {
    // SAFETY: ctx.regs is the kernel-provided pt_regs of the probed user thread.
    unsafe { (*ctx.regs).rbp }
}

/// The Go ABIInternal integer argument registers, in argument order.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn arg_regs(ctx: &ProbeContext) -> [u64; ARG_REGS] {
    // SAFETY: ctx.regs is the kernel-provided pt_regs of the probed user thread.
    let r = unsafe { &*ctx.regs };
    [r.rax, r.rbx, r.rcx, r.rdi, r.rsi, r.r8]
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn fill_regs(ctx: &ProbeContext, ev: &mut RawEvent) {
    use aya_ebpf::bindings::user_pt_regs;
    ev.regs = arg_regs(ctx);
    // SAFETY: on arm64 the kernel's pt_regs begins with user_pt_regs (regs[31], sp, pc).
    unsafe {
        let r = &*(ctx.regs as *const user_pt_regs);
        ev.ip = r.pc;
        ev.g = r.regs[28];
        ev.ret_addr = r.regs[30];
    }
}

/// The frame pointer register (X29): at a function's entry, still its caller's.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn frame_pointer(ctx: &ProbeContext) -> u64 {
    use aya_ebpf::bindings::user_pt_regs;
    // SAFETY: on arm64 the kernel's pt_regs begins with user_pt_regs (regs[31], sp, pc).
    unsafe { (*(ctx.regs as *const user_pt_regs)).regs[29] }
}

/// The Go ABIInternal integer argument registers, in argument order.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn arg_regs(ctx: &ProbeContext) -> [u64; ARG_REGS] {
    use aya_ebpf::bindings::user_pt_regs;
    // SAFETY: on arm64 the kernel's pt_regs begins with user_pt_regs (regs[31], sp, pc).
    let r = unsafe { &*(ctx.regs as *const user_pt_regs) };
    [
        r.regs[0], r.regs[1], r.regs[2], r.regs[3], r.regs[4], r.regs[5],
    ]
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The licence the kernel is told. These programs are licensed under either of MIT or
/// GPL-2.0 (Cargo.toml, LICENSE-MIT, LICENSE-GPL2); the kernel lets only programs it
/// deems GPL-compatible call GPL-only helpers (`bpf_probe_read_user`, `bpf_get_stack`, …),
/// so the object declares the GPL-2.0 terms it is offered under.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
