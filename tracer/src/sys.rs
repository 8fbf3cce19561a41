//! The system calls the tracer makes itself (clocks, process control, capabilities),
//! each behind a safe function: the one place with `libc` calls and their `unsafe`.
//!
//! Not here: the `bpf(2)` calls of `probes/multi.rs` (they are the probe loader's own
//! business, next to the attribute structs they fill), reads of the kernel's ring buffer
//! in `session/traced.rs`, and the memory map of a binary, which are not system calls
//! one could wrap without their context.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Clock ticks per second of /proc's CPU times (`sysconf(_SC_CLK_TCK)`), if known.
pub fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as u64)
}

/// How many CPUs `pid` may run on (its affinity mask), if it can be read.
pub fn cpus_allowed(pid: u32) -> Option<u32> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it and we pass its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        ) != 0
        {
            return None;
        }
        Some(libc::CPU_COUNT(&set) as u32)
    }
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// One 32-bit half of the calling thread's capability sets (`struct
/// __user_cap_data_struct`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// The calling thread's capability sets, low half first (`capget`, version 3).
pub fn capabilities() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills `data` (two entries for version 3) for the calling thread;
    // header and data are valid, properly sized, and live across the call.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

/// Set the calling thread's capability sets (`capset`, version 3). Only a subset of what
/// [`capabilities`] returned is always allowed.
pub fn set_capabilities(data: &[CapData; 2]) -> io::Result<()> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads two entries for version 3 for the calling thread; header and
    // data are valid, properly sized, and live across the call.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for `pid`: readable once the process has exited.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Send `signal` to `pid`.
pub fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes integers only.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait for a state change of child `pid`: its wait status, or the error (EINTR included:
/// the caller decides whether to wait again).
pub fn waitpid(pid: u32) -> io::Result<libc::c_int> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid out pointer; waitpid only reaps a child of ours.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    if r == pid as libc::pid_t {
        Ok(status)
    } else {
        Err(io::Error::last_os_error())
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

/// A close-on-exec pipe: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Read once from `fd` into `buf`: the number of bytes read (0 at end of file).
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a live buffer of the given size from a descriptor we own.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Fork a child that asks to be traced (`PTRACE_TRACEME`, so it stops at its first
/// instruction after exec) and execs `program` with `argv` (null-terminated). If exec
/// fails, the child writes its errno (4 bytes, native order) to `errno_pipe` and exits
/// with 127; `errno_pipe` is close-on-exec, so its reader sees end of file once exec
/// succeeded. `close_in_child` is the pipe's read end. Returns the child's pid.
pub fn fork_exec_traced(
    program: &CStr,
    argv: &[*const libc::c_char],
    errno_pipe: &OwnedFd,
    close_in_child: &OwnedFd,
) -> io::Result<u32> {
    if argv.last() != Some(&std::ptr::null()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "argv must end with a null pointer",
        ));
    }
    let (write_fd, read_fd) = (errno_pipe.as_raw_fd(), close_in_child.as_raw_fd());
    // SAFETY: everything the child touches (program, argv and the strings it points at,
    // the two descriptors) was allocated before fork and stays valid in the child's copy
    // of memory; the child only makes async-signal-safe calls (close, ptrace, execv,
    // write, _exit), so forking a multi-threaded process is sound too.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: child side, as above; `argv` is null-terminated (checked before fork).
        unsafe {
            libc::close(read_fd);
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::execv(program.as_ptr(), argv.as_ptr());
            let errno = *libc::__errno_location();
            let bytes = errno.to_ne_bytes();
            libc::write(write_fd, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        }
    }
    Ok(pid as u32)
}
