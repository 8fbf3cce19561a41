//! What the arm64 guest needs on the host, installed idempotently by `cargo xtask setup`
//! (and checked again by `cargo xtask test-arm64`): Debian's arm64 architecture, qemu,
//! the aarch64 cross linker and Rust std, and an arm64 kernel with BTF and a static
//! busybox, both unpacked under /var/cache/gctrace-bpf/arm64 (never installed on the host).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::env::{self, run};

/// Host packages: the emulator, the cross C toolchain (linker and static glibc) and
/// Debian's Rust std for aarch64 (rustup cannot download targets here).
pub const HOST_PACKAGES: &[&str] = &[
    "qemu-system-arm",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "libstd-rust-web-dev:arm64",
];

/// The kernel series the guest boots: 6.12 has BTF and `uprobe_multi` (6.6+). The meta
/// package names the current exact image, resolved once at download time.
pub const KERNEL_META: &str = "linux-image-6.12-arm64:arm64";
pub const BUSYBOX: &str = "busybox-static:arm64";

pub fn cache() -> PathBuf {
    Path::new(env::CACHE_ROOT).join("arm64")
}

/// The unpacked kernel package (`boot/vmlinuz-*`), once downloaded.
fn kernel_dir() -> PathBuf {
    cache().join("kernel")
}

fn busybox_dir() -> PathBuf {
    cache().join("busybox")
}

/// The arm64 kernel image, if set up.
pub fn kernel_image() -> Result<PathBuf> {
    let boot = kernel_dir().join("boot");
    let found = fs::read_dir(&boot)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        });
    found.with_context(|| {
        format!(
            "no arm64 kernel under {}; run `cargo xtask setup`",
            boot.display()
        )
    })
}

pub fn busybox() -> Result<PathBuf> {
    let bin = busybox_dir().join("bin").join("busybox");
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "no arm64 busybox at {}; run `cargo xtask setup`",
            bin.display()
        )
    }
}

/// Whether dpkg lists `arm64` as a foreign architecture.
fn arm64_enabled() -> Result<bool> {
    let out = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .stdin(Stdio::null())
        .output()
        .context("running dpkg --print-foreign-architectures")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|a| a == "arm64"))
}

/// Whether `package` (possibly `name:arch`) is installed, per dpkg.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}"])
        .arg(package)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ii"))
}

fn apt_update() -> Result<()> {
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null()))
}

/// Everything the arm64 tests need; a second run only checks (well under a second).
pub fn ensure() -> Result<()> {
    let mut updated = false;
    if !arm64_enabled()? {
        println!("adding the arm64 architecture to dpkg");
        run(Command::new("dpkg")
            .args(["--add-architecture", "arm64"])
            .stdin(Stdio::null()))?;
        apt_update()?;
        updated = true;
    }
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        println!(
            "ok: arm64 host packages installed ({})",
            HOST_PACKAGES.join(" ")
        );
    } else {
        if !updated {
            apt_update()?;
            updated = true;
        }
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()))?;
        if let Some(p) = missing.iter().find(|p| !installed(p)) {
            bail!("apt-get did not install {p}");
        }
    }
    if kernel_image().is_ok() {
        println!("ok: arm64 kernel in {}", kernel_dir().display());
    } else {
        if !updated {
            apt_update()?;
            updated = true;
        }
        let image = kernel_package()?;
        unpack(&image, &kernel_dir())?;
        kernel_image()?;
    }
    if busybox().is_ok() {
        println!("ok: arm64 busybox in {}", busybox_dir().display());
    } else {
        if !updated {
            apt_update()?;
        }
        unpack(BUSYBOX, &busybox_dir())?;
        busybox()?;
    }
    Ok(())
}

/// The exact kernel image package the meta package depends on today.
fn kernel_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", KERNEL_META])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running apt-cache depends {KERNEL_META}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_owned)
        .with_context(|| format!("apt-cache depends {KERNEL_META} names no kernel image: {text}"))
}

/// Downloads `package` (`apt-get download`) and unpacks it into `dest` without
/// installing it: a scratch directory renamed into place, so an interrupted run never
/// leaves a half-unpacked one.
fn unpack(package: &str, dest: &Path) -> Result<()> {
    println!("downloading {package} into {}", dest.display());
    let debs = cache().join("debs");
    if debs.exists() {
        fs::remove_dir_all(&debs).with_context(|| format!("removing {}", debs.display()))?;
    }
    fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    run(Command::new("apt-get")
        .args(["download", package])
        .current_dir(&debs)
        .stdin(Stdio::null()))?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let partial = dest.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .stdin(Stdio::null()))?;
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    fs::rename(&partial, dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    fs::remove_dir_all(&debs).ok();
    Ok(())
}
