//! The CPU limit the target's cgroup (v2) puts on it: `cpu.max` of its cgroup and of
//! every ancestor, the smallest quota/period. What `gomaxprocs-over-cpu-limit` compares
//! GOMAXPROCS with (Go 1.25+ derives GOMAXPROCS from the same files).

use std::path::{Path, PathBuf};

/// CPUs the target may use, or None when no cgroup on its path sets a limit (or the
/// files cannot be read: cgroup v1, no /sys/fs/cgroup in this mount namespace).
pub fn cpu_limit_cores(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    // cgroup v2 only: "0::/path".
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    limit_under(Path::new("/sys/fs/cgroup"), rel.trim())
}

fn limit_under(root: &Path, rel: &str) -> Option<f64> {
    let mut dir: PathBuf = root.join(rel.trim_start_matches('/'));
    let mut best: Option<f64> = None;
    while dir.starts_with(root) {
        if let Ok(s) = std::fs::read_to_string(dir.join("cpu.max")) {
            if let Some(cores) = parse_cpu_max(&s) {
                best = Some(best.map_or(cores, |b| b.min(cores)));
            }
        }
        if !dir.pop() || dir == root.parent().unwrap_or(root) {
            break;
        }
    }
    best
}

/// `cpu.max` is "QUOTA PERIOD" or "max PERIOD".
fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    (period > 0.0 && quota > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_and_ancestors() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        let root = std::env::temp_dir().join(format!("gctrace-cg-{}", std::process::id()));
        let leaf = root.join("a/b");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(root.join("a/cpu.max"), "50000 100000\n").unwrap();
        std::fs::write(leaf.join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(limit_under(&root, "/a/b"), Some(0.5));
        std::fs::write(leaf.join("cpu.max"), "25000 100000\n").unwrap();
        assert_eq!(limit_under(&root, "/a/b"), Some(0.25));
        assert_eq!(limit_under(&root, "/nothing"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
