//! amd64 machine code decoded linearly from a function's first byte (amd64 is
//! variable-length: only a decode from the entry finds the instruction boundaries). The
//! return-site finder, the global locators and the probe plan's code finders all decode
//! this way; they differ only in what an undecodable byte means to them.

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction};

/// Decoding stopped at an instruction iced-x86 could not decode.
pub(crate) struct Undecodable {
    /// The instructions before it.
    pub(crate) decoded: Vec<Instruction>,
    /// Its address.
    pub(crate) ip: u64,
    pub(crate) error: DecoderError,
}

/// Every instruction of `bytes` (code loaded at `address`), in order, or where and why
/// decoding stopped.
pub(crate) fn decode(bytes: &[u8], address: u64) -> Result<Vec<Instruction>, Undecodable> {
    let mut decoder = Decoder::with_ip(64, bytes, address, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        if instr.is_invalid() {
            return Err(Undecodable {
                decoded: out,
                ip: instr.ip(),
                error: decoder.last_error(),
            });
        }
        out.push(instr);
    }
    Ok(out)
}
