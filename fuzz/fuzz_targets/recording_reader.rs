//! The recording reader must take any bytes without panicking: a damaged or hostile
//! recording gets an error or its intact prefix. `cargo xtask test` runs this for a
//! bounded time; `cargo fuzz run recording_reader` runs it for as long as you like.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tracer::recording::Reader::parse(data, std::path::Path::new("fuzz.gct"));
});
