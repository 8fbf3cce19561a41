//! The Go pacer's own equations (runtime/mgcpacer.go, Go 1.18+; read in 1.19, 1.21 and
//! 1.27): the heap goal GOGC sets, its 4 MiB minimum, and the goal a memory limit sets.
//! Pure arithmetic on the runtime's integer types, so a goal here is the goal the
//! runtime would compute from the same inputs.

/// `defaultHeapMinimum`: the smallest heap goal at GOGC=100, scaled by GOGC/100
/// (`heapMinimum = defaultHeapMinimum * GOGC / 100`). The HeapMinimum512KiB experiment,
/// off by default, is not modelled.
pub const DEFAULT_HEAP_MINIMUM: u64 = 4 << 20;

/// `memoryLimitMinHeapGoalHeadroom` (1.21+), and the whole fixed headroom before 1.21.
pub const LIMIT_MIN_HEADROOM: u64 = 1 << 20;

/// `memoryLimitHeapGoalHeadroomPercent` (1.21+).
pub const LIMIT_HEADROOM_PERCENT: u64 = 3;

/// The GC CPU limiter's cap: GC work past half the CPU is refused (assists are cut)
/// and the heap may exceed the memory limit instead (runtime/mgclimit.go).
pub const CPU_LIMIT_SHARE: f64 = 0.5;

/// `gcPercentHeapGoal` with the heap minimum applied: `heapMarked + (heapMarked +
/// lastStackScan + globalsScan) * GOGC / 100`, at least `4 MiB * GOGC / 100`. `None`
/// for GOGC=off (negative): no goal from GOGC.
pub fn gogc_goal(gogc: i32, marked: u64, stacks: u64, globals: u64) -> Option<u64> {
    let pct = u64::try_from(gogc).ok()?;
    let scan = marked.saturating_add(stacks).saturating_add(globals);
    let goal = marked.saturating_add(scan.saturating_mul(pct) / 100);
    Some(goal.max(DEFAULT_HEAP_MINIMUM.saturating_mul(pct) / 100))
}

/// The headroom the limit goal keeps below `limit − non-heap` (`goal` here).
fn headroom(goal: u64, go_minor: Option<u32>) -> u64 {
    match go_minor {
        Some(m) if m < 21 => LIMIT_MIN_HEADROOM,
        _ => (goal / 100 * LIMIT_HEADROOM_PERCENT).max(LIMIT_MIN_HEADROOM),
    }
}

/// `memoryLimitHeapGoal` in the steady state (mapped memory within the limit, so no
/// overage term): `limit − non-heap`, less its headroom, never below the marked heap.
pub fn limit_goal(limit: u64, non_heap: u64, marked: u64, go_minor: Option<u32>) -> u64 {
    if non_heap >= limit {
        return marked;
    }
    let goal = limit - non_heap;
    let room = headroom(goal, go_minor);
    let goal = if goal < room || goal - room < room {
        room
    } else {
        goal - room
    };
    goal.max(marked)
}

/// The non-heap memory a limit-bound goal implies: the inverse of [`limit_goal`].
/// `None` when the goal is not one the limit could have set.
pub fn non_heap_from_limit_goal(limit: u64, goal: u64, go_minor: Option<u32>) -> Option<u64> {
    let fixed = goal.saturating_add(LIMIT_MIN_HEADROOM);
    let before = if headroom(fixed, go_minor) == LIMIT_MIN_HEADROOM {
        fixed
    } else {
        // goal = g − g/100·3 for g a multiple of 100 (within 100 bytes otherwise).
        u64::try_from(u128::from(goal) * 100 / u128::from(100 - LIMIT_HEADROOM_PERCENT)).ok()?
    };
    limit.checked_sub(before)
}

/// The goal in force: the lower of GOGC's and the limit's, as `heapGoalInternal` takes.
/// `None` when neither sets one (GOGC=off and no limit).
pub fn heap_goal(gogc_goal: Option<u64>, limit_goal: Option<u64>) -> Option<u64> {
    match (gogc_goal, limit_goal) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The trigger bounds of `trigger()`: 45/64 and 61/64 of the way from the marked heap
/// to the goal (the upper one at least `goal − 4 MiB`), and the trigger the runway
/// sets between them.
pub fn trigger(goal: u64, marked: u64, runway: u64) -> u64 {
    if marked >= goal {
        return goal;
    }
    let step = (goal - marked) / 64;
    let lo = step * 45 + marked;
    let mut hi = step * 61 + marked;
    if goal > DEFAULT_HEAP_MINIMUM && goal - DEFAULT_HEAP_MINIMUM > hi {
        hi = goal - DEFAULT_HEAP_MINIMUM;
    }
    let hi = hi.max(lo);
    goal.saturating_sub(runway).clamp(lo, hi)
}
