//! The clocks events are stamped with.

/// CLOCK_MONOTONIC in ns: the clock of the kernel probes (`bpf_ktime_get_ns`) and of Go's
/// `nanotime()`, so user-space readings line up with the runtime's timestamps.
pub fn monotonic_ns() -> u64 {
    crate::sys::monotonic_ns()
}
