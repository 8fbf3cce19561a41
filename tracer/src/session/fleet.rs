//! `--exe` and `--all` as the run goes on: which processes to trace and how, found at
//! their exec (the `sched_process_exec` tracepoint: nothing is missed however short its
//! life) and by a scan of /proc (what ran before the tracer; a safety net).
//!
//! Every binary is analysed once (cached by device and inode). With `--allocs rate` (the
//! default), a non-PIE binary gets one set of probes for all its processes
//! ([`super::shared`]), attached before its next process runs its first instruction;
//! otherwise each process gets probes of its own, attached once it is found.

use std::{collections::HashMap, sync::Arc};

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinSet};

use super::discovery::{Discovery, Matcher, RESCAN_INTERVAL};
use super::feed::{take_ring, watch_fd};
use super::shared::{self, Binary, Found, Group};
use super::target::{self, HeldExe};
use super::traced::{self, Prepared};
use super::TraceOptions;
use crate::probes::analyse;
use crate::probes::{AllocMode, Probes};

/// What the fleet has for the session.
pub(super) enum Step {
    /// A process to trace from now on, with the warnings its analysis gave.
    Traced(Box<Prepared>, Vec<String>),
    /// A line to tell (a process not traced, and why).
    Say(String),
}

/// How the processes of one binary are traced.
enum Verdict {
    /// Probes shared by all of them.
    Shared(Group),
    /// Probes of their own each (PIE, or allocation probes wanted).
    Own,
    /// Not traced (not a Go program we support, or it failed to attach).
    No,
}

type Identity = (u64, u64);

/// Binaries analysed at once.
const MAX_ANALYSES: usize = 2;

/// A binary analysed and, if its processes can share probes, attached.
type Analysed = (Identity, Result<Option<(Binary, Probes)>>);

pub(super) struct Fleet {
    discovery: Discovery,
    opts: Arc<TraceOptions>,
    /// `--allocs rate`: allocation probes are per process, so only then can they share.
    share: bool,
    binaries: HashMap<Identity, Verdict>,
    /// Binaries being analysed and attached, with the processes waiting for them.
    pending: HashMap<Identity, Vec<u32>>,
    analysing: JoinSet<Analysed>,
    /// Binaries waiting for their analysis: a few at a time, each holds its file's
    /// tables in memory (a host's worth at once made the tracer's peak RSS).
    queued: std::collections::VecDeque<(Identity, HeldExe)>,
    /// Processes getting probes of their own.
    attaching: JoinSet<(u32, Result<Prepared>, Vec<String>)>,
    found_tx: mpsc::UnboundedSender<Found>,
    found_rx: mpsc::UnboundedReceiver<Found>,
    /// The exec tracepoint and its ring (None: it could not be attached; the scan alone).
    execs: Option<(Probes, AsyncFd<RingBuf<MapData>>)>,
    rescan: tokio::time::Interval,
    /// Processes found that exited before they could be attached (own probes).
    pub(super) gone_early: u64,
    /// Traced already with probes of their own (`--pid`): shared probes leave them alone.
    given: Vec<u32>,
    /// Wanted processes running when it started.
    pub(super) found_at_start: usize,
}

impl Fleet {
    /// Start watching execs, then offer every process running now. On the session's
    /// thread (shared probes start a task there).
    pub(super) fn start(
        discovery: Discovery,
        given: Vec<u32>,
        opts: Arc<TraceOptions>,
        warn: &mut dyn FnMut(String),
    ) -> Fleet {
        let execs = match Probes::execs()
            .map_err(anyhow::Error::from)
            .and_then(|mut p| {
                let ring = watch_fd(p.take_events()?)?;
                Ok((p, ring))
            }) {
            Ok(e) => Some(e),
            Err(e) => {
                warn(format!(
                    "cannot watch execs ({e:#}): new processes are found by a scan of /proc every {}s and one that lives less may be missed",
                    RESCAN_INTERVAL.as_secs()
                ));
                None
            }
        };
        let (found_tx, found_rx) = mpsc::unbounded_channel();
        let share = opts.allocs == AllocMode::Rate;
        let mut fleet = Fleet {
            discovery,
            opts,
            share,
            binaries: HashMap::new(),
            pending: HashMap::new(),
            analysing: JoinSet::new(),
            queued: Default::default(),
            attaching: JoinSet::new(),
            found_tx,
            found_rx,
            execs,
            rescan: tokio::time::interval_at(
                tokio::time::Instant::now() + RESCAN_INTERVAL,
                RESCAN_INTERVAL,
            ),
            gone_early: 0,
            given,
            found_at_start: 0,
        };
        // --exe: the file's probes go on now, before any process of it is found.
        if let (true, Matcher::Exe(path)) = (share, fleet.discovery.matcher().clone()) {
            if let Ok(exe) = HeldExe::at(&path) {
                if let Ok(id) = exe.identity() {
                    fleet.analyse(id, exe);
                }
            }
        }
        for pid in fleet.discovery.new_processes() {
            fleet.offer(pid);
            fleet.found_at_start += 1;
        }
        fleet
    }

