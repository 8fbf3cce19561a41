//! One traced process: its analysis and attachment ([`prepare`]), what its loop
//! ([`super::target_loop`]) shares with the run, and the sampler of its runtime counters.
//!
//! Each target has all of this to itself — probes, ring buffer, decoder, model,
//! pipeline, recording — so one process exiting or failing never touches another, and
//! the model never needs to know where its events came from.

use std::{
    os::fd::OwnedFd,
    sync::{mpsc, Arc},
    time::Duration,
};

use anyhow::{anyhow, Context, Result};
use tokio::sync::watch;
use tracer_common::{ProbeKind, RawEvent, HEAP_STATS_GENS};

use super::alloc_sampling::LiveAllocs;
use super::feed::Source;
use super::target;
use super::{Stop, TraceOptions};
use crate::clock::monotonic_ns;
use crate::model::records::Labels;
use crate::{
    binary::{process::load_bias, GoBinary},
    decode::events::{Settings, TraceEvent},
    decode::{DecodeSpec, Decoder},
    model::records::ProcessInfo,
    output::tui::AppEvent,
    output::{prometheus::Exporter, SharedSink},
    probes::{
        analyse, heap_stats::HeapStats, plan_allocs, AllocMode, ProbePlan, Probes, ReadField,
    },
    recording::Header,
};

/// How often the ring buffer is drained. Events are submitted without waking us (a
/// wakeup costs the traced thread more than the rest of the probe), so this bounds the
/// display latency; the kernel side forces a wakeup when the ring is half full.
pub(super) const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// How often user space reads the runtime's allocation counter itself (no probe: a read
/// of /proc/PID/mem costs the target nothing).
pub(super) const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Analysis and attachment, done before the target runs (launch mode).
pub(super) struct Prepared {
    /// What a recording of this run starts with.
    pub(super) header: Header,
    /// Its own probes, or its share of those of its binary.
    pub(super) source: Source,
    pub(super) decoder: Decoder,
    pub(super) process: ProcessInfo,
    pub(super) sampler: Sampler,
    /// Taken before the target ran (launch) or at attach: the allocation baseline.
    pub(super) first_sample: Option<RawEvent>,
    /// Allocation probes, unless `--allocs rate`.
    pub(super) allocs: Option<LiveAllocs>,
    /// Opened before attaching, so that a process that exits at any moment after it was
    /// found (a short-lived one) is still seen to exit, and gets its summary. None: it
    /// had exited already when its first event was read (shared probes only).
    pub(super) pidfd: Option<OwnedFd>,
}

/// The runtime variables user space samples itself: the allocation counter and the
/// settings (GOGC, GOMEMLIMIT, GOMAXPROCS; `runtimeInitTime` says whether the runtime
/// has set them yet).
const SAMPLED: [ReadField; 5] = [
    ReadField::TotalAlloc,
    ReadField::GcPercent,
    ReadField::MemoryLimit,
    ReadField::Gomaxprocs,
    ReadField::RuntimeInit,
];

/// Periodic reads of target memory by user space, shaped as raw events
/// ([`ProbeKind::UserSample`]) so they are decoded, modelled and recorded like the rest.
pub(super) struct Sampler {
    pub(super) pid: u32,
    /// (read slot index, run-time address) of the counters sampled.
    slots: Vec<(usize, u64)>,
    /// The runtime's object count: its slot, the run-time address of its first word,
    /// and where the words are (summed like the kernel does).
    heap_stats: Option<(usize, u64, HeapStats)>,
    /// The slots of the large objects' bytes and count, summed from the same words.
    large_slots: [Option<usize>; 2],
}

impl Sampler {
    pub(super) fn sample(&self) -> Option<RawEvent> {
        if self.slots.is_empty() {
            return None;
        }
        let mut raw = RawEvent {
            kind: ProbeKind::UserSample as u32,
            ktime_ns: monotonic_ns(),
            pid_tgid: u64::from(self.pid) << 32 | u64::from(self.pid),
            ..Default::default()
        };
        for &(i, addr) in &self.slots {
            if let Ok(b) = target::read_memory::<8>(self.pid, addr) {
                raw.reads[i] = u64::from_le_bytes(b);
                raw.read_ok |= 1u64 << i;
            }
        }
        if let Some((i, addr, h)) = self.heap_stats {
            if let Some(gens) = self.heap_words(addr, h) {
                raw.reads[i] = h.objects(&gens);
                raw.read_ok |= 1 << i;
                let (bytes, objects) = h.large(&gens);
                for (slot, v) in self.large_slots.iter().zip([bytes, objects]) {
                    if let Some(j) = slot.filter(|j| *j < raw.reads.len()) {
                        raw.reads[j] = v;
                        raw.read_ok |= 1 << j;
                    }
                }
            }
        }
        (raw.read_ok != 0).then_some(raw)
    }

