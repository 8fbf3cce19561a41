//! One program on many probe sites through a single `uprobe_multi` link (Linux 6.6+).
//!
//! Why this exists: the allocation probes come and go in sampled mode, and with one
//! perf-event uprobe per site, removing them is slow *for the target*. Closing a
//! perf-event uprobe takes the kernel's global `event_mutex`, removes that probe's
//! breakpoint, and waits for an RCU-tasks-trace grace period before releasing the mutex;
//! the next probe's breakpoint goes only after that. With a dozen sites the last
//! breakpoints stayed in the target for more than a second after the burst ended, every
//! allocation trapping (~20 µs on a VM) without being counted: measured here as +2.3 s of
//! the target's system time for a 10 ms burst. A `uprobe_multi` link removes all its
//! breakpoints at once and waits for a single grace period afterwards.
//!
//! aya 0.14 cannot load a program for `BPF_TRACE_UPROBE_MULTI` (the expected attach type
//! must be given at load time), so the program is taken from the same object with
//! `aya-obj`, its map references pointed at the maps aya already created (so it shares
//! every map with the other programs), and loaded and linked with the `bpf(2)` syscall.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya::maps::{Map, MapData};
use aya::Ebpf;
use aya_obj::generated::bpf_insn;

/// `BPF_PROG_LOAD` and `BPF_LINK_CREATE` from `enum bpf_cmd` (uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_PROG_TYPE_KPROBE`: uprobe programs are kprobe programs.
const BPF_PROG_TYPE_KPROBE: u32 = 2;
/// `BPF_TRACE_UPROBE_MULTI` from `enum bpf_attach_type`.
const BPF_TRACE_UPROBE_MULTI: u32 = 48;

#[derive(Debug, thiserror::Error)]
pub enum MultiError {
    #[error("cannot read the eBPF object: {0}")]
    Object(String),
    #[error("eBPF object has no program {0}")]
    NoProgram(String),
    #[error("map {0} of the eBPF object was not created")]
    NoMap(String),
    #[error("the kernel rejected program {name}{log}")]
    Load {
        name: String,
        source: io::Error,
        log: String,
    },
    #[error("cannot create a uprobe_multi link: {0}")]
    Link(io::Error),
    #[error("bad path {0}")]
    Path(String),
}

impl MultiError {
    /// Whether the kernel lacks `uprobe_multi` links (older than 6.6, or built without
    /// them), as opposed to a failure that would hit per-site uprobes too.
    pub fn unsupported(&self) -> bool {
        let errno = match self {
            MultiError::Load { source, .. } | MultiError::Link(source) => source.raw_os_error(),
            _ => None,
        };
        matches!(
            errno,
            // 524: the kernel's internal ENOTSUPP.
            Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | 524)
        )
    }
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type`; the
/// kernel takes a shorter attr as if the rest were zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_LINK_CREATE` part of `union bpf_attr` for `uprobe_multi`.
#[repr(C)]
#[derive(Default)]
struct UprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    _pad: u32,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] struct laid out as the kernel's
    // `union bpf_attr` prefix for `cmd`, and its size is passed along; every pointer in it
    // points at memory that outlives the call. The kernel returns a new fd or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative return of these commands is a new file descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// A program loaded for `uprobe_multi` links.
pub struct MultiProgram {
    fd: OwnedFd,
}

/// An attached `uprobe_multi` link; dropping it removes every breakpoint it placed.
pub struct MultiLink {
    _fd: OwnedFd,
}

impl MultiProgram {
    /// Load program `name` of `object` for `uprobe_multi`, using the maps `ebpf` (loaded
    /// from the same object) created. Call before any map is taken out of `ebpf`.
    pub fn load(object: &[u8], ebpf: &Ebpf, name: &str) -> Result<MultiProgram, MultiError> {
        let mut obj =
            aya_obj::Object::parse(object).map_err(|e| MultiError::Object(e.to_string()))?;
        let text_sections = obj.functions.keys().map(|(section, _)| *section).collect();
        let mut fds = Vec::with_capacity(obj.maps.len());
        for map_name in obj.maps.keys() {
            let data = ebpf
                .map(map_name)
                .and_then(map_data)
                .ok_or_else(|| MultiError::NoMap(map_name.clone()))?;
            fds.push((map_name.clone(), data.fd().as_fd().as_raw_fd()));
        }
        let maps = obj.maps.clone();
        obj.relocate_maps(
            fds.iter()
                .filter_map(|(n, fd)| maps.get(n).map(|m| (n.as_str(), *fd, m))),
            &text_sections,
        )
        .map_err(|e| MultiError::Object(e.to_string()))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| MultiError::Object(e.to_string()))?;
        let program = obj
            .programs
            .get(name)
            .ok_or_else(|| MultiError::NoProgram(name.into()))?;
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or_else(|| MultiError::NoProgram(name.into()))?;
        let fd = load_program(
            name,
            &function.instructions,
            &obj.license,
            obj.kernel_version.unwrap_or(0),
        )?;
        Ok(MultiProgram { fd })
    }

    /// Attach to every file offset of `offsets` in the executable at `path`, for
    /// process `pid` only (its host pid; the kernel filters by address space).
    pub fn attach(&self, path: &Path, offsets: &[u64], pid: u32) -> Result<MultiLink, MultiError> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| MultiError::Path(path.display().to_string()))?;
        let mut attr = UprobeMultiLinkAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            attach_type: BPF_TRACE_UPROBE_MULTI,
            path: path.as_ptr() as u64,
            offsets: offsets.as_ptr() as u64,
            cnt: offsets.len() as u32,
            pid,
            ..Default::default()
        };
        let fd = sys_bpf(BPF_LINK_CREATE, &mut attr).map_err(MultiError::Link)?;
        Ok(MultiLink { _fd: fd })
    }
}

fn load_program(
    name: &str,
    insns: &[bpf_insn],
    license: &CString,
    kern_version: u32,
) -> Result<OwnedFd, MultiError> {
    let mut prog_name = [0u8; 16];
    for (dst, src) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    let attr = |log: &mut Vec<u8>, level: u32| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: level,
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version,
        prog_name,
        expected_attach_type: BPF_TRACE_UPROBE_MULTI,
        ..Default::default()
    };
    let mut no_log = Vec::new();
    match sys_bpf(BPF_PROG_LOAD, &mut attr(&mut no_log, 0)) {
        Ok(fd) => Ok(fd),
        Err(source) => {
            // Load again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 20];
            let _ = sys_bpf(BPF_PROG_LOAD, &mut attr(&mut log, 1));
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            let log = if tail.is_empty() {
                String::new()
            } else {
                format!(
                    " (verifier: {})",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )
            };
            Err(MultiError::Load {
                name: name.into(),
                source,
                log,
            })
        }
    }
}

/// The created map behind an aya [`Map`], whatever its kind.
fn map_data(map: &Map) -> Option<&MapData> {
    Some(match map {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::HashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::RingBuf(d)
        | Map::PerfEventArray(d)
        | Map::StackTraceMap(d)
        | Map::Stack(d)
        | Map::Queue(d)
        | Map::BloomFilter(d)
        | Map::LpmTrie(d)
        | Map::ProgramArray(d) => d,
        _ => return None,
    })
}
