//! Facts about the traced process read from /proc: does it exist, what is it, a few words
//! of its memory, and whether we are allowed to trace it. The procfs crate parses /proc's
//! files; what it has nothing better for stays hand-made here: the identity of the `exe`
//! link (a stat of it) and reads of the target's memory (pread on `/proc/PID/mem`).

use std::{fs, io, os::unix::fs::FileExt, path::PathBuf};

use procfs::process::{Stat, Status};
use procfs::{FromRead, ProcessCGroups};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    #[error("tracing needs root, or the capabilities {missing} (to load BPF programs and attach uprobes)")]
    NotPrivileged { missing: String },
}

/// `/proc/PID/stat`, parsed by procfs (which copes with a command name that holds spaces
/// and parentheses). Opened by path, one open and one read, not through a
/// [`procfs::process::Process`] handle, which opens the directory first: a rescan reads it for every
/// process seen so far.
pub fn stat(pid: u32) -> procfs::ProcResult<Stat> {
    Stat::from_file(format!("/proc/{pid}/stat"))
}

/// `/proc/PID/cgroup`: one entry per hierarchy, cgroup v2's with hierarchy 0 and no
/// controllers. None when the process cannot be read (it ended).
pub fn cgroups(pid: u32) -> Option<ProcessCGroups> {
    ProcessCGroups::from_file(format!("/proc/{pid}/cgroup")).ok()
}

/// CPU time the process has used so far, user and system (uprobe traps are charged to
/// the trapping thread as system time), from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> io::Result<std::time::Duration> {
    let stat = stat(pid).map_err(io::Error::other)?;
    let ticks = stat.utime.saturating_add(stat.stime);
    let hz = crate::sys::clock_ticks_per_second().unwrap_or(100);
    Ok(std::time::Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / hz,
    ))
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn exists(pid: u32) -> bool {
    stat(pid).is_ok_and(|s| s.state != 'Z')
}

/// Fail unless the process exists.
pub fn check_exists(pid: u32) -> Result<(), TargetError> {
    if pid == 0 || !exists(pid) {
        return Err(TargetError::NoSuchProcess(pid));
    }
    Ok(())
}

/// `/proc/PID/exe`: the binary as the process itself sees it, valid across mount
/// namespaces (containers) where its own path may not exist on the host.
pub fn exe_link(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/exe"))
}

/// The path of the executable as the process's namespace names it, for display.
pub fn exe_display(pid: u32) -> String {
    fs::read_link(exe_link(pid))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| format!("/proc/{pid}/exe"))
}

/// An executable held open, so that it can still be read and probed by path once the
/// process that ran it has ended: a short-lived process often ends before its binary's
/// analysis does (sooner on a loaded host), and then `/proc/PID/exe` names nothing, so
/// the analysis failed and the binary was judged "not Go" for all its later processes.
pub struct HeldExe {
    file: fs::File,
    /// The binary's name for messages (the path the process or the user gave).
    pub display: String,
}

impl HeldExe {
    /// The executable of `pid`.
    pub fn of_process(pid: u32) -> io::Result<HeldExe> {
        Ok(HeldExe {
            file: fs::File::open(exe_link(pid))?,
            display: exe_display(pid),
        })
    }

    /// The file at `path`.
    pub fn at(path: &std::path::Path) -> io::Result<HeldExe> {
        Ok(HeldExe {
            file: fs::File::open(path)?,
            display: path.display().to_string(),
        })
    }

    /// Device and inode of the file held.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map(|m| (m.dev(), m.ino()))
    }

    /// A path to the file held, valid while it is: `/proc/self/fd/N`, which the kernel
    /// follows to the inode when a uprobe is attached by path.
    pub fn path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// Device and inode of the process's executable: changes when it execs another program.
