//! The findings the TUI was told of (by the rule engine, through the records): which
//! are active now, which ended. The TUI judges nothing itself.

use std::collections::BTreeMap;

use crate::model::records::{FindingId, FindingRecord, FindingState};

/// Ended findings kept for the Advice view.
const PAST: usize = 20;

#[derive(Clone, Debug, Default)]
pub struct Board {
    /// Active findings by id, with the trace time each started.
    pub active: BTreeMap<FindingId, FindingRecord>,
    /// Ended findings, newest last: (as started, end time).
    pub past: Vec<(FindingRecord, u64)>,
}

impl Board {
    pub fn record(&mut self, f: FindingRecord) {
        match f.state {
            FindingState::Start => {
                self.active.insert(f.id, f);
            }
            FindingState::End => {
                if let Some(started) = self.active.remove(&f.id) {
                    if self.past.len() == PAST {
                        self.past.remove(0);
                    }
                    self.past.push((started, f.ts_ns));
                }
            }
        }
    }

    /// One line per active finding, most severe first.
    pub fn alerts(&self) -> Vec<String> {
        let mut v: Vec<&FindingRecord> = self.active.values().collect();
        v.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
        v.iter()
            .map(|f| format!("{}: {}", f.id.as_str(), f.summary))
            .collect()
    }
}
