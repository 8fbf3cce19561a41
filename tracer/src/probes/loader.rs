//! Loading the embedded kernel programs and attaching them to one process, or to every
//! process of one binary ([`Scope::AllProcesses`], for `--exe` and `--all`: a uprobe is
//! on the file, so it fires in processes started later from their first instruction),
//! and the `sched_process_exec` tracepoint that tells of new processes ([`Probes::execs`]).
//!
//! Probes of one process are attached to `/proc/PID/exe` (the binary as the target sees
//! it, even inside another mount namespace) with the kernel filtering on the target. Dropping
//! [`Probes`] — or the tracer dying, even by SIGKILL — closes the perf-event links and the
//! kernel removes every breakpoint: the target is left as it was.

use std::{
    num::NonZeroU32,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
        TracePoint, UProbe,
    },
    Ebpf, EbpfLoader,
};
use tracer_common::{
    alloc_flags, config_flags, counter, AllocSiteKey, AllocSiteValue, AllocSizeKey, Config,
    ProbeKind, ALLOC_SITES_MAP, ALLOC_SIZES_MAP, CONFIG_MAP, COUNTERS_MAP, EVENTS_MAP,
    EVENTS_RING_BYTES, IGNORED_TGIDS_MAP, KIND_SLOTS, LOST_BY_TGID_MAP, MAX_READS,
};

use super::alloc_plan::AllocPlan;
use super::heap_stats::HeapStats;
use super::multi::{MultiError, MultiLink, MultiProgram};
use super::plan::ProbePlan;
use super::reads::{ReadField, ReadSlot};
use super::sites::ProbeSite;

/// Set (to anything) to attach the allocation probes one perf-event uprobe per site even
/// where the kernel has `uprobe_multi` links: for comparing the two in tests and benches.
pub const NO_UPROBE_MULTI_ENV: &str = "GCTRACE_NO_UPROBE_MULTI";
use crate::binary::Arch;

/// The kernel object for the architecture this tracer runs on (the traced program runs
/// on the same kernel, so it has the same architecture).
#[cfg(target_arch = "x86_64")]
static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf-x86_64.o"));
#[cfg(target_arch = "aarch64")]
static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf-aarch64.o"));

#[cfg(target_arch = "x86_64")]
pub const HOST_ARCH: Arch = Arch::X86_64;
#[cfg(target_arch = "aarch64")]
pub const HOST_ARCH: Arch = Arch::Aarch64;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot load the eBPF programs (needs root, or CAP_BPF and CAP_PERFMON, and a kernel with BPF ring buffers, 5.8+)")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF object is missing {0}")]
    Missing(&'static str),
    #[error("eBPF map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot load program {name}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("cannot attach uprobe to {function} at {address:#x}")]
    Attach {
        function: String,
        address: u64,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("cannot attach the allocation probes ({sites} sites)")]
    Multi {
        sites: usize,
        #[source]
        source: MultiError,
    },
    #[error("invalid pid 0")]
    BadPid,
}

/// A function of our own to put a probe on when measuring the cost of a hit.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn gctrace_bpf_calibration_point(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_add(1)
}

/// Counters kept by the kernel programs, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Events dropped because the ring buffer was full.
    pub lost: u64,
    /// Probe hits in the traced process.
    pub hits: u64,
    /// Probe hits in other processes running the same binary (ignored).
    pub foreign: u64,
    /// Allocations counted by the allocation probes.
    pub allocs: u64,
    /// Allocations not counted (aggregation map full), and their requested bytes.
    pub allocs_dropped: u64,
    pub alloc_bytes_dropped: u64,
    /// Allocation probe hits from mallocgc's own calls (counted at mallocgc).
    pub allocs_nested: u64,
}

impl KernelCounters {
    /// Every hit of the allocation probes in the target, counted or not.
    pub fn alloc_hits(&self) -> u64 {
        self.allocs + self.allocs_dropped + self.allocs_nested
    }
}

