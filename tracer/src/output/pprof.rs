//! Allocation profiles in pprof format, readable by `go tool pprof` and every tool that
//! reads Go heap profiles.
//!
//! The messages are the subset of `profile.proto` (github.com/google/pprof) we write,
//! declared by hand with `prost` derives so that building needs no `protoc`. Field numbers
//! and types follow the .proto exactly; fields we never set are simply not declared
//! (protobuf readers treat absent fields as their zero value).
//!
//! The sample types are `alloc_objects/count` and `alloc_space/bytes`, the names Go's own
//! heap profile uses, so `-sample_index=alloc_space` and pprof's heap-specific defaults
//! work as users expect. We trace allocations, not frees, so there are no `inuse_*` types.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use anyhow::{Context, Result};

use crate::binary::Frame;
use crate::model::AllocModel;

/// One allocation site's totals: the stack that allocated, and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocSample {
    /// Innermost (the allocating function, usually the caller of `runtime.mallocgc`) first.
    pub stack: Vec<Frame>,
    /// Number of objects allocated. Written as given: if the kernel side samples, scale
    /// up before calling (Go's heap profile also stores scaled estimates).
    pub objects: u64,
    /// Bytes allocated (same remark).
    pub bytes: u64,
}

impl From<crate::decode::events::SiteStat> for AllocSample {
    /// A call site's totals as the model holds them (scaled already in sampled mode).
    fn from(s: crate::decode::events::SiteStat) -> AllocSample {
        AllocSample {
            stack: s.frames,
            objects: s.counts.objects,
            bytes: s.counts.bytes,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    /// Index 0 must be "" (the .proto requires it).
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    /// String index of the sample type shown by default.
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    /// Innermost first, as in the .proto.
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// Builds the deduplicated tables: strings, functions (by name and file) and locations
/// (by frame). Ids are 1-based as the .proto requires (0 means "none").
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(String, String), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<Frame, u64>,
}

impl Builder {
    fn new() -> Builder {
        let mut b = Builder::default();
        b.string("");
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = i64::try_from(self.strings.len()).unwrap_or(i64::MAX);
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (name.to_string(), file.to_string());
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = next_id(self.functions.len());
        let name = self.string(name);
        let filename = self.string(file);
        self.functions.push(Function {
            id,
            name,
            system_name: name,
            filename,
        });
        self.function_ids.insert(key, id);
        id
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        if let Some(&id) = self.location_ids.get(frame) {
            return id;
        }
        let id = next_id(self.locations.len());
        let function_id = self.function(&frame.function, &frame.file);
        self.locations.push(Location {
            id,
            line: vec![Line {
                function_id,
                line: i64::from(frame.line),
            }],
        });
        self.location_ids.insert(frame.clone(), id);
        id
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.string(ty),
            unit: self.string(unit),
        }
    }
}

fn next_id(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX).saturating_add(1)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes `samples` as a gzip-compressed pprof allocation profile to `w`.
///
/// `period_bytes` is recorded as the sampling period (type `space/bytes`, like Go's
/// `MemProfileRate`); pass 1 if every allocation was counted. `time_nanos` is the start
/// of the collection (Unix epoch), `duration_nanos` its length.
pub fn write_alloc_profile(
    w: impl Write,
    samples: &[AllocSample],
    period_bytes: u64,
    time_nanos: i64,
    duration_nanos: i64,
) -> io::Result<()> {
    let mut b = Builder::new();
    let sample_type = vec![
        b.value_type("alloc_objects", "count"),
        b.value_type("alloc_space", "bytes"),
    ];
    let period_type = b.value_type("space", "bytes");
    let default_sample_type = b.string("alloc_space");
    let sample = samples
        .iter()
        .map(|s| Sample {
            location_id: s.stack.iter().map(|f| b.location(f)).collect(),
            value: vec![clamp(s.objects), clamp(s.bytes)],
        })
        .collect();
    let profile = Profile {
        sample_type,
        sample,
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos,
        duration_nanos,
        period_type: Some(period_type),
        period: clamp(period_bytes),
        default_sample_type,
    };
    let mut gz = GzEncoder::new(w, Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?.flush()
}

/// Write the allocation sites of `allocs` to the file `path` as a pprof profile (live
/// runs at their end, and `export` from a recording): says so, and writes nothing, when
/// the run counted no sites.
pub fn write_profile(
    path: &Path,
    allocs: &AllocModel,
    start_unix_ns: i64,
    duration_ns: u64,
) -> Result<()> {
    if !allocs.active() {
        eprintln!(
            "gctrace-bpf: no allocation profile written to {}: it needs --allocs sample or exact",
            path.display()
        );
        return Ok(());
    }
    let samples: Vec<AllocSample> = allocs
        .all_sites()
        .into_iter()
        .map(AllocSample::from)
        .collect();
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let period = if allocs.exact() { 1 } else { 0 };
    write_alloc_profile(
        std::io::BufWriter::new(file),
        &samples,
        period,
        start_unix_ns,
        i64::try_from(duration_ns).unwrap_or(i64::MAX),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn frame(function: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: "/src/main.go".into(),
            line,
        }
    }

    #[test]
    fn round_trip() {
        let samples = vec![
            AllocSample {
                stack: vec![frame("main.a", 3), frame("main.main", 10)],
                objects: 2,
                bytes: 64,
            },
            AllocSample {
                stack: vec![frame("main.a", 4), frame("main.main", 10)],
                objects: 1,
                bytes: 16,
            },
        ];
        let mut out = Vec::new();
        write_alloc_profile(&mut out, &samples, 512 * 1024, 1, 2).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut raw)
            .unwrap();
        let p = Profile::decode(&raw[..]).unwrap();
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample.len(), 2);
        // Three distinct frames, two distinct functions.
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.sample[1].location_id[1], p.sample[0].location_id[1]);
        assert_eq!(p.sample[0].value, vec![2, 64]);
        let name = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(name(p.sample_type[1].r#type), "alloc_space");
        assert_eq!(name(p.sample_type[0].unit), "count");
        assert_eq!(name(p.default_sample_type), "alloc_space");
        assert_eq!(p.period, 512 * 1024);
    }
}
