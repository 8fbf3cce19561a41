//! Relating a running process to its executable file. procfs parses `/proc/PID/maps`;
//! matching its `major:minor` to a `stat`'s `st_dev` (glibc's encoding) is done here.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use procfs::process::{MMPermissions, MMapPath, MemoryMap, MemoryMaps};
use procfs::FromBufRead;

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
    // Read here (the error names the file once), parsed by procfs.
    let maps = std::fs::read_to_string(&maps_path)
        .map_err(|e| perr(format!("cannot read {maps_path}: {e}")))?;
    let maps = MemoryMaps::from_buf_read(without_sysv(&maps).as_bytes())
        .map_err(|e| perr(format!("cannot parse {maps_path}: {e}")))?;
    let exe_link = std::fs::read_link(&exe).ok();

    let mut ours = exe_mappings(&maps, (dev, ino), exe_link.as_deref());
    if ours.is_empty() {
        return Err(perr(format!(
            "no mapping of its executable (device {}:{}, inode {ino}) in {maps_path}",
            dev_major(dev),
            dev_minor(dev)
        )));
    }
    // Prefer executable mappings: the text segment is what uprobes need to agree with.
    ours.sort_by_key(|m| !executable(m));
    for m in ours {
        let (start, offset) = (m.address.0, m.offset);
        for seg in bin.load_segments() {
            let seg_end = seg.offset.saturating_add(seg.filesz);
            // The mapping's first page may start before p_offset (page rounding), by less
            // than the largest page size Linux supports for executables (64 KiB).
            let starts_in_segment =
                offset < seg_end && offset.saturating_add(MAX_PAGE) > seg.offset;
            if !starts_in_segment || executable(m) != seg.executable {
                continue;
            }
            let link_addr = if offset >= seg.offset {
                seg.vaddr.wrapping_add(offset - seg.offset)
            } else {
                seg.vaddr.wrapping_sub(seg.offset - offset)
            };
            let bias = start.wrapping_sub(link_addr);
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

/// The mappings of the executable whose `stat` gives device `dev` and inode `ino`, and
/// when there is none, those of that inode named `exe_link` (the kernel's name for the
/// file): overlayfs reports the underlying file's device in maps but the overlay's in stat.
fn exe_mappings<'a>(
    maps: &'a MemoryMaps,
    (dev, ino): (u64, u64),
    exe_link: Option<&Path>,
) -> Vec<&'a MemoryMap> {
    let want = (dev_major(dev), dev_minor(dev));
    // procfs gives the numbers as i32 (parsed from hex, never negative).
    let on_dev = |m: &MemoryMap| {
        (u64::try_from(m.dev.0), u64::try_from(m.dev.1)) == (Ok(want.0), Ok(want.1))
    };
    let ours: Vec<&MemoryMap> = maps
        .iter()
        .filter(|m| m.inode == ino && on_dev(m))
        .collect();
    if !ours.is_empty() {
        return ours;
    }
    maps.iter()
        .filter(|m| {
            m.inode == ino
                && matches!(
                    (&m.pathname, exe_link),
                    (MMapPath::Path(p), Some(l)) if p == l
                )
        })
        .collect()
}

fn executable(m: &MemoryMap) -> bool {
    m.perms.contains(MMPermissions::EXECUTE)
}

/// glibc's `gnu_dev_major` encoding of `st_dev`.
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// glibc's `gnu_dev_minor` encoding of `st_dev`.
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

