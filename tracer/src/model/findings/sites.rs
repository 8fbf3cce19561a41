//! The code-level rules: which allocation sites allocate the ways the playbook names,
//! told by the runtime function the user's code called ([`SiteStat::via`]).

use super::window::Window;
use super::{Thresholds, Verdict};
use crate::decode::events::{Frame, SiteStat};
use crate::model::records::{FindingId, Severity};

/// Sites named per finding, heaviest first.
const MAX_SITES: usize = 3;
/// Below this allocation rate (bytes/s, over the run) no allocation cause is a finding.
const MIN_RATE: f64 = 1_048_576.0;

/// The allocation cause of a site, from the runtime function its code called.
pub fn cause(via: &str) -> Option<FindingId> {
    let f = via.rsplit('/').next().unwrap_or(via);
    if f.starts_with("runtime.concatstring") || f.starts_with("runtime.concatbyte") {
        Some(FindingId::AllocStringConcat)
    } else if f.starts_with("runtime.growslice") {
        Some(FindingId::AllocSliceGrowth)
    } else if f.starts_with("runtime.convT") {
        Some(FindingId::AllocInterfaceBoxing)
    } else if f.contains("mapassign") || f.contains("hashGrow") || f.starts_with("maps.") {
        // Insertions that allocate: new buckets or groups, tables grown or split. Not
        // makemap: a map made with a size hint is the remedy, not the cause.
        Some(FindingId::AllocMapGrowth)
    } else {
        None
    }
}

/// The user's own frame of a stack: the first outside the standard library (whose
/// import paths have no dot in their first element), else the innermost.
pub fn user_frame(frames: &[Frame]) -> Option<&Frame> {
    let is_user = |f: &&Frame| {
        let pkg_end = f.function.rfind('/').map_or(0, |i| i + 1);
        let path = match f.function[pkg_end..].find('.') {
            Some(dot) => &f.function[..pkg_end + dot],
            None => f.function.as_str(),
        };
        let first = path.split('/').next().unwrap_or(path);
        path == "main" || first.contains('.')
    };
    frames.iter().find(is_user).or(frames.first())
}

/// Verdicts for the allocation causes over the sites seen so far (cumulative, as the
/// model's snapshots are), with `total_bytes` allocated over the same time.
pub fn judge(
    sites: &[SiteStat],
    total_bytes: u64,
    t: &Thresholds,
    w: &Window,
    ts: u64,
) -> Vec<Verdict> {
    let elapsed_s = w
        .first_ns
        .map_or(0.0, |f| ts.saturating_sub(f) as f64 / 1e9);
    if total_bytes == 0 || elapsed_s <= 0.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for id in &FindingId::ALL[7..] {
        let mut mine: Vec<&SiteStat> = sites
            .iter()
            .filter(|s| cause(&s.via) == Some(*id))
            .collect();
        let bytes: u64 = mine.iter().map(|s| s.counts.bytes).sum();
        let share = bytes as f64 / total_bytes as f64 * 100.0;
        let rate = bytes as f64 / elapsed_s;
        if share < t.alloc_share_percent || rate < MIN_RATE {
            continue;
        }
        mine.sort_by_key(|s| std::cmp::Reverse(s.counts.bytes));
        let mut frames: Vec<Frame> = Vec::new();
        for s in &mine {
            if let Some(f) = user_frame(&s.frames) {
                if !frames.contains(f) {
                    frames.push(f.clone());
                }
            }
            if frames.len() == MAX_SITES {
                break;
            }
        }
        let severity = if share >= 50.0 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let what = match id {
            FindingId::AllocStringConcat => "string concatenation",
            FindingId::AllocSliceGrowth => "slice growth by append",
            FindingId::AllocInterfaceBoxing => "values boxed in interfaces",
            _ => "map growth",
        };
        let at = frames
            .first()
            .map(|f| format!(" at {}:{} ({})", short(&f.file), f.line, f.function))
            .unwrap_or_default();
        out.push(Verdict {
            id: *id,
            severity,
            summary: format!(
                "{share:.0}% of allocated bytes ({:.1} MB/s) from {what}{at}",
                rate / 1e6
            ),
            evidence: vec![
                ("share_percent", (share * 10.0).round() / 10.0),
                ("bytes_per_s", rate.round()),
                ("sites", mine.len() as f64),
            ],
            sites: frames,
        });
    }
    out
}

/// A file's last two path elements.
fn short(file: &str) -> &str {
    let mut it = file.rmatch_indices('/');
    match (it.next(), it.next()) {
        (Some(_), Some((i, _))) => &file[i + 1..],
        _ => file,
    }
}
