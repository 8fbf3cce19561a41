//! Return instructions of a function, found by decoding it linearly from its entry.
//!
//! We never use uretprobes: they replace the return address on the stack, which Go's
//! stack growth/copying and traceback do not tolerate. Instead each RET gets an ordinary
//! uprobe. A uprobe must sit on an instruction boundary (otherwise the breakpoint byte
//! lands inside an instruction and corrupts the program), so the decode must be exact:
//! any byte sequence we cannot decode is an error, never skipped.

use iced_x86::{Instruction, Mnemonic};
use yaxpeax_arm::armv8::a64::Opcode;

use super::{arm64, x86};
use super::{Arch, Function};

/// `bytes` are exactly the function's bytes, starting at `f.address`.
pub(crate) fn return_sites(arch: Arch, bytes: &[u8], f: &Function) -> Result<Vec<u64>, String> {
    match arch {
        Arch::X86_64 => x86_64(bytes, f),
        Arch::Aarch64 => aarch64(bytes, f),
    }
}

fn x86_64(bytes: &[u8], f: &Function) -> Result<Vec<u64>, String> {
    let code = x86::decode(bytes, f.address).map_err(|stop| {
        format!(
            "invalid x86-64 instruction at {:#x} in {} ({:?})",
            stop.ip, f.name, stop.error
        )
    })?;
    // RET and RET imm16 (near returns; Go never emits far returns).
    Ok(code
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Ret)
        .map(Instruction::ip)
        .collect())
}

/// `RET {Xn}`, any return register. A64 instructions are 4-byte words, so every word is
/// a boundary: one that does not decode (a literal pool's data) is no return, and is
/// skipped rather than an error.
fn aarch64(bytes: &[u8], f: &Function) -> Result<Vec<u64>, String> {
    if !f.address.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "{} at {:#x} (size {}) is not aligned to 4-byte arm64 instructions",
            f.name,
            f.address,
            bytes.len()
        ));
    }
    Ok(arm64::words(bytes, f.address)
        .filter(|(_, w)| arm64::decode(*w).is_some_and(|i| i.opcode == Opcode::RET))
        .map(|(pc, _)| pc)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn func(address: u64, size: usize) -> Function {
        Function {
            name: "t".into(),
            address,
            size: size as u64,
        }
    }

    #[test]
    fn x86_ret_inside_immediate_is_not_a_return() {
        // mov eax, 0xc3c3c3c3; ret; int3; ret 8
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xcc, 0xc2, 0x08, 0x00];
        let sites = x86_64(&code, &func(0x1000, code.len())).unwrap();
        assert_eq!(sites, vec![0x1005, 0x1007]);
    }

    #[test]
    fn x86_truncated_instruction_is_an_error() {
        let code = [0xc3, 0xb8, 0x01];
        assert!(x86_64(&code, &func(0x1000, code.len())).is_err());
    }

    #[test]
    fn arm64_rets() {
        let mut code = Vec::new();
        code.extend_from_slice(&0xd503201fu32.to_le_bytes()); // nop
        code.extend_from_slice(&0xd65f03c0u32.to_le_bytes()); // ret (x30)
        code.extend_from_slice(&0xd65f0020u32.to_le_bytes()); // ret x1
        code.extend_from_slice(&0xd63f0020u32.to_le_bytes()); // blr x1
        let sites = aarch64(&code, &func(0x4000, code.len())).unwrap();
        assert_eq!(sites, vec![0x4004, 0x4008]);
        assert!(aarch64(&code[..6], &func(0x4000, 6)).is_err());
    }

    #[test]
    fn arm64_data_words_are_skipped() {
        // A literal pool after the last branch (1.19.8 (*mheap).sysAlloc), then RET.
        // RETAA (pointer authentication, never emitted by Go) is not counted.
        let mut code = Vec::new();
        for w in [
            0x14000000u32,
            0x00010190,
            0xbea71700,
            0xd65f0bff,
            0xd65f03c0,
        ] {
            code.extend_from_slice(&w.to_le_bytes());
        }
        let sites = aarch64(&code, &func(0x4000, code.len())).unwrap();
        assert_eq!(sites, vec![0x4010]);
    }
}
