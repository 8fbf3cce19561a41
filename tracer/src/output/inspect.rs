//! `gctrace-bpf inspect`: what the tracer would do to a binary, without attaching.
//!
//! Answers "will this work on my binary, and how well?" before anyone runs the tracer
//! against production: Go version, which runtime functions get probes and where (entry and
//! every return site), where the runtime's variables were found, and what will be missing.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::binary::GoBinary;
use crate::probes::plan::{self, plan};

/// Functions listed by `inspect`: everything the tracer may probe, including those not
/// attached by default (allocation entry points).
const FUNCTIONS: [&str; 8] = [
    "runtime.gcStart",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
    "runtime.mallocgc",
    // The default plan (probes/cycle_plan.rs): once per GC cycle, the time trigger, and
    // the non-GC stops' own paths.
    "runtime.mProf_Flush",
    "runtime.forcegchelper",
    "runtime.stopTheWorld.func1",
    "runtime.startTheWorld.func1",
];

#[derive(Debug, Serialize)]
pub struct Report {
    pub go_version: String,
    /// Where the version was read: "buildinfo" (`.go.buildinfo`) or
    /// "runtime.buildVersion" (the runtime's own string, when build info was removed).
    pub version_source: &'static str,
    /// The release is one this tracer was checked against (Go 1.19–1.27, not a
    /// development build); otherwise the warnings hold the verdict (`unreleased.rs`).
    pub known_release: bool,
    pub arch: &'static str,
    /// This tracer's kernel programs can probe it: its architecture is this machine's
    /// (an arm64 binary is still analysed on x86_64, with a warning).
    pub traceable_here: bool,
    pub pie: bool,
    pub stripped: bool,
    /// Where struct field offsets come from: "dwarf", "table", "code" or "none".
    pub offsets_source: &'static str,
    /// Every runtime struct field the tracer reads, with its offset and its source.
    pub fields: Vec<FieldReport>,
    pub probes: Vec<ProbeReport>,
    /// Runtime variables located (read by the probes), by name.
    pub runtime_variables: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FieldReport {
    /// "runtime.workType.cycles"
    pub field: String,
    /// `null` when unknown.
    pub offset: Option<u64>,
    /// "dwarf", "table", "code" (derived from the binary's code, verified) or "unknown".
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub symbol: String,
    pub address: String,
    pub ret_addresses: Vec<String>,
    /// Attached in the default mode.
    pub attached: bool,
}

fn hex(a: u64) -> String {
    format!("{a:#x}")
}

/// Analyse the binary at `path` (for a running process: `/proc/PID/exe`).
pub fn inspect(path: &Path) -> Result<Report> {
    let bin = GoBinary::open(path)?;
    let mut warnings = Vec::new();
    let traceable_here = match crate::probes::host_mismatch(&bin) {
        Some(why) => {
            warnings.push(format!("cannot be traced on this machine: {why}"));
            false
        }
        None => true,
    };
    let plan = match plan(&bin) {
        Ok(p) => Some(p),
        Err(e) => {
            warnings.push(format!("cannot trace: {}", crate::errors::chain(&e)));
            None
        }
    };
    let mut probes = Vec::new();
    for name in FUNCTIONS {
        let Some(f) = bin.function(name) else {
            warnings.push(format!("{name} not found"));
            continue;
        };
        let rets = match bin.return_sites(&f) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("{name}: {}", crate::errors::chain(&e)));
                Vec::new()
            }
        };
        let attached = plan
            .as_ref()
            .is_some_and(|p| p.sites.iter().any(|s| s.function == name));
        probes.push(ProbeReport {
            symbol: name.to_string(),
            address: hex(f.address),
            ret_addresses: rets.into_iter().map(hex).collect(),
            attached,
        });
    }
    let mut runtime_variables = Vec::new();
    if let Some(p) = &plan {
        warnings.extend(p.warnings.iter().cloned());
        runtime_variables = p.reads.iter().map(|r| format!("{:?}", r.field)).collect();
    }
    let offsets_source = bin.offsets_source().as_str();
    let fields = plan::fields_read(&bin)
        .into_iter()
        .map(|(ty, f)| FieldReport {
            field: format!("{ty}.{f}"),
            offset: bin.struct_field_offset(ty, f),
            source: bin.field_source(ty, f).as_str(),
        })
        .collect();
    Ok(Report {
        go_version: bin.go_version().raw.clone(),
        version_source: bin.version_source().as_str(),
        known_release: crate::probes::unreleased::is_known_release(bin.go_version()),
        arch: bin.arch().as_str(),
        traceable_here,
        pie: bin.is_pie(),
        stripped: bin.is_stripped(),
        offsets_source,
        fields,
        probes,
        runtime_variables,
        warnings,
    })
}

