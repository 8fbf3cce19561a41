//! Where a probe goes: a function's entry or each of its returns, as a [`ProbeSite`] the
//! loader attaches, and why a plan cannot be made ([`PlanError`]).

use crate::binary::{BinaryError, Function, GoBinary};
use tracer_common::ProbeKind;

/// One uprobe to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    pub kind: ProbeKind,
    /// The kernel program to run there (usually `kind.program_name()`).
    pub program: &'static str,
    pub function: String,
    /// Link-time virtual address of the probed instruction.
    pub address: u64,
    /// Offset of that instruction in the ELF file (what the kernel's uprobe API takes).
    pub file_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{version} is not supported: gctrace-bpf understands Go 1.19 to 1.27")]
    UnsupportedVersion { version: String },
    /// A runtime newer than any checked (or a development build) whose binary does not
    /// show what the newest scheme relies on (see `unreleased.rs`).
    #[error("{detail}")]
    Unverified { detail: String },
    #[error("{function} not found in the binary; cannot trace {what}")]
    MissingFunction {
        function: &'static str,
        what: &'static str,
    },
    #[error("{function}")]
    Decode {
        function: String,
        source: BinaryError,
    },
    #[error("{function} has no RET instruction; refusing to guess its exits")]
    NoReturn { function: String },
    #[error("address {address:#x} of {function} is not in a loadable segment")]
    NoFileOffset { function: String, address: u64 },
}

/// The runtime functions every plan probes.
pub const GC_START: &str = "runtime.gcStart";
pub const STOP_THE_WORLD: &str = "runtime.stopTheWorldWithSema";
pub const START_THE_WORLD: &str = "runtime.startTheWorldWithSema";

pub(super) fn entry_site(
    bin: &GoBinary,
    kind: ProbeKind,
    f: &Function,
) -> Result<ProbeSite, PlanError> {
    let file_offset = bin
        .file_offset(f.address)
        .ok_or_else(|| PlanError::NoFileOffset {
            function: f.name.clone(),
            address: f.address,
        })?;
    Ok(ProbeSite {
        kind,
        program: kind.program_name(),
        function: f.name.clone(),
        address: f.address,
        file_offset,
    })
}

pub(super) fn return_sites(
    bin: &GoBinary,
    kind: ProbeKind,
    f: &Function,
) -> Result<Vec<ProbeSite>, PlanError> {
    let rets = bin.return_sites(f).map_err(|source| PlanError::Decode {
        function: f.name.clone(),
        source,
    })?;
    if rets.is_empty() {
        return Err(PlanError::NoReturn {
            function: f.name.clone(),
        });
    }
    rets.into_iter()
        .map(|address| {
            let file_offset = bin
                .file_offset(address)
                .ok_or_else(|| PlanError::NoFileOffset {
                    function: f.name.clone(),
                    address,
                })?;
            Ok(ProbeSite {
                kind,
                program: kind.program_name(),
                function: f.name.clone(),
                address,
                file_offset,
            })
        })
        .collect()
}

pub(super) fn required(
    bin: &GoBinary,
    name: &'static str,
    what: &'static str,
) -> Result<Function, PlanError> {
    bin.function(name).ok_or(PlanError::MissingFunction {
        function: name,
        what,
    })
}
