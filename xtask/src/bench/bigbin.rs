//! A Go program of about 100 MB for the attach-latency series: the size of a large
//! production binary. Most of what the tracer's analysis walks grows with the number of
//! functions (symbol table, pclntab, DWARF), so the program is made of many generated
//! functions, every one reachable (the linker drops unreachable code); embedded data
//! makes up the rest of the size (read with the file, walked by nothing). Generating and
//! building it takes a minute or two, so it is cached under `<target>/bench/bigbin` and
//! rebuilt only when its parameters, the generator or the Go version change.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::env::{self, GoToolchain};

/// Bump when the generated source changes, so cached builds are redone.
const GENERATOR: u32 = 1;
/// Functions per generated package: packages compile in parallel, and a package of a
/// few thousand small functions compiles in seconds.
const FUNCTIONS_PER_PACKAGE: u64 = 2500;

/// The built program and what it is made of.
pub struct BigBinary {
    pub path: PathBuf,
    pub bytes: u64,
    /// Text symbols in the binary (`go tool nm`, `T`/`t`): the generated ones and the
    /// runtime's and standard library's.
    pub functions: u64,
    pub generated_functions: u64,
    /// Bytes of embedded data added to reach the size.
    pub embedded_bytes: u64,
    pub sections: Sections,
}

/// Sizes of the ELF sections that matter to the analysis, in bytes as stored in the
/// file (DWARF is compressed by the Go linker).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sections {
    pub text: u64,
    pub gopclntab: u64,
    pub symtab: u64,
    pub dwarf: u64,
}

/// The cached big binary for `go`, generated and built first when missing or stale.
pub fn big_binary(
    go: &GoToolchain,
    bench_dir: &Path,
    target_mb: u64,
    functions: u64,
) -> Result<BigBinary> {
    let root = bench_dir.join("bigbin");
    let bin = root.join("bigbin");
    let stamp = root.join("stamp.json");
    let key = format!(
        "generator {GENERATOR}, Go {}, {functions} functions, {target_mb} MB",
        go.version
    );
    if let Ok(text) = fs::read_to_string(&stamp) {
        if bin.is_file() && super::json_str(&text, "key").as_deref() == Some(key.as_str()) {
            return describe(&bin, &text, functions);
        }
    }
    println!("bench: generating and building a {target_mb} MB Go program with {functions} generated functions (once; cached in {})", root.display());
    let src = root.join("src");
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    generate(&src, functions)?;
    let blob = src.join("blob.bin");
    write_blob(&blob, 1)?;
    let tmp = root.join("bigbin.tmp");
    build(go, &src, &tmp)?;
    let unpadded = fs::metadata(&tmp)
        .with_context(|| format!("reading {}", tmp.display()))?
        .len();
    let target = target_mb * 1_000_000;
    let mut embedded = 1;
    if unpadded < target {
        embedded = target - unpadded;
        write_blob(&blob, embedded)?;
        build(go, &src, &tmp)?;
    }
    fs::rename(&tmp, &bin).with_context(|| format!("renaming to {}", bin.display()))?;
    let text_symbols = count_functions(go, &bin)?;
    let text = format!(
        "{{\"key\":\"{key}\",\"functions\":{text_symbols},\"embedded_bytes\":{embedded}}}\n"
    );
    fs::write(&stamp, &text).with_context(|| format!("writing {}", stamp.display()))?;
    describe(&bin, &text, functions)
}

fn describe(bin: &Path, stamp: &str, generated: u64) -> Result<BigBinary> {
    Ok(BigBinary {
        path: bin.to_path_buf(),
        bytes: fs::metadata(bin)
            .with_context(|| format!("reading {}", bin.display()))?
            .len(),
        functions: super::json_u64(stamp, "functions").unwrap_or(0),
        generated_functions: generated,
        embedded_bytes: super::json_u64(stamp, "embedded_bytes").unwrap_or(0),
        sections: sections(bin)
            .with_context(|| format!("reading ELF sections of {}", bin.display()))?,
    })
}