pub fn exe_identity(pid: u32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(exe_link(pid)).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether `pid`, whose executable was `was` ([`exe_identity`]) when tracing began, now
/// runs another program (it called execve). Only a readable executable that differs
/// counts: an exiting process loses its executable link (the kernel drops its memory
/// map) some time before it shows as a zombie, and in that window it is ending, not
/// replacing its program (a traced process that exited was once reported as an exec).
pub fn replaced_program(pid: u32, was: Option<(u64, u64)>) -> bool {
    let now = exe_identity(pid);
    now.is_some() && now != was && exists(pid)
}

/// Device and inode of the file at `path` (following symlinks): what identifies a
/// binary however it is named or linked, and what `/proc/PID/exe` resolves to.
pub fn file_identity(path: &std::path::Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Every process (not thread) but ourselves, in pid order.
pub fn all_pids() -> Vec<u32> {
    let me = std::process::id();
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    // A process that ended since the directory was listed is an error here: left out.
    let mut pids: Vec<u32> = processes
        .filter_map(|p| u32::try_from(p.ok()?.pid).ok())
        .filter(|&pid| pid != me)
        .collect();
    pids.sort_unstable();
    pids
}

/// Every process (not thread) whose executable is the file with this device and inode,
/// in pid order. Processes we may not inspect, zombies and ourselves are left out.
pub fn pids_running(identity: (u64, u64)) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| exe_identity(pid) == Some(identity))
        .collect()
}

/// When the process started (clock ticks after boot, /proc/PID/stat field 22): with the
/// pid, names one process even after its pid is reused.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).ok().map(|s| s.starttime)
}

/// Read `N` bytes of the target's memory at `addr`.
pub fn read_memory<const N: usize>(pid: u32, addr: u64) -> io::Result<[u8; N]> {
    let f = fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut buf = [0u8; N];
    f.read_exact_at(&mut buf, addr)?;
    Ok(buf)
}

/// `len` bytes of the target's memory at `addr`.
pub fn read_memory_vec(pid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let f = fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, addr)?;
    Ok(buf)
}

/// GOMAXPROCS as the target will run with it: the `gomaxprocs` variable when the runtime
/// has set it, otherwise what the runtime will choose (GOMAXPROCS from its environment,
/// or the CPUs it may run on).
pub fn gomaxprocs(pid: u32, gomaxprocs_addr: Option<u64>) -> Option<u32> {
    if let Some(addr) = gomaxprocs_addr {
        if let Ok(b) = read_memory::<4>(pid, addr) {
            let v = i32::from_le_bytes(b);
            if v > 0 {
                return Some(v as u32);
            }
        }
    }
    // Read by hand, not through procfs's map of the environment: of a variable set twice,
    // the runtime takes the first, a map keeps one of them.
    if let Ok(env) = fs::read(format!("/proc/{pid}/environ")) {
        let first = env
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(b"GOMAXPROCS="));
        if let Some(n) = first
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok())
            .filter(|&n| n > 0)
        {
            return Some(n);
        }
    }
    crate::sys::cpus_allowed(pid)
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Check that this process may load BPF programs and attach uprobes: root, or CAP_BPF and
/// CAP_PERFMON (CAP_SYS_ADMIN also does on every kernel).
pub fn check_privileges() -> Result<(), TargetError> {
    let caps = Status::from_file("/proc/self/status").map_or(0, |s| s.capeff);
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    Err(TargetError::NotPrivileged {
        missing: missing.join(" and "),
    })
}

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_KILL: u32 = 5;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SETPCAP: u32 = 8;

