//! Fleet features end to end, on real processes: cgroup labels of processes put by the
//! test into cgroups it made (a Kubernetes pod's container, as the kubelet's systemd
//! driver and containerd name it, and a systemd service), on the JSON `process` records
//! and on every Prometheus series; and the series of a process that ended leave the
//! scrape (served once more, then gone) while the other process's stay.
//! The oracle is what the test itself set up: the cgroup paths it created and the
//! containerd state it wrote (under GCTRACE_HOST_ROOT).
//! Needs root and a cgroup v2 hierarchy; skips unless GCTRACE_INTEGRATION=1.

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use harness::exporters::{agent, served_url, wait_for};
use harness::gcload_fixture::GcloadFixture;
use harness::target_procs::{assert_exits_ok, child_diag, stop};
use harness::ChildGuard;
use serde_json::Value;

const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
const CONTAINER: &str = "3f8b2c6d1e0a9f87b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3";
const POD_UID: &str = "6e1d2c0a-7b5f-4c3e-9a8d-1f2e3d4c5b6a";

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on v2 hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones).
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

/// Cgroups made for the test, removed (deepest first) when dropped.
struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    fn make(&mut self, root: &Path, rel: &str) -> PathBuf {
        let mut path = root.to_path_buf();
        for part in rel.split('/') {
            path.push(part);
            if !path.exists() {
                std::fs::create_dir(&path)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
                self.0.push(path.clone());
            }
        }
        path
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            // Its processes may take a moment to be reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// gcload started inside `cgroup`, its gctrace on: the shell moves itself there, then execs.
fn in_cgroup(gcload: &Path, cgroup: &Path, dir: &Path, name: &str, args: &str) -> ChildGuard {
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec '{}' {args}",
        cgroup.display(),
        gcload.display()
    );
    ChildGuard::spawn(
        Command::new("sh")
            .env("GODEBUG", "gctrace=1")
            .args(["-c", &script]),
        dir,
        name,
    )
}

fn scrape(agent: &ureq::Agent, url: &str) -> String {
    agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap_or_default()
}

