//! The reader against damaged input: every cut, random bytes, flipped bits. It must
//! return the intact prefix or a clear error, never panic.

use std::path::Path;

use tracer_common::RawEvent;

use super::*;
use crate::decode::events::AllocBatch;
use crate::decode::DecodeSpec;
use crate::probes::StwScheme;

fn header() -> Header {
    Header {
        tracer_version: "test".into(),
        process: ProcessInfo {
            pid: 42,
            exe: "/bin/app".into(),
            go_version: "go1.27.3".into(),
            arch: "x86_64".into(),
            gomaxprocs: Some(2),
            labels: Default::default(),
            gogc: None,
            memory_limit_bytes: None,
        },
        decode: DecodeSpec {
            scheme: StwScheme::WorldStop,
            reads: vec![],
            systemstack: None,
        },
        offsets_source: crate::binary::OffsetsSource::Dwarf,
        allocs: crate::probes::AllocMode::Rate,
        start_unix_ns: 1,
        start_monotonic_ns: 2,
    }
}

/// A recording of `n` raw events in several blocks, then an allocation batch and an end.
fn recording(n: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.gct");
    let mut rec = Recorder::create(&path, &header()).unwrap();
    for i in 0..n {
        let ev = RawEvent {
            kind: 4,
            ktime_ns: 1_000 + i,
            regs: [i, i * 3, 0, 0, 0, 0],
            ..RawEvent::default()
        };
        rec.raw(&ev).unwrap();
    }
    rec.alloc_batch(&AllocBatch {
        ts_ns: 7,
        objects: 3,
        ..AllocBatch::default()
    })
    .unwrap();
    rec.finish(End {
        lost_events: 5,
        exit_status: Some(3),
    })
    .unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn round_trip() {
    let data = recording(1000);
    let r = Reader::parse(&data, Path::new("r.gct")).unwrap();
    assert_eq!(r.header, header());
    assert!(r.damage.is_none(), "{:?}", r.damage);
    assert_eq!(r.items.len(), 1002);
    assert!(matches!(r.items[999], Item::Raw(ev) if ev.ktime_ns == 1_999 && ev.regs[1] == 2_997));
    assert!(matches!(
        r.items[1001],
        Item::End(End {
            lost_events: 5,
            exit_status: Some(3)
        })
    ));
    // 1000 events of 624 bytes fill several 64 KiB blocks and compress well.
    assert!(data.len() < 1000 * 624 / 4, "{} bytes", data.len());
}

/// Formats 1–3 stored the 360-byte, 32-slot event: it replays widened, every field and
/// read slot where it was, the slots past 32 unread.
#[test]
fn old_32_slot_events_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.gct");
    let mut rec = Recorder::create(&path, &header()).unwrap();
    // The old layout written out by hand, field by field (little-endian, as on amd64
    // and arm64): kind, cpu, ktime_ns, pid_tgid, ip, regs[6], ret_addr, g, reads[32],
    // read_ok (u32), seq (u32).
    let mut bytes = Vec::new();
    bytes.extend(8u32.to_le_bytes());
    bytes.extend(1u32.to_le_bytes());
    bytes.extend(77u64.to_le_bytes());
    bytes.extend((42u64 << 32 | 43).to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    for r in 1..=6u64 {
        bytes.extend(r.to_le_bytes());
    }
    bytes.extend([0u8; 16]);
    for slot in 0..32u64 {
        let v: u64 = match slot {
            0 => 11,
            31 => 12,
            _ => 0,
        };
        bytes.extend(v.to_le_bytes());
    }
    bytes.extend(0x8000_0001u32.to_le_bytes());
    bytes.extend(9u32.to_le_bytes());
    assert_eq!(bytes.len(), 360);
    rec.frame(frame::RAW_EVENT, &bytes).unwrap();
    rec.finish(End::default()).unwrap();
    let data = std::fs::read(&path).unwrap();
    let r = Reader::parse(&data, Path::new("old.gct")).unwrap();
    assert!(r.damage.is_none(), "{:?}", r.damage);
    let Item::Raw(ev) = r.items[0] else {
        panic!("{:?}", r.items[0]);
    };
    assert_eq!((ev.kind, ev.cpu, ev.ktime_ns, ev.seq), (8, 1, 77, 9));
    assert_eq!(ev.pid_tgid, 42 << 32 | 43);
    assert_eq!(ev.regs, [1, 2, 3, 4, 5, 6]);
    assert_eq!((ev.reads[0], ev.reads[31], ev.reads[32]), (11, 12, 0));
    assert_eq!(ev.read_ok, 0x8000_0001);
}

#[test]
fn every_cut_gives_the_intact_prefix_or_a_clear_error() {
    let data = recording(600);
    let full = Reader::parse(&data, Path::new("r.gct")).unwrap().items;
    for cut in 0..data.len() {
        match Reader::parse(&data[..cut], Path::new("r.gct")) {
            Ok(r) => {
                assert!(r.damage.is_some(), "cut at {cut} not reported");
                assert!(r.items.len() < full.len());
                assert_eq!(&full[..r.items.len()], &r.items[..], "cut at {cut}");
            }
            Err(e) => {
                // Only a cut inside the header may fail outright.
                assert!(cut < 16 + 1000, "cut at {cut}: {e}");
                assert!(e.to_string().contains("r.gct"), "{e}");
            }
        }
    }
}

#[test]
fn flipped_bytes_and_random_bytes_never_panic() {
    let data = recording(300);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut d = data.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % d.len();
            d[i] ^= (next() % 255 + 1) as u8;
        }
        let _ = Reader::parse(&d, Path::new("r.gct"));
    }
    for len in [0, 1, 7, 8, 16, 100, 5000] {
        let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let err = Reader::parse(&random, Path::new("junk.bin")).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("junk.bin is not a gctrace-bpf recording"),
            "{msg}"
        );
    }
}