/// After the probes are attached, keep only the capabilities the rest of the run needs
/// and drop the others for good (effective, permitted and inheritable sets):
/// CAP_BPF to read the maps, CAP_SYS_PTRACE to read the target's memory, CAP_KILL to
/// signal a launched command, the DAC ones to write output files where root could, and
/// CAP_PERFMON and CAP_SYS_ADMIN only when probes still come and go (`keep_attach`,
/// sampled allocation tracing). Returns the effective set kept.
pub fn drop_capabilities(keep_attach: bool) -> std::io::Result<u64> {
    let mut keep: u64 = [
        CAP_BPF,
        CAP_SYS_PTRACE,
        CAP_KILL,
        CAP_DAC_OVERRIDE,
        CAP_DAC_READ_SEARCH,
    ]
    .iter()
    .fold(0, |m, c| m | 1 << c);
    if keep_attach {
        keep |= 1 << CAP_PERFMON | 1 << CAP_SYS_ADMIN;
    }
    let _ = CAP_SETPCAP;
    // Effective, permitted, inheritable: each only reduced (a subset is always allowed).
    let sets = crate::sys::capabilities()?.map(|set| set & keep);
    crate::sys::set_capabilities(sets)?;
    Ok(sets[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /proc/PID/stat line as the kernel writes it, with the command name `comm`.
    fn stat_line(comm: &str, state: char) -> String {
        format!(
            "12 ({comm}) {state} 1 12 12 0 -1 4194304 100 0 0 0 7 5 0 0 20 0 1 0 1293271 \
             3133440 357 18446744073709551615 1 2 3 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 4 5 6 7 8 9 10 0\n"
        )
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        // The fields read: state, utime and stime (14, 15), starttime (22).
        let s = Stat::from_read(stat_line("a) b", 'S').as_bytes()).unwrap();
        assert_eq!((s.comm.as_str(), s.state), ("a) b", 'S'));
        assert_eq!((s.utime, s.stime, s.starttime), (7, 5, 1293271));
        let s = Stat::from_read(stat_line("x) Z (y", 'Z').as_bytes()).unwrap();
        assert_eq!(s.state, 'Z');
        assert!(Stat::from_read("garbage".as_bytes()).is_err());
        assert!(cpu_time(std::process::id()).is_ok());
        assert!(cpu_time(u32::MAX).is_err());
    }

    #[test]
    fn processes_are_found_by_their_binary() {
        // A child running the same file as `sleep` is found; we are never in the list.
        let sleep = std::path::Path::new("/bin/sleep");
        let Ok(identity) = file_identity(sleep) else {
            return;
        };
        let Ok(mut child) = std::process::Command::new(sleep).arg("5").spawn() else {
            return;
        };
        let found = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            pids_running(identity).contains(&child.id())
        });
        let started = start_time(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "sleep {} not found by its binary", child.id());
        assert!(started.is_some());
        assert!(!pids_running(identity).contains(&std::process::id()));
    }

    #[test]
    fn gomaxprocs_comes_from_the_environment() {
        let Ok(mut child) = std::process::Command::new("sleep")
            .arg("5")
            .env("GOMAXPROCS", "3")
            .spawn()
        else {
            return;
        };
        // The environment is readable once exec has replaced the forked image.
        let seen = (0..100).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            gomaxprocs(child.id(), None).filter(|&n| n == 3)
        });
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(seen, Some(3));
    }

    #[test]
    fn only_a_readable_new_executable_is_an_exec() {
        let me = exe_identity(std::process::id());
        assert!(me.is_some());
        assert!(!replaced_program(std::process::id(), me));
        assert!(replaced_program(std::process::id(), Some((0, 0))));
        // kthreadd (pid 2 outside a pid namespace) has no executable link and is not a
        // zombie: how an exiting process looks between losing its memory map and
        // becoming a zombie. It must not read as an exec.
        if exists(2) && exe_identity(2).is_none() {
            assert!(!replaced_program(2, me));
        }
        assert!(!replaced_program(u32::MAX, me));
    }

    #[test]
    fn own_process_is_seen() {
        assert!(exists(std::process::id()));
        assert!(check_exists(0).is_err());
        assert!(gomaxprocs(std::process::id(), None).is_some());
        assert!(
            stat(std::process::id()).is_ok_and(|s| u32::try_from(s.pid) == Ok(std::process::id()))
        );
        assert!(start_time(std::process::id()).is_some());
        // The capabilities check reads CapEff from our status.
        assert!(Status::from_file("/proc/self/status").is_ok());
        let me = cgroups(std::process::id()).unwrap();
        assert!(!me.0.is_empty());
        assert!(cgroups(u32::MAX).is_none());
    }
}