/// The sample lines of process `pid`.
fn series_of(text: &str, pid: u32) -> Vec<String> {
    let needle = format!("pid=\"{pid}\"");
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// The cgroup v2 hierarchy, where a test makes its cgroups, and the fixture; None (after
/// saying why) when the integration tests are not requested or the host has no cgroup v2.
fn setup() -> Option<(PathBuf, GcloadFixture)> {
    let fx = harness::gcload_fixture::start()?;
    let Some(mount) = cgroup2_mount() else {
        harness::skip("no cgroup v2 hierarchy mounted");
        return None;
    };
    Some((mount, fx))
}

#[test]
fn cgroup_labels_and_ended_series() {
    let Some((mount, fx)) = setup() else {
        return;
    };
    let (gcload, dir) = (&fx.gcload, fx.dir());
    let out = dir.join("trace.ndjson");

    // containerd's state of the container, as its CRI plugin writes the OCI bundle.
    let host = dir.join("host");
    let bundle = host
        .join("run/containerd/io.containerd.runtime.v2.task/k8s.io")
        .join(CONTAINER);
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    std::fs::write(
        bundle.join("config.json"),
        format!(
            r#"{{"ociVersion":"1.1.0","annotations":{{"io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.sandbox-name":"checkout-5d8f","io.kubernetes.cri.sandbox-namespace":"shop",
            "io.kubernetes.cri.sandbox-uid":"{POD_UID}","io.kubernetes.cri.container-name":"server"}}}}"#
        ),
    )
    .expect("config.json");

    let top = format!("gctrace-fleet-{}.slice", std::process::id());
    let uid_ = POD_UID.replace('-', "_");
    let pod_rel = format!(
        "{top}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{CONTAINER}.scope"
    );
    let svc_rel = format!("{top}/system.slice/checkout-worker.service");
    let mut cgroups = Cgroups(Vec::new());
    let pod_cg = cgroups.make(&mount, &pod_rel);
    let svc_cg = cgroups.make(&mount, &svc_rel);

    let mut pod = in_cgroup(gcload, &pod_cg, dir, "pod", "-forever");
    // Both run until told to end: a service that ended on a timer could end before a
    // loaded host had attached to it.
    let mut svc = in_cgroup(gcload, &svc_cg, dir, "svc", "-forever");
    // Both are in their cgroups (the shell moved itself) and exec'd into gcload.
    let exec_done = wait_for(Duration::from_secs(10), || {
        let ok = [pod.pid(), svc.pid()]
            .iter()
            .all(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == *gcload));
        ok.then_some(())
    });
    assert!(
        exec_done.is_some(),
        "workloads did not start in their cgroups"
    );

    let mut tracer = ChildGuard::spawn(
        harness::TracerCmd::new()
            .env("GCTRACE_HOST_ROOT", &host)
            .args(["--pid", &format!("{},{}", pod.pid(), svc.pid())])
            .args(["--format", "json", "--output"])
            .arg(&out)
            .args(["--prometheus", "127.0.0.1:0"]),
        dir,
        "tracer",
    );
    let url = wait_for(ATTACH_TIMEOUT, || served_url(&tracer.stderr_text()))
        .unwrap_or_else(|| panic!("no metrics address\n{}", child_diag(&tracer)));
    let agent = agent();

    // Both processes' series appear, with their labels on every one.
    let pod_labels = [
        format!(r#"container_id="{CONTAINER}""#),
        r#"container_runtime="containerd""#.to_owned(),
        r#"container_name="server""#.to_owned(),
        format!(r#"pod_uid="{POD_UID}""#),
        r#"pod_name="checkout-5d8f""#.to_owned(),
        r#"pod_namespace="shop""#.to_owned(),
        format!(r#"systemd_unit="cri-containerd-{CONTAINER}.scope""#),
        format!(r#"cgroup="/{pod_rel}""#),
    ];
    let svc_labels = [
        r#"systemd_unit="checkout-worker.service""#.to_owned(),
        format!(r#"cgroup="/{svc_rel}""#),
    ];
    let first = wait_for(ATTACH_TIMEOUT, || {
        let text = scrape(&agent, &url);
        let seen = |pid: u32| {
            series_of(&text, pid)
                .iter()
                .any(|l| l.starts_with("go_gc_cycles_total_gc_cycles_total"))
        };
        (seen(pod.pid()) && seen(svc.pid())).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "no GC cycle series of both processes\n{}",
            child_diag(&tracer)
        )
    });
    let mut failures = Vec::new();
    for (pid, labels) in [(pod.pid(), &pod_labels[..]), (svc.pid(), &svc_labels[..])] {
        for line in series_of(&first, pid) {
            for l in labels {
                if !line.contains(l.as_str()) {
                    failures.push(format!("pid {pid}: {l} missing from {line}"));
                }
            }
        }
    }
    for line in series_of(&first, svc.pid()) {
        if line.contains("container_id=") || line.contains("pod_uid=") {
            failures.push(format!(
                "pid {}: a service has no container: {line}",
                svc.pid()
            ));
        }
    }
    harness::assert_no_failures("labels on the series", &failures, &child_diag(&tracer));

    // The service ends; the tracer says so; its series go within two scrapes of that,
    // the pod's stay.
    svc.signal(libc::SIGTERM);
    let status = svc.wait_timeout(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "svc ended with {status:?}"
    );
    let ended = format!("pid {} exited", svc.pid());
    let said = wait_for(Duration::from_secs(10), || {
        tracer.stderr_text().contains(&ended).then_some(())
    });
    assert!(
        said.is_some(),
        "tracer did not say '{ended}'\n{}",
        child_diag(&tracer)
    );
    thread::sleep(Duration::from_millis(300));
    let scrapes: Vec<String> = (0..3).map(|_| scrape(&agent, &url)).collect();
    let counts: Vec<(usize, usize)> = scrapes
        .iter()
        .map(|s| (series_of(s, svc.pid()).len(), series_of(s, pod.pid()).len()))
        .collect();
    assert!(
        counts[1].0 == 0 && counts[2].0 == 0 && counts.iter().all(|c| c.1 > 0),
        "series (ended svc, running pod) over three scrapes after the end: {counts:?}\n{}",
        scrapes[2]
    );

    pod.signal(libc::SIGTERM);
    let _ = pod.wait_timeout(Duration::from_secs(30));
    assert_exits_ok(
        &mut tracer,
        Duration::from_secs(30),
        "after its targets ended",
    );

    // The JSON process records carry the same labels; null where there is nothing.
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let process = |pid: u32| -> Value {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "process" && v["pid"] == pid)
            .unwrap_or_else(|| panic!("no process record of pid {pid}\n{text}"))
    };
    let p = process(pod.pid());
    let want_pod = [
        ("cgroup", Value::from(format!("/{pod_rel}"))),
        ("container_id", CONTAINER.into()),
        ("container_runtime", "containerd".into()),
        ("container_name", "server".into()),
        ("pod_uid", POD_UID.into()),
        ("pod_name", "checkout-5d8f".into()),
        ("pod_namespace", "shop".into()),
        (
            "systemd_unit",
            format!("cri-containerd-{CONTAINER}.scope").into(),
        ),
    ];
    let s = process(svc.pid());
    let want_svc = [
        ("cgroup", Value::from(format!("/{svc_rel}"))),
        ("container_id", Value::Null),
        ("pod_uid", Value::Null),
        ("pod_name", Value::Null),
        ("systemd_unit", "checkout-worker.service".into()),
    ];
    let mut failures = Vec::new();
    for (rec, want) in [(&p, &want_pod[..]), (&s, &want_svc[..])] {
        for (k, v) in want {
            if &rec[*k] != v {
                failures.push(format!(
                    "pid {}: {k} is {}, expected {v}",
                    rec["pid"], rec[*k]
                ));
            }
        }
    }
    harness::assert_no_failures(
        "labels on the process records",
        &failures,
        &child_diag(&tracer),
    );
}

/// Peak RSS of a running process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `--all --cgroup`: Go programs started one after another in a cgroup of the test's
/// are each picked up, with their own `process` record first and `summary` last, no
/// event lost, every cycle the runtime printed recorded under its pid — from cycle 1 for
/// all but the first process of the binary (found at its exec, whose binary is analysed
/// and attached meanwhile), and for processes that live 50 ms and run one forced cycle;
/// a plain program there is not traced; the tracer's memory stays bounded; other
/// processes of the host (outside the cgroup) are left alone; past --max-processes a
/// process is reported and left alone.
#[test]
fn all_traces_every_go_process_of_a_cgroup() {
    let Some((mount, fx)) = setup() else {
        return;
    };
    let (gcload, dir) = (&fx.gcload, fx.dir());
    let out = dir.join("trace.ndjson");
    let top = format!("gctrace-all-{}.slice", std::process::id());
    let mut cgroups = Cgroups(Vec::new());
    let cg = cgroups.make(&mount, &format!("{top}/run.scope"));

    let mut tracer = ChildGuard::spawn(
        harness::TracerCmd::new()
            .args([
                "--all",
                "--cgroup",
                &format!("/{top}"),
                "--max-processes",
                "2",
            ])
            .args(["--format", "json", "--output"])
            .arg(&out),
        dir,
        "tracer",
    );
    let waiting = wait_for(ATTACH_TIMEOUT, || {
        tracer
            .stderr_text()
            .contains("no Go process runs in cgroup")
            .then_some(())
    });
    assert!(
        waiting.is_some(),
        "tracer not waiting\n{}",
        child_diag(&tracer)
    );

    // Not Go: looked at once, never traced.
    let script = format!("echo $$ > '{}/cgroup.procs' && exec sleep 30", cg.display());
    let sleeper = ChildGuard::spawn(Command::new("sh").args(["-c", &script]), dir, "sleep");
    let mut runs = Vec::new();
    let mut rss = Vec::new();
    for i in 0..6 {
        // The first process of a binary is traced once that binary is analysed and its
        // probes attached, off the tracer's loop: on a loaded 2-core CI machine that
        // outlasted a 1 s life once (the tracer said it ended first). It lives 5 s; the
        // rest, traced by probes already there, 1 s.
        let life = if i == 0 {
            "-duration 5s"
        } else {
            "-duration 1s"
        };
        let mut g = in_cgroup(gcload, &cg, dir, &format!("g{i}"), life);
        let status = g.wait_timeout(Duration::from_secs(60));
        assert!(status.is_some_and(|s| s.success()), "g{i}: {status:?}");
        rss.extend(peak_rss_kib(tracer.pid()));
        runs.push(g);
    }
    // Short lives: 50 ms and one forced cycle each, one after another.
    let mut short = Vec::new();
    for i in 0..8 {
        let args = "-duration 50ms -forced 1 -goroutines 1";
        let mut g = in_cgroup(gcload, &cg, dir, &format!("s{i}"), args);
        let status = g.wait_timeout(Duration::from_secs(60));
        assert!(status.is_some_and(|s| s.success()), "s{i}: {status:?}");
        short.push(g);
    }
    // Three at once with a ceiling of two (the sleeper is not counted: it is not Go).
    let mut burst: Vec<ChildGuard> = (0..3)
        .map(|i| in_cgroup(gcload, &cg, dir, &format!("b{i}"), "-duration 3s"))
        .collect();
    for b in &mut burst {
        let _ = b.wait_timeout(Duration::from_secs(60));
    }
    stop(&mut tracer, libc::SIGTERM);
    drop(sleeper);

    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let traces = harness::traces_by_pid(&text);
    let mut failures = Vec::new();
    if traces.contains_key(&0) {
        failures.push("records without a pid".to_owned());
    }
    for (i, g) in runs.iter().chain(&short).enumerate() {
        let pid = u64::from(g.pid());
        let Some(trace) = traces.get(&pid) else {
            failures.push(format!("{} (pid {pid}) not traced", g.name));
            continue;
        };
        let (first, last) = (trace.first_type.as_deref(), trace.last_type.as_deref());
        if first != Some("process") || last != Some("summary") || !trace.errors.is_empty() {
            failures.push(format!(
                "pid {pid}: records from {first:?} to {last:?}, errors {:?}",
                trace.errors
            ));
        }
        let lost = trace.summary.as_ref().map_or(u64::MAX, |s| s.lost_events);
        if lost != 0 {
            failures.push(format!("pid {pid}: {lost} events lost"));
        }
        // Every cycle the runtime printed after the first one recorded is there.
        let printed = harness::parse_gctrace(&g.stderr_text());
        let mut recorded: Vec<u32> = trace.gc.iter().map(|c| c.cycle).collect();
        // The runtime prints a cycle's line after restarting the world: a program that
        // returns from main right then never prints its last cycle, which we did see.
        let last_printed = printed.keys().next_back().copied();
        if recorded.len() >= 2 && last_printed.is_some_and(|l| recorded.last() == Some(&(l + 1))) {
            recorded.pop();
        }
        let Some(&from) = recorded.first() else {
            failures.push(format!("pid {pid}: no cycle recorded of {}", printed.len()));
            continue;
        };
        // Only the binary's first process may have started before its probes.
        if i > 0 && from != 1 {
            failures.push(format!(
                "{} (pid {pid}): recorded from cycle {from}, not from its first",
                g.name
            ));
        }
        let want: Vec<u32> = printed.keys().copied().filter(|&c| c >= from).collect();
        if recorded != want {
            failures.push(format!(
                "pid {pid}: cycles {recorded:?}, gctrace printed {want:?}"
            ));
        }
    }
    let burst_traced = burst
        .iter()
        .filter(|b| traces.contains_key(&u64::from(b.pid())))
        .count();
    let refused = tracer
        .stderr_text()
        .lines()
        .filter(|l| l.contains("not traced: 2 processes are traced already (--max-processes)"))
        .count();
    if burst_traced + refused != 3 || refused == 0 {
        failures.push(format!(
            "burst of 3 with --max-processes 2: {burst_traced} traced, {refused} refused"
        ));
    }
    let ours: Vec<u64> = runs
        .iter()
        .chain(&short)
        .chain(&burst)
        .map(|g| u64::from(g.pid()))
        .collect();
    let outside: Vec<&u64> = traces.keys().filter(|p| !ours.contains(p)).collect();
    if !outside.is_empty() {
        failures.push(format!("traced outside the cgroup: {outside:?}"));
    }
    // Bounded: after six processes the peak is what it was after the second.
    if rss.len() == 6 && rss[5] > rss[1] + 16 * 1024 {
        failures.push(format!("tracer peak RSS grows per process (KiB): {rss:?}"));
    }
    eprintln!("tracer peak RSS after each process (KiB): {rss:?}");
    harness::assert_no_failures("--all in a cgroup", &failures, &child_diag(&tracer));
}