    /// What it waits for, for "no process … yet".
    pub(super) fn waiting_for(&self) -> String {
        self.discovery.waiting_for()
    }

    /// The next process to trace or line to tell.
    pub(super) async fn next(&mut self) -> Step {
        loop {
            tokio::select! {
                Some(found) = self.found_rx.recv() => return match found {
                    Found::Process(p, warnings) => Step::Traced(p, warnings),
                    Found::Refused(line) => Step::Say(line),
                },
                Some(joined) = self.attaching.join_next(), if !self.attaching.is_empty() => {
                    match joined {
                        Ok((_, Ok(p), warnings)) => return Step::Traced(Box::new(p), warnings),
                        // Gone before it could be attached: counted, said once at the end.
                        Ok((pid, Err(_), _)) if !target::exists(pid) => self.gone_early += 1,
                        Ok((_, Err(e), _)) => return Step::Say(format!("{e:#}; not traced")),
                        Err(e) => return Step::Say(format!("attaching a new process failed: {e}")),
                    }
                }
                Some(joined) = self.analysing.join_next(), if !self.analysing.is_empty() => {
                    if let Some(line) = self.analysed(joined) {
                        return Step::Say(line);
                    }
                }
                pids = next_execs(&mut self.execs) => {
                    for pid in pids {
                        self.exec(pid);
                    }
                }
                _ = self.rescan.tick() => {
                    for pid in self.discovery.new_processes() {
                        self.offer(pid);
                    }
                }
            }
        }
    }

    /// The run is over: what is being attached is dropped (and so detached).
    pub(super) async fn finish(&mut self) {
        while self.attaching.join_next().await.is_some() {}
        while self.analysing.join_next().await.is_some() {}
    }

    /// A process just started a program: offered if it is one we want.
    fn exec(&mut self, pid: u32) {
        let Some(id) = target::exe_identity(pid) else {
            // Gone already: if its binary has shared probes, its events set it up.
            return;
        };
        if let Matcher::Exe(path) = self.discovery.matcher() {
            if shared::identity(path) != Some(id) {
                return;
            }
        }
        // Outside --cgroup: not even analysed, nor its binary probed.
        if matches!(self.binaries.get(&id), Some(Verdict::No)) || self.discovery.outside_cgroup(pid)
        {
            return;
        }
        // The scan must not offer it again.
        self.discovery.claim(pid);
        // Shared probes' groups check the cgroup themselves, and a binary not yet judged
        // is analysed off this thread (then checked as its verdict says).
        let checked_later = self.share && !matches!(self.binaries.get(&id), Some(Verdict::Own));
        if checked_later || self.discovery.wanted(pid) {
            self.offer(pid);
        }
    }

    /// Trace `pid` (a wanted process, or one whose binary is still to be judged).
    fn offer(&mut self, pid: u32) {
        if !self.share {
            self.attach_own(pid);
            return;
        }
        let Some(id) = target::exe_identity(pid) else {
            return;
        };
        match self.binaries.get(&id) {
            Some(Verdict::Shared(group)) => group.register(pid),
            Some(Verdict::Own) => self.attach_own(pid),
            Some(Verdict::No) => {}
            None => {
                if !self.pending.contains_key(&id) {
                    // Held now: the process may be gone before its analysis starts.
                    let Ok(exe) = HeldExe::of_process(pid) else {
                        return;
                    };
                    // It exec'd another program since: that one is offered at its exec.
                    if exe.identity().ok() != Some(id) {
                        return;
                    }
                    self.analyse(id, exe);
                }
                self.pending.entry(id).or_default().push(pid);
            }
        }
    }

