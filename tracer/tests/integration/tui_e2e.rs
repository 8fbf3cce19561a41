//! End to end: the TUI in a real terminal (tmux) attached to a live Go workload. Within
//! 5 s the screen shows the pid, the Go version, the p99 pause, the allocation rate and
//! the cycles; `q` exits within 1 s with status 0 and leaves the terminal as it was
//! (no alternate screen, cooked mode, cursor shown). Also reports the tracer's own CPU
//! while it draws.
//!
//! Privileged (eBPF): runs only with GCTRACE_INTEGRATION=1, as root, and needs tmux.

use crate::harness;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use harness::{build_gcload, integration_enabled, tracer_bin, ChildGuard, Toolchain};

/// The newest configured toolchain, or the newest `cargo xtask setup` installs.
fn toolchain() -> Toolchain {
    if std::env::var_os("GCTRACE_GO_TOOLCHAINS").is_some() {
        return harness::newest_toolchain();
    }
    let newest = harness::matrix_newest();
    Toolchain {
        version: newest.version.into(),
        go: newest.go(),
    }
}

/// A detached tmux session, killed (by its unique name) when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    /// A session whose name is unique to this test process and `tag`.
    fn start_named(tag: &str, cmd: &str, width: u16, height: u16) -> Tmux {
        let name = format!("gctrace-tui-e2e-{}-{tag}", std::process::id());
        let st = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(cmd)
            .status()
            .expect("tmux is installed (apt-get install tmux)");
        assert!(st.success(), "tmux new-session failed");
        Tmux { name }
    }

    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn display(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, format])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn send(&self, keys: &str) {
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .expect("tmux send-keys");
        assert!(st.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// The number after `word ` on the screen, if any.
fn number_after(screen: &str, word: &str) -> Option<f64> {
    screen.match_indices(word).find_map(|(i, _)| {
        let rest = screen[i + word.len()..].trim_start();
        let num: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        num.parse().ok()
    })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = tracer::session::target::stat(pid).ok()?;
    Some(stat.utime + stat.stime)
}

fn tracer_pid_of(target: u32) -> Option<u32> {
    // The tracer is the process whose command line names the target pid.
    let want = format!("--pid\0{target}\0");
    fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        (String::from_utf8_lossy(&cmd).contains(&want)
            && exe.file_name() == tracer_bin().file_name())
        .then_some(pid)
    })
}

#[test]
fn tui_shows_the_live_gc_and_quits_cleanly() {
    if !integration_enabled() {
        return;
    }
    let _lock = harness::exclusive();
    let tc = toolchain();
    let go_version = tc.go_version();
    let gcload = build_gcload(&tc);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut workload = ChildGuard::spawn(
        Command::new(&gcload).args(["-forever", "-readmemstats", "1000", "-duration", "600s"]),
        dir.path(),
        "gcload",
    );
    let pid = workload.pid();
    thread::sleep(Duration::from_millis(300));

    let tmux = tracer_in_tmux("main", &format!("--pid {pid}"), dir.path(), 100, 30);

    // Within 5 s: pid, Go version, p99, an allocation rate, completed cycles.
    let start = Instant::now();
    let mut screen = String::new();
    let ok = |s: &str| {
        s.contains(&format!("pid {pid}"))
            && s.contains(&go_version)
            && s.contains("p99")
            && number_after(s, "Alloc rate").is_some()
            && number_after(s, "cycles").is_some_and(|n| n > 0.0)
    };
    while start.elapsed() < Duration::from_secs(5) {
        screen = tmux.capture();
        if ok(&screen) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ok(&screen),
        "after {:?} the screen lacks pid {pid}, {go_version}, p99, an alloc rate or cycles:\n{screen}",
        start.elapsed()
    );
    println!("screen after {:?}:\n{screen}", start.elapsed());
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "TUI on the alternate screen"
    );

    // The tracer's own CPU over a few seconds of drawing a busy workload.
    if let Some(tpid) = tracer_pid_of(pid) {
        let secs = 5.0;
        let t0 = cpu_ticks(tpid);
        thread::sleep(Duration::from_secs_f64(secs));
        let t1 = cpu_ticks(tpid);
        if let (Some(a), Some(b)) = (t0, t1) {
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            println!(
                "tracer CPU while showing the TUI: {:.1}% of a core",
                (b - a) as f64 / hz / secs * 100.0
            );
        }
    }

    // Every view draws live, each with what only it shows.
    type Shows<'a> = &'a dyn Fn(&str) -> bool;
    let views: [(&str, &str, Shows); 5] = [
        ("2", "Cycles", &|s| {
            s.contains("cycles since attach, newest first") && s.contains("trigger")
        }),
        ("Enter", "Cycle detail", &|s| s.contains("Cycle detail")),
        ("3", "Pauses", &|s| {
            s.contains("stops, newest first")
                && s.contains("latency since attach")
                && s.contains("read mem stats")
        }),
        ("4", "Allocations", &|s| {
            s.contains("allocation rate") && s.contains("allocated since program start")
        }),
        ("1", "Overview", &|s| {
            s.contains("Pause timeline") && s.contains("Heap MiB") && s.contains("Alloc rate")
        }),
    ];
    for (k, view, shows) in views {
        tmux.send(k);
        let (ok, screen) = wait_screen(&tmux, Duration::from_secs(3), shows);
        assert!(ok, "after {k} the {view} view is not shown:\n{screen}");
    }

    let (took, status) = quit(&tmux, dir.path(), Duration::from_secs(3));
    let Some(took) = took else {
        panic!("no exit 3 s after q:\n{}", tmux.capture());
    };
    assert_eq!(status, "0", "exit status");
    assert!(took <= Duration::from_secs(1), "q took {took:?} to exit");
    println!("exit {took:?} after q");
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen left"
    );
    assert_eq!(tmux.display("#{cursor_flag}"), "1", "cursor shown");
    let stty = read(&dir.path().join("stty"));
    for mode in ["icanon", "echo", "isig"] {
        assert!(
            stty.split_whitespace().any(|w| w == mode),
            "terminal not restored ({mode} off): {stty}"
        );
    }
    assert!(workload.try_wait().is_none(), "the target keeps running");
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// The tracer with `args` in tmux session `tag` (`width`×`height`), from a shell that
/// then writes its exit status into `dir/status` and the terminal's modes (`stty -a`, to
/// see they were restored) into `dir/stty`, and stays so the pane can still be read.
fn tracer_in_tmux(tag: &str, args: &str, dir: &Path, width: u16, height: u16) -> Tmux {
    let cmd = format!(
        "{} {args}; echo $? > {}; stty -a > {}; sleep 60",
        tracer_bin().display(),
        dir.join("status").display(),
        dir.join("stty").display()
    );
    Tmux::start_named(tag, &cmd, width, height)
}

