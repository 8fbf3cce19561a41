//! Stage 1, binary analysis of Go executables: which Go version built them, where the
//! runtime's functions and globals are, where every function returns, and the layout of
//! the runtime structures the kernel programs read.
//!
//! [`GoBinary`] is what the later stages ask. Underneath, one folder per job, each using
//! only those before it: [`image`] reads the file (ELF, build info, function tables,
//! lines, type names, instruction decoding); [`layouts`] holds the struct layouts DWARF
//! and the built-in table record; [`anchors`] recovers globals and offsets from the code
//! of binaries that have neither. `offsets.rs` chooses among those sources field by field,
//! `resolve.rs` symbolizes addresses for allocation profiles.
//!
//! Everything here works on the file alone (no process needed) except [`process`], which
//! relates a running process's address space to the file. Addresses returned by
//! [`GoBinary`] are always *link-time* virtual addresses (as in the ELF file); add
//! [`process::load_bias`] to get a runtime address and use [`GoBinary::file_offset`] for
//! the kernel's uprobe API.
//!
//! Malformed input never panics: every read goes through bounds-checked accessors and
//! failures come back as [`BinaryError`] (or `None` where a lookup simply has no answer).

pub mod anchors;
pub(crate) mod image;
pub mod layouts;
mod offsets;
pub mod process;
mod resolve;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anchors::globals::DataRange;
use image::elf::{ElfInfo, LoadSegment};
pub use image::lines::Frame;
pub use image::stw_reasons::StwReason;
use image::symbols::FunctionTable;
pub use image::{Arch, BinaryError, Function, GoVersion, VersionSource};

pub use offsets::{FieldSource, OffsetsSource};

/// The struct whose presence in DWARF means "DWARF describes the runtime" (absent from
/// DWARF that a tool trimmed, or from non-Go DWARF).
const PROBE_STRUCT: &str = "runtime.workType";

/// An executable's bytes: mapped from its file, or given (tests, fuzzing).
enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

/// An analysed Go executable. Cheap queries after [`GoBinary::open`]; DWARF is parsed on the
/// first [`GoBinary::struct_field_offset`] call only.
pub struct GoBinary {
    path: PathBuf,
    data: Bytes,
    arch: Arch,
    version: GoVersion,
    version_source: VersionSource,
    pie: bool,
    stripped: bool,
    has_dwarf: bool,
    segments: Vec<LoadSegment>,
    functions: FunctionTable,
    data_symbols: HashMap<String, u64>,
    /// `.data`, `.bss`, `.noptrdata`, `.noptrbss`: where runtime globals can live.
    data_ranges: Vec<DataRange>,
    /// `None` inside means "tried and failed" (the failure was logged once).
    dwarf: OnceLock<Option<layouts::dwarf::DwarfIndex>>,
    /// Type-name and line tables (see `resolve.rs`); like `dwarf`, built on first use.
    resolver: OnceLock<Option<resolve::Resolver>>,
    /// Globals located from code, for binaries without `.symtab` (computed on first use).
    recovered: OnceLock<anchors::globals::Recovered>,
    /// Offsets derived from code, when neither DWARF nor the table has them.
    derived: OnceLock<anchors::derive::Derived>,
    /// The table's entry for this exact release is ignored ([`GoBinary::without_table_entry`]
    /// or [`layouts::offsets_table::EXCLUDE_ENV`]).
    table_excluded: bool,
}

impl fmt::Debug for GoBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoBinary")
            .field("path", &self.path)
            .field("arch", &self.arch)
            .field("version", &self.version.raw)
            .field("pie", &self.pie)
            .field("stripped", &self.stripped)
            .field("has_dwarf", &self.has_dwarf)
            .field("functions", &self.functions.len())
            .finish_non_exhaustive()
    }
}

impl GoBinary {
    /// Reads and analyses the executable at `path`. For a running process pass
    /// [`process::exe_path`], not the path the process thinks it has.
    pub fn open(path: &Path) -> Result<GoBinary, BinaryError> {
        let io = |source| BinaryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only and private to us. What could break it is the
        // file being truncated while mapped (reads past the new end fault). A running
        // program's executable cannot be opened for writing (ETXTBSY), so the targets'
        // binaries are safe; a file that is not running and that someone truncates while
        // `inspect` reads it is that person's race. Large Go binaries are mostly data and
        // DWARF that analysis never touches: mapping keeps them out of our memory (a
        // 100 MB binary cost 136 MiB of RSS when read whole).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        GoBinary::from_bytes(Bytes::Mapped(map), path)
    }

    /// Analyses an executable already in memory; `path_for_messages` only names it in errors.
    pub fn parse(data: Vec<u8>, path_for_messages: &Path) -> Result<GoBinary, BinaryError> {
        GoBinary::from_bytes(Bytes::Owned(data), path_for_messages)
    }

