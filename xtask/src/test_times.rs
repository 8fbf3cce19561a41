//! Where the tests phase spends its time. The test harness appends one line
//! `TEST_NAME<TAB>SECONDS` to the file named by `GCTRACE_TEST_TIMES_LOG` when a live test
//! ends (its time on the host, less its wait for the host); `cargo xtask test` prints the
//! slowest after the phase, so that the test to narrow when CI nears its budget is named
//! by the run itself.

use std::process::Command;

use anyhow::Result;

use crate::phase_log::PhaseLog;

/// The variable the test harness reads the log's path from.
const ENV: &str = "GCTRACE_TEST_TIMES_LOG";

/// How many of the slowest tests the report lists.
const SHOWN: usize = 15;

/// One phase's log of live-test times.
pub struct TimesLog(PhaseLog);

impl TimesLog {
    /// An empty log at `target/test-times/PHASE.log`, replacing an earlier run's.
    pub fn fresh(phase: &str) -> Result<Self> {
        PhaseLog::fresh("test-times", phase, ENV).map(Self)
    }

    /// Points `cmd`'s tests at this log.
    pub fn pass_to<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        self.0.pass_to(cmd)
    }

    /// Prints the slowest tests and the sum of all; a log that cannot be read is said,
    /// not fatal (the times inform, the tests judge).
    pub fn report(&self) {
        match self.0.read() {
            Ok(text) => print!("{}", summary(&parse(&text))),
            Err(e) => println!("test times: {e:#}"),
        }
    }
}

/// The log's lines as (test, seconds); a line that does not parse is left out.
fn parse(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let (test, secs) = line.split_once('\t')?;
            Some((test.trim().to_owned(), secs.trim().parse().ok()?))
        })
        .collect()
}

/// The slowest [`SHOWN`] tests, slowest first, and the total of every test logged.
fn summary(times: &[(String, f64)]) -> String {
    let mut sorted: Vec<&(String, f64)> = times.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = times.iter().map(|(_, s)| s).sum();
    let mut out = format!(
        "live test times: {} tests, {total:.0} s on the host in all; the slowest:\n",
        times.len()
    );
    for (test, secs) in sorted.into_iter().take(SHOWN) {
        out.push_str(&format!("  {secs:7.1} s  {test}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowest_first_with_the_total_of_all() {
        let times = parse("a\t1.5\nbroken line\nb\t10.0\nc\tnan?\n\nd\t0.5\n");
        assert_eq!(times.len(), 3);
        let text = summary(&times);
        assert!(text.starts_with("live test times: 3 tests, 12 s"), "{text}");
        let b = text.find("  b\n").expect("b listed");
        let a = text.find("  a\n").expect("a listed");
        assert!(b < a, "slowest first: {text}");
    }
}
