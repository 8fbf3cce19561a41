//! Struct layouts from DWARF `.debug_info`.
//!
//! Field offsets of runtime structures change even between patch releases, so they are
//! read from the binary's own debug info rather than tabulated. The whole of
//! `.debug_info` is walked once and reduced to an owned index of struct types (members,
//! offsets, member types) and typedefs; lookups afterwards are hash-map hits.
//! Go writes DWARF 4 up to 1.24 and DWARF 5 from 1.25, compressed either the old way
//! (`.zdebug_*`) or with SHF_COMPRESSED; `object` undoes both, gimli reads both versions.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, Reader, ReaderOffset, SectionId};
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};

/// How deep a dotted field path / typedef chain may go; guards against cycles in
/// malformed input.
const MAX_CHAIN: usize = 16;

/// A struct's direct members: (name, byte offset), in declaration order.
pub(crate) type Members = Vec<(String, u64)>;

#[derive(Debug)]
struct Member {
    name: String,
    offset: Option<u64>,
    /// `.debug_info` offset of the member's type DIE.
    type_ref: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct DwarfIndex {
    /// Struct DIEs by `.debug_info` offset.
    structs: HashMap<u64, Vec<Member>>,
    /// DW_AT_byte_size of struct DIEs, by `.debug_info` offset.
    sizes: HashMap<u64, u64>,
    /// Typedef DIEs by `.debug_info` offset → their target type's offset.
    typedefs: HashMap<u64, u64>,
    /// Named structs and typedefs → DIE offset (first definition wins).
    names: HashMap<String, u64>,
}

impl DwarfIndex {
    pub fn build(file_data: &[u8]) -> Result<DwarfIndex, String> {
        let file = ElfFile64::<Endianness>::parse(file_data).map_err(|e| e.to_string())?;
        let mut sections: HashMap<SectionId, Cow<'_, [u8]>> = HashMap::new();
        for id in [
            SectionId::DebugAbbrev,
            SectionId::DebugInfo,
            SectionId::DebugStr,
            SectionId::DebugStrOffsets,
            SectionId::DebugLineStr,
            SectionId::DebugAddr,
            // Unit headers point into the line table and gimli reads its header.
            SectionId::DebugLine,
        ] {
            // section_by_name also finds the `.zdebug_*` spelling.
            if let Some(s) = file.section_by_name(id.name()) {
                let bytes = s
                    .uncompressed_data()
                    .map_err(|e| format!("{}: {e}", id.name()))?;
                sections.insert(id, bytes);
            }
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<_, gimli::Error> {
            let bytes = sections.get(&id).map_or(&[][..], |c| c.as_ref());
            Ok(EndianSlice::new(bytes, LittleEndian))
        })
        .map_err(|e| e.to_string())?;
        Self::walk(&dwarf).map_err(|e| format!("malformed .debug_info: {e}"))
    }

