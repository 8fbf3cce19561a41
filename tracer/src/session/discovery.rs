//! `--exe PATH` and `--all`: which processes to trace, now and later.
//!
//! With `--exe`, a process is matched by the device and inode of its executable
//! (`/proc/PID/exe`) against the file at PATH, not by name: a symlink, a copy elsewhere or
//! a renamed process cannot fool it, and another program with the same name is never
//! picked up. The file is looked up again at every scan, so a binary redeployed at PATH
//! is followed.
//!
//! With `--all`, every process whose executable is a Go program this tracer supports.
//! Whether it is is decided once per executable (device and inode) and remembered, so a
//! hundred processes of one binary cost one analysis, and a host's other programs are
//! looked at once each.
//!
//! Either can be narrowed to a cgroup subtree (`--cgroup PREFIX`: the process's cgroup
//! path, as `/proc/PID/cgroup` gives it, starts with PREFIX).
//!
//! Found at their exec (see [`super::fleet`]) and, as a safety net and for the processes
//! running before the tracer, by scanning /proc every [`RESCAN_INTERVAL`].

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{labels, target};
use crate::probes::analyse;

/// How often /proc is scanned for new processes.
pub(super) const RESCAN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Which executables are wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The file at this path.
    Exe(PathBuf),
    /// Every Go program.
    AllGo,
}

/// Processes found while the run goes on (`--exe`, `--all`).
#[derive(Debug, Clone)]
pub struct Discover {
    pub matcher: Matcher,
    /// Only processes in this cgroup subtree (`--cgroup`).
    pub cgroup: Option<String>,
    /// At most this many of them traced at once (`--max-processes`); more are reported
    /// and left alone.
    pub max_processes: usize,
}

/// A process found but not traced: the ceiling is reached.
pub(super) fn over_ceiling(pid: u32, max: usize) -> String {
    format!(
        "pid {pid} ({}): not traced: {max} processes are traced already (--max-processes)",
        target::exe_display(pid)
    )
}

pub(super) struct Discovery {
    matcher: Matcher,
    cgroup: Option<String>,
    /// Processes already looked at (handed out, being attached, failed, or not wanted),
    /// with their start time: a pid the kernel reuses for a new process is new again.
    seen: HashMap<u32, Option<u64>>,
    /// `--all`: whether each executable (device, inode) is a Go program we support.
    go: HashMap<(u64, u64), bool>,
}

impl Discovery {
    /// With `--exe`, fails now, not after waiting for a process, when PATH cannot be read
    /// or is not a Go program this tracer supports.
    pub(super) fn new(matcher: Matcher, cgroup: Option<String>) -> Result<Discovery> {
        if let Matcher::Exe(path) = &matcher {
            target::file_identity(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            analyse(path, "--exe", crate::probes::StopsMode::Cycle)?;
        }
        Ok(Discovery {
            matcher,
            cgroup,
            seen: HashMap::new(),
            go: HashMap::new(),
        })
    }

    /// What it waits for, for "no process … yet".
    pub(super) fn waiting_for(&self) -> String {
        let what = match &self.matcher {
            Matcher::Exe(path) => format!("no process runs {}", path.display()),
            Matcher::AllGo => "no Go process runs".to_string(),
        };
        match &self.cgroup {
            Some(c) => format!("{what} in cgroup {c}"),
            None => what,
        }
    }

    /// `pid` is traced already (given with --pid): never hand it out.
    pub(super) fn claim(&mut self, pid: u32) {
        self.seen.insert(pid, target::start_time(pid));
    }

    /// Processes wanted now that were not handed out before, in pid order.
    pub(super) fn new_processes(&mut self) -> Vec<u32> {
        // Forget processes that are gone, so that a reused pid counts as new.
        self.seen
            .retain(|&pid, started| target::start_time(pid) == *started);
        let candidates = match &self.matcher {
            Matcher::Exe(path) => match target::file_identity(path) {
                Ok(identity) => target::pids_running(identity),
                // PATH is being replaced (a deploy): the next scan sees the new file.
                Err(_) => return Vec::new(),
            },
            Matcher::AllGo => target::all_pids(),
        };
        let mut fresh = Vec::new();
        for pid in candidates {
            if self.seen.contains_key(&pid) {
                continue;
            }
            self.claim(pid);
            if self.wanted(pid) {
                fresh.push(pid);
            }
        }
        fresh
    }

    pub(super) fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    pub(super) fn cgroup(&self) -> Option<&String> {
        self.cgroup.as_ref()
    }

    /// Whether `pid` is known to be outside the `--cgroup` subtree (false when it
    /// cannot be read: it ended, and shared probes may still have its events).
    pub(super) fn outside_cgroup(&self, pid: u32) -> bool {
        let Some(prefix) = &self.cgroup else {
            return false;
        };
        labels::cgroup_of(pid).is_some_and(|path| !in_subtree(&path, prefix))
    }

    /// Whether `pid` is wanted (`--all`: a Go program; `--cgroup`: in the subtree).
    pub(super) fn wanted(&mut self, pid: u32) -> bool {
        // The cgroup first: it is one small read, where deciding Go or not reads the
        // binary (a host's binaries outside the subtree are never analysed).
        if let Some(prefix) = &self.cgroup {
            let inside = labels::cgroup_of(pid).is_some_and(|path| in_subtree(&path, prefix));
            if !inside {
                return false;
            }
        }
        if self.matcher == Matcher::AllGo {
            let Some(identity) = target::exe_identity(pid) else {
                return false;
            };
            return *self.go.entry(identity).or_insert_with(|| {
                analyse(
                    &target::exe_link(pid),
                    &format!("pid {pid}"),
                    crate::probes::StopsMode::Cycle,
                )
                .is_ok()
            });
        }
        true
    }
}

/// Whether cgroup `path` is `prefix` or below it (`/a/b` is under `/a`, `/ab` is not).
pub(super) fn in_subtree(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || prefix.is_empty() || path.starts_with(&format!("{prefix}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_subtrees() {
        assert!(in_subtree("/kubepods.slice/a", "/kubepods.slice"));
        assert!(in_subtree("/kubepods.slice/a", "/kubepods.slice/"));
        assert!(in_subtree("/kubepods.slice", "/kubepods.slice"));
        assert!(!in_subtree("/kubepods.slicex/a", "/kubepods.slice"));
        assert!(in_subtree("/anything", "/"));
    }

    #[test]
    fn all_finds_no_go_in_plain_programs_and_asks_once_per_binary() {
        let mut d = Discovery::new(Matcher::AllGo, None).expect("no check for --all");
        let sleeps: Vec<std::process::Child> = (0..3)
            .filter_map(|_| std::process::Command::new("sleep").arg("5").spawn().ok())
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let fresh = d.new_processes();
        for s in &sleeps {
            assert!(!fresh.contains(&s.id()), "sleep is not Go");
            assert!(d.seen.contains_key(&s.id()));
        }
        let sleep_identity = target::file_identity(std::path::Path::new("/bin/sleep")).ok();
        if let Some(id) = sleep_identity {
            assert_eq!(d.go.get(&id), Some(&false));
        }
        for mut s in sleeps {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}