/// Which processes the probes fire in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This one (the kernel filters on its tgid).
    Process(u32),
    /// Every process that runs the binary, now or later; events are tagged by pid. The
    /// caller passes bias 0: the kernel adds each process's own load bias to the reads
    /// (`config_flags::BIAS_FROM_IP`), so PIE binaries share probes too.
    AllProcesses,
}

/// Loaded and attached probes. Detached on drop.
pub struct Probes {
    ebpf: Ebpf,
    attached: usize,
    /// None: every process ([`Scope::AllProcesses`]).
    pid: Option<NonZeroU32>,
    exe: PathBuf,
    /// Links of the allocation probes, so they can come and go (sampling): one
    /// `uprobe_multi` link where the kernel has them, else one perf-event link per site.
    alloc_links: Vec<UProbeLinkId>,
    alloc_multi: Option<MultiProgram>,
    /// The `uprobe_multi` link while attached, and how many sites it covers.
    alloc_multi_link: Option<(MultiLink, usize)>,
}

/// What the allocation maps hold, summed over CPUs; cumulative since attach.
#[derive(Debug, Default, Clone)]
pub struct AllocMaps {
    pub sizes: Vec<(AllocSizeKey, u64)>,
    pub sites: Vec<(AllocSiteKey, AllocSiteValue)>,
}

impl Probes {
    /// Load the programs, configure them for `pid`, and attach every site of `plan` to the
    /// executable at `exe` (normally `/proc/PID/exe`). `bias` is the process's load bias
    /// (0 unless PIE), added to the link-time addresses of the memory reads. `allocs`
    /// configures (but does not attach) the allocation probes.
    pub fn attach(
        scope: Scope,
        exe: &Path,
        plan: &ProbePlan,
        bias: u64,
        allocs: Option<(&AllocPlan, bool)>,
        ring_bytes: Option<u32>,
    ) -> Result<Probes, AttachError> {
        let (tgid, scope_pid) = match scope {
            Scope::Process(pid) => (pid, Some(NonZeroU32::new(pid).ok_or(AttachError::BadPid)?)),
            Scope::AllProcesses => (0, None),
        };
        let mut ebpf = load(ring_bytes)?;

        let mut config = Config {
            tgid,
            wake_bytes: ring_bytes.unwrap_or(EVENTS_RING_BYTES) / 2,
            read_addrs: [0; MAX_READS],
            // Every process: the addresses stay link-time, each process's bias is taken
            // in the kernel (0 for a non-PIE binary).
            flags: if scope == Scope::AllProcesses {
                config_flags::BIAS_FROM_IP
            } else {
                0
            },
            ..Default::default()
        };
        for (i, read) in plan.reads.iter().enumerate().take(MAX_READS) {
            config.read_addrs[i] = read.address.wrapping_add(bias);
            for kind in read.at {
                config.read_slots[*kind as usize % KIND_SLOTS] |= 1u64 << i;
            }
        }
        if let Some(off) = plan.frame_off {
            config.frame_off = off;
        }
        if let Some(addr) = plan.stw_ctx {
            config.stw_ctx_addr = addr.wrapping_add(bias);
        }
        if let Some((g_m, off)) = plan.preemptoff {
            config.g_m_off = g_m;
            config.preemptoff_off = off;
        }
        configure_heap_stats(&mut config, &plan.reads, plan.heap_stats, allocs.is_some());
        if let Some((alloc, sites)) = allocs {
            config.malloc_lo = alloc.mallocgc.0.wrapping_add(bias);
            config.malloc_hi = alloc.mallocgc.1.wrapping_add(bias);
            if sites {
                config.alloc_flags |= alloc_flags::SITES;
            }
        }
        set_config(&mut ebpf, config)?;

        let mut probes = Probes {
            ebpf,
            attached: 0,
            pid: scope_pid,
            exe: exe.to_path_buf(),
            alloc_links: Vec::new(),
            alloc_multi: None,
            alloc_multi_link: None,
        };
        if allocs.is_some() && std::env::var_os(NO_UPROBE_MULTI_ENV).is_none() {
            // Before any map is taken out of `ebpf`: the program shares them all.
            match MultiProgram::load(BPF_OBJECT, &probes.ebpf, ProbeKind::Alloc.program_name()) {
                Ok(program) => probes.alloc_multi = Some(program),
                Err(e) => {
                    log::info!(
                        "allocation probes: no uprobe_multi ({}); one uprobe per site",
                        crate::errors::chain(&e)
                    )
                }
            }
        }
        let mut programs: Vec<&'static str> = Vec::new();
        for site in &plan.sites {
            if !programs.contains(&site.program) {
                programs.push(site.program);
            }
        }
        for program in programs {
            let sites: Vec<&ProbeSite> =
                plan.sites.iter().filter(|s| s.program == program).collect();
            probes.attach_sites(program, &sites)?;
        }
        Ok(probes)
    }