/// The maps text without its SysV shared-memory lines (paths `/SYSV...`): procfs slices
/// the key out of such a path unchecked, so a file the target maps under a short
/// `/SYSV` name would panic the parse, and a non-hex one fail it. They are never the
/// executable's mappings, which are all this module looks for.
fn without_sysv(maps: &str) -> String {
    maps.lines()
        .filter(|line| {
            // The path is the sixth field (after five single-space separated ones).
            line.splitn(6, ' ')
                .nth(5)
                .is_none_or(|path| !path.trim_start().starts_with("/SYSV"))
        })
        .flat_map(|line| [line, "\n"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of /proc/PID/maps as the kernel writes them (an anonymous mapping's line ends
    /// in a space after the inode).
    const MAPS: &str = concat!(
        "55d0c6a00000-55d0c6a01000 r--p 00000000 fd:01 1234567    /usr/bin/prog (deleted)\n",
        "55d0c6a01000-55d0c6a9f000 r-xp 00001000 fd:01 1234567    /usr/bin/prog (deleted)\n",
        "55d0c6b00000-55d0c6b01000 r--p 00000000 00:2f 1234567    /usr/bin/other\n",
        "7ffd1000-7ffd2000 rw-p 00000000 00:00 0 \n",
        "7ffd3000-7ffd4000 r-xp 00000000 00:00 0                  [vdso]\n",
    );

    #[test]
    fn parse_maps_line() {
        let maps = MemoryMaps::from_buf_read(MAPS.as_bytes()).unwrap();
        let m = &maps.0[1];
        assert_eq!(m.address.0, 0x55d0c6a01000);
        assert_eq!(m.offset, 0x1000);
        assert!(executable(m));
        assert_eq!(m.dev, (0xfd, 1));
        assert_eq!(m.inode, 1234567);
        assert_eq!(m.pathname, MMapPath::Path("/usr/bin/prog (deleted)".into()));
        let anon = &maps.0[3];
        assert!(anon.pathname == MMapPath::Anonymous && !executable(anon));
        assert!(MemoryMaps::from_buf_read("garbage\n".as_bytes()).is_err());
    }

    #[test]
    fn the_executable_is_found_by_device_and_inode_then_by_name() {
        let maps = MemoryMaps::from_buf_read(MAPS.as_bytes()).unwrap();
        let fd01: u64 = 0xfd01; // makedev(0xfd, 1)
        let starts = |v: Vec<&MemoryMap>| v.iter().map(|m| m.address.0).collect::<Vec<_>>();
        let by_dev = exe_mappings(&maps, (fd01, 1234567), None);
        assert_eq!(starts(by_dev), [0x55d0c6a00000, 0x55d0c6a01000]);
        // overlayfs: stat's device is not the one maps shows; the name decides.
        let other = Path::new("/usr/bin/other");
        let by_name = exe_mappings(&maps, (0x0801, 1234567), Some(other));
        assert_eq!(starts(by_name), [0x55d0c6b00000]);
        assert!(exe_mappings(&maps, (0x0801, 1234567), None).is_empty());
        assert!(exe_mappings(&maps, (fd01, 7), Some(other)).is_empty());
    }

    #[test]
    fn our_own_executable_is_in_our_maps() {
        // The kernel's maps of this process parse, and its text is found as load_bias
        // finds a target's.
        let exe = exe_path(std::process::id());
        let meta = std::fs::metadata(&exe).unwrap();
        let text = std::fs::read_to_string("/proc/self/maps").unwrap();
        let maps = MemoryMaps::from_buf_read(text.as_bytes()).unwrap();
        let link = std::fs::read_link(&exe).ok();
        let ours = exe_mappings(&maps, (meta.dev(), meta.ino()), link.as_deref());
        assert!(ours.iter().any(|m| executable(m)), "{text}");
    }

    #[test]
    fn sysv_lines_are_left_out_before_procfs_sees_them() {
        // A short or non-hex /SYSV name would panic or fail procfs's parse of the whole
        // file; the executable's lines survive.
        let text = format!(
            "{MAPS}{}{}",
            "7f0000000000-7f0000001000 rw-s 00000000 00:01 5    /SYSVa\n",
            "7f0000002000-7f0000003000 rw-s 00000000 00:01 6    /SYSVzzzzzzzzzz (deleted)\n"
        );
        let kept = without_sysv(&text);
        assert_eq!(kept, MAPS);
        let maps = MemoryMaps::from_buf_read(kept.as_bytes()).unwrap();
        assert_eq!(maps.0.len(), 5);
    }

    #[test]
    fn dev_numbers() {
        // makedev(0xfd, 1) and makedev(259, 70000)
        assert_eq!((dev_major(0xfd01), dev_minor(0xfd01)), (0xfd, 1));
        let dev: u64 = (259 << 8) | (70000 & 0xff) | ((70000 & !0xff) << 12);
        assert_eq!((dev_major(dev), dev_minor(dev)), (259, 70000));
    }
}