    /// Analyse the binary at `exe` and, if its processes can share probes, attach them
    /// (both off this thread).
    fn analyse(&mut self, id: Identity, exe: HeldExe) {
        self.pending.entry(id).or_default();
        if self.analysing.len() >= MAX_ANALYSES {
            self.queued.push_back((id, exe));
            return;
        }
        let opts = self.opts.clone();
        self.analysing.spawn_blocking(move || {
            let attempt = analyse(&exe.path(), &exe.display, opts.stops).and_then(|(bin, plan)| {
                if !shared::shareable(&bin, &plan) {
                    return Ok(None);
                }
                let binary = Binary { exe, bin, plan };
                let probes = shared::attach(&binary, &opts)?;
                Ok(Some((binary, probes)))
            });
            (id, attempt)
        });
    }

    /// A binary's analysis is done: its waiting processes are traced as it says.
    fn analysed(&mut self, joined: Result<Analysed, tokio::task::JoinError>) -> Option<String> {
        let (id, attempt) = match joined {
            Ok(j) => j,
            Err(e) => return Some(format!("analysing a new binary failed: {e}")),
        };
        if let Some((next, exe)) = self.queued.pop_front() {
            self.analyse(next, exe);
        }
        let waiting = self.pending.remove(&id).unwrap_or_default();
        let mut line = None;
        let verdict = match attempt {
            Ok(Some((binary, probes))) => {
                let cgroup = self.discovery.cgroup().cloned();
                let exe = binary.exe.display.clone();
                let (opts, found) = (self.opts.clone(), self.found_tx.clone());
                let exe_given = matches!(self.discovery.matcher(), Matcher::Exe(_));
                match shared::start(binary, probes, opts, cgroup, &self.given, found) {
                    Ok(group) => {
                        // --exe: from now on no process of it is missed (a test waits
                        // for this line; users see when the watch is complete).
                        if exe_given {
                            line = Some(format!(
                                "probes on {exe}: every process of it is traced from its start"
                            ));
                        }
                        Verdict::Shared(group)
                    }
                    Err(e) => {
                        line = Some(format!(
                            "{exe}: {e:#}; its processes get probes of their own"
                        ));
                        Verdict::Own
                    }
                }
            }
            Ok(None) => Verdict::Own,
            // --all: not a Go program we support, nothing to say; --exe: the file was
            // checked at the start, so this is news.
            Err(e) => {
                if matches!(self.discovery.matcher(), Matcher::Exe(_)) {
                    line = Some(format!("{e:#}; not traced"));
                }
                Verdict::No
            }
        };
        self.binaries.insert(id, verdict);
        for pid in waiting {
            // --all with --cgroup: a process with its own probes must be in the subtree.
            let own = matches!(self.binaries.get(&id), Some(Verdict::Own));
            if own && self.discovery.cgroup().is_some() && !self.discovery.wanted(pid) {
                continue;
            }
            self.offer(pid);
        }
        line
    }

    fn attach_own(&mut self, pid: u32) {
        let opts = self.opts.clone();
        self.attaching.spawn_blocking(move || {
            let mut warnings = Vec::new();
            let prepared = traced::prepare(pid, &opts, &mut warnings);
            (pid, prepared, warnings)
        });
    }
}

/// The pids of the execs the kernel told of since the last call (never, without).
async fn next_execs(execs: &mut Option<(Probes, AsyncFd<RingBuf<MapData>>)>) -> Vec<u32> {
    let Some((_, ring)) = execs else {
        return std::future::pending().await;
    };
    let Ok(mut guard) = ring.readable_mut().await else {
        return std::future::pending().await;
    };
    let mut pids = Vec::new();
    take_ring(guard.get_inner_mut(), |raw| {
        pids.push((raw.pid_tgid >> 32) as u32)
    });
    guard.clear_ready();
    pids
}