    /// The counting words of the runtime's object count, read as the kernel reads them
    /// (every generation or nothing).
    fn heap_words(&self, addr: u64, h: HeapStats) -> Option<Vec<Vec<u64>>> {
        (0..HEAP_STATS_GENS as u64)
            .map(|g| {
                let at = addr.checked_add(g * u64::from(h.stride))?;
                let mut words = vec![0u64; h.words as usize];
                let bytes = target::read_memory_vec(self.pid, at, words.len() * 8).ok()?;
                for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
                    *w = u64::from_le_bytes(b.try_into().ok()?);
                }
                Some(words)
            })
            .collect::<Option<Vec<_>>>()
    }
}

/// Analyse the process's binary and attach to it. Blocking (reads the binary, loads the
/// kernel programs): done before the event loop, or on a blocking thread for processes
/// found later. What the binary lets us read only in part is added to `warnings`, for
/// the caller to say where it can be seen (stderr before the TUI starts, else the TUI).
pub(super) fn prepare(
    pid: u32,
    opts: &TraceOptions,
    warnings: &mut Vec<String>,
) -> Result<Prepared> {
    let exe = target::exe_link(pid);
    let exe_name = target::exe_display(pid);
    let who = format!("pid {pid} ({exe_name})");
    let pidfd =
        crate::sys::pidfd_open(pid).map_err(|e| anyhow!("{who}: cannot watch the process: {e}"))?;
    let (bin, plan) = analyse(&exe, &who, opts.stops)?;
    warnings.extend(plan.warnings.iter().cloned());
    let bias = load_bias(pid, &bin).with_context(|| who.clone())?;
    if opts.allocs == AllocMode::Sample && plan.heap_stats.is_none() {
        warnings.push(format!(
            "{who}: --allocs sample: unknown: {}",
            crate::probes::heap_stats::WITHOUT
        ));
    }
    let alloc_plan = match opts.allocs {
        AllocMode::Rate => None,
        _ => Some(plan_allocs(&bin).with_context(|| who.clone())?),
    };
    let mut probes = Probes::attach(
        crate::probes::Scope::Process(pid),
        &exe,
        &plan,
        bias,
        alloc_plan.as_ref().map(|p| (p, true)),
        opts.ring_kib.map(|k| k.saturating_mul(1024)),
    )?;
    let described = describe(pid, exe_name, &bin, &plan, bias, opts, &who, warnings);
    let allocs = match alloc_plan {
        None => None,
        Some(alloc_plan) => {
            let cost = if opts.allocs == AllocMode::Sample {
                {
                    let cost = probes.measure_hit_cost()?;
                    log::info!("allocation sampling: one probe hit costs {cost:?} here");
                    cost
                }
            } else {
                Duration::ZERO
            };
            let mut live = LiveAllocs::new(
                opts.allocs,
                alloc_plan,
                bin,
                pid,
                bias,
                opts.overhead_budget,
                cost,
            );
            live.start(&mut probes)?;
            Some(live)
        }
    };
    Ok(described.prepared(Source::Own(probes), allocs, Some(pidfd)))
}

/// What [`Prepared`] holds beyond the probes: how to decode, and what the records and the
/// recording say about the process.
pub(super) struct Described {
    header: Header,
    decode: DecodeSpec,
    process: ProcessInfo,
    sampler: Sampler,
    first_sample: Option<RawEvent>,
}

impl Described {
    pub(super) fn prepared(
        self,
        source: Source,
        allocs: Option<LiveAllocs>,
        pidfd: Option<OwnedFd>,
    ) -> Prepared {
        Prepared {
            header: self.header,
            source,
            decoder: Decoder::new(self.decode),
            process: self.process,
            sampler: self.sampler,
            first_sample: self.first_sample,
            allocs,
            pidfd,
        }
    }
}

