//! Probes shared by every process of one binary (`--exe`, `--all`): attached once, with
//! pid = any, so they fire in a process started later from its first instruction, and
//! split by pid here. A process is set up (its decoder, model, output) when its exec is
//! seen or, at the latest, when its first event is read — even if it has exited by then:
//! a process that lives 50 ms and runs one GC cycle still gets its record.
//!
//! Only for non-PIE binaries (Go's default): the runtime variables the probes read have
//! the same address in every process. A PIE's are traced with probes of their own.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{anyhow, Result};
use tokio::sync::mpsc;
use tracer_common::{ProbeKind, RawEvent};

use super::feed::{take_ring, watch_fd, Feed, GroupMsg, Source};
use super::labels;
use super::target::{self, HeldExe};
use super::traced::{describe, Prepared};
use super::TraceOptions;
use crate::binary::process::load_bias;
use crate::sys::pidfd_open;
use crate::{
    binary::GoBinary,
    probes::{ProbePlan, Probes, Scope},
};

/// How often the shared ring is read when nothing wakes us (as a process's own).
const ROUTE_INTERVAL: Duration = Duration::from_millis(100);

/// What a group hands to the session.
pub(super) enum Found {
    /// A process to trace from now on (what describing it warned of, too).
    Process(Box<Prepared>, Vec<String>),
    /// A process of the binary not traced, and why.
    Refused(String),
}

/// The session's handle on one binary's probes.
pub(super) struct Group {
    tx: mpsc::UnboundedSender<GroupMsg>,
}

impl Group {
    /// Set up `pid` now (found at its exec or by a scan); nothing if it is already.
    pub(super) fn register(&self, pid: u32) {
        let _ = self.tx.send(GroupMsg::Register(pid));
    }
}

/// The binary as analysed, and where it was attached.
pub(super) struct Binary {
    /// The file attached, held open while its probes are (see [`HeldExe`]).
    pub(super) exe: HeldExe,
    pub(super) bin: GoBinary,
    pub(super) plan: ProbePlan,
}

/// Attach `binary`'s probes for every process (blocking: loads the kernel programs).
pub(super) fn attach(binary: &Binary, opts: &TraceOptions) -> Result<Probes> {
    Ok(Probes::attach(
        Scope::AllProcesses,
        &binary.exe.path(),
        &binary.plan,
        0,
        None,
        opts.ring_kib.map(|k| k.saturating_mul(1024)),
    )?)
}

/// Start the loop that splits `probes`' events by pid (on the session's thread).
pub(super) fn start(
    binary: Binary,
    mut probes: Probes,
    opts: Arc<TraceOptions>,
    cgroup: Option<String>,
    given: &[u32],
    found: mpsc::UnboundedSender<Found>,
) -> Result<Group> {
    let ring = probes.take_events()?;
    let ring = watch_fd(ring).map_err(|e| anyhow!("cannot poll the ring buffer: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut state = State {
        binary,
        probes: Arc::new(Mutex::new(probes)),
        opts,
        cgroup,
        found,
        feeds: HashMap::new(),
        ignored: HashSet::new(),
        weak: tx.downgrade(),
        warned: false,
    };
    for &pid in given {
        state.ignore(pid);
    }
    tokio::task::spawn_local(run(state, ring, rx));
    Ok(Group { tx })
}

struct State {
    binary: Binary,
    probes: Arc<Mutex<Probes>>,
    opts: Arc<TraceOptions>,
    cgroup: Option<String>,
    found: mpsc::UnboundedSender<Found>,
    /// The processes traced, each with its channel of events.
    feeds: HashMap<u32, mpsc::UnboundedSender<RawEvent>>,
    /// Processes not traced (outside the cgroup, past the ceiling): their events are
    /// dropped here until the kernel's filter has them too.
    ignored: HashSet<u32>,
    /// For the feeds: the group lives while a process or the session holds a sender.
    weak: mpsc::WeakUnboundedSender<GroupMsg>,
    /// The plan's warnings were said (with the first process).
    warned: bool,
}

/// Until every sender is gone (the session's handle and every process's feed).
async fn run(
    mut state: State,
    mut ring: tokio::io::unix::AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>,
    mut rx: mpsc::UnboundedReceiver<GroupMsg>,
) {
    let mut tick = tokio::time::interval(ROUTE_INTERVAL);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let Ok(mut guard) = guard else { break };
                state.route(guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = tick.tick() => state.route(ring.get_mut()),
            msg = rx.recv() => match msg {
                None => break,
                Some(GroupMsg::Register(pid)) => {
                    state.ensure(pid);
                }
                Some(GroupMsg::Ended { pid, reply }) => {
                    state.route(ring.get_mut());
                    state.feeds.remove(&pid);
                    let _ = reply.send(());
                }
            },
        }
    }
}