    fn walk(dwarf: &gimli::Dwarf<EndianSlice<'_, LittleEndian>>) -> gimli::Result<DwarfIndex> {
        let mut index = DwarfIndex::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let mut entries = unit.entries();
            let mut depth: isize = 0;
            // The struct whose children we are reading: (depth of the struct DIE, offset).
            let mut current: Option<(isize, u64)> = None;
            while let Some((delta, entry)) = entries.next_dfs()? {
                depth += delta;
                if current.is_some_and(|(d, _)| depth <= d) {
                    current = None;
                }
                let Some(offset) = entry
                    .offset()
                    .to_debug_info_offset(&unit.header)
                    .map(|o| o.0 as u64)
                else {
                    continue;
                };
                match entry.tag() {
                    gimli::DW_TAG_structure_type => {
                        if matches!(
                            entry.attr_value(gimli::DW_AT_declaration)?,
                            Some(AttributeValue::Flag(true))
                        ) {
                            continue;
                        }
                        index.structs.insert(offset, Vec::new());
                        if let Some(size) = entry
                            .attr(gimli::DW_AT_byte_size)?
                            .and_then(|a| a.udata_value())
                        {
                            index.sizes.insert(offset, size);
                        }
                        if let Some(name) = name_of(dwarf, &unit, entry)? {
                            index.names.entry(name).or_insert(offset);
                        }
                        current = Some((depth, offset));
                    }
                    gimli::DW_TAG_typedef => {
                        if let Some(target) = type_ref(&unit, entry)? {
                            index.typedefs.insert(offset, target);
                            if let Some(name) = name_of(dwarf, &unit, entry)? {
                                index.names.entry(name).or_insert(offset);
                            }
                        }
                    }
                    gimli::DW_TAG_member => {
                        let Some((d, owner)) = current else { continue };
                        if depth != d + 1 {
                            continue;
                        }
                        let Some(name) = name_of(dwarf, &unit, entry)? else {
                            continue;
                        };
                        let member = Member {
                            name,
                            offset: member_offset(entry)?,
                            type_ref: type_ref(&unit, entry)?,
                        };
                        if let Some(members) = index.structs.get_mut(&owner) {
                            members.push(member);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(index)
    }

    /// Follows typedefs from `die` to a struct DIE.
    fn resolve_struct(&self, die: u64) -> Option<&Vec<Member>> {
        self.structs.get(&self.resolve_struct_die(die)?)
    }

    /// Follows typedefs from `die` to the offset of a struct DIE.
    fn resolve_struct_die(&self, mut die: u64) -> Option<u64> {
        for _ in 0..MAX_CHAIN {
            if self.structs.contains_key(&die) {
                return Some(die);
            }
            die = *self.typedefs.get(&die)?;
        }
        None
    }

    /// The named struct's byte size and its direct members with their offsets, in
    /// declaration order (members without an offset are left out). Blank (`_`) padding
    /// members are kept: they are harmless and show where padding is.
    pub fn layout(&self, struct_name: &str) -> Option<(Option<u64>, Members)> {
        let die = self.resolve_struct_die(*self.names.get(struct_name)?)?;
        let members = self.structs.get(&die)?;
        let fields = members
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.offset?)))
            .collect();
        Some((self.sizes.get(&die).copied(), fields))
    }

    pub fn field_offset(&self, struct_name: &str, field: &str) -> Option<u64> {
        let mut members = self.resolve_struct(*self.names.get(struct_name)?)?;
        let mut total: u64 = 0;
        let mut parts = field.split('.').peekable();
        let mut steps = 0;
        while let Some(part) = parts.next() {
            steps += 1;
            if steps > MAX_CHAIN {
                return None;
            }
            let m = members.iter().find(|m| m.name == part)?;
            total = total.checked_add(m.offset?)?;
            if parts.peek().is_some() {
                members = self.resolve_struct(m.type_ref?)?;
            }
        }
        Some(total)
    }
}

fn name_of<R: Reader>(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
) -> gimli::Result<Option<String>> {
    match entry.attr_value(gimli::DW_AT_name)? {
        Some(v) => {
            let s = dwarf.attr_string(unit, v)?;
            Ok(Some(s.to_string_lossy()?.into_owned()))
        }
        None => Ok(None),
    }
}

fn type_ref<R: Reader>(
    unit: &gimli::Unit<R>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
) -> gimli::Result<Option<u64>> {
    Ok(match entry.attr_value(gimli::DW_AT_type)? {
        Some(AttributeValue::UnitRef(o)) => {
            o.to_debug_info_offset(&unit.header).map(|o| o.0.into_u64())
        }
        Some(AttributeValue::DebugInfoRef(o)) => Some(o.0.into_u64()),
        _ => None,
    })
}

/// DW_AT_data_member_location: a constant (what Go emits) or, DWARF 2 style, an
/// expression `DW_OP_plus_uconst n`.
fn member_offset<R: Reader>(
    entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
) -> gimli::Result<Option<u64>> {
    let Some(attr) = entry.attr(gimli::DW_AT_data_member_location)? else {
        return Ok(None);
    };
    if let Some(v) = attr.udata_value() {
        return Ok(Some(v));
    }
    if let AttributeValue::Exprloc(expr) = attr.value() {
        let mut r = expr.0;
        if r.read_u8()? == gimli::DW_OP_plus_uconst.0 {
            let v = r.read_uleb128()?;
            if r.is_empty() {
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}