/// Sends q, then waits up to `timeout` for the shell of [`tracer_in_tmux`] to write the
/// tracer's exit status into `dir/status`: how long that took (`None`: no status by
/// then), and the status read a moment later, once the shell has written all of it.
fn quit(tmux: &Tmux, dir: &Path, timeout: Duration) -> (Option<Duration>, String) {
    let status_file = &dir.join("status");
    let start = Instant::now();
    tmux.send("q");
    while read(status_file).trim().is_empty() && start.elapsed() < timeout {
        thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    let came = !read(status_file).trim().is_empty();
    thread::sleep(Duration::from_millis(100));
    (came.then_some(took), read(status_file).trim().to_string())
}

/// Waits up to `timeout` for a screen `ok` accepts; the last screen either way.
fn wait_screen(tmux: &Tmux, timeout: Duration, ok: impl Fn(&str) -> bool) -> (bool, String) {
    let start = Instant::now();
    loop {
        let screen = tmux.capture();
        if ok(&screen) {
            return (true, screen);
        }
        if start.elapsed() >= timeout {
            return (false, screen);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `--exe` with two processes in a real terminal: the header counts them, the picker
/// lists both and shows the one picked, an exit is said and counted, q still quits.
#[test]
fn tui_picks_between_processes() {
    if !integration_enabled() {
        return;
    }
    let _lock = harness::exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    // A copy of its own, so --exe sees only this test's processes.
    let gcload = dir.path().join("gcload");
    fs::copy(build_gcload(&toolchain()), &gcload).expect("copy gcload");
    let mut first = ChildGuard::spawn(Command::new(&gcload).arg("-forever"), dir.path(), "first");
    let second = ChildGuard::spawn(Command::new(&gcload).arg("-forever"), dir.path(), "second");
    let (a, b) = (first.pid(), second.pid());
    thread::sleep(Duration::from_millis(300));

    let exe = format!("--exe {}", gcload.display());
    let tmux = tracer_in_tmux("picker", &exe, dir.path(), 120, 30);
    let (ok, screen) = wait_screen(&tmux, Duration::from_secs(20), |s| {
        s.contains(&format!("pid {a}")) && s.contains("1 of 2, 2 traced")
    });
    assert!(ok, "the header does not show 1 of 2 processes:\n{screen}");

    tmux.send("p");
    let (ok, screen) = wait_screen(&tmux, Duration::from_secs(3), |s| {
        s.contains("Processes:") && s.contains(&format!("▶ {a}")) && s.contains(&b.to_string())
    });
    assert!(ok, "the picker does not list both processes:\n{screen}");
    tmux.send("Down");
    tmux.send("Enter");
    let (ok, screen) = wait_screen(&tmux, Duration::from_secs(3), |s| {
        s.contains(&format!("pid {b}")) && s.contains("2 of 2") && !s.contains("Processes:")
    });
    assert!(ok, "picking the second process did not show it:\n{screen}");

    second.signal(libc::SIGTERM);
    let (ok, screen) = wait_screen(&tmux, Duration::from_secs(10), |s| {
        s.contains(&format!("pid {b} exited")) && s.contains("1 traced") && s.contains("EXITED")
    });
    assert!(ok, "the exit of the shown process is not said:\n{screen}");

    let (_, status) = quit(&tmux, dir.path(), Duration::from_secs(5));
    assert_eq!(status, "0", "exit status after q");
    assert!(
        first.try_wait().is_none(),
        "the first process keeps running"
    );
}
