//! What a test of one traced gcload run starts from: gcload built with the newest Go, a
//! scratch directory, and the test binary's lock on traced runs. The tests of the
//! exporters, recordings, settings and fleet features each began with the same six lines
//! for it.

use std::path::{Path, PathBuf};

/// Fields drop in order: the lock last, once the scratch directory is gone.
pub struct GcloadFixture {
    /// gcload built with the newest configured Go.
    pub gcload: PathBuf,
    tmp: tempfile::TempDir,
    _exclusive: super::Exclusive,
}

impl GcloadFixture {
    /// The scratch directory, removed with the fixture.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// None (after saying why) when the integration tests are not requested. The lock is
/// taken after the build: the tests of a binary build in parallel and trace one at a time.
pub fn start() -> Option<GcloadFixture> {
    if !super::integration_enabled() {
        return None;
    }
    let gcload = super::build_gcload(&super::newest_toolchain());
    let tmp = tempfile::tempdir().expect("tempdir");
    Some(GcloadFixture {
        gcload,
        tmp,
        _exclusive: super::exclusive(),
    })
}
