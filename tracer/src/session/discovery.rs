//! `--exe PATH`: which processes run a binary, now and later.
//!
//! A process is matched by the device and inode of its executable (`/proc/PID/exe`)
//! against the file at PATH, not by name: a symlink, a copy elsewhere or a renamed
//! process cannot fool it, and another program with the same name is never picked up.
//! The file is looked up again at every scan, so a binary redeployed at PATH is followed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::traced::analyse;
use crate::target;

/// How often /proc is scanned for new processes of the binary.
pub(super) const RESCAN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) struct ExeWatch {
    path: PathBuf,
    /// Processes already handed out (traced, being attached, or failed), with their
    /// start time: a pid the kernel reuses for a new process is new again.
    seen: HashMap<u32, Option<u64>>,
}

impl ExeWatch {
    /// Fails now, not after waiting for a process, when PATH cannot be read or is not a
    /// Go program this tracer supports.
    pub(super) fn new(path: &Path) -> Result<ExeWatch> {
        target::file_identity(path).with_context(|| format!("cannot read {}", path.display()))?;
        analyse(path, "--exe", crate::probes::StopsMode::Cycle)?;
        Ok(ExeWatch {
            path: path.to_path_buf(),
            seen: HashMap::new(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// `pid` is traced already (given with --pid): never hand it out.
    pub(super) fn claim(&mut self, pid: u32) {
        self.seen.insert(pid, target::start_time(pid));
    }

    /// Processes running the binary now that were not handed out before, in pid order.
    pub(super) fn new_processes(&mut self) -> Vec<u32> {
        // Forget processes that are gone, so that a reused pid counts as new.
        self.seen
            .retain(|&pid, started| target::start_time(pid) == *started);
        let Ok(identity) = target::file_identity(&self.path) else {
            // PATH is being replaced (a deploy): the next scan sees the new file.
            return Vec::new();
        };
        let fresh: Vec<u32> = target::pids_running(identity)
            .into_iter()
            .filter(|pid| !self.seen.contains_key(pid))
            .collect();
        for &pid in &fresh {
            self.claim(pid);
        }
        fresh
    }
}
