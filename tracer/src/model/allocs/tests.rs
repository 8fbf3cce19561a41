//! The allocation model's counting, scaling and errors, on hand-made batches.

use super::*;

fn batch(ts_ns: u64, sampled: bool) -> AllocBatch {
    AllocBatch {
        ts_ns,
        sampled,
        objects: 10,
        bytes: 160,
        by_type: vec![
            AllocStat {
                name: "main.node".into(),
                counts: AllocCounts::exact(8, 128),
            },
            AllocStat {
                name: "[]uint8".into(),
                counts: AllocCounts::exact(2, 32),
            },
        ],
        by_class: vec![(16, 10)],
        ..AllocBatch::default()
    }
}

#[test]
fn exact_counts_add_up_and_rank_by_bytes() {
    let mut m = AllocModel::default();
    assert!(m.add(&batch(1_000, false)).is_none());
    assert!(m.add(&batch(2_000, false)).is_none());
    let (types, _) = m.snapshot();
    assert!(types.exact);
    assert_eq!((types.objects, types.bytes), (20, 320));
    assert_eq!(types.types[0].name, "main.node");
    assert_eq!(types.types[0].counts.objects, 16);
    assert_eq!(types.size_classes[0].objects, 20);
    // A snapshot is due 5 s after the first batch.
    assert!(m.add(&batch(5_000_001_000, false)).is_some());
}

#[test]
fn sampled_counts_are_scaled_and_not_exact() {
    let mut m = AllocModel::default();
    // The sample saw 160 bytes while the runtime counted 640: everything x4.
    m.add(&batch(1, true));
    m.set_runtime_bytes(640);
    let (types, _) = m.snapshot();
    assert!(!types.exact);
    assert_eq!((types.objects, types.bytes), (40, 640));
    assert_eq!(types.types[0].counts.objects, 32);
    // Later allocations the sample did not see still count in the runtime's total.
    m.set_runtime_bytes(1280);
    assert_eq!(m.totals(), (80, 1280));
}

#[test]
fn sampling_error_follows_the_large_objects_that_set_the_scale() {
    // 2000 small and 20 large allocations counted: the bytes, and so the scale, rest
    // on the 20 large ones (±42 % at 95 %, from Σs²/B² − 1/N); the large type's own
    // bytes are nearly the whole sample and hardly uncertain; the small type's
    // estimate inherits the scale's error.
    let mut m = AllocModel::default();
    m.add(&AllocBatch {
        ts_ns: 1,
        sampled: true,
        objects: 2020,
        bytes: 2000 * 16 + 20 * 32768,
        by_type: vec![
            AllocStat {
                name: "small".into(),
                counts: AllocCounts::exact(2000, 2000 * 16),
            },
            AllocStat {
                name: "large".into(),
                counts: AllocCounts::exact(20, 20 * 32768),
            },
        ],
        by_class: vec![(16, 2000), (32768, 20)],
        ..AllocBatch::default()
    });
    m.set_runtime_bytes(100 * (2000 * 16 + 20 * 32768));
    let (types, _) = m.snapshot();
    assert_eq!(types.counted_objects, 2020);
    assert_eq!(types.objects_error_permille, Some(416));
    let error = |name: &str| {
        types
            .types
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.counts.error_permille)
    };
    assert_eq!(error("large"), Some(21));
    assert_eq!(error("small"), Some(420));
    // Two bursts that disagree (one saw only 16-byte objects, the other only 32-byte
    // ones): the spread between them, not the sizes, sets the error.
    let mut m = AllocModel::default();
    for size in [16, 32] {
        m.add(&AllocBatch {
            ts_ns: 1,
            sampled: true,
            objects: 1000,
            bytes: 1000 * size,
            by_type: vec![AllocStat {
                name: format!("t{size}"),
                counts: AllocCounts::exact(1000, 1000 * size),
            }],
            by_class: vec![(size, 1000)],
            ..AllocBatch::default()
        });
    }
    m.set_runtime_bytes(480_000);
    let (types, _) = m.snapshot();
    // Independent draws would say ±1.5 %; the bursts say ±65 %.
    assert_eq!(types.objects_error_permille, Some(653));
    assert!(types
        .types
        .iter()
        .all(|t| t.counts.error_permille > Some(600)));
    // Counting everything: no sampling error at all.
    let mut exact = AllocModel::default();
    exact.add(&batch(1, false));
    let (types, _) = exact.snapshot();
    assert_eq!(types.objects_error_permille, None);
    assert!(types
        .types
        .iter()
        .all(|t| t.counts.error_permille.is_none()));
}