    /// Load the programs and attach only the `sched_process_exec` tracepoint: its ring
    /// carries one [`ProbeKind::Exec`] event per exec on the host, each waking the reader
    /// at once ([`Probes::take_events`]).
    pub fn execs() -> Result<Probes, AttachError> {
        // One page of events per CPU is plenty: each wakes the reader.
        let mut ebpf = load(Some(64 * 1024))?;
        let name = ProbeKind::Exec.program_name();
        let program: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(AttachError::Missing(name))?
            .try_into()
            .map_err(|source| AttachError::Program { name, source })?;
        program
            .load()
            .map_err(|source| AttachError::Program { name, source })?;
        program
            .attach("sched", "sched_process_exec")
            .map_err(|source| AttachError::Program { name, source })?;
        Ok(Probes {
            ebpf,
            attached: 1,
            pid: None,
            exe: PathBuf::new(),
            alloc_links: Vec::new(),
            alloc_multi: None,
            alloc_multi_link: None,
        })
    }

    /// Shared probes: from now on, hits of process `tgid` cost no event (it is not
    /// traced: outside the cgroup, past the ceiling, or ended).
    pub fn ignore(&mut self, tgid: u32) -> Result<(), AttachError> {
        let map = self
            .ebpf
            .map_mut(IGNORED_TGIDS_MAP)
            .ok_or(AttachError::Missing(IGNORED_TGIDS_MAP))?;
        let mut ignored: HashMap<&mut MapData, u32, u8> =
            HashMap::try_from(map).map_err(|source| AttachError::Map {
                name: IGNORED_TGIDS_MAP,
                source,
            })?;
        ignored
            .insert(tgid, 1, 0)
            .map_err(|source| AttachError::Map {
                name: IGNORED_TGIDS_MAP,
                source,
            })
    }

    /// Shared probes: events of process `tgid` lost so far because the ring was full.
    pub fn lost_of(&self, tgid: u32) -> Result<u64, AttachError> {
        let map = self
            .ebpf
            .map(LOST_BY_TGID_MAP)
            .ok_or(AttachError::Missing(LOST_BY_TGID_MAP))?;
        let lost: HashMap<&MapData, u32, u64> =
            HashMap::try_from(map).map_err(|source| AttachError::Map {
                name: LOST_BY_TGID_MAP,
                source,
            })?;
        match lost.get(&tgid, 0) {
            Ok(n) => Ok(n),
            Err(aya::maps::MapError::KeyNotFound) => Ok(0),
            Err(source) => Err(AttachError::Map {
                name: LOST_BY_TGID_MAP,
                source,
            }),
        }
    }

    fn program(&mut self, name: &'static str) -> Result<&mut UProbe, AttachError> {
        let program: &mut UProbe = self
            .ebpf
            .program_mut(name)
            .ok_or(AttachError::Missing(name))?
            .try_into()
            .map_err(|source| AttachError::Program { name, source })?;
        if program.fd().is_err() {
            program
                .load()
                .map_err(|source| AttachError::Program { name, source })?;
        }
        Ok(program)
    }