#[test]
fn newer_format_is_refused_by_name() {
    let mut data = recording(1);
    data[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let e = Reader::parse(&data, Path::new("r.gct"))
        .err()
        .map(|e| e.to_string());
    assert!(e.unwrap_or_default().contains("newer gctrace-bpf"));
}

/// Version-1 recordings (before paired stops) have the same layout and replay as before.
#[test]
fn older_format_is_read() {
    let current = Reader::parse(&recording(3), Path::new("r.gct")).unwrap();
    let mut data = recording(3);
    data[8..12].copy_from_slice(&1u32.to_le_bytes());
    let old = Reader::parse(&data, Path::new("r.gct")).unwrap();
    assert_eq!(old.items, current.items);
    assert!(old.damage.is_none());
}

/// The header of a recording made by gctrace-bpf 0.1.0 before `allocs` and
/// `offsets_source` were enums (`--allocs sample`, offsets from DWARF), verbatim.
const HEADER_BEFORE_ENUMS: &str = r#"{"tracer_version":"0.1.0","process":{"pid":4699,"exe":"/tmp/s5h/gcload-1.27","go_version":"go1.27.3","arch":"x86_64","gomaxprocs":2,"labels":{"cgroup":"/process_api/060ea08e21630070fa48a06713768731","container_id":null,"container_runtime":null,"container_name":null,"pod_uid":null,"pod_name":null,"pod_namespace":null,"systemd_unit":null},"gogc":null,"memory_limit_bytes":null},"decode":{"scheme":"WorldStop","reads":["GcCycles","NumGc","UserForced","RuntimeInit","Gomaxprocs","GcEnd","Heap0","Heap1","Heap2","HeapGoal","StackScan","GlobalsScan","MaxProcs","StwProcs","GcCpuFraction","AssistTime","DedicatedMarkTime","FractionalMarkTime","IdleMarkTime","TSweepTerm","TMark","TMarkTerm","GcPercent","MemoryLimit","PauseNs","NumForcedGc","TotalAlloc","Allglen","SchedGFree","SchedGFreeNoStack","SchedNgsys"],"systemstack":null},"offsets_source":"dwarf","allocs":"sample","start_unix_ns":1796175230003607761,"start_monotonic_ns":12242566480869}"#;

/// Recordings made before the header's enums still replay: the header reads into the
/// enums, and is written back byte for byte (the enums serialize under the old names).
#[test]
fn header_written_before_the_enums_is_read() {
    let header: Header = serde_json::from_str(HEADER_BEFORE_ENUMS).unwrap();
    assert_eq!(header.allocs, crate::probes::AllocMode::Sample);
    assert_eq!(header.offsets_source, crate::binary::OffsetsSource::Dwarf);
    assert_eq!(serde_json::to_string(&header).unwrap(), HEADER_BEFORE_ENUMS);

    // The same header in a whole file: the blocks after it replay as before.
    let current = recording(3);
    let old_len = u32::from_le_bytes(current[12..16].try_into().unwrap()) as usize;
    let mut data = current[..12].to_vec();
    data.extend_from_slice(&(HEADER_BEFORE_ENUMS.len() as u32).to_le_bytes());
    data.extend_from_slice(HEADER_BEFORE_ENUMS.as_bytes());
    data.extend_from_slice(&current[16 + old_len..]);
    let old = Reader::parse(&data, Path::new("r.gct")).unwrap();
    let now = Reader::parse(&current, Path::new("r.gct")).unwrap();
    assert_eq!(old.header, header);
    assert_eq!(old.items, now.items);
    assert!(old.damage.is_none());

    // Every name each enum had as a string.
    for (name, mode) in [
        ("rate", crate::probes::AllocMode::Rate),
        ("sample", crate::probes::AllocMode::Sample),
        ("exact", crate::probes::AllocMode::Exact),
    ] {
        assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{name}\""));
    }
    for s in [
        crate::binary::OffsetsSource::Dwarf,
        crate::binary::OffsetsSource::Table,
        crate::binary::OffsetsSource::Code,
        crate::binary::OffsetsSource::None,
    ] {
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.as_str())
        );
    }
}
