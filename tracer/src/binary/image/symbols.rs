//! Functions and globals from `.symtab`, and the sorted function table both `.symtab` and
//! `.gopclntab` feed.

use std::collections::HashMap;
use std::path::Path;

use object::elf;
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSymbol};

use super::{BinaryError, Function};

pub(crate) struct Symtab {
    pub functions: Vec<Function>,
    pub objects: HashMap<String, u64>,
}

/// Reads STT_FUNC and STT_OBJECT symbols. Go gives both exact sizes.
pub(crate) fn read_symtab(data: &[u8], path: &Path) -> Result<Symtab, BinaryError> {
    let file = ElfFile64::<Endianness>::parse(data).map_err(|e| BinaryError::Decode {
        path: path.to_path_buf(),
        what: "ELF symbol table",
        detail: e.to_string(),
    })?;
    let mut functions = Vec::new();
    let mut objects = HashMap::new();
    for sym in file.symbols() {
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        match sym.elf_symbol().st_type() {
            elf::STT_FUNC => functions.push(Function {
                name: name.to_string(),
                address: sym.address(),
                size: sym.size(),
            }),
            elf::STT_OBJECT => {
                objects.entry(name.to_string()).or_insert(sym.address());
            }
            _ => {}
        }
    }
    Ok(Symtab { functions, objects })
}

/// Functions sorted by address, with a name index. Built once at open, so
/// [`FunctionTable::containing`] is a binary search.
#[derive(Debug, Default)]
pub(crate) struct FunctionTable {
    by_addr: Vec<Function>,
    by_name: HashMap<String, usize>,
}

impl FunctionTable {
    pub fn new(mut functions: Vec<Function>) -> FunctionTable {
        // Sort by address; among functions at one address the larger first, so the
        // containment search below sees the real function rather than a zero-sized alias.
        functions.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then(b.size.cmp(&a.size))
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut by_name = HashMap::with_capacity(functions.len());
        for (i, f) in functions.iter().enumerate() {
            by_name.entry(f.name.clone()).or_insert(i);
        }
        FunctionTable {
            by_addr: functions,
            by_name,
        }
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn by_name(&self, name: &str) -> Option<&Function> {
        self.by_addr.get(*self.by_name.get(name)?)
    }

    pub fn containing(&self, addr: u64) -> Option<&Function> {
        // The last function starting at or before `addr`...
        let upper = self.by_addr.partition_point(|f| f.address <= addr);
        let start = self.by_addr.get(upper.checked_sub(1)?)?.address;
        // ...or rather the first (largest) of those sharing its start address.
        let first = self.by_addr.partition_point(|f| f.address < start);
        let f = self.by_addr.get(first)?;
        (addr < f.end()).then_some(f)
    }

    pub fn with_prefix(&self, prefix: &str) -> Vec<Function> {
        self.by_addr
            .iter()
            .filter(|f| f.name.starts_with(prefix))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, address: u64, size: u64) -> Function {
        Function {
            name: name.into(),
            address,
            size,
        }
    }

    #[test]
    fn containing() {
        let t = FunctionTable::new(vec![
            f("c", 0x300, 0x10),
            f("a", 0x100, 0x80),
            f("alias", 0x100, 0),
            f("b", 0x200, 0x100),
        ]);
        assert_eq!(t.containing(0x100).unwrap().name, "a");
        assert_eq!(t.containing(0x17f).unwrap().name, "a");
        assert!(t.containing(0x180).is_none());
        assert!(t.containing(0xff).is_none());
        assert_eq!(t.containing(0x2ff).unwrap().name, "b");
        assert_eq!(t.containing(0x300).unwrap().name, "c");
        assert!(t.containing(0x310).is_none());
        assert_eq!(t.by_name("alias").unwrap().address, 0x100);
        assert_eq!(t.with_prefix("a").len(), 2);
    }
}
