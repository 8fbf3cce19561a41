//! A file a test phase's tests append lines to, named to them by an environment
//! variable: the skipped tests ([`crate::skipped`]) and the live tests' times
//! ([`crate::test_times`]) are each one such log.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::env;

/// One phase's log, fresh for each run.
pub struct PhaseLog {
    path: PathBuf,
    /// The variable the test harness reads the log's path from.
    var: &'static str,
}

impl PhaseLog {
    /// An empty log at `target/DIR/PHASE.log`, replacing an earlier run's.
    pub fn fresh(dir: &str, phase: &str, var: &'static str) -> Result<Self> {
        let dir = env::target_dir().join(dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{phase}.log"));
        fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, var })
    }

    /// Points `cmd`'s tests at this log.
    pub fn pass_to<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env(self.var, &self.path)
    }

    /// What the tests wrote.
    pub fn read(&self) -> Result<String> {
        fs::read_to_string(&self.path).with_context(|| format!("reading {}", self.path.display()))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
