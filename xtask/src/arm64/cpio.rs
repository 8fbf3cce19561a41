//! A `newc` cpio archive writer, for the guest's initramfs: the kernel unpacks it into
//! its root file system. Written here because Debian 12's base system has no `cpio`,
//! and the format is a 110-byte ASCII header per entry.

use std::io::{self, Write};

/// One entry of the archive.
pub enum Entry<'a> {
    Dir,
    /// A regular file with its mode bits (e.g. 0o755).
    File(&'a [u8], u32),
    /// A symbolic link to the target path.
    Symlink(&'a str),
    /// A character device `major:minor` (the kernel needs `/dev/console` to give /init a
    /// terminal before devtmpfs is mounted).
    CharDev(u32, u32),
}

/// Writes entries one after the other; [`Writer::finish`] adds the trailer.
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    inode: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            inode: 1,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }

    /// Adds `path` (relative, no leading slash) with `entry`.
    pub fn add(&mut self, path: &str, entry: Entry<'_>) -> io::Result<()> {
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
            Entry::Dir => (0o040_755, &[], (0, 0)),
            Entry::File(data, perm) => (0o100_000 | (perm & 0o7777), data, (0, 0)),
            Entry::Symlink(target) => (0o120_777, target.as_bytes(), (0, 0)),
            Entry::CharDev(major, minor) => (0o020_600, &[], (major, minor)),
        };
        self.header(path, mode, data.len(), rdev)?;
        self.put(data)?;
        self.pad4()
    }

    fn header(&mut self, path: &str, mode: u32, size: usize, rdev: (u32, u32)) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: too large for cpio"),
            )
        })?;
        let inode = self.inode;
        self.inode += 1;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            path.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad4()
    }

    /// The `TRAILER!!!` entry; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout `cpio -H newc` writes: header fields in hex, name and data padded to 4.
    #[test]
    fn newc_layout() {
        let mut w = Writer::new(Vec::new());
        w.add("a", Entry::File(b"xyz", 0o644)).unwrap();
        let out = w.finish().unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("070701"));
        // mode 0100644, size 3, namesize 2
        assert_eq!(&text[6 + 8..6 + 16], "000081a4");
        assert_eq!(&text[6 + 6 * 8..6 + 7 * 8], "00000003");
        assert_eq!(&text[6 + 11 * 8..6 + 12 * 8], "00000002");
        // 110 header + "a\0" = 112 (aligned), then "xyz" + 1 pad.
        assert_eq!(&out[112..115], b"xyz");
        assert_eq!(out[115], 0);
        assert_eq!(&out[116..122], b"070701");
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
    }
}
