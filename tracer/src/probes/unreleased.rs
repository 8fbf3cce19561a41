//! What to do with a Go runtime this tracer was never checked against: a release newer
//! than [`SUPPORTED_MINORS`]'s newest (go1.28.0), or a development build (`devel …`)
//! whose runtime may differ from any release.
//!
//! Policy: trace it with the newest scheme ([`StwScheme::WorldStop`], Go 1.22+) only when
//! the binary itself shows that what that scheme relies on is unchanged, and say so;
//! refuse with one line otherwise. Checked from the binary, stripped or not:
//! - `runtime.gcStart` and `runtime.startTheWorldWithSema` take arguments of the same
//!   size as in the newest release we know (`_func.args` in the runtime's own function
//!   table: a changed signature changes it; 1.21, 1.22 and 1.23+ all differ here);
//! - with DWARF, `runtime.worldStop` still has `reason` at 0 and `startedStopping` at 8
//!   (the registers the decoder reads);
//! - the runtime's `stwReasonStrings` begins with the reasons we name, in our order, so
//!   every code decodes to the runtime's own word.
//!
//! Everything else already stays unknown rather than guessed: struct offsets come from
//! DWARF, or from the binary's own code where it verifies them field by field (the
//! built-in table has no entry for an unknown release), and each field that cannot be
//! located is named in a warning; moduledata reads are validated.

use super::scheme::{scheme_for, StwScheme, SUPPORTED_MINORS};
use super::sites::{PlanError, GC_START, START_THE_WORLD};
use crate::binary::StwReason;
use crate::binary::{GoBinary, GoVersion};

/// `_func.args` of the functions the newest scheme probes, in the newest release we know
/// (the same from Go 1.23 through 1.27; measured on the test matrix's binaries).
const NEWEST_ARGS: [(&str, u32); 2] = [(GC_START, 24), (START_THE_WORLD, 40)];

/// How many reason codes the decoder names (0 ..= 11: "unknown" to "stop trace").
const NAMED_REASONS: u8 = 12;

/// True when `v` is outside what this tracer was checked against: a minor newer than
/// the newest supported, or a development build.
pub fn is_unreleased(v: &GoVersion) -> bool {
    v.major == 1 && (v.minor > SUPPORTED_MINORS.1 || v.raw.trim_start().starts_with("devel"))
}

/// The scheme for `bin`: by version for the releases we know; for a newer or
/// development runtime, only when the binary shows the newest scheme fits (the verdict
/// goes to `warnings`).
pub fn scheme_of(bin: &GoBinary, warnings: &mut Vec<String>) -> Result<StwScheme, PlanError> {
    if !is_unreleased(bin.go_version()) {
        return scheme_for(bin.go_version());
    }
    let (scheme, verdict) = verdict(bin).map_err(|detail| PlanError::Unverified { detail })?;
    warnings.extend(verdict);
    Ok(scheme)
}

/// True when `v` is a release this tracer was checked against.
pub fn is_known_release(v: &GoVersion) -> bool {
    v.major == 1
        && (SUPPORTED_MINORS.0..=SUPPORTED_MINORS.1).contains(&v.minor)
        && !is_unreleased(v)
}

/// The verdict on an unreleased runtime: the scheme to use and what the user must know
/// (warnings), or why it cannot be traced.
pub fn verdict(bin: &GoBinary) -> Result<(StwScheme, Vec<String>), String> {
    let v = bin.go_version();
    let newest = format!("Go 1.{}", SUPPORTED_MINORS.1);
    let what = if v.minor > SUPPORTED_MINORS.1 {
        format!("{v} is newer than {newest}, the newest Go this tracer was checked against")
    } else {
        format!("{v} is a development build, not a release this tracer was checked against")
    };
    if v.minor < 22 {
        return Err(format!(
            "{what}, and its runtime predates the Go 1.22 scheme this tracer can verify"
        ));
    }
    let mut checked = Vec::new();
    for (name, want) in NEWEST_ARGS {
        match bin.args_size(name) {
            Some(got) if got == want => checked.push(format!("{name} ({got} bytes of arguments)")),
            Some(got) if v.minor > SUPPORTED_MINORS.1 => {
                return Err(format!(
                    "{what}, and {name} takes {got} bytes of arguments where {newest} takes \
                     {want}: its signature changed, so its stops cannot be read"
                ))
            }
            // A development build of a known minor (e.g. 1.22) may use that minor's own
            // signature; 1.22 is the only one in the scheme with another size.
            Some(got) if v.minor == 22 && name == START_THE_WORLD && got == 24 => {
                checked.push(format!("{name} ({got} bytes of arguments, as Go 1.22)"))
            }
            Some(got) => {
                return Err(format!(
                    "{what}, and {name} takes {got} bytes of arguments where Go 1.{} takes \
                     {want}: its stops cannot be read",
                    v.minor
                ))
            }
            None => {
                return Err(format!(
                    "{what}, and the argument size of {name} is not in its function table: \
                     its signature cannot be verified"
                ))
            }
        }
    }
    if bin.has_dwarf() {
        let reason = bin.struct_field_offset("runtime.worldStop", "reason");
        let started = bin
            .struct_field_offset("runtime.worldStop", "startedStopping")
            .or_else(|| bin.struct_field_offset("runtime.worldStop", "start"));
        if reason != Some(0) || started != Some(8) {
            return Err(format!(
                "{what}, and its DWARF describes runtime.worldStop differently (reason at \
                 {reason:?}, startedStopping at {started:?}; expected 0 and 8)"
            ));
        }
        checked.push("runtime.worldStop's layout (DWARF)".into());
    }
    let mut warnings = Vec::new();
    match bin.stw_reason_names() {
        Some(names) => {
            for code in 0..NAMED_REASONS {
                let ours = StwReason::from_code(code).as_str();
                match names.get(usize::from(code)) {
                    Some(theirs) if theirs == ours => {}
                    theirs => {
                        return Err(format!(
                            "{what}, and its runtime names stop reason {code} {theirs:?} where \
                             {newest} says {ours:?}: its stop reasons would be misnamed"
                        ))
                    }
                }
            }
            checked.push(format!(
                "the runtime's {} stop reason names",
                names.len().min(usize::from(NAMED_REASONS))
            ));
            // Codes past ours (the runtime's test-only reasons, or new ones) show as
            // "other", as on every version.
        }
        None => warnings.push(format!(
            "{v}: the runtime's stop reason names (runtime.stwReasonStrings) were not found: \
             stop reasons assume {newest}'s numbering, unverified"
        )),
    }
    warnings.insert(
        0,
        format!(
            "{what}: traced as {newest} (verified in this binary: {}); struct offsets from \
             DWARF or verified from its code, never straight from the built-in table (it \
             has no entry for this runtime); every field not located stays unknown",
            checked.join(", ")
        ),
    );
    Ok((StwScheme::WorldStop, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_versions_are_unreleased() {
        let v = |s: &str| GoVersion::parse(s).unwrap();
        assert!(is_unreleased(&v("go1.28.0")));
        assert!(is_unreleased(&v("go1.28rc1")));
        assert!(is_unreleased(&v(
            "devel go1.27-abcdef Mon Jan 1 00:00:00 2030 +0000"
        )));
        assert!(!is_unreleased(&v("go1.27.3")));
        assert!(!is_unreleased(&v("go1.19.8")));
        assert!(!is_unreleased(&v("go2.0")));
    }
}
