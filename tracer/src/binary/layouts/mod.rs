//! The runtime's struct layouts as recorded: in the binary's DWARF ([`dwarf`]) or in the
//! built-in table of every Go release ([`offsets_table`], from `offsets_table.json`).

pub(crate) mod dwarf;
pub mod offsets_table;
