//! The arm64 guest: an initramfs (busybox, the aarch64 tracer, the arm64 workloads and
//! `init.sh`) booted under `qemu-system-aarch64 -M virt -cpu max` (software emulation),
//! and the artifacts it sends back over the serial console.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cpio::{Entry, Writer};

/// The guest's /init: runs every case and prints its artifacts (see the script).
const INIT: &str = include_str!("init.sh");

/// The whole guest run must end by then (the cases bound themselves well before).
const GUEST_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Busybox applets the guest uses are links created by `busybox --install` at boot.
pub struct Initramfs<'a> {
    pub busybox: &'a Path,
    pub tracer: &'a Path,
    /// (name in /w, file on the host)
    pub workloads: &'a [(String, PathBuf)],
}

impl Initramfs<'_> {
    /// Writes the archive to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let file =
            fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut cpio = Writer::new(std::io::BufWriter::new(file));
        for dir in ["bin", "dev", "proc", "sys", "tmp", "out", "w"] {
            cpio.add(dir, Entry::Dir)?;
        }
        cpio.add("dev/console", Entry::CharDev(5, 1))?;
        let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
        cpio.add("bin/busybox", Entry::File(&read(self.busybox)?, 0o755))?;
        cpio.add("bin/sh", Entry::Symlink("busybox"))?;
        cpio.add("bin/gctrace-bpf", Entry::File(&read(self.tracer)?, 0o755))?;
        for (name, host) in self.workloads {
            cpio.add(&format!("w/{name}"), Entry::File(&read(host)?, 0o755))?;
        }
        cpio.add("init", Entry::File(INIT.as_bytes(), 0o755))?;
        cpio.finish()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// What came back from the guest.
pub struct GuestRun {
    /// Files of the guest's /out, by relative path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// "@@GUEST ..." progress lines.
    pub notes: Vec<String>,
    /// Whether the guest said it was done (all files sent).
    pub completed: bool,
}

/// Boots the guest, echoing its progress lines, and collects its artifacts; the whole
/// console output goes to `serial_log`.
pub fn boot(kernel: &Path, initramfs: &Path, serial_log: &Path) -> Result<GuestRun> {
    let mut qemu = Command::new("qemu-system-aarch64");
    // Software emulation (no KVM here); pauth-impdef makes pointer authentication cheap
    // to emulate. No network: the default NIC would need a boot ROM qemu-system-arm lacks.
    qemu.args([
        "-M",
        "virt",
        "-cpu",
        "max,pauth-impdef=on",
        "-smp",
        "1",
        "-m",
        "2048",
    ])
    .args([
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "stdio",
    ])
    .args(["-nic", "none", "-kernel"])
    .arg(kernel)
    .arg("-initrd")
    .arg(initramfs)
    .args([
        "-append",
        "console=ttyAMA0 rdinit=/init loglevel=1 panic=-1",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    println!("$ {}", crate::env::describe(&qemu));
    let started = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-aarch64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut log = Vec::new();
    let mut timed_out = false;
    loop {
        let left = GUEST_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_secs(5))) {
            Ok(line) => {
                let text = String::from_utf8_lossy(&line);
                if let Some(note) = text.trim_end().strip_prefix("@@GUEST ") {
                    println!("arm64 guest [{:>4}s]: {note}", started.elapsed().as_secs());
                }
                log.extend_from_slice(&line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if timed_out {
        // The qemu we started, by its own handle.
        let _ = child.kill();
    }
    let status = child.wait().context("waiting for qemu")?;
    let _ = reader.join();
    // Anything left in the pipe after qemu exited.
    let mut rest = Vec::new();
    while let Ok(line) = rx.try_recv() {
        rest.extend_from_slice(&line);
    }
    log.extend_from_slice(&rest);
    fs::write(serial_log, &log).with_context(|| format!("writing {}", serial_log.display()))?;
    let run = parse_serial(&log)?;
    if !timed_out && !run.completed && !status.success() {
        bail!(
            "qemu-system-aarch64 failed: {status} (console: {})",
            serial_log.display()
        );
    }
    if timed_out {
        bail!(
            "the arm64 guest did not finish within {} s (console: {})",
            GUEST_TIMEOUT.as_secs(),
            serial_log.display()
        );
    }
    println!(
        "arm64 guest: ran {} s, sent {} files",
        started.elapsed().as_secs(),
        run.files.len()
    );
    Ok(run)
}

/// Splits the console output into the guest's files: each between `@@FILE path size`
/// and `@@END`, base64 lines in between (the serial line's `\r` dropped; a kernel message
/// that lands inside a block makes the file's size disagree, which is an error).
pub fn parse_serial(log: &[u8]) -> Result<GuestRun> {
    let mut files = BTreeMap::new();
    let mut notes = Vec::new();
    let mut completed = false;
    let mut current: Option<(String, usize, String)> = None;
    let mut text = String::new();
    BufReader::new(log)
        .read_to_string(&mut text)
        .or_else(|_| -> Result<usize> {
            text = String::from_utf8_lossy(log).into_owned();
            Ok(text.len())
        })?;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some((name, size, body)) = current.as_mut() {
            if line == "@@END" {
                let data = decode_base64(body)
                    .with_context(|| format!("guest file {name}: bad base64"))?;
                if data.len() != *size {
                    bail!(
                        "guest file {name}: {} bytes received, the guest said {size}",
                        data.len()
                    );
                }
                files.insert(std::mem::take(name), data);
                current = None;
            } else {
                body.push_str(line.trim());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@FILE ") {
            let (name, size) = rest
                .rsplit_once(' ')
                .with_context(|| format!("malformed guest line {line:?}"))?;
            let size: usize = size
                .parse()
                .with_context(|| format!("malformed guest line {line:?}"))?;
            current = Some((name.to_owned(), size, String::new()));
        } else if let Some(note) = line.strip_prefix("@@GUEST ") {
            if note == "done" {
                completed = true;
            }
            notes.push(note.to_owned());
        }
    }
    Ok(GuestRun {
        files,
        notes,
        completed,
    })
}

/// Standard base64 (busybox `base64`'s output), padding optional.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            other => bail!("unexpected byte {other:#04x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_of_known_vectors() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
        assert!(decode_base64("Zm9*").is_err());
    }

    #[test]
    fn serial_blocks_become_files() {
        let log = b"boot noise\r\n@@GUEST case a start 1\r\n@@FILE a/status 2\r\nMAo=\r\n@@END\r\n\
@@FILE b 6\r\nZm9v\r\nYmFy\r\n@@END\r\n@@GUEST done\r\n";
        let run = parse_serial(log).unwrap();
        assert!(run.completed);
        assert_eq!(run.files["a/status"], b"0\n");
        assert_eq!(run.files["b"], b"foobar");
        let bad = b"@@FILE a 3\r\nMAo=\r\n@@END\r\n";
        assert!(parse_serial(bad).is_err());
    }
}