/// A sampled batch of `small` 16-byte boxes and `large` 320 KiB slices (requested
/// 327,680 bytes, 40 pages), by type and by site.
fn boxes_and_slices(small: u64, large: u64) -> AllocBatch {
    let slice = 327_680;
    let site = |via: &str, objects: u64, bytes: u64, large: bool| SiteStat {
        frames: vec![Frame {
            function: "main.box".into(),
            ..Frame::default()
        }],
        via: via.into(),
        type_name: String::new(),
        counts: AllocCounts {
            large_objects: if large { objects } else { 0 },
            large_bytes: if large { bytes } else { 0 },
            ..AllocCounts::exact(objects, bytes)
        },
    };
    let mut by_class = vec![(16, small)];
    if large > 0 {
        by_class.push((slice, large));
    }
    AllocBatch {
        ts_ns: 1,
        sampled: true,
        objects: small + large,
        bytes: small * 16 + large * slice,
        by_type: vec![
            AllocStat {
                name: "boxes".into(),
                counts: AllocCounts::exact(small, small * 16),
            },
            AllocStat {
                name: "slices".into(),
                counts: AllocCounts {
                    large_objects: large,
                    large_bytes: large * slice,
                    ..AllocCounts::exact(large, large * slice)
                },
            },
        ]
        .into_iter()
        .filter(|t| t.counts.objects > 0)
        .collect(),
        by_site: [
            site("runtime.convT64", small, small * 16, false),
            site("runtime.makeslice", large, large * slice, true),
        ]
        .into_iter()
        .filter(|s| s.counts.objects > 0)
        .collect(),
        by_class,
        ..AllocBatch::default()
    }
}

#[test]
fn sampled_small_and_large_objects_scale_each_to_the_runtimes_own_count() {
    // The runtime counted 2 GB of slices (6,400 of them) and 1 GB of boxes (62.5 M):
    // two thirds large. One burst caught a slice among 1,000 boxes, which by one
    // factor made the slice 95 % of the bytes; another caught none, which made the
    // boxes 100 %.
    let runtime = |m: &mut AllocModel| {
        m.set_runtime_bytes(3_000_000_000);
        m.set_runtime_objects(62_500_000 + 6_400, Some(2));
        m.set_runtime_large(LargeAllocs {
            bytes: 2_000_000_000,
            objects: 6_400,
        });
    };
    let bytes = |types: &AllocTypesRecord, name: &str| {
        types
            .types
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.counts.bytes, t.counts.objects, t.counts.counted))
    };
    let mut caught = AllocModel::default();
    caught.add(&boxes_and_slices(1_000, 1));
    runtime(&mut caught);
    let (types, sites) = caught.snapshot();
    assert_eq!(
        bytes(&types, "boxes"),
        Some((1_000_000_000, 62_500_000, 1_000))
    );
    assert_eq!(bytes(&types, "slices"), Some((2_000_000_000, 6_400, 1)));
    assert_eq!((types.bytes, types.objects), (3_000_000_000, 62_506_400));
    assert_eq!(sites.sites[0].via, "runtime.makeslice");
    assert_eq!(sites.sites[0].counts.bytes, 2_000_000_000);
    assert_eq!(sites.sites[1].counts.bytes, 1_000_000_000);

    let mut missed = AllocModel::default();
    missed.add(&boxes_and_slices(1_000, 0));
    runtime(&mut missed);
    let (types, sites) = missed.snapshot();
    assert_eq!(
        bytes(&types, "boxes"),
        Some((1_000_000_000, 62_500_000, 1_000))
    );
    // What no burst saw stands as its own entry, with the runtime's exact counts.
    assert_eq!(bytes(&types, UNSEEN[1]), Some((2_000_000_000, 6_400, 0)));
    let unseen = &sites.sites[0];
    assert_eq!(unseen.frames[0].function, UNSEEN[1]);
    assert_eq!(
        (unseen.counts.bytes, unseen.counts.error_permille),
        (2_000_000_000, None)
    );
    // The entries add up to the runtime's totals, which the record states.
    assert_eq!((types.bytes, types.objects), (3_000_000_000, 62_506_400));
    let sum: u64 = types.types.iter().map(|t| t.counts.bytes).sum();
    assert_eq!(sum, types.bytes);
    let sum: u64 = sites.sites.iter().map(|s| s.counts.bytes).sum();
    assert_eq!(sum, types.bytes);
    assert_eq!(missed.totals(), (62_506_400, 3_000_000_000));

    // Without the runtime's large-object count (no DWARF), one factor, as before.
    let mut unsplit = AllocModel::default();
    unsplit.add(&boxes_and_slices(1_000, 0));
    unsplit.set_runtime_bytes(3_000_000_000);
    let (types, _) = unsplit.snapshot();
    assert_eq!(bytes(&types, "boxes").map(|b| b.0), Some(3_000_000_000));
    assert_eq!(bytes(&types, UNSEEN[1]), None);
}
