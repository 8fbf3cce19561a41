//! Unit tests of `plan.rs`.
use super::*;
use crate::probes::reads::location_for;

fn v(minor: u32) -> GoVersion {
    GoVersion {
        major: 1,
        minor,
        patch: 0,
        raw: format!("go1.{minor}"),
    }
}

/// gctrace's stacks figure is `maxStackScan` on 1.19, `lastStackScan` from 1.20; 1.19
/// has both fields, so the name must follow the version, not the first one found.
#[test]
fn stack_scan_field_follows_the_version() {
    let spec = READS
        .iter()
        .find(|r| r.field == ReadField::StackScan)
        .expect("StackScan is read");
    let members = |minor| match location_for(spec, &v(minor)) {
        Location::Field { members, .. } => members.to_vec(),
        Location::Global(g) => vec![g],
    };
    assert_eq!(members(19), ["maxStackScan"]);
    assert_eq!(members(20)[0], "lastStackScan");
    assert_eq!(members(27)[0], "lastStackScan");
    let other = READS
        .iter()
        .find(|r| r.field == ReadField::Heap0)
        .expect("Heap0 is read");
    assert_eq!(location_for(other, &v(19)), other.location);
}

#[test]
fn scheme_follows_runtime_signatures() {
    assert_eq!(scheme_for(&v(19)).ok(), Some(StwScheme::CallerInferred));
    assert_eq!(scheme_for(&v(20)).ok(), Some(StwScheme::CallerInferred));
    assert_eq!(scheme_for(&v(21)).ok(), Some(StwScheme::ReasonArg));
    assert_eq!(scheme_for(&v(22)).ok(), Some(StwScheme::WorldStop));
    assert_eq!(scheme_for(&v(27)).ok(), Some(StwScheme::WorldStop));
}

/// Whatever plan reads, stripped binaries know how to locate: struct globals with the
/// same type in `globals::STRUCT_GLOBALS`, plain ones in `SCALAR_GLOBALS`.
#[test]
fn every_read_global_can_be_located_without_symtab() {
    use crate::binary::anchors::globals::{SCALAR_GLOBALS, STRUCT_GLOBALS};
    // The goroutine count's terms are not located in stripped binaries yet (the
    // planner warns that the count is unknown there).
    let goroutine_terms = [
        ReadField::Allglen,
        ReadField::SchedGFree,
        ReadField::SchedGFreeNoStack,
        ReadField::SchedNgsys,
    ];
    for r in READS.iter().filter(|r| !goroutine_terms.contains(&r.field)) {
        match r.location {
            Location::Field { global, ty, .. } => {
                assert!(STRUCT_GLOBALS.contains(&(global, ty)), "{r:?}")
            }
            Location::Global(symbol) => assert!(SCALAR_GLOBALS.contains(&symbol), "{r:?}"),
        }
    }
    let fields = read_struct_fields();
    assert!(fields.contains(&("runtime.workType", "cycles")));
    assert!(fields.contains(&("runtime.gcControllerState", "maxStackScan")));
    assert_eq!(
        fields.len(),
        fields
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
}

#[test]
fn unknown_versions_are_refused() {
    for minor in [18, 28] {
        let err = scheme_for(&v(minor)).unwrap_err().to_string();
        assert!(err.contains("Go 1.19 to 1.27"), "{err}");
    }
}