    fn attach_sites(
        &mut self,
        program: &'static str,
        sites: &[&ProbeSite],
    ) -> Result<Vec<UProbeLinkId>, AttachError> {
        let (pid, exe) = (self.pid, self.exe.clone());
        let program = self.program(program)?;
        let mut links = Vec::with_capacity(sites.len());
        for site in sites {
            let scope = match pid {
                Some(pid) => UProbeScope::OneProcess(pid),
                None => UProbeScope::AllProcesses,
            };
            // The cookie is the site's link-time address: with every process in scope the
            // kernel takes each one's load bias from it (`config_flags::BIAS_FROM_IP`).
            let point = UProbeAttachPoint {
                location: UProbeAttachLocation::AbsoluteOffset(site.file_offset),
                cookie: Some(site.address),
            };
            let link =
                program
                    .attach(point, &exe, scope)
                    .map_err(|source| AttachError::Attach {
                        function: site.function.clone(),
                        address: site.address,
                        source,
                    })?;
            links.push(link);
        }
        self.attached += links.len();
        Ok(links)
    }

    /// Attach the allocation probes (every allocation entry point of `plan`).
    pub fn attach_allocs(&mut self, plan: &AllocPlan) -> Result<(), AttachError> {
        if !self.alloc_links.is_empty() || self.alloc_multi_link.is_some() {
            return Ok(());
        }
        if let Some(program) = &self.alloc_multi {
            let offsets: Vec<u64> = plan.sites.iter().map(|s| s.file_offset).collect();
            match program.attach(&self.exe, &offsets, self.pid.map_or(0, NonZeroU32::get)) {
                Ok(link) => {
                    self.alloc_multi_link = Some((link, offsets.len()));
                    self.attached += offsets.len();
                    return Ok(());
                }
                Err(e) if e.unsupported() => {
                    log::info!(
                        "allocation probes: no uprobe_multi ({}); one uprobe per site",
                        crate::errors::chain(&e)
                    );
                    self.alloc_multi = None;
                }
                Err(e) => {
                    return Err(AttachError::Multi {
                        sites: offsets.len(),
                        source: e,
                    })
                }
            }
        }
        let sites: Vec<&ProbeSite> = plan.sites.iter().collect();
        let links = self.attach_sites(ProbeKind::Alloc.program_name(), &sites)?;
        self.alloc_links = links;
        Ok(())
    }

    /// Remove the allocation probes; the other probes stay.
    ///
    /// Closing a link returns only after an RCU grace period (~100 ms here), so links are
    /// closed on threads of their own, off the event loop. A `uprobe_multi` link removes
    /// all its breakpoints before that wait; perf-event links remove theirs one after
    /// another, a grace period apart (see [`super::multi`]).
    pub fn detach_allocs(&mut self) {
        if let Some((link, sites)) = self.alloc_multi_link.take() {
            std::thread::spawn(move || drop(link));
            self.attached = self.attached.saturating_sub(sites);
        }
        let ids = std::mem::take(&mut self.alloc_links);
        let n = ids.len();
        if let Ok(program) = self.program(ProbeKind::Alloc.program_name()) {
            for id in ids {
                // A link already gone (target exited) is nothing to report.
                if let Ok(link) = program.take_link(id) {
                    std::thread::spawn(move || drop(link));
                }
            }
        }
        self.attached = self.attached.saturating_sub(n);
    }

