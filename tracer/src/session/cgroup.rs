//! The CPU limit the target's cgroup puts on it: the CFS quota of its cgroup and of every
//! ancestor, the smallest quota/period — `cpu.max` on cgroup v2, `cpu.cfs_quota_us` /
//! `cpu.cfs_period_us` on v1 (hybrid hosts still bind the cpu controller to v1). What
//! `gomaxprocs-over-cpu-limit` compares GOMAXPROCS with (Go 1.25+ derives GOMAXPROCS
//! from the same files, v1 and v2). procfs parses `/proc/PID/cgroup` and our mountinfo;
//! the quota files are cgroupfs, not /proc, which procfs does not read: parsed here.

use std::path::{Path, PathBuf};

use procfs::process::MountInfos;
use procfs::FromRead;

use super::target;

/// CPUs the target may use, or None when no cgroup on its path sets a limit (or the
/// files cannot be read: no /sys/fs/cgroup in this mount namespace).
pub fn cpu_limit_cores(pid: u32) -> Option<f64> {
    let cgroups = target::cgroups(pid)?;
    // cgroup v2: hierarchy 0, no controllers.
    let v2 = cgroups
        .0
        .iter()
        .find(|g| g.hierarchy == 0 && g.controllers.is_empty())
        .and_then(|g| limit_under(Path::new("/sys/fs/cgroup"), g.pathname.trim(), read_cpu_max));
    v2.or_else(|| {
        // cgroup v1: "N:cpu,cpuacct:/path", under the mount of the cpu controller.
        let v1 = cgroups
            .0
            .iter()
            .find(|g| g.controllers.iter().any(|c| c == "cpu"))?;
        let mounts = MountInfos::from_file("/proc/self/mountinfo").ok()?;
        let (mount_root, mount_point) = v1_cpu_mount(&mounts)?;
        let rel = v1.pathname.trim();
        // A mount of a sub-tree (a container's view) shows paths below its root.
        let rel = rel.strip_prefix(mount_root.as_str()).unwrap_or(rel);
        limit_under(&mount_point, rel, read_cfs_quota)
    })
}

/// The (root, mount point) of the cgroup v1 hierarchy that has the cpu controller.
fn v1_cpu_mount(mounts: &MountInfos) -> Option<(String, PathBuf)> {
    mounts
        .into_iter()
        .find(|m| m.fs_type == "cgroup" && m.super_options.contains_key("cpu"))
        .map(|m| {
            (
                m.root.trim_end_matches('/').to_owned(),
                m.mount_point.clone(),
            )
        })
}

/// The smallest limit `read` finds in `rel` (a cgroup path) under `root` and its ancestors.
fn limit_under(root: &Path, rel: &str, read: fn(&Path) -> Option<f64>) -> Option<f64> {
    let mut dir: PathBuf = root.join(rel.trim_start_matches('/'));
    let mut best: Option<f64> = None;
    while dir.starts_with(root) {
        if let Some(cores) = read(&dir) {
            best = Some(best.map_or(cores, |b| b.min(cores)));
        }
        if !dir.pop() || dir == root.parent().unwrap_or(root) {
            break;
        }
    }
    best
}

fn read_cpu_max(dir: &Path) -> Option<f64> {
    parse_cpu_max(&std::fs::read_to_string(dir.join("cpu.max")).ok()?)
}

/// v1: quota -1 is no limit.
fn read_cfs_quota(dir: &Path) -> Option<f64> {
    let num = |f: &str| -> Option<f64> {
        std::fs::read_to_string(dir.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let (quota, period) = (num("cpu.cfs_quota_us")?, num("cpu.cfs_period_us")?);
    (period > 0.0 && quota > 0.0).then(|| quota / period)
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
        assert_eq!(limit_under(&root, "/a/b", read_cpu_max), Some(0.5));
        std::fs::write(leaf.join("cpu.max"), "25000 100000\n").unwrap();
        assert_eq!(limit_under(&root, "/a/b", read_cpu_max), Some(0.25));
        assert_eq!(limit_under(&root, "/nothing", read_cpu_max), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn cgroup_v1_quota_and_mount() {
        let root = std::env::temp_dir().join(format!("gctrace-cg1-{}", std::process::id()));
        let leaf = root.join("a");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(root.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        std::fs::write(root.join("cpu.cfs_period_us"), "100000\n").unwrap();
        std::fs::write(leaf.join("cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(leaf.join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(limit_under(&root, "/a", read_cfs_quota), Some(1.5));
        assert_eq!(limit_under(&root, "/", read_cfs_quota), None);
        std::fs::remove_dir_all(&root).unwrap();
        let mi = "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  32 25 0:28 / /sys/fs/cgroup/cpuset rw shared:9 - cgroup cgroup rw,cpuset\n\
                  31 25 0:27 /kube /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct\n";
        let mounts = MountInfos::from_read(mi.as_bytes()).unwrap();
        assert_eq!(
            v1_cpu_mount(&mounts),
            Some(("/kube".to_owned(), "/sys/fs/cgroup/cpu,cpuacct".into()))
        );
        // cgroup v2 only: no v1 cpu hierarchy.
        let v2 = "29 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            v1_cpu_mount(&MountInfos::from_read(v2.as_bytes()).unwrap()),
            None
        );
        // This process's own mounts parse, whatever the host.
        assert!(MountInfos::from_file("/proc/self/mountinfo").is_ok());
    }
}
