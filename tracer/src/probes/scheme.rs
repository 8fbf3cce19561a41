//! How stops of the world are seen on each Go version ([`StwScheme`]) and how many of
//! them are probed ([`StopsMode`]); the Go versions this tracer has been checked against.

use super::sites::PlanError;
use crate::binary::GoVersion;

/// How stop-the-world events are read on this Go version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StwScheme {
    /// Go 1.19–1.20: no reason code; GC stops are called straight through `systemstack`
    /// and told apart by `gcphase`.
    CallerInferred,
    /// Go 1.21: `stopTheWorldWithSema(reason stwReason)`.
    ReasonArg,
    /// Go 1.22+: `startTheWorldWithSema(now int64, w worldStop)`.
    WorldStop,
}

/// How stops of the world are watched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopsMode {
    /// Default: one probe hit per GC cycle, after the world has restarted, reading the
    /// runtime's own clocks in `work`; non-GC stops on their own paths. Nothing fires
    /// inside a GC pause.
    #[default]
    Cycle,
    /// Every stop of the world probed where it starts and ends (opt-in `--every-stop`):
    /// each mark-termination restart gets its own start, at two hits per stop, one of
    /// them inside the pause.
    Every,
}

/// Oldest and newest Go minor versions whose runtime this tracer has been checked against.
pub const SUPPORTED_MINORS: (u32, u32) = (19, 27);

pub(super) fn scheme_for(v: &GoVersion) -> Result<StwScheme, PlanError> {
    if v.major != 1 || v.minor < SUPPORTED_MINORS.0 || v.minor > SUPPORTED_MINORS.1 {
        // Newer than any checked: see `plan`, which asks the binary (`unreleased.rs`).
        return Err(PlanError::UnsupportedVersion {
            version: v.raw.clone(),
        });
    }
    Ok(match v.minor {
        19 | 20 => StwScheme::CallerInferred,
        21 => StwScheme::ReasonArg,
        _ => StwScheme::WorldStop,
    })
}
