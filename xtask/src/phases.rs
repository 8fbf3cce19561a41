//! The phases of a long command (`cargo xtask test`), each timed, and the table of them
//! printed at the end, also when one fails: where the minutes of a CI run went is the
//! first question when it gets slow.

use std::time::{Duration, Instant};

use anyhow::Result;

/// How a phase ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    NotRun,
}

/// The phases of one run, in order, with how each ended so far.
pub struct Phases {
    command: &'static str,
    started: Instant,
    rows: Vec<(&'static str, Outcome)>,
}

impl Phases {
    /// All phases `command` will run, none run yet.
    pub fn new(command: &'static str, names: &[&'static str]) -> Self {
        Self {
            command,
            started: Instant::now(),
            rows: names.iter().map(|n| (*n, Outcome::NotRun)).collect(),
        }
    }

    /// Runs phase `name` and records its time; its error is returned for the caller to
    /// stop on.
    pub fn run(&mut self, name: &'static str, phase: impl FnOnce() -> Result<()>) -> Result<()> {
        println!("==> {}: {name}", self.command);
        let started = Instant::now();
        let result = phase();
        let took = started.elapsed();
        let outcome = match &result {
            Ok(()) => Outcome::Passed(took),
            Err(_) => Outcome::Failed(took),
        };
        match self.rows.iter_mut().find(|(n, _)| *n == name) {
            Some(row) => row.1 = outcome,
            None => self.rows.push((name, outcome)),
        }
        println!(
            "==> {}: {name} {} ({})",
            self.command,
            if result.is_ok() { "ok" } else { "FAILED" },
            minutes(took)
        );
        result
    }

    /// The table: one line per phase (wall time and outcome), then the total.
    pub fn table(&self) -> String {
        render(self.command, &self.rows, self.started.elapsed())
    }
}

fn render(command: &str, rows: &[(&str, Outcome)], total: Duration) -> String {
    let width = rows
        .iter()
        .map(|(n, _)| n.len())
        .chain(["total".len()])
        .max()
        .unwrap_or_default();
    let mut out = format!("{command}: phase times\n");
    for (name, outcome) in rows {
        let (time, verdict) = match outcome {
            Outcome::Passed(d) => (minutes(*d), "ok"),
            Outcome::Failed(d) => (minutes(*d), "FAILED"),
            Outcome::NotRun => ("-".to_owned(), "not run"),
        };
        out += &format!("  {name:<width$}  {time:>7}  {verdict}\n");
    }
    let verdict = if rows.iter().any(|(_, o)| matches!(o, Outcome::Failed(_))) {
        "FAILED"
    } else {
        "PASSED"
    };
    out += &format!("  {:<width$}  {:>7}  {verdict}", "total", minutes(total));
    out
}

/// `12m05s`.
pub fn minutes(d: Duration) -> String {
    let secs = d.as_secs();
    format!("{}m{:02}s", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_phase_its_outcome_and_the_total() {
        let s = Duration::from_secs;
        let rows = [
            ("setup", Outcome::Passed(s(12))),
            ("clippy", Outcome::Passed(s(125))),
            ("tests", Outcome::Failed(s(1203))),
            ("fuzz", Outcome::NotRun),
        ];
        assert_eq!(
            render("xtask test", &rows, s(1340)),
            "xtask test: phase times\n\
             \x20 setup     0m12s  ok\n\
             \x20 clippy    2m05s  ok\n\
             \x20 tests    20m03s  FAILED\n\
             \x20 fuzz          -  not run\n\
             \x20 total    22m20s  FAILED"
        );
        let passed = [("fmt", Outcome::Passed(s(1)))];
        assert!(render("xtask test", &passed, s(1)).ends_with("total    0m01s  PASSED"));
    }

    #[test]
    fn a_failed_phase_is_recorded_and_its_error_returned() {
        let mut phases = Phases::new("t", &["a", "b", "c"]);
        phases.run("a", || Ok(())).unwrap();
        assert!(phases.run("b", || anyhow::bail!("broken")).is_err());
        let table = phases.table();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["a", "0m00s", "ok"], "{table}");
        assert_eq!(rows[1], ["b", "0m00s", "FAILED"], "{table}");
        assert_eq!(rows[2], ["c", "-", "not", "run"], "{table}");
        assert_eq!(rows[3], ["total", "0m00s", "FAILED"], "{table}");
    }
}
