//! The system calls the tracer makes itself (clocks, process control, capabilities), made
//! through rustix's safe wrappers; ptrace, which rustix does not wrap, is the one place
//! left with `libc` calls and their `unsafe`.
//!
//! Not here: the `bpf(2)` calls of `probes/multi.rs` (they are the probe loader's own
//! business, next to the attribute structs they fill), reads of the kernel's ring buffer
//! in `session/traced.rs`, and the memory map of a binary, which are not system calls
//! one could wrap without their context.

use std::io;
use std::os::fd::OwnedFd;

use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};
use rustix::thread::{CapabilitySet, CapabilitySets};

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Clock ticks per second of /proc's CPU times (`sysconf(_SC_CLK_TCK)`), if known.
pub fn clock_ticks_per_second() -> Option<u64> {
    let hz = rustix::param::clock_ticks_per_second();
    (hz > 0).then_some(hz)
}

/// How many CPUs `pid` may run on (its affinity mask), if it can be read.
pub fn cpus_allowed(pid: u32) -> Option<u32> {
    let set = rustix::thread::sched_getaffinity(Some(pid_of(pid).ok()?)).ok()?;
    Some(set.count())
}

/// The calling thread's capability sets, each as a 64-bit mask (bit n = capability n).
pub fn capabilities() -> io::Result<[u64; 3]> {
    let sets = rustix::thread::capabilities(None)?;
    Ok([
        sets.effective.bits(),
        sets.permitted.bits(),
        sets.inheritable.bits(),
    ])
}

/// Set the calling thread's capability sets (effective, permitted, inheritable, as
/// [`capabilities`] returns them). Only a subset of what it returned is always allowed.
pub fn set_capabilities(sets: [u64; 3]) -> io::Result<()> {
    let [effective, permitted, inheritable] = sets.map(CapabilitySet::from_bits_retain);
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective,
            permitted,
            inheritable,
        },
    )?;
    Ok(())
}

/// A pidfd for `pid`: readable once the process has exited.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(
        pid_of(pid)?,
        PidfdFlags::empty(),
    )?)
}

/// Send `signal` to `pid`.
pub fn kill(pid: u32, signal: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process(pid_of(pid)?, signal)?)
}

/// Wait for a state change of child `pid`: its wait status, or the error (EINTR included:
/// the caller decides whether to wait again).
pub fn waitpid(pid: u32) -> io::Result<libc::c_int> {
    match rustix::process::waitpid(Some(pid_of(pid)?), WaitOptions::empty())? {
        Some((_, status)) => Ok(status.as_raw()),
        None => Err(io::Error::other("waitpid returned no status")),
    }
}

/// Detach from our ptrace-stopped child `pid`, letting it run without a signal.
pub fn ptrace_detach(pid: u32) -> io::Result<()> {
    // SAFETY: PTRACE_DETACH takes integers only (no pointers: addr and data are 0).
    if unsafe { libc::ptrace(libc::PTRACE_DETACH, pid as libc::pid_t, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ask to be traced by our parent (`PTRACE_TRACEME`): after the next successful exec the
/// kernel stops us before the new program's first instruction. Async-signal-safe (one
/// system call), so it may run between fork and exec.
pub fn ptrace_traceme() -> io::Result<()> {
    // SAFETY: PTRACE_TRACEME takes integers only (pid, addr and data are ignored).
    if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pid` as rustix's non-zero process id.
fn pid_of(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}