    /// Measure what one uprobe hit costs on this machine: time calls of a function of
    /// our own with and without a probe on it (the probe's program sees a foreign process
    /// and returns at once, like a filtered hit). Used to keep sampled allocation tracing
    /// within its overhead budget.
    pub fn measure_hit_cost(&mut self) -> Result<Duration, AttachError> {
        const CALLS: u32 = 400;
        let time_calls = || {
            let t = Instant::now();
            let mut x = 0u64;
            for i in 0..CALLS {
                x = x.wrapping_add(gctrace_bpf_calibration_point(u64::from(i)));
            }
            std::hint::black_box(x);
            t.elapsed()
        };
        let bare = time_calls();
        let me = NonZeroU32::new(std::process::id()).ok_or(AttachError::BadPid)?;
        let program = self.program(ProbeKind::GcStart.program_name())?;
        let link = program
            .attach(
                "gctrace_bpf_calibration_point",
                "/proc/self/exe",
                UProbeScope::OneProcess(me),
            )
            .map_err(|source| AttachError::Attach {
                function: "gctrace_bpf_calibration_point".into(),
                address: 0,
                source,
            })?;
        let probed = time_calls();
        let _ = program.detach(link);
        Ok(probed.saturating_sub(bare) / CALLS)
    }

    /// Whether the allocation probes are attached now.
    pub fn allocs_attached(&self) -> bool {
        !self.alloc_links.is_empty() || self.alloc_multi_link.is_some()
    }

    /// The allocation maps, summed over CPUs.
    pub fn alloc_maps(&self) -> Result<AllocMaps, AttachError> {
        let map_err = |name: &'static str| move |source| AttachError::Map { name, source };
        let sizes_map = self
            .ebpf
            .map(ALLOC_SIZES_MAP)
            .ok_or(AttachError::Missing(ALLOC_SIZES_MAP))?;
        let sizes: PerCpuHashMap<&MapData, AllocSizeKey, u64> =
            PerCpuHashMap::try_from(sizes_map).map_err(map_err(ALLOC_SIZES_MAP))?;
        let mut out = AllocMaps::default();
        for item in sizes.iter() {
            let (k, v) = item.map_err(map_err(ALLOC_SIZES_MAP))?;
            out.sizes.push((k, v.iter().copied().sum()));
        }
        let sites_map = self
            .ebpf
            .map(ALLOC_SITES_MAP)
            .ok_or(AttachError::Missing(ALLOC_SITES_MAP))?;
        let sites: PerCpuHashMap<&MapData, AllocSiteKey, AllocSiteValue> =
            PerCpuHashMap::try_from(sites_map).map_err(map_err(ALLOC_SITES_MAP))?;
        for item in sites.iter() {
            let (k, v) = item.map_err(map_err(ALLOC_SITES_MAP))?;
            let sum = v
                .iter()
                .fold(AllocSiteValue::default(), |a, b| AllocSiteValue {
                    count: a.count + b.count,
                    bytes: a.bytes + b.bytes,
                    large_count: a.large_count + b.large_count,
                    large_bytes: a.large_bytes + b.large_bytes,
                });
            out.sites.push((k, sum));
        }
        Ok(out)
    }

    /// Remove every probe from the target now (dropping [`Probes`] does the same). Maps
    /// stay readable so the final drain and counters still work.
    pub fn detach(&mut self) {
        for kind in ProbeKind::PROBES {
            let program: Option<&mut UProbe> = self
                .ebpf
                .program_mut(kind.program_name())
                .and_then(|p| p.try_into().ok());
            if let Some(program) = program {
                // Unloading a program that was never loaded fails harmlessly.
                let _ = program.unload();
            }
        }
        self.alloc_multi_link = None;
        self.alloc_links.clear();
        self.attached = 0;
    }

    /// Number of uprobes attached.
    pub fn attached(&self) -> usize {
        self.attached
    }