    fn from_bytes(data: Bytes, path_for_messages: &Path) -> Result<GoBinary, BinaryError> {
        let path = path_for_messages.to_path_buf();
        let info = ElfInfo::parse(&data, &path)?;
        let (version, version_source) = match image::buildinfo::find_version(&data, &info, &path) {
            Ok(v) => (v, VersionSource::BuildInfo),
            Err(BinaryError::NotGo { .. }) => (
                image::runtime_version::find_version(&data, &info, &path)?,
                VersionSource::RuntimeString,
            ),
            Err(e) => return Err(e),
        };
        let (functions, data_symbols) = if info.stripped {
            let funcs = image::pclntab::functions(&data, &info, &version, &path)?;
            (FunctionTable::new(funcs), HashMap::new())
        } else {
            let syms = image::symbols::read_symtab(&data, &path)?;
            (FunctionTable::new(syms.functions), syms.objects)
        };
        let data_ranges = info
            .sections
            .iter()
            .filter(|s| {
                matches!(
                    s.name.as_str(),
                    ".data" | ".bss" | ".noptrdata" | ".noptrbss"
                )
            })
            .filter_map(|s| {
                Some(DataRange {
                    start: s.addr,
                    end: s.addr.checked_add(s.size)?,
                })
            })
            .collect();
        let table_excluded = layouts::offsets_table::version_key(&version)
            .is_some_and(layouts::offsets_table::excluded);
        Ok(GoBinary {
            path,
            data_ranges,
            recovered: OnceLock::new(),
            derived: OnceLock::new(),
            table_excluded,
            arch: info.arch,
            version,
            version_source,
            pie: info.pie,
            stripped: info.stripped,
            has_dwarf: info.has_dwarf,
            segments: info.segments,
            functions,
            data_symbols,
            dwarf: OnceLock::new(),
            resolver: OnceLock::new(),
            data,
        })
    }

    /// Analyse as if the offsets table lacked this binary's release (leave-one-out tests,
    /// and users who distrust the table): struct offsets then come from DWARF or from
    /// the code. Call before any query.
    pub fn without_table_entry(mut self) -> GoBinary {
        self.table_excluded = true;
        self.recovered = OnceLock::new();
        self.derived = OnceLock::new();
        self
    }

