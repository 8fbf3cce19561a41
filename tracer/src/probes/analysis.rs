//! From a binary on disk to its probe plan, the one way every mode takes: open it, check
//! that this tracer can run its probes (the architecture), and decide the plan. The live
//! session (one process, `--exe`, `--all`) and `inspect` call it, so what `inspect` says
//! about a binary is what a run would do with it.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::loader::HOST_ARCH;
use super::plan::{plan_with, ProbePlan};
use super::scheme::StopsMode;
use crate::binary::GoBinary;

/// Why `bin` cannot be traced by this build of the tracer, if it cannot: the kernel
/// programs are built for one architecture, and Go's register ABI differs per
/// architecture, so a binary of another one can be analysed but not probed.
pub fn host_mismatch(bin: &GoBinary) -> Option<String> {
    (bin.arch() != HOST_ARCH).then(|| {
        format!(
            "built for {}; this tracer runs on {}",
            bin.arch().as_str(),
            HOST_ARCH.as_str()
        )
    })
}

/// The binary at `exe` analysed for tracing: a Go program of our architecture, and where
/// its probes go in `stops` mode. `who` names it in errors ("pid 12 (/usr/bin/x)", or a
/// path).
pub fn analyse(exe: &Path, who: &str, stops: StopsMode) -> Result<(GoBinary, ProbePlan)> {
    let bin = GoBinary::open(exe).with_context(|| who.to_string())?;
    if let Some(why) = host_mismatch(&bin) {
        return Err(anyhow!("{who} is {why}"));
    }
    let plan = plan_with(&bin, stops).with_context(|| who.to_string())?;
    Ok((bin, plan))
}
