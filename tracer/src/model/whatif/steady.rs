//! The steady state at a setting: the pacer's goal and trigger ([`super::pacer`]) with
//! the measured allocation during the mark. Objects allocated while the GC marks are
//! allocated black, so the marked heap is the program's own live data plus that
//! allocation, and the goal depends on it: solved as a fixed point.

use super::pacer;
use super::Inputs;

/// One cycle of the steady state, bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cycle {
    pub marked: u64,
    pub goal: u64,
    pub trigger: u64,
    /// Heap allocated during the mark.
    pub mark_alloc: u64,
    /// The heap at mark termination: trigger + mark allocation.
    pub peak: u64,
    /// The GOGC goal, when GOGC sets one (`None`: off), and the limit's.
    pub gogc_goal: Option<u64>,
    pub limit_goal: Option<u64>,
}

/// Everything the solver needs, all known.
#[derive(Clone, Copy, Debug)]
pub struct Known {
    pub marked: u64,
    pub stacks: u64,
    pub globals: u64,
    pub mark_alloc: u64,
    /// What the mark would allocate with no assists cutting it: the measured mark
    /// allocation with the assist rule of [`solve`] undone at the measured distance.
    pub wanted_alloc: u64,
    pub runway: u64,
    pub non_heap: Option<u64>,
}

/// The assist rule: what is allocated during the mark when it would allocate `want`
/// and the trigger left `distance` to the goal.
fn cut(want: u64, distance: u64) -> u64 {
    if want <= distance || want == 0 {
        return want;
    }
    let over = (want - distance) as f64;
    distance + (over * distance as f64 / want as f64) as u64
}

/// The inverse of [`cut`]: from `got = d + (w − d)·d/w`, `w = d² / (2d − got)`; the rule
/// never gives 2d or more, so such a measurement is taken as it is.
fn uncut(got: u64, distance: u64) -> u64 {
    if got <= distance || 2 * distance <= got {
        return got;
    }
    let d = distance as f64;
    (d * d / (2.0 * d - got as f64)) as u64
}

impl Known {
    pub fn of(i: &Inputs) -> Option<Known> {
        Some(Known {
            marked: i.heap_live_bytes?,
            stacks: i.stacks_bytes?,
            globals: i.globals_bytes?,
            mark_alloc: i.mark_alloc_bytes?,
            wanted_alloc: uncut(i.mark_alloc_bytes?, i.trigger_distance_bytes?),
            runway: i.trigger_runway_bytes?,
            non_heap: i.non_heap_bytes,
        })
    }
}

/// The steady cycle at `gogc` (negative: off) and `limit`; `None` when no goal is set
/// (GOGC=off, no limit) or the limit needs the non-heap memory, unknown.
pub fn solve(k: &Known, gogc: i32, limit: Option<u64>, go_minor: Option<u32>) -> Option<Cycle> {
    if limit.is_some() && k.non_heap.is_none() {
        return None;
    }
    // The program's own live data: what stays marked without the mark's allocation.
    let base = k.marked.saturating_sub(k.mark_alloc);
    let want = k.wanted_alloc;
    let mut alloc = k.mark_alloc;
    let mut cycle = None;
    for _ in 0..64 {
        let marked = base + alloc;
        let gg = pacer::gogc_goal(gogc, marked, k.stacks, k.globals);
        let lg = limit
            .zip(k.non_heap)
            .map(|(l, n)| pacer::limit_goal(l, n, marked, go_minor));
        let goal = pacer::heap_goal(gg, lg)?;
        let trigger = pacer::trigger(goal, marked, k.runway);
        // Assists: when the mark would allocate past the goal they take over marking
        // and cut what is allocated beyond it, in the share the workers could not
        // cover by the goal (an approximation of the assist ratio's control; see
        // docs/what-if.md).
        let next = cut(want, goal - trigger);
        let c = Cycle {
            marked,
            goal,
            trigger,
            mark_alloc: next,
            peak: trigger + next,
            gogc_goal: gg,
            limit_goal: lg,
        };
        let done = next.abs_diff(alloc) <= 1;
        alloc = next;
        cycle = Some(c);
        if done {
            break;
        }
    }
    cycle
}

/// The share of the mark work assists must take at this cycle: what the workers, at
/// the speed that allocates `mark_alloc` while they mark, do not finish before the
/// heap reaches the goal.
pub fn assist_share(c: &Cycle, wanted_alloc: u64) -> f64 {
    if wanted_alloc == 0 {
        return 0.0;
    }
    (1.0 - (c.goal - c.trigger) as f64 / wanted_alloc as f64).max(0.0)
}