    /// The path this binary was opened from (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn go_version(&self) -> &GoVersion {
        &self.version
    }

    /// Where [`GoBinary::go_version`] was read from.
    pub fn version_source(&self) -> VersionSource {
        self.version_source
    }

    /// Position-independent (ELF type ET_DYN): the load bias of a process is then non-zero.
    pub fn is_pie(&self) -> bool {
        self.pie
    }

    /// No `.symtab`: functions come from `.gopclntab` and globals are unknown.
    pub fn is_stripped(&self) -> bool {
        self.stripped
    }

    /// Has `.debug_info` (possibly compressed), so struct layouts can be read.
    pub fn has_dwarf(&self) -> bool {
        self.has_dwarf
    }

    /// The function with exactly this (Go symbol) name.
    pub fn function(&self, name: &str) -> Option<Function> {
        self.functions.by_name(name).cloned()
    }

    /// The function whose extent contains the link-time address `addr` (binary search).
    pub fn function_at(&self, addr: u64) -> Option<Function> {
        self.functions.containing(addr).cloned()
    }

    /// All functions whose name starts with `prefix`, in address order.
    pub fn functions_with_prefix(&self, prefix: &str) -> Vec<Function> {
        self.functions.with_prefix(prefix)
    }

    /// Link-time address of a global variable: from `.symtab` (ELF STT_OBJECT) or, for
    /// binaries without one, recovered from code for the runtime globals listed in
    /// [`anchors::globals::STRUCT_GLOBALS`] and [`anchors::globals::SCALAR_GLOBALS`] (x86-64 only).
    pub fn data_symbol(&self, name: &str) -> Option<u64> {
        if !self.stripped {
            return self.data_symbols.get(name).copied();
        }
        self.recovered().addresses.get(name).copied()
    }

    /// Why runtime globals could not be located from code (empty when `.symtab` exists
    /// or everything was found). One line each, for the user.
    pub fn data_symbol_warnings(&self) -> Vec<String> {
        if !self.stripped {
            return Vec::new();
        }
        self.recovered().warnings.clone()
    }

    /// For tests and diagnostics: how each struct global was located from code.
    pub fn data_symbol_votes(&self) -> Vec<anchors::globals::Evidence> {
        if !self.stripped {
            return Vec::new();
        }
        self.recovered().votes.clone()
    }

    fn recovered(&self) -> &anchors::globals::Recovered {
        if self.derives_offsets() {
            return &self.derived().recovered;
        }
        self.recovered
            .get_or_init(|| anchors::globals::recover(self))
    }

    /// Extents of the sections runtime globals live in.
    fn data_ranges(&self) -> &[DataRange] {
        &self.data_ranges
    }

    /// Bytes of arguments and results of the function named `name`, as the runtime's
    /// own function table records them (`_func.args`), stripped or not: a fingerprint of
    /// its signature. `None` if the table or the function is missing.
    pub fn args_size(&self, name: &str) -> Option<u32> {
        let info = ElfInfo::parse(&self.data, &self.path).ok()?;
        image::pclntab::args_size(&self.data, &info, name)
    }

    /// The runtime's names of its stop-the-world reasons (`runtime.stwReasonStrings`,
    /// Go 1.21+), in code order, read from the binary; `None` when not found.
    pub fn stw_reason_names(&self) -> Option<Vec<String>> {
        let info = ElfInfo::parse(&self.data, &self.path).ok()?;
        let symbol = self.data_symbols.get("runtime.stwReasonStrings").copied();
        image::stw_reasons::read(&self.data, &info, symbol)
    }

    /// Link-time addresses of every return instruction of `f`, found by decoding it linearly
    /// from its first byte so that each address is an instruction boundary (a uprobe placed
    /// anywhere else would corrupt the program). Fails rather than guess when the bytes
    /// do not decode cleanly.
    pub fn return_sites(&self, f: &Function) -> Result<Vec<u64>, BinaryError> {
        let bytes = self.code_bytes(f)?;
        image::returns::return_sites(self.arch, bytes, f).map_err(|detail| BinaryError::Decode {
            path: self.path.clone(),
            what: "machine code",
            detail,
        })
    }

    /// The bytes of `f` as stored in the file.
    pub(crate) fn code_bytes(&self, f: &Function) -> Result<&[u8], BinaryError> {
        let err = |detail: String| BinaryError::Decode {
            path: self.path.clone(),
            what: "machine code",
            detail,
        };
        let seg = self
            .segments
            .iter()
            .find(|s| s.contains_file_range(f.address, f.size))
            .ok_or_else(|| {
                err(format!(
                    "{} [{:#x}, {:#x}) is not inside one loadable segment of the file",
                    f.name,
                    f.address,
                    f.end()
                ))
            })?;
        if !seg.executable {
            return Err(err(format!(
                "{} at {:#x} is not in an executable segment",
                f.name, f.address
            )));
        }
        let start = seg.file_offset_of(f.address).unwrap_or(u64::MAX);
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(f.size).ok())
            .and_then(|(s, n)| Some(s..s.checked_add(n)?));
        range
            .and_then(|r| self.data.get(r))
            .ok_or_else(|| err(format!("{} lies beyond the end of the file", f.name)))
    }

    /// Up to `len` bytes of the file-backed data at link-time address `vaddr` (fewer at
    /// the end of its segment), e.g. a string the code points at.
    pub(crate) fn bytes_at(&self, vaddr: u64, len: u64) -> Option<&[u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.file_offset_of(vaddr).is_some())?;
        let start = usize::try_from(seg.file_offset_of(vaddr)?).ok()?;
        let seg_end = seg.offset.checked_add(seg.filesz)?;
        let end =
            usize::try_from(seg_end.min(seg.file_offset_of(vaddr)?.checked_add(len)?)).ok()?;
        self.data.get(start..end)
    }

    /// File offset of a link-time address, via the PT_LOAD segment whose file-backed part
    /// contains it. This is the offset the kernel's uprobe API takes.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| s.file_offset_of(vaddr))
    }

    fn dwarf_index(&self) -> Option<&layouts::dwarf::DwarfIndex> {
        self.dwarf
            .get_or_init(|| {
                if !self.has_dwarf {
                    return None;
                }
                match layouts::dwarf::DwarfIndex::build(&self.data) {
                    Ok(index) => Some(index),
                    Err(e) => {
                        log::warn!("{}: cannot read DWARF: {e}", self.path.display());
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The PT_LOAD segments (used by [`process::load_bias`]).
    fn load_segments(&self) -> &[LoadSegment] {
        &self.segments
    }
}

/// Go's `binary.Uvarint` (the build info's string lengths, type names' lengths, the
/// pcvalue tables' deltas): LEB128 by another name, read by gimli's decoder. Returns the
/// value and the bytes used; `None` when `buf` ends first or the value passes 64 bits.
pub(crate) fn uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut rest = gimli::EndianSlice::new(buf, gimli::LittleEndian);
    let value = gimli::leb128::read::unsigned(&mut rest).ok()?;
    Some((value, buf.len() - rest.len()))
}
