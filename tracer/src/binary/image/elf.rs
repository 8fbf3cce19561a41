//! The ELF facts the rest of the module needs, extracted once into owned values so that
//! [`crate::binary::GoBinary`] does not have to borrow its own buffer.

use std::path::Path;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection};

use super::{Arch, BinaryError};

/// One PT_LOAD program header.
#[derive(Clone, Debug)]
pub(crate) struct LoadSegment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
}

impl LoadSegment {
    /// File offset of `vaddr` if it lies in the file-backed part of this segment (the
    /// zero-filled tail past `p_filesz` has no file offset).
    pub fn file_offset_of(&self, vaddr: u64) -> Option<u64> {
        let delta = vaddr.checked_sub(self.vaddr)?;
        (delta < self.filesz).then(|| self.offset.checked_add(delta))?
    }

    /// Whether `[vaddr, vaddr + len)` lies entirely in the file-backed part.
    pub fn contains_file_range(&self, vaddr: u64, len: u64) -> bool {
        match vaddr.checked_sub(self.vaddr) {
            Some(delta) => delta
                .checked_add(len)
                .is_some_and(|end| end <= self.filesz && len > 0),
            None => false,
        }
    }
}

/// A section header (only what the Go-specific parsers need).
#[derive(Clone, Debug)]
pub(crate) struct SectionInfo {
    pub name: String,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    /// SHT_NOBITS sections (.bss) have no bytes in the file.
    pub nobits: bool,
}

/// Everything [`crate::binary::GoBinary`] keeps from the ELF headers.
#[derive(Debug)]
pub(crate) struct ElfInfo {
    pub arch: Arch,
    pub pie: bool,
    pub stripped: bool,
    pub has_dwarf: bool,
    pub segments: Vec<LoadSegment>,
    pub sections: Vec<SectionInfo>,
}

impl ElfInfo {
    pub fn parse(data: &[u8], path: &Path) -> Result<ElfInfo, BinaryError> {
        let not_elf = || BinaryError::NotElf {
            path: path.to_path_buf(),
        };
        match object::FileKind::parse(data) {
            Ok(object::FileKind::Elf64) => {}
            Ok(object::FileKind::Elf32) => {
                return Err(BinaryError::UnsupportedArch {
                    path: path.to_path_buf(),
                    arch: "a 32-bit architecture".into(),
                })
            }
            _ => return Err(not_elf()),
        }
        let file = ElfFile64::<Endianness>::parse(data).map_err(|e| BinaryError::Decode {
            path: path.to_path_buf(),
            what: "ELF headers",
            detail: e.to_string(),
        })?;
        let header = file.elf_header();
        let endian = file.endian();
        let machine = header.e_machine(endian);
        let arch = match (machine, file.is_little_endian()) {
            (elf::EM_X86_64, true) => Arch::X86_64,
            (elf::EM_AARCH64, true) => Arch::Aarch64,
            _ => {
                return Err(BinaryError::UnsupportedArch {
                    path: path.to_path_buf(),
                    arch: machine_name(machine, file.is_little_endian()),
                })
            }
        };
        let e_type = header.e_type(endian);
        if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
            return Err(not_elf());
        }
        let segments = file
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
            .map(|ph| LoadSegment {
                vaddr: ph.p_vaddr(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                executable: ph.p_flags(endian) & elf::PF_X != 0,
            })
            .collect();
        let sections: Vec<SectionInfo> = file
            .sections()
            .filter_map(|s| {
                let (offset, size) = s.file_range().unwrap_or((0, 0));
                Some(SectionInfo {
                    name: s.name().ok()?.to_string(),
                    addr: s.address(),
                    offset,
                    size: if s.file_range().is_some() {
                        size
                    } else {
                        s.size()
                    },
                    nobits: s.file_range().is_none(),
                })
            })
            .collect();
        let stripped = !sections.iter().any(|s| s.name == ".symtab");
        let has_dwarf = sections
            .iter()
            .any(|s| (s.name == ".debug_info" || s.name == ".zdebug_info") && s.size > 0);
        Ok(ElfInfo {
            arch,
            pie: e_type == elf::ET_DYN,
            stripped,
            has_dwarf,
            segments,
            sections,
        })
    }

    pub fn section(&self, name: &str) -> Option<&SectionInfo> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The file bytes of a section (empty for SHT_NOBITS).
    pub fn section_data<'d>(&self, data: &'d [u8], s: &SectionInfo) -> Option<&'d [u8]> {
        if s.nobits {
            return None;
        }
        let start = usize::try_from(s.offset).ok()?;
        let len = usize::try_from(s.size).ok()?;
        data.get(start..start.checked_add(len)?)
    }

    /// File bytes starting at link-time address `vaddr` up to the end of its segment's
    /// file-backed part.
    pub fn bytes_at<'d>(&self, data: &'d [u8], vaddr: u64) -> Option<&'d [u8]> {
        self.segments.iter().find_map(|seg| {
            let off = seg.file_offset_of(vaddr)?;
            let end = seg.offset.checked_add(seg.filesz)?;
            data.get(usize::try_from(off).ok()?..usize::try_from(end).ok()?)
        })
    }
}

fn machine_name(machine: u16, little: bool) -> String {
    let name = match machine {
        elf::EM_386 => "i386",
        elf::EM_ARM => "arm",
        elf::EM_PPC64 => "ppc64",
        elf::EM_S390 => "s390x",
        elf::EM_RISCV => "riscv64",
        elf::EM_MIPS => "mips64",
        elf::EM_LOONGARCH => "loong64",
        elf::EM_X86_64 => "x86_64",
        elf::EM_AARCH64 => "aarch64",
        _ => return format!("ELF machine {machine}"),
    };
    if little {
        name.to_string()
    } else {
        format!("{name} (big-endian)")
    }
}

/// Reads a little-endian integer of `size` (4 or 8) bytes at `off`.
pub(crate) fn read_uint(data: &[u8], off: usize, size: usize) -> Option<u64> {
    let bytes = data.get(off..off.checked_add(size)?)?;
    match size {
        4 => Some(u64::from(u32::from_le_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_le_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}