/// Writes the module: packages `p000`, `p001`, ... of [`FUNCTIONS_PER_PACKAGE`] small
/// functions each (a branch, arithmetic, a string constant of their own), listed in a
/// `Funcs` table that `main` calls through once, so the linker keeps every one; `main`
/// then allocates a little every millisecond until SIGTERM, like a service.
fn generate(src: &Path, functions: u64) -> Result<()> {
    let write = |path: PathBuf, text: &str| {
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(src.join("go.mod"), "module bigbin\n\ngo 1.19\n")?;
    let packages = functions.div_ceil(FUNCTIONS_PER_PACKAGE);
    let mut imports = String::new();
    let mut calls = String::new();
    for p in 0..packages {
        let name = format!("p{p:03}");
        let first = p * FUNCTIONS_PER_PACKAGE;
        let count = FUNCTIONS_PER_PACKAGE.min(functions - first);
        let dir = src.join(&name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut code =
            format!("// Code generated by cargo xtask bench. DO NOT EDIT.\n\npackage {name}\n");
        for f in 0..count {
            let _ = write!(
                code,
                "\n//go:noinline\nfunc F{f}(x int, s string) (int, string) {{\n\
                 \tif x%{m} == 0 {{\n\t\treturn x*{a} + len(s), s + \"{name}_{f}\"\n\t}}\n\
                 \treturn x ^ {b}, s\n}}\n",
                m = f % 5 + 2,
                a = f + 31,
                b = f * 7 + 1
            );
        }
        code.push_str("\n// Funcs keeps every function reachable.\nvar Funcs = []func(int, string) (int, string){");
        for f in 0..count {
            let _ = write!(code, "{}F{f}", if f == 0 { "" } else { ", " });
        }
        code.push_str("}\n");
        write(dir.join("f.go"), &code)?;
        let _ = writeln!(imports, "\t\"bigbin/{name}\"");
        let _ = writeln!(
            calls,
            "\tfor _, f := range {name}.Funcs {{\n\t\tv, _ := f(n, \"x\")\n\t\ttotal += v\n\t}}"
        );
    }
    let main = format!(
        "// Code generated by cargo xtask bench. DO NOT EDIT.\n\n\
         // Command bigbin is a large Go program for the attach-latency benchmark.\n\
         package main\n\nimport (\n\t_ \"embed\"\n\t\"fmt\"\n\t\"os\"\n\t\"os/signal\"\n\
         \t\"syscall\"\n\t\"time\"\n\n{imports})\n\n\
         //go:embed blob.bin\nvar blob []byte\n\nvar sink []byte\n\n\
         func main() {{\n\tn := len(os.Args)\n\ttotal := int(blob[len(blob)/2])\n{calls}\
         \tstop := make(chan os.Signal, 1)\n\tsignal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)\n\
         \tfmt.Println(\"bigbin ready\", total)\n\
         \ttick := time.NewTicker(time.Millisecond)\n\tfor {{\n\t\tselect {{\n\
         \t\tcase <-stop:\n\t\t\treturn\n\t\tcase <-tick.C:\n\t\t\tsink = make([]byte, 64<<10)\n\
         \t\t}}\n\t}}\n}}\n"
    );
    write(src.join("main.go"), &main)
}

/// `bytes` of deterministic, incompressible data.
fn write_blob(path: &Path, bytes: u64) -> Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = bytes;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let chunk = x.to_le_bytes();
        let n = left.min(8) as usize;
        w.write_all(&chunk[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn build(go: &GoToolchain, src: &Path, out: &Path) -> Result<()> {
    env::run(
        env::go_command(&go.go)
            .arg("build")
            .arg("-o")
            .arg(out)
            .arg(".")
            .current_dir(src),
    )
    .with_context(|| format!("building the big Go program with Go {}", go.version))
}

fn count_functions(go: &GoToolchain, bin: &Path) -> Result<u64> {
    let out = env::go_command(&go.go)
        .args(["tool", "nm"])
        .arg(bin)
        .output()
        .with_context(|| format!("running go tool nm {}", bin.display()))?;
    if !out.status.success() {
        bail!("go tool nm {} failed: {}", bin.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| matches!(l.split_whitespace().nth(1), Some("T" | "t")))
        .count() as u64)
}

/// Section sizes from the ELF64 little-endian section headers (read without loading the
/// file).
fn sections(bin: &Path) -> Result<Sections> {
    let mut f = fs::File::open(bin)?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        bail!("not a little-endian ELF64 file");
    }
    let u16_at = |b: &[u8], o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at =
        |b: &[u8], o: usize| u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]));
    let u64_at = |b: &[u8], o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&eh, 0x28),
        u16_at(&eh, 0x3A),
        u16_at(&eh, 0x3C),
        u16_at(&eh, 0x3E),
    );
    if shentsize < 64 || shnum == 0 || shstrndx >= shnum {
        bail!("unexpected section header table");
    }
    let mut table = vec![0u8; (shentsize * shnum) as usize];
    f.seek(SeekFrom::Start(shoff))?;
    f.read_exact(&mut table)?;
    let header = |i: u64| &table[(i * shentsize) as usize..((i + 1) * shentsize) as usize];
    let names_hdr = header(shstrndx);
    let mut names = vec![0u8; u64_at(names_hdr, 0x20) as usize];
    f.seek(SeekFrom::Start(u64_at(names_hdr, 0x18)))?;
    f.read_exact(&mut names)?;
    let mut s = Sections::default();
    for i in 0..shnum {
        let h = header(i);
        let start = u32_at(h, 0) as usize;
        let name = names
            .get(start..)
            .and_then(|rest| rest.split(|b| *b == 0).next())
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        // SHT_NOBITS (8) sections take no room in the file.
        let size = if u32_at(h, 4) == 8 {
            0
        } else {
            u64_at(h, 0x20)
        };
        match name.as_ref() {
            ".text" => s.text += size,
            ".gopclntab" => s.gopclntab += size,
            ".symtab" | ".strtab" => s.symtab += size,
            n if n.starts_with(".debug_") || n.starts_with(".zdebug_") => s.dwarf += size,
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The section reader on a real ELF file: this test binary has code, a symbol table
    /// and (debug build) DWARF.
    #[test]
    fn sections_of_this_executable() -> Result<()> {
        let exe = std::env::current_exe()?;
        let s = sections(&exe)?;
        assert!(s.text > 0 && s.symtab > 0 && s.dwarf > 0, "{s:?}");
        assert_eq!(s.gopclntab, 0, "{s:?}");
        let file = fs::metadata(&exe)?.len();
        assert!(s.text + s.symtab + s.dwarf < file, "{s:?} in {file} bytes");
        assert!(sections(Path::new("/proc/self/status")).is_err());
        Ok(())
    }
}
