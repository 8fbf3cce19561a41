//! Relating a running process to its executable file.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{BinaryError, GoBinary};

/// The kernel's handle on the executable of `pid`. Always open the binary through this:
/// the path the process believes it has may not exist in our mount namespace (containers)
/// or may have been replaced since it started; this link always reaches the mapped file.
pub fn exe_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/exe"))
}

/// Runtime address minus link-time address for `bin` in process `pid` (0 for non-PIE).
///
/// The executable's mappings in `/proc/PID/maps` are recognised by device and inode of
/// `stat(/proc/PID/exe)`, not by path (paths differ across mount namespaces and may be
/// " (deleted)"). A mapping at `start` with file offset `off` inside a PT_LOAD segment
/// puts file offset `off` at `start`, and that file offset belongs to link-time address
/// `p_vaddr - (p_offset - off)`; the difference is the bias. The first mapping is usually
/// page-aligned below `p_offset`, which the formula handles (the difference is negative).
pub fn load_bias(pid: u32, bin: &GoBinary) -> Result<u64, BinaryError> {
    if !bin.is_pie() {
        return Ok(0);
    }
    let perr = |detail: String| BinaryError::Process { pid, detail };
    let exe = exe_path(pid);
    let meta =
        std::fs::metadata(&exe).map_err(|e| perr(format!("cannot stat {}: {e}", exe.display())))?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path)
        .map_err(|e| perr(format!("cannot read {maps_path}: {e}")))?;
    let exe_link = std::fs::read_link(&exe).ok();

    let mappings: Vec<Mapping> = maps.lines().filter_map(Mapping::parse).collect();
    let mut ours: Vec<&Mapping> = mappings
        .iter()
        .filter(|m| m.ino == ino && m.dev == (dev_major(dev), dev_minor(dev)))
        .collect();
    if ours.is_empty() {
        // overlayfs reports the underlying file's device in maps but the overlay's in
        // stat; fall back to inode plus the kernel's own name for the file.
        ours = mappings
            .iter()
            .filter(|m| {
                m.ino == ino
                    && exe_link
                        .as_deref()
                        .is_some_and(|l| m.path.as_deref() == Some(l.as_os_str()))
            })
            .collect();
    }
    if ours.is_empty() {
        return Err(perr(format!(
            "no mapping of its executable (device {}:{}, inode {ino}) in {maps_path}",
            dev_major(dev),
            dev_minor(dev)
        )));
    }
    // Prefer executable mappings: the text segment is what uprobes need to agree with.
    ours.sort_by_key(|m| !m.executable);
    for m in ours {
        for seg in bin.load_segments() {
            let seg_end = seg.offset.saturating_add(seg.filesz);
            // The mapping's first page may start before p_offset (page rounding), by less
            // than the largest page size Linux supports for executables (64 KiB).
            let starts_in_segment =
                m.offset < seg_end && m.offset.saturating_add(MAX_PAGE) > seg.offset;
            if !starts_in_segment || m.executable != seg.executable {
                continue;
            }
            let link_addr = if m.offset >= seg.offset {
                seg.vaddr.wrapping_add(m.offset - seg.offset)
            } else {
                seg.vaddr.wrapping_sub(seg.offset - m.offset)
            };
            let bias = m.start.wrapping_sub(link_addr);
            if bias.is_multiple_of(MIN_PAGE) {
                return Ok(bias);
            }
        }
    }
    Err(perr(format!(
        "its mappings of {} match no loadable segment of the file",
        exe.display()
    )))
}

const MIN_PAGE: u64 = 4096;
const MAX_PAGE: u64 = 65536;

/// One line of /proc/PID/maps: `start-end perms offset major:minor inode [path]`.
#[derive(Debug)]
struct Mapping {
    start: u64,
    offset: u64,
    executable: bool,
    dev: (u64, u64),
    ino: u64,
    path: Option<std::ffi::OsString>,
}

impl Mapping {
    fn parse(line: &str) -> Option<Mapping> {
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let perms = fields.next()?;
        let offset = fields.next()?;
        let dev = fields.next()?;
        let ino = fields.next()?;
        let path = fields.next().map(|p| p.trim_start().into());
        let (start, _) = range.split_once('-')?;
        let (major, minor) = dev.split_once(':')?;
        Some(Mapping {
            start: u64::from_str_radix(start, 16).ok()?,
            offset: u64::from_str_radix(offset, 16).ok()?,
            executable: perms.as_bytes().get(2) == Some(&b'x'),
            dev: (
                u64::from_str_radix(major, 16).ok()?,
                u64::from_str_radix(minor, 16).ok()?,
            ),
            ino: ino.parse().ok()?,
            path,
        })
    }
}

/// glibc's `gnu_dev_major` encoding of `st_dev`.
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// glibc's `gnu_dev_minor` encoding of `st_dev`.
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_maps_line() {
        let m = Mapping::parse(
            "55d0c6a00000-55d0c6a9f000 r-xp 00001000 fd:01 1234567    /usr/bin/prog (deleted)",
        )
        .unwrap();
        assert_eq!(m.start, 0x55d0c6a00000);
        assert_eq!(m.offset, 0x1000);
        assert!(m.executable);
        assert_eq!(m.dev, (0xfd, 1));
        assert_eq!(m.ino, 1234567);
        assert_eq!(m.path.as_deref(), Some("/usr/bin/prog (deleted)".as_ref()));
        let anon = Mapping::parse("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").unwrap();
        assert!(anon.path.is_none() && !anon.executable);
    }

    #[test]
    fn dev_numbers() {
        // makedev(0xfd, 1) and makedev(259, 70000)
        assert_eq!((dev_major(0xfd01), dev_minor(0xfd01)), (0xfd, 1));
        let dev: u64 = (259 << 8) | (70000 & 0xff) | ((70000 & !0xff) << 12);
        assert_eq!((dev_major(dev), dev_minor(dev)), (259, 70000));
    }
}