/// The human-readable form.
pub fn render_text(path: &Path, r: &Report) -> String {
    let mut s = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    s.push_str(&format!("{}\n", path.display()));
    s.push_str(&format!(
        "  Go {} on {}, PIE: {}, stripped: {}\n",
        r.go_version,
        r.arch,
        yes_no(r.pie),
        yes_no(r.stripped)
    ));
    if r.version_source != "buildinfo" {
        s.push_str(&format!(
            "  Go version from: {} (no .go.buildinfo; agrees with the function table's layout)\n",
            r.version_source
        ));
    }
    s.push_str(&format!(
        "  runtime struct offsets from: {}\n",
        match r.offsets_source {
            "dwarf" => "DWARF debug info",
            "table" => "built-in table for this Go version",
            "code" =>
                "derived from the binary's own code, verified per field (no DWARF, \
                       release not in the table)",
            _ =>
                "none verified (no DWARF, release not in the table, code matches no \
                  known layout): heap sizes, goal and cycle numbers unavailable",
        }
    ));
    s.push_str("  runtime struct fields read:\n");
    for f in &r.fields {
        s.push_str(&format!(
            "    {:<46} {:>6}  {}\n",
            f.field,
            f.offset.map_or_else(|| "?".to_string(), |o| o.to_string()),
            f.source
        ));
    }
    s.push_str("  probes:\n");
    for p in &r.probes {
        s.push_str(&format!(
            "    {:<34} {} entry {}, {} return site(s)\n",
            p.symbol,
            if p.attached {
                "[attached]"
            } else {
                "[not attached by default]"
            },
            p.address,
            p.ret_addresses.len()
        ));
    }
    s.push_str(&format!(
        "  runtime variables read: {}\n",
        if r.runtime_variables.is_empty() {
            "none".to_string()
        } else {
            r.runtime_variables.len().to_string()
        }
    ));
    if r.warnings.is_empty() {
        s.push_str("  verdict: everything gctrace-bpf shows is available for this binary\n");
    } else {
        let fatal = r.warnings.iter().any(|w| w.starts_with("cannot trace"));
        s.push_str(if fatal {
            "  verdict: cannot be traced\n"
        } else {
            "  verdict: traceable, with gaps:\n"
        });
        for w in &r.warnings {
            s.push_str(&format!("    - {w}\n"));
        }
    }
    s
}

/// `gctrace-bpf dump-layouts BINARY` (hidden; run by `cargo xtask gen-offsets`): the
/// DWARF layouts of every runtime struct the tracer reads fields of, as one JSON object
/// `{"go_version", "goarch", "layouts": {type: {size, fields}}}`. All direct members are
/// kept (locating struct globals in stripped binaries votes with them); wanted fields
/// given as dotted paths are added under their path. Fails without DWARF, so a table is
/// never generated from another table.
pub fn dump_layouts(path: &Path) -> Result<String> {
    use crate::binary::layouts::offsets_table::{goarch, Layouts};
    use crate::binary::{anchors::globals, OffsetsSource};
    use crate::probes::plan::read_struct_fields;

    let bin = GoBinary::open(path)?;
    if bin.offsets_source() != OffsetsSource::Dwarf {
        return Err(anyhow!(
            "{}: no DWARF describing the runtime; build it without -ldflags=-w",
            path.display()
        ));
    }
    let mut types: Vec<&str> = globals::STRUCT_GLOBALS.iter().map(|(_, t)| *t).collect();
    let wanted = read_struct_fields();
    for (ty, _) in &wanted {
        if !types.contains(ty) {
            types.push(ty);
        }
    }
    let mut layouts = Layouts::new();
    for ty in types {
        let Some(mut layout) = bin.struct_layout(ty) else {
            return Err(anyhow!("{}: DWARF has no struct {ty}", path.display()));
        };
        for (_, field) in wanted.iter().filter(|(t, f)| *t == ty && f.contains('.')) {
            if let Some(off) = bin.struct_field_offset(ty, field) {
                layout.fields.insert((*field).to_string(), off);
            }
        }
        layouts.insert(ty.to_string(), layout);
    }
    let out = serde_json::json!({
        "go_version": bin.go_version().raw,
        "goarch": goarch(bin.arch()),
        "layouts": layouts,
    });
    Ok(serde_json::to_string(&out)?)
}