    /// The ring buffer of raw events. Can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, AttachError> {
        let map = self
            .ebpf
            .take_map(EVENTS_MAP)
            .ok_or(AttachError::Missing(EVENTS_MAP))?;
        RingBuf::try_from(map).map_err(|source| AttachError::Map {
            name: EVENTS_MAP,
            source,
        })
    }

    /// Current kernel-side counters.
    pub fn counters(&self) -> Result<KernelCounters, AttachError> {
        let array = self.counter_array()?;
        let sum = |index: u32| counter_sum(&array, index);
        Ok(KernelCounters {
            lost: sum(counter::LOST)?,
            hits: sum(counter::HITS)?,
            foreign: sum(counter::FOREIGN)?,
            allocs: sum(counter::ALLOCS)?,
            allocs_dropped: sum(counter::ALLOCS_DROPPED)?,
            alloc_bytes_dropped: sum(counter::ALLOC_BYTES_DROPPED)?,
            allocs_nested: sum(counter::ALLOCS_NESTED)?,
        })
    }

    /// Events lost so far ([`KernelCounters::lost`] alone): read every drain, so one
    /// map lookup rather than all the counters.
    pub fn lost(&self) -> Result<u64, AttachError> {
        counter_sum(&self.counter_array()?, counter::LOST)
    }

    fn counter_array(&self) -> Result<PerCpuArray<&MapData, u64>, AttachError> {
        let map = self
            .ebpf
            .map(COUNTERS_MAP)
            .ok_or(AttachError::Missing(COUNTERS_MAP))?;
        PerCpuArray::try_from(map).map_err(|source| AttachError::Map {
            name: COUNTERS_MAP,
            source,
        })
    }
}

/// The embedded object, loaded (maps created, no program loaded yet).
fn load(ring_bytes: Option<u32>) -> Result<Ebpf, AttachError> {
    let mut loader = EbpfLoader::new();
    if let Some(bytes) = ring_bytes {
        loader.map_max_entries(EVENTS_MAP, bytes);
    }
    loader.load(BPF_OBJECT).map_err(AttachError::Load)
}

fn set_config(ebpf: &mut Ebpf, config: Config) -> Result<(), AttachError> {
    let map = ebpf
        .map_mut(CONFIG_MAP)
        .ok_or(AttachError::Missing(CONFIG_MAP))?;
    let mut array: Array<&mut MapData, Config> =
        Array::try_from(map).map_err(|source| AttachError::Map {
            name: CONFIG_MAP,
            source,
        })?;
    array.set(0, config, 0).map_err(|source| AttachError::Map {
        name: CONFIG_MAP,
        source,
    })
}

/// One kernel counter summed over CPUs.
fn counter_sum(array: &PerCpuArray<&MapData, u64>, index: u32) -> Result<u64, AttachError> {
    let values = array.get(&index, 0).map_err(|source| AttachError::Map {
        name: COUNTERS_MAP,
        source,
    })?;
    Ok(values.iter().copied().sum())
}

/// Sets up the kernel's sums: the object count's slot and the large objects' beside it.
/// The count is a sum of some 210 words, read only where the allocation probes use it
/// (`allocs`) and never as the single word its slot points at; the large objects' words
/// are read with it or not at all.
fn configure_heap_stats(
    config: &mut Config,
    reads: &[ReadSlot],
    layout: Option<HeapStats>,
    allocs: bool,
) {
    let Some(slot) = reads
        .iter()
        .position(|r| r.field == ReadField::Mallocs)
        .filter(|s| *s < MAX_READS)
    else {
        return;
    };
    let summed = |r: &ReadSlot| {
        matches!(
            r.field,
            ReadField::Mallocs | ReadField::LargeAllocBytes | ReadField::LargeAllocObjects
        )
    };
    match layout.filter(|_| allocs) {
        Some(h) => {
            config.heap_stats_slot = slot as u32;
            config.heap_stats_words = h.words;
            config.heap_stats_stride = h.stride;
            for (i, r) in reads.iter().enumerate().take(MAX_READS) {
                match r.field {
                    ReadField::LargeAllocBytes => config.heap_large_bytes_slot = i as u32,
                    ReadField::LargeAllocObjects => config.heap_large_objects_slot = i as u32,
                    _ => {}
                }
            }
        }
        None => {
            for (i, r) in reads.iter().enumerate().take(MAX_READS) {
                if summed(r) {
                    config.read_addrs[i] = 0;
                }
            }
        }
    }
}
