//! Binary analysis of Go executables (stub: being written).
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub raw: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub address: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{0}")]
    Other(String),
}

pub struct GoBinary {}

impl GoBinary {
    pub fn open(_path: &Path) -> Result<GoBinary, BinaryError> {
        Err(BinaryError::Other("stub".into()))
    }
    pub fn arch(&self) -> Arch {
        Arch::X86_64
    }
    pub fn go_version(&self) -> &GoVersion {
        unimplemented!()
    }
    pub fn is_pie(&self) -> bool {
        false
    }
    pub fn is_stripped(&self) -> bool {
        false
    }
    pub fn has_dwarf(&self) -> bool {
        false
    }
    pub fn function(&self, _name: &str) -> Option<Function> {
        None
    }
    pub fn function_at(&self, _addr: u64) -> Option<Function> {
        None
    }
    pub fn data_symbol(&self, _name: &str) -> Option<u64> {
        None
    }
    pub fn return_sites(&self, _f: &Function) -> Result<Vec<u64>, BinaryError> {
        Ok(vec![])
    }
    pub fn file_offset(&self, _vaddr: u64) -> Option<u64> {
        None
    }
    pub fn struct_field_offset(&self, _struct_name: &str, _field: &str) -> Option<u64> {
        None
    }
}

pub mod process {
    use super::{BinaryError, GoBinary};
    pub fn load_bias(_pid: u32, _bin: &GoBinary) -> Result<u64, BinaryError> {
        Ok(0)
    }
}
