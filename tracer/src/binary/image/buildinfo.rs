//! The Go version from the `.go.buildinfo` blob, which the linker writes into every Go
//! executable (stripped or not) and which is the only reliable "is this Go?" test.
//!
//! Layout (see `debug/buildinfo` in the Go tree): a 32-byte header — 14 bytes of magic,
//! pointer size, flags — then, since Go 1.18 (flag bit 1), the version and module info as
//! inline uvarint-length-prefixed strings. Older binaries store pointers instead; we
//! support Go 1.19+ only and say so.
//!
//! Read by hand: no maintained Rust crate reads Go's build info (the Go tree's own reader
//! is `debug/buildinfo`); its string lengths are uvarints, read by gimli's LEB128 decoder.

use std::path::Path;

use super::elf::ElfInfo;
use super::{BinaryError, GoVersion};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_SIZE: usize = 32;
/// The blob is 16-byte aligned in memory and therefore in the file.
const ALIGN: usize = 16;
const FLAG_INLINE_STRINGS: u8 = 0x2;

pub(crate) fn find_version(
    data: &[u8],
    info: &ElfInfo,
    path: &Path,
) -> Result<GoVersion, BinaryError> {
    let blob = locate(data, info).ok_or_else(|| BinaryError::NotGo {
        path: path.to_path_buf(),
    })?;
    let unsupported = |detail: &str| BinaryError::UnsupportedBuildInfo {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let flags = *blob
        .get(15)
        .ok_or_else(|| unsupported("truncated header"))?;
    if flags & FLAG_INLINE_STRINGS == 0 {
        return Err(unsupported(
            "pointer-based layout of Go 1.17 or older; Go 1.19 or newer is required",
        ));
    }
    let rest = blob
        .get(HEADER_SIZE..)
        .ok_or_else(|| unsupported("truncated header"))?;
    let raw = read_varint_string(rest).ok_or_else(|| unsupported("malformed version string"))?;
    let raw = std::str::from_utf8(raw).map_err(|_| unsupported("version is not UTF-8"))?;
    GoVersion::parse(raw).ok_or_else(|| unsupported(&format!("unrecognised Go version {raw:?}")))
}

/// Finds the blob: in `.go.buildinfo` when section headers exist, otherwise (like Go's own
/// reader) at a 16-byte-aligned position in the first writable data we can find.
fn locate<'d>(data: &'d [u8], info: &ElfInfo) -> Option<&'d [u8]> {
    if let Some(s) = info.section(".go.buildinfo") {
        let bytes = info.section_data(data, s)?;
        return bytes.starts_with(MAGIC).then_some(bytes);
    }
    // No section headers (e.g. sstrip): scan the file at aligned offsets.
    let mut off = 0usize;
    while let Some(window) = data.get(off..) {
        if window.len() < HEADER_SIZE {
            break;
        }
        if window.starts_with(MAGIC) {
            return Some(window);
        }
        off = off.checked_add(ALIGN)?;
    }
    None
}

/// A uvarint length followed by that many bytes.
fn read_varint_string(buf: &[u8]) -> Option<&[u8]> {
    let (len, used) = crate::binary::uvarint(buf)?;
    let len = usize::try_from(len).ok()?;
    buf.get(used..used.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint() {
        assert_eq!(crate::binary::uvarint(&[0x08]), Some((8, 1)));
        assert_eq!(crate::binary::uvarint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(crate::binary::uvarint(&[0x80]), None);
        assert_eq!(crate::binary::uvarint(&[0xff; 11]), None);
        assert_eq!(
            read_varint_string(b"\x08go1.25.5rest"),
            Some(&b"go1.25.5"[..])
        );
        assert_eq!(read_varint_string(b"\x09go1.25.5"), None);
    }

    #[test]
    fn versions() {
        let v = GoVersion::parse("go1.25.5").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 25, 5));
        let v = GoVersion::parse("go1.27rc1").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 27, 0));
        let v = GoVersion::parse("go1.22.0 X:nocoverageredesign").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 22, 0));
        assert!(GoVersion::parse("go1.9").unwrap() < GoVersion::parse("go1.19").unwrap());
        assert!(GoVersion::parse("go1.21.13").unwrap() > GoVersion::parse("go1.21.2").unwrap());
        assert!(GoVersion::parse("1.21").is_none());
        assert!(GoVersion::parse("go").is_none());
        assert_eq!(
            GoVersion::parse("go1.19.8").unwrap().to_string(),
            "go1.19.8"
        );
    }
}
