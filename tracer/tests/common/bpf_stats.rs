//! The kernel's own count of a process's BPF program runs: with BPF run-time statistics
//! on (`BPF_ENABLE_STATS`), `/proc/PID/fdinfo/FD` of each BPF program shows how many
//! times it ran (`run_cnt`, one per uprobe hit) and for how long (`run_time_ns`).
//!
//! One source for the two measurements made from outside the tracer, included with
//! `#[path]` by tracer/tests/integration/probe_hits.rs and xtask/src/bench/observer.rs: an oracle must
//! not use the tracer's code, and a test crate and xtask share no library, so this file
//! needs nothing but std and libc.

#![allow(dead_code)] // each includer reads the figures it needs

use std::fs;
use std::io;

/// `bpf(BPF_ENABLE_STATS, {type = BPF_STATS_RUN_TIME})`: run counts are kept while the
/// returned descriptor is open (reference-counted by the kernel, so concurrent users on
/// a shared machine do not turn each other's statistics off).
pub struct StatsOn(libc::c_int);

impl StatsOn {
    pub fn enable() -> io::Result<StatsOn> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        // type 0 = BPF_STATS_RUN_TIME, the rest of the attribute union zero.
        let mut attr = [0u8; 64];
        // SAFETY: bpf(2) reads `size` bytes of its attribute union from `attr`, a live
        // zeroed buffer of that size; it writes nothing back for this command.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_mut_ptr(),
                attr.len() as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StatsOn(fd as libc::c_int))
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        // SAFETY: a descriptor bpf(2) returned, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The statistics of the BPF programs a process holds, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgStats {
    /// How many programs show a run count.
    pub programs: usize,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// The statistics of the BPF programs process `pid` holds now (zero once it is gone).
pub fn prog_stats(pid: u32) -> ProgStats {
    let mut stats = ProgStats::default();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return stats;
    };
    let field = |text: &str, key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    for text in dir
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
    {
        if !text.contains("prog_id:") {
            continue;
        }
        if let Some(n) = field(&text, "run_cnt:") {
            stats.programs += 1;
            stats.run_cnt += n;
            stats.run_time_ns += field(&text, "run_time_ns:").unwrap_or(0);
        }
    }
    stats
}
