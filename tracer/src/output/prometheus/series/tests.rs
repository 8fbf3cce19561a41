//! Series of ended processes go; cgroup labels are on every series of their process.

use std::time::{Duration, Instant};

use crate::binary::StwReason;
use crate::decode::events::Trigger;
use crate::model::records::Labels;
use crate::model::records::{GcCpu, GcRecord, ProcessInfo, Record, StwRecord, Summary};
use crate::output::prometheus::{Exposition, GcMetrics};

fn process(pid: u32, labels: Labels) -> Record {
    Record::Process(ProcessInfo {
        gomaxprocs: Some(2),
        gogc: Some(100),
        memory_limit_bytes: Some(i64::MAX),
        labels,
        ..ProcessInfo::new(pid, &format!("/srv/app{pid}"), "go1.25.5", "x86_64")
    })
}

/// Every kind of series a process can have.
fn life(m: &mut GcMetrics, pid: u32) {
    m.record(pid, &process(pid, Labels::default()));
    m.record(
        pid,
        &Record::Gc(GcRecord {
            cycle: 3,
            trigger: Some(Trigger::Forced),
            heap_live_bytes: Some(1),
            heap_goal_bytes: Some(2),
            gogc: Some(100),
            memory_limit_bytes: Some(1 << 40),
            cpu_percent: Some(1),
            cpu: Some(GcCpu::default()),
            ..GcRecord::default()
        }),
    );
    for reason in [StwReason::GcMarkTerm, StwReason::ReadMemStats] {
        m.record(
            pid,
            &Record::Stw(StwRecord {
                reason,
                start_ns: 1,
                duration_ns: 10,
                cycle: None,
            }),
        );
    }
    m.set_lost_events(pid, 1);
}

fn summary() -> Record {
    Record::Summary(Summary::default())
}

/// Sample lines of `pid`.
fn lines_of(text: &str, pid: u32) -> Vec<String> {
    let needle = format!("pid=\"{pid}\"");
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_ended_process_is_served_once_more_then_removed() {
    let mut m = GcMetrics::new();
    life(&mut m, 42);
    life(&mut m, 43);
    let before = m.scrape(Exposition::Text).expect("encodes");
    let n = lines_of(&before, 42).len();
    assert!(n > 40, "only {n} series of pid 42:\n{before}");
    assert_eq!(lines_of(&before, 43).len(), n);

    m.record(42, &summary());
    // The scrape right after the end still has the final values...
    let last = m.scrape(Exposition::Text).expect("encodes");
    assert_eq!(lines_of(&last, 42).len(), n, "{last}");
    // ...a late lost-events count does not bring anything back, and the next scrape has
    // none of its series; the other process is untouched.
    m.set_lost_events(42, 7);
    let after = m.scrape(Exposition::OpenMetrics).expect("encodes");
    assert_eq!(lines_of(&after, 42), Vec::<String>::new(), "{after}");
    assert_eq!(m.processes(), 1);
    let other = m.scrape(Exposition::Text).expect("encodes");
    assert_eq!(lines_of(&other, 43).len(), n);

    // The same pid again is a new process.
    life(&mut m, 42);
    let again = m.scrape(Exposition::Text).expect("encodes");
    assert_eq!(lines_of(&again, 42).len(), n);
}

#[test]
fn unscraped_ended_processes_go_after_the_linger() {
    let mut m = GcMetrics::new();
    life(&mut m, 42);
    m.record(42, &summary());
    assert_eq!(m.processes(), 1);
    m.expire(
        Instant::now() + super::LINGER + Duration::from_secs(1),
        false,
    );
    assert_eq!(m.processes(), 0);
    let text = m.encode(Exposition::Text).expect("encodes");
    assert_eq!(lines_of(&text, 42), Vec::<String>::new(), "{text}");
}

#[test]
fn cgroup_labels_are_on_every_series_of_the_process() {
    let mut m = GcMetrics::new();
    let labels = Labels::from_cgroup_path(
        "/kubepods.slice/kubepods-pod6e1d2c0a_7b5f_4c3e_9a8d_1f2e3d4c5b6a.slice/cri-containerd-3f8b2c6d1e0a9f87b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3.scope",
    );
    m.record(7, &process(7, labels));
    m.record(7, &Record::Gc(GcRecord::default()));
    let text = m.encode(Exposition::Text).expect("encodes");
    let lines = lines_of(&text, 7);
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.contains(r#"pod_uid="6e1d2c0a-7b5f-4c3e-9a8d-1f2e3d4c5b6a""#)
                && l.contains(r#"container_runtime="containerd""#)
                && l.contains(r#"container_id="3f8b2c6d1e0a"#)
                && !l.contains("pod_name="),
            "{l}"
        );
    }
}