impl State {
    /// Every event of the ring to the channel of its process, setting up processes seen
    /// for the first time.
    fn route(&mut self, ring: &mut aya::maps::RingBuf<aya::maps::MapData>) {
        let mut batch = Vec::new();
        take_ring(ring, |raw| batch.push(raw));
        for raw in batch {
            if raw.kind == ProbeKind::Exec as u32 {
                continue;
            }
            let pid = (raw.pid_tgid >> 32) as u32;
            if !self.ensure(pid) {
                continue;
            }
            let refused = self.feeds.get(&pid).is_some_and(|tx| tx.send(raw).is_err());
            if refused {
                // The session did not take it (the ceiling): leave it alone.
                self.feeds.remove(&pid);
                self.ignore(pid);
            }
        }
    }

    fn ignore(&mut self, pid: u32) {
        self.ignored.insert(pid);
        if let Ok(mut probes) = self.probes.lock() {
            if let Err(e) = probes.ignore(pid) {
                log::warn!("pid {pid}: cannot filter it out in the kernel: {e}");
            }
        }
    }

    /// Whether `pid` is traced, setting it up if it is new and wanted.
    fn ensure(&mut self, pid: u32) -> bool {
        if self.feeds.contains_key(&pid) {
            return true;
        }
        if self.ignored.contains(&pid) {
            return false;
        }
        let display = self.binary.exe.display.clone();
        if let Some(prefix) = &self.cgroup {
            let path = labels::cgroup_of(pid);
            let why = match path {
                Some(p) if super::discovery::in_subtree(&p, prefix) => None,
                // Outside: not ours, nothing to say.
                Some(_) => Some(None),
                None => Some(Some(format!(
                    "pid {pid} ({display}): not traced: it exited before its cgroup could be read (--cgroup)"
                ))),
            };
            if let Some(line) = why {
                self.ignore(pid);
                if let Some(line) = line {
                    let _ = self.found.send(Found::Refused(line));
                }
                return false;
            }
        }
        let Some(group) = self.weak.upgrade() else {
            return false;
        };
        let pidfd = pidfd_open(pid).ok();
        let exe_name = match &pidfd {
            Some(_) if target::exists(pid) => target::exe_display(pid),
            _ => display,
        };
        let who = format!("pid {pid} ({exe_name})");
        let mut warnings = Vec::new();
        // The kernel reads need no bias; the allocation counter read from /proc and
        // the decoding do (PIE). A process already gone is read by its events alone.
        let bias = match load_bias(pid, &self.binary.bin) {
            Ok(b) => b,
            Err(_) if !target::exists(pid) => 0,
            Err(e) => {
                self.ignore(pid);
                let line = format!("{who}: not traced: {}", crate::errors::chain(&e));
                let _ = self.found.send(Found::Refused(line));
                return false;
            }
        };
        let described = describe(
            pid,
            exe_name,
            &self.binary.bin,
            &self.binary.plan,
            bias,
            &self.opts,
            &who,
            &mut warnings,
        );
        // What the binary lacks is said with its first process, not with every one.
        if !self.warned {
            self.warned = true;
            warnings.extend(self.binary.plan.warnings.iter().cloned());
        }
        let (tx, events) = mpsc::unbounded_channel();
        let feed = Feed {
            pid,
            events,
            group,
            probes: self.probes.clone(),
        };
        let prepared = described.prepared(Source::Shared(feed), None, pidfd);
        if self
            .found
            .send(Found::Process(Box::new(prepared), warnings))
            .is_err()
        {
            return false;
        }
        self.feeds.insert(pid, tx);
        true
    }
}

/// Whether `bin` can share probes among its processes. Their reads are right in every
/// process, PIE or not (the kernel adds each one's load bias). What user space decodes
/// from run-time addresses needs the process's bias from /proc, which a process that
/// ended before its first event was read no longer has: that is only the caller
/// inference of Go 1.19–1.20's `--every-stop` (`systemstack`'s range), kept per process
/// for PIE binaries.
pub(super) fn shareable(bin: &GoBinary, plan: &ProbePlan) -> bool {
    !bin.is_pie() || plan.systemstack.is_none()
}

/// `path`'s identity, for matching processes to a group.
pub(super) fn identity(path: &Path) -> Option<(u64, u64)> {
    target::file_identity(path).ok()
}
