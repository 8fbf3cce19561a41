//! Names of the files a run writes, when it may trace several processes.

use std::path::{Path, PathBuf};

/// `path` for process `pid` when a run may trace several: the pid before the extension
/// (`incident.gct` → `incident.1234.gct`, `allocs.pb.gz` → `allocs.1234.pb.gz`, `trace`
/// → `trace.1234`), so the files of one run sort together and keep their type.
pub fn per_process_path(path: &Path, pid: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A leading dot names a hidden file, not an extension.
    let name = match name.char_indices().skip(1).find(|&(_, c)| c == '.') {
        Some((dot, _)) => format!("{}.{pid}{}", &name[..dot], &name[dot..]),
        None => format!("{name}.{pid}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_process_paths_put_the_pid_before_the_extension() {
        let p = |s: &str| per_process_path(Path::new(s), 42);
        assert_eq!(p("incident.gct"), PathBuf::from("incident.42.gct"));
        assert_eq!(
            p("/tmp/a/allocs.pb.gz"),
            PathBuf::from("/tmp/a/allocs.42.pb.gz")
        );
        assert_eq!(p("trace"), PathBuf::from("trace.42"));
        assert_eq!(p("dir/.hidden"), PathBuf::from("dir/.hidden.42"));
    }
}
