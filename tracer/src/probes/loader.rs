//! Loading the embedded kernel programs and attaching them to one process.
//!
//! Probes are attached to `/proc/PID/exe` (the binary as the target sees it, even inside
//! another mount namespace) with the kernel filtering on the target process. Dropping
//! [`Probes`] — or the tracer dying, even by SIGKILL — closes the perf-event links and the
//! kernel removes every breakpoint: the target is left as it was.

use std::{num::NonZeroU32, path::Path};

use aya::{
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeScope},
        UProbe,
    },
    Ebpf, EbpfLoader,
};
use tracer_common::{counter, Config, ProbeKind, CONFIG_MAP, COUNTERS_MAP, EVENTS_MAP, MAX_READS};

use super::plan::ProbePlan;
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
    #[error("cannot load the eBPF programs: {0} (needs root, or CAP_BPF and CAP_PERFMON, and a kernel with BPF ring buffers, 5.8+)")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF object is missing {0}")]
    Missing(&'static str),
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot load program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("cannot attach uprobe to {function} at {address:#x}: {source}")]
    Attach {
        function: String,
        address: u64,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("invalid pid 0")]
    BadPid,
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
}

/// Loaded and attached probes. Detached on drop.
pub struct Probes {
    ebpf: Ebpf,
    attached: usize,
}

impl Probes {
    /// Load the programs, configure them for `pid`, and attach every site of `plan` to the
    /// executable at `exe` (normally `/proc/PID/exe`). `bias` is the process's load bias
    /// (0 unless PIE), added to the link-time addresses of the memory reads.
    pub fn attach(
        pid: u32,
        exe: &Path,
        plan: &ProbePlan,
        bias: u64,
    ) -> Result<Probes, AttachError> {
        let scope_pid = NonZeroU32::new(pid).ok_or(AttachError::BadPid)?;
        let mut ebpf = EbpfLoader::new()
            .load(BPF_OBJECT)
            .map_err(AttachError::Load)?;

        let mut config = Config {
            tgid: pid,
            _pad: 0,
            read_addrs: [0; MAX_READS],
            read_slots: [0; 8],
        };
        for (i, read) in plan.reads.iter().enumerate().take(MAX_READS) {
            config.read_addrs[i] = read.address.wrapping_add(bias);
            config.read_slots[read.field.read_at() as usize] |= 1 << i;
        }
        {
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
            })?;
        }

        let mut attached = 0;
        for kind in ProbeKind::PROBES {
            let sites: Vec<_> = plan.sites.iter().filter(|s| s.kind == kind).collect();
            if sites.is_empty() {
                continue;
            }
            let name = kind.program_name();
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or(AttachError::Missing(name))?
                .try_into()
                .map_err(|source| AttachError::Program { name, source })?;
            program
                .load()
                .map_err(|source| AttachError::Program { name, source })?;
            for site in sites {
                program
                    .attach(
                        UProbeAttachLocation::AbsoluteOffset(site.file_offset),
                        exe,
                        UProbeScope::OneProcess(scope_pid),
                    )
                    .map_err(|source| AttachError::Attach {
                        function: site.function.clone(),
                        address: site.address,
                        source,
                    })?;
                attached += 1;
            }
        }
        Ok(Probes { ebpf, attached })
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
        let map = self
            .ebpf
            .map(COUNTERS_MAP)
            .ok_or(AttachError::Missing(COUNTERS_MAP))?;
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|source| AttachError::Map {
                name: COUNTERS_MAP,
                source,
            })?;
        let sum = |index: u32| -> Result<u64, AttachError> {
            let values = array.get(&index, 0).map_err(|source| AttachError::Map {
                name: COUNTERS_MAP,
                source,
            })?;
            Ok(values.iter().copied().sum())
        };
        Ok(KernelCounters {
            lost: sum(counter::LOST)?,
            hits: sum(counter::HITS)?,
            foreign: sum(counter::FOREIGN)?,
        })
    }
}
