//! Where the runtime's struct layouts come from for one binary — DWARF, the offsets
//! table, or the binary's code (`anchors/derive.rs`) — field by field.

use std::collections::BTreeMap;

use super::anchors::{derive, globals};
use super::layouts::offsets_table::{self, StructLayout};
use super::{GoBinary, PROBE_STRUCT};

/// Where [`GoBinary::struct_field_offset`] gets the runtime's struct layouts from.
/// Serialized (in recording headers) under the names [`OffsetsSource::as_str`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetsSource {
    /// The binary's own debug info.
    Dwarf,
    /// The built-in table for this exact Go release ([`offsets_table`]).
    Table,
    /// Neither: derived from the binary's own code and verified field by field (see
    /// `anchors/derive.rs`); fields that could not be verified are unknown
    /// ([`GoBinary::field_source`] says which).
    Code,
    /// Nothing about the runtime's structs could be verified.
    None,
}

impl OffsetsSource {
    /// "dwarf", "table", "code" or "none", as `inspect` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetsSource::Dwarf => "dwarf",
            OffsetsSource::Table => "table",
            OffsetsSource::Code => "code",
            OffsetsSource::None => "none",
        }
    }
}

/// Where one struct field's offset came from: `dwarf`, `table`, `code` (derived and
/// verified from the binary's code) or `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldSource {
    Dwarf,
    Table,
    Code,
    Unknown,
}

impl FieldSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldSource::Dwarf => "dwarf",
            FieldSource::Table => "table",
            FieldSource::Code => "code",
            FieldSource::Unknown => "unknown",
        }
    }
}

impl GoBinary {
    /// Neither DWARF describing the runtime nor a table entry: offsets come from code.
    pub(super) fn derives_offsets(&self) -> bool {
        !self.dwarf_describes_runtime() && self.table_layouts().is_none()
    }

    fn dwarf_describes_runtime(&self) -> bool {
        self.dwarf_index()
            .is_some_and(|i| i.layout(PROBE_STRUCT).is_some())
    }

    pub(super) fn derived(&self) -> &derive::Derived {
        self.derived.get_or_init(|| derive::derive(self))
    }

    /// Why derived offsets are incomplete, one line each (empty unless derived).
    pub fn derived_offsets_warnings(&self) -> Vec<String> {
        if !self.derives_offsets() {
            return Vec::new();
        }
        self.derived().warnings.clone()
    }

    /// For derived offsets: per struct type, the table release whose layout the code
    /// confirmed (empty unless derived).
    pub fn derived_confirmed_by(&self) -> BTreeMap<String, String> {
        if !self.derives_offsets() {
            return BTreeMap::new();
        }
        self.derived().confirmed_by.clone()
    }

    /// Byte offset of `field` inside the struct type `struct_name` (e.g.
    /// `("runtime.workType", "cycles")`). `field` may be a dotted path through nested
    /// struct members ("a.b"). From DWARF; when DWARF is missing or does not describe the
    /// struct, from the built-in table for this exact Go release and architecture
    /// (which holds the fields the tracer reads). `None` if neither knows it.
    pub fn struct_field_offset(&self, struct_name: &str, field: &str) -> Option<u64> {
        self.field_offset_and_source(struct_name, field).0
    }

    /// Where [`GoBinary::struct_field_offset`] gets `field` of `struct_name` from.
    pub fn field_source(&self, struct_name: &str, field: &str) -> FieldSource {
        self.field_offset_and_source(struct_name, field).1
    }

    fn field_offset_and_source(
        &self,
        struct_name: &str,
        field: &str,
    ) -> (Option<u64>, FieldSource) {
        let found = |o: Option<u64>, s: FieldSource| match o {
            Some(o) => (Some(o), s),
            None => (None, FieldSource::Unknown),
        };
        if let Some(index) = self.dwarf_index() {
            if index.layout(struct_name).is_some() {
                return found(index.field_offset(struct_name, field), FieldSource::Dwarf);
            }
        }
        if let Some(layouts) = self.table_layouts() {
            let o = layouts
                .get(struct_name)
                .and_then(|l| l.fields.get(field).copied());
            return found(o, FieldSource::Table);
        }
        found(
            self.derived().field_offset(struct_name, field),
            FieldSource::Code,
        )
    }

    /// The struct's size and direct members (blank `_` members left out), from the same
    /// sources and in the same order of preference as [`GoBinary::struct_field_offset`].
    pub fn struct_layout(&self, struct_name: &str) -> Option<StructLayout> {
        if let Some((size, fields)) = self.dwarf_index().and_then(|i| i.layout(struct_name)) {
            return Some(StructLayout {
                size,
                fields: fields.into_iter().filter(|(n, _)| n != "_").collect(),
            });
        }
        if let Some(layouts) = self.table_layouts() {
            return layouts.get(struct_name).cloned();
        }
        // Derived: the layout used to locate the global; only fields that
        // `struct_field_offset` verifies are to be read.
        self.derived().layouts.get(struct_name).cloned()
    }

    /// Where struct layouts come from for this binary (see [`OffsetsSource`]).
    pub fn offsets_source(&self) -> OffsetsSource {
        if self.dwarf_describes_runtime() {
            OffsetsSource::Dwarf
        } else if self
            .table_layouts()
            .is_some_and(|l| l.contains_key(PROBE_STRUCT))
        {
            OffsetsSource::Table
        } else if self
            .derived()
            .recovered
            .addresses
            .keys()
            .any(|s| globals::STRUCT_GLOBALS.iter().any(|(g, _)| g == s))
        {
            OffsetsSource::Code
        } else {
            OffsetsSource::None
        }
    }

    /// The table's layouts for this exact release, unless excluded.
    fn table_layouts(&self) -> Option<&'static offsets_table::Layouts> {
        if self.table_excluded {
            return None;
        }
        offsets_table::builtin().layouts(&self.version, self.arch)
    }
}
