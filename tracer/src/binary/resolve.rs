//! Allocation-profile symbolization on [`GoBinary`]: type names of `mallocgc`'s `typ`
//! argument and source positions of stack PCs. Kept out of `mod.rs` (only a field and
//! the module lines live there) so the binary analysis and this grow independently.

use std::collections::HashMap;
use std::sync::Mutex;

use super::image::elf::ElfInfo;
use super::image::lines::{self, Frame};
use super::image::moduledata::{Memory, ModuleData};
use super::image::types;
use super::GoBinary;

/// Results cached at most this many per kind: PCs come from untrusted stacks, so an
/// unbounded cache could grow with garbage; real programs stay far below it.
const CACHE_LIMIT: usize = 1 << 18;

/// The moduledata of the program plus caches; built on first use.
pub(crate) struct Resolver {
    mem: Memory,
    md: ModuleData,
    type_names: Mutex<HashMap<u64, Option<String>>>,
    frames: Mutex<HashMap<u64, Option<Vec<Frame>>>>,
}

impl Resolver {
    fn build(bin: &GoBinary) -> Result<Resolver, String> {
        let info = ElfInfo::parse(&bin.data, &bin.path).map_err(|e| e.to_string())?;
        let mem = Memory::new(&bin.data, &info);
        let md = ModuleData::find(
            &bin.data,
            &info,
            &mem,
            &bin.version,
            bin.data_symbol("runtime.firstmoduledata"),
        )?;
        Ok(Resolver {
            mem,
            md,
            type_names: Mutex::new(HashMap::new()),
            frames: Mutex::new(HashMap::new()),
        })
    }
}

/// Looks `key` up in `cache`, else computes and stores it (unless the cache is full).
fn cached<V: Clone>(cache: &Mutex<HashMap<u64, V>>, key: u64, compute: impl FnOnce() -> V) -> V {
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    if let Some(v) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned()
    {
        return v;
    }
    let v = compute();
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() < CACHE_LIMIT {
        map.insert(key, v.clone());
    }
    v
}

impl GoBinary {
    /// Name of the Go type whose descriptor (`*abi.Type`, e.g. `mallocgc`'s `typ`) is at
    /// link-time address `typ`, exactly as `reflect.TypeOf(v).String()` prints it:
    /// "*main.node", "[]uint8", "map[string]int", "main.Named"... `None` for addresses that
    /// are not type descriptors of this binary (nil, types created at run time by
    /// `reflect`) or when the runtime's module data cannot be found.
    ///
    /// Read from the binary's type data the way the runtime does: `Type.Str` is an offset
    /// from `moduledata.types`; see `moduledata.rs` for how that is found in stripped and
    /// PIE binaries. Results are cached, since it is called for every distinct type seen.
    /// For a PIE process subtract the load bias from the runtime pointer first.
    pub fn type_name(&self, typ: u64) -> Option<String> {
        let r = self.resolver()?;
        cached(&r.type_names, typ, || {
            types::type_name(&self.data, &r.mem, &r.md, typ)
        })
    }

    /// Function, file and line of the link-time `pc`, from `.gopclntab` (so it works on
    /// stripped binaries). If `pc` lies in code inlined into another function, this is the
    /// inlined function, as `runtime.FuncForPC(pc).Name()` and `runtime.CallersFrames`
    /// report it; [`GoBinary::symbolize_inline`] gives the whole logical stack.
    ///
    /// Return addresses from a stack walk point *after* the call instruction, possibly
    /// already at the next line or (for a call at the very end) the next function: pass
    /// `return_address - 1` for every frame except the innermost (the interrupted PC), as
    /// `runtime.CallersFrames` does.
    pub fn symbolize(&self, pc: u64) -> Option<Frame> {
        self.symbolize_inline(pc)?.into_iter().next()
    }

    /// All source-level frames at `pc`, innermost first: the functions inlined at `pc`
    /// (deepest first) and, last, the physical function containing it. Same `pc - 1` rule
    /// as [`GoBinary::symbolize`]. Each inlined frame's line is the call site in the next
    /// frame's function.
    pub fn symbolize_inline(&self, pc: u64) -> Option<Vec<Frame>> {
        let r = self.resolver()?;
        cached(&r.frames, pc, || {
            lines::frames(&self.data, &r.mem, &r.md, pc)
        })
    }

    fn resolver(&self) -> Option<&Resolver> {
        self.resolver
            .get_or_init(|| match Resolver::build(self) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!(
                        "{}: cannot read the Go runtime's type and line tables: {e}",
                        self.path.display()
                    );
                    None
                }
            })
            .as_ref()
    }
}
