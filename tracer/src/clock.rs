//! The clocks events are stamped with.

/// CLOCK_MONOTONIC in ns: the clock of the kernel probes (`bpf_ktime_get_ns`) and of Go's
/// `nanotime()`, so user-space readings line up with the runtime's timestamps.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
