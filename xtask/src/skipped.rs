//! Tests that could not run. The test harness appends one line `TEST_NAME<TAB>REASON` to
//! the file named by `GCTRACE_SKIPPED_LOG` for each test it had to skip (a missing tool,
//! toolchain or kernel feature); `cargo xtask test` hands each test phase a fresh file and
//! fails the run when any line appears, so a green run means every test ran.

use std::process::Command;

use anyhow::{bail, Result};

use crate::phase_log::PhaseLog;

/// The variable the test harness reads the log's path from.
pub const ENV: &str = "GCTRACE_SKIPPED_LOG";

/// One phase's log of skipped tests.
pub struct SkippedLog(PhaseLog);

/// A test that could not run, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Skipped {
    pub test: String,
    pub reason: String,
}

impl SkippedLog {
    /// An empty log at `target/skipped-tests/PHASE.log`, replacing an earlier run's.
    pub fn fresh(phase: &str) -> Result<Self> {
        PhaseLog::fresh("skipped-tests", phase, ENV).map(Self)
    }

    /// Points `cmd`'s tests at this log.
    pub fn pass_to<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        self.0.pass_to(cmd)
    }

    /// Prints the tests the log names and fails if there are any.
    pub fn check(&self) -> Result<()> {
        let skipped = parse(&self.0.read()?);
        if skipped.is_empty() {
            println!("skipped tests: none");
            return Ok(());
        }
        println!("skipped tests ({}):", skipped.len());
        for s in &skipped {
            println!("  {}: {}", s.test, s.reason);
        }
        bail!(
            "{} test(s) could not run (listed above; {}): install what they need \
             (`cargo xtask setup`) and rerun",
            skipped.len(),
            self.0.path().display()
        )
    }
}

/// The log's lines: `TEST_NAME<TAB>REASON`; a line without a tab is a test with no reason
/// given; blank lines are ignored.
fn parse(text: &str) -> Vec<Skipped> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (test, reason) = line.split_once('\t').unwrap_or((line, "no reason given"));
            Skipped {
                test: test.trim().to_owned(),
                reason: reason.trim().to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_test_then_the_reason() {
        let text =
            "otlp::exports\tpython tools missing\n\nthird_party::nats\t  no nats-server \nbare\n";
        assert_eq!(
            parse(text),
            vec![
                Skipped {
                    test: "otlp::exports".into(),
                    reason: "python tools missing".into()
                },
                Skipped {
                    test: "third_party::nats".into(),
                    reason: "no nats-server".into()
                },
                Skipped {
                    test: "bare".into(),
                    reason: "no reason given".into()
                },
            ]
        );
    }

    #[test]
    fn an_empty_log_means_nothing_was_skipped() {
        assert!(parse("").is_empty());
        assert!(parse("\n  \n").is_empty());
    }
}
