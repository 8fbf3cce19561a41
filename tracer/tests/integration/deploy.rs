//! deploy/kubernetes/daemonset.yaml is a valid manifest (Kubernetes' own OpenAPI
//! schemas, strict: no unknown field, through PyPI's `kubernetes-validate`, installed by
//! `cargo xtask setup`), and it asks for what the tracer needs on a node: the host's pid
//! namespace, privileges, the host's BTF, a run over every process with a ceiling, and
//! the metrics port it serves. A manifest broken on purpose must fail the same check, so
//! the validator is known to look. No cluster is needed.
//! Runs when the validator is installed; under GCTRACE_INTEGRATION=1 its absence fails.

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TOOLS: &str = "/var/cache/gctrace-bpf/python-tools";

fn manifest() -> PathBuf {
    harness::workspace_root().join("deploy/kubernetes/daemonset.yaml")
}

fn tools_present() -> bool {
    if Path::new(TOOLS).join("kubernetes_validate").is_dir() {
        return true;
    }
    assert!(
        !harness::integration_enabled(),
        "{TOOLS} has no kubernetes_validate: run `cargo xtask setup`"
    );
    harness::skip(&format!(
        "{TOOLS} has no kubernetes_validate (cargo xtask setup)"
    ));
    false
}

/// Runs the validator on `file`: success, and what it printed.
fn validate(file: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.37.0"])
        .arg(file)
        .env("PYTHONPATH", TOOLS)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The manifest's documents as JSON (PyYAML comes with the validator).
fn documents(file: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .env("PYTHONPATH", TOOLS)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn the_daemonset_is_valid_and_asks_for_what_the_tracer_needs() {
    if !tools_present() {
        return;
    }
    let file = manifest();
    let (ok, text) = validate(&file);
    assert!(
        ok,
        "kubernetes-validate rejects {}:\n{text}",
        file.display()
    );
    assert!(
        text.contains("passed for resource daemonset/gctrace-bpf"),
        "{text}"
    );

    let docs = documents(&file);
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true, "hostPID");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true, "privileged");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["--all", "--prometheus=:9101"] {
        assert!(args.contains(&want), "args {args:?} lack {want}");
    }
    assert!(
        args.iter().any(|a| a.starts_with("--max-processes=")),
        "{args:?}"
    );
    assert_eq!(c["ports"][0]["containerPort"], 9101);
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(c["resources"][r][k].is_string(), "resources.{r}.{k}");
        }
    }
    let btf = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["hostPath"]["path"] == "/sys/kernel/btf")
        .expect("the host's BTF as a hostPath volume");
    let mounted = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|m| m["name"] == btf["name"] && m["readOnly"] == true);
    assert!(mounted, "BTF mounted read-only");

    // The same manifest with a misspelt field must fail: the check is strict.
    let tmp = tempfile::tempdir().expect("tempdir");
    let broken = tmp.path().join("broken.yaml");
    let yaml = std::fs::read_to_string(&file).expect("manifest");
    std::fs::write(&broken, yaml.replace("hostPID: true", "hostPid: true")).expect("write");
    let (ok, text) = validate(&broken);
    assert!(!ok, "a misspelt hostPID passed:\n{text}");
}

/// The binary understands the arguments the manifest gives it.
#[test]
fn the_daemonset_arguments_are_the_tracers() {
    if !tools_present() {
        return;
    }
    let docs = documents(&manifest());
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let args: Vec<String> = ds["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    // --help with the same arguments: clap parses them all first.
    let out = harness::TracerCmd::new()
        .args(&args)
        .arg("--help")
        .output()
        .expect("tracer runs");
    assert!(
        out.status.success(),
        "gctrace-bpf {args:?} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