/// The process as the records describe it, read now (a process that has exited already
/// gets what its binary says, the rest unknown).
#[allow(clippy::too_many_arguments)]
pub(super) fn describe(
    pid: u32,
    exe_name: String,
    bin: &GoBinary,
    plan: &ProbePlan,
    bias: u64,
    opts: &TraceOptions,
    who: &str,
    warnings: &mut Vec<String>,
) -> Described {
    let gomaxprocs_addr = plan
        .reads
        .iter()
        .find(|r| r.field == ReadField::Gomaxprocs)
        .map(|r| r.address.wrapping_add(bias));
    let sampler = Sampler {
        pid,
        slots: plan
            .reads
            .iter()
            .enumerate()
            .filter(|(_, r)| SAMPLED.contains(&r.field))
            .map(|(i, r)| (i, r.address.wrapping_add(bias)))
            .collect(),
        heap_stats: plan.heap_stats.and_then(|h| {
            let i = plan
                .reads
                .iter()
                .position(|r| r.field == ReadField::Mallocs)?;
            Some((i, plan.reads[i].address.wrapping_add(bias), h))
        }),
        large_slots: [ReadField::LargeAllocBytes, ReadField::LargeAllocObjects]
            .map(|f| plan.reads.iter().position(|r| r.field == f)),
    };
    let first_sample = sampler.sample();
    let decode = DecodeSpec::new(plan, bias);
    // The settings in force as the probes go on (unknown for a launched program whose
    // runtime has not started yet: the model reports them once read).
    let at_attach = match first_sample
        .as_ref()
        .and_then(|raw| Decoder::new(decode.clone()).decode(raw))
    {
        Some(TraceEvent::Sample { settings, .. }) => settings,
        _ => Settings::default(),
    };
    let process = ProcessInfo {
        pid,
        exe: exe_name,
        go_version: bin.go_version().raw.clone(),
        arch: bin.arch().as_str().to_string(),
        gomaxprocs: at_attach
            .gomaxprocs
            .or_else(|| target::gomaxprocs(pid, gomaxprocs_addr)),
        gogc: at_attach.gogc,
        memory_limit_bytes: at_attach.memory_limit,
        labels: Labels::of_process(pid),
    };
    if let Some(w) = process.labels.unknown_pod_warning() {
        warnings.push(format!("{who}: {w}"));
    }
    let header = Header {
        tracer_version: env!("CARGO_PKG_VERSION").to_string(),
        process: process.clone(),
        decode: decode.clone(),
        offsets_source: bin.offsets_source(),
        allocs: opts.allocs,
        start_unix_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        start_monotonic_ns: monotonic_ns(),
    };
    Described {
        header,
        decode,
        process,
        sampler,
        first_sample,
    }
}

/// Where what happens to a target is told: the TUI when it is on, else stderr. With one
/// target and the TUI, only the TUI's own banners speak (as before several targets
/// existed); with several, every pick-up, exit and failure is a notice.
#[derive(Clone)]
pub(super) struct Notices {
    pub(super) tui: Option<mpsc::Sender<AppEvent>>,
    pub(super) several: bool,
}

impl Notices {
    /// One line about the set of targets ("tracing pid 12 …", "pid 12 exited").
    pub(super) fn say(&self, msg: String) {
        match &self.tui {
            // The UI going away first (it only does while exiting) loses nothing.
            Some(tx) if self.several => {
                let _ = tx.send(AppEvent::Notice(msg));
            }
            Some(_) => {}
            None => eprintln!("gctrace-bpf: {msg}"),
        }
    }

    /// `msg` about `pid`, prefixed with the pid when several processes share stderr.
    pub(super) fn about(&self, pid: u32, msg: String) {
        if self.several {
            self.say(format!("pid {pid}: {msg}"));
        } else {
            self.say(msg);
        }
    }

    pub(super) fn to_tui(&self, ev: AppEvent) {
        if let Some(tx) = &self.tui {
            let _ = tx.send(ev);
        }
    }
}

/// Everything a target's loop shares with the rest of the run.
#[derive(Clone)]
pub(super) struct RunContext {
    pub(super) opts: Arc<TraceOptions>,
    pub(super) sink: SharedSink,
    pub(super) notices: Notices,
    /// Set once by the session when the run as a whole ends.
    pub(super) stop: watch::Receiver<Option<Stop>>,
    /// Prometheus metrics, if served (they get the records through `sink`; the kernel's
    /// live count of lost events is not a record).
    pub(super) exporter: Option<Exporter>,
    /// OTLP export, if asked for (same reason).
    pub(super) otlp: Option<crate::output::otlp::Exporter>,
}

/// How a target's trace ended.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) pid: u32,
    pub(super) stop: Stop,
    /// Events lost in total (the kernel's and the decoder's).
    pub(super) lost: u64,
}
