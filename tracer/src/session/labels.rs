//! Reading who a traced process is on a fleet ([`Labels`]): its cgroup, the container and
//! Kubernetes pod it runs in, and its systemd unit, so that records and series can be told
//! apart by what people deploy rather than by pid. The labels are part of the records;
//! reading them from the host's files is the session's job, hence here.
//!
//! Everything comes from the kernel's and the container runtime's own files, never from
//! a guess:
//! - the cgroup path from `/proc/PID/cgroup` (the cgroup v2 line; on a v1 or hybrid host
//!   the first hierarchy whose path is not `/`);
//! - the container id, the pod UID and the systemd unit from that path, in the forms
//!   docker, containerd, cri-o, podman and the kubelet (cgroupfs and systemd drivers)
//!   give it;
//! - the pod's name and namespace and the container's name from the runtime's state of
//!   that container: the annotations the CRI plugin of containerd and cri-o writes into
//!   the OCI bundle's `config.json`, or the labels dockershim/cri-dockerd put on a docker
//!   container. These are what the CRI itself answers (`crictl inspect`), read from the
//!   files behind it, so no gRPC client is needed. The host's files are looked for under
//!   `/` and, for an agent in a container with `hostPID`, under `/proc/1/root` (the host's
//!   root as its pid 1 sees it); `GCTRACE_HOST_ROOT` names another place (a hostPath mount).
//!
//! A process in a pod whose runtime state cannot be read keeps its pod UID; its pod name
//! and namespace are unknown (`null`) and the session says so in one warning.

use std::fs;
use std::path::{Path, PathBuf};

use procfs::ProcessCGroups;

use super::target;
use crate::model::records::Labels;

impl Labels {
    /// The labels of process `pid`, read now. A process we cannot read has none.
    pub fn of_process(pid: u32) -> Labels {
        let Some(path) = cgroup_of(pid) else {
            return Labels::default();
        };
        let mut labels = Labels::from_cgroup_path(&path);
        labels.resolve_pod(&host_roots());
        labels
    }

    /// What the cgroup path alone tells.
    pub fn from_cgroup_path(path: &str) -> Labels {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let in_kubepods = parts.iter().any(|p| p.contains("kubepods"));
        let mut labels = Labels {
            cgroup: Some(path.to_string()),
            ..Labels::default()
        };
        for (i, part) in parts.iter().enumerate() {
            if in_kubepods {
                if let Some(uid) = pod_uid(part) {
                    labels.pod_uid = Some(uid);
                }
            }
            if let Some((id, runtime)) =
                container_id(part, i.checked_sub(1).and_then(|j| parts.get(j)))
            {
                labels.container_id = Some(id);
                labels.container_runtime = runtime.map(str::to_string);
            }
            if part.ends_with(".service") || part.ends_with(".scope") {
                labels.systemd_unit = Some((*part).to_string());
            }
        }
        labels
    }

    /// Fill in the pod's name and namespace and the container's name from the runtime's
    /// state of the container, looked for under each of `roots` (the host's filesystem).
    pub fn resolve_pod(&mut self, roots: &[PathBuf]) {
        let Some(id) = self.container_id.clone() else {
            return;
        };
        for root in roots {
            if let Some((runtime, found)) = runtime_state(root, &id) {
                self.container_runtime
                    .get_or_insert_with(|| runtime.to_string());
                if found.pod_name.is_some() {
                    self.pod_name = found.pod_name;
                    self.pod_namespace = found.pod_namespace;
                    self.container_name = found.container_name;
                    if self.pod_uid.is_none() {
                        self.pod_uid = found.pod_uid;
                    }
                } else if self.container_name.is_none() {
                    self.container_name = found.container_name;
                }
                return;
            }
        }
    }
}

/// The path of the cgroup of process `pid` ([`cgroup_path`]), or None when it cannot be
/// read (it ended).
pub fn cgroup_of(pid: u32) -> Option<String> {
    cgroup_path(&target::cgroups(pid)?)
}

/// The path of the process's cgroup from its `/proc/PID/cgroup`: the cgroup v2 hierarchy
/// (no controllers) unless its path is `/` (a v1 or hybrid host, where the v2 hierarchy
/// is unused), then the `name=systemd` hierarchy, then any other whose path is not `/`.
pub fn cgroup_path(cgroups: &ProcessCGroups) -> Option<String> {
    let pick = |want: &dyn Fn(&[String]) -> bool| {
        cgroups
            .0
            .iter()
            .find(|g| want(&g.controllers) && g.pathname != "/")
            .map(|g| g.pathname.clone())
    };
    pick(&|c| c.is_empty())
        .or_else(|| pick(&|c| matches!(c, [name] if name == "name=systemd")))
        .or_else(|| pick(&|_| true))
        .or_else(|| cgroups.0.first().map(|g| g.pathname.clone()))
}

/// The pod UID a kubepods cgroup component names: `pod<uid>` (cgroupfs driver) or
/// `kubepods[-qos]-pod<uid with _>.slice` (systemd driver). Static pods' UIDs are 32 hex
/// digits (a hash of the manifest), API pods' are UUIDs.
fn pod_uid(part: &str) -> Option<String> {
    let part = part.strip_suffix(".slice").unwrap_or(part);
    let at = part.rfind("pod")?;
    if at > 0 && !part[..at].ends_with('-') {
        return None;
    }
    let uid = part[at + 3..].replace('_', "-");
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    let groups: Vec<&str> = uid.split('-').collect();
    let uuid = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| hex(g));
    (uuid || (uid.len() == 32 && hex(&uid))).then_some(uid)
}

/// The container id a cgroup component names, and the runtime when the form says it:
/// `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`, `libpod-ID.scope`
/// (systemd driver), or a bare `ID` (cgroupfs driver: `/docker/ID`, `/kubepods/…/ID`).
/// cri-o's `crio-conmon-ID.scope` is its monitor process, not the container.
fn container_id(part: &str, parent: Option<&&str>) -> Option<(String, Option<&'static str>)> {
    let is_id = |s: &str| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit());
    if is_id(part) {
        let runtime = match parent {
            Some(&"docker") => Some("docker"),
            _ => None,
        };
        return Some((part.to_string(), runtime));
    }
    let stem = part.strip_suffix(".scope")?;
    for (prefix, runtime) in [
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("libpod-", "podman"),
    ] {
        if let Some(id) = stem.strip_prefix(prefix) {
            if is_id(id) {
                return Some((id.to_string(), Some(runtime)));
            }
        }
    }
    None
}

/// What the runtime's state says of a container's pod.
#[derive(Debug, Default, PartialEq)]
struct PodOf {
    pod_name: Option<String>,
    pod_namespace: Option<String>,
    pod_uid: Option<String>,
    container_name: Option<String>,
}

/// Where the host's files may be: `GCTRACE_HOST_ROOT` when set, `/`, and the root of
/// the host's pid 1 (the host's `/` for an agent in a container with `hostPID`).
fn host_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(r) = std::env::var_os("GCTRACE_HOST_ROOT") {
        roots.push(PathBuf::from(r));
    }
    roots.push(PathBuf::from("/"));
    roots.push(PathBuf::from("/proc/1/root"));
    roots
}

/// The runtime state of container `id` under `root`, from the first runtime that has it.
fn runtime_state(root: &Path, id: &str) -> Option<(&'static str, PodOf)> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    // containerd: one directory per namespace (k8s.io for the CRI, moby for docker).
    if let Ok(namespaces) = fs::read_dir(at("/run/containerd/io.containerd.runtime.v2.task")) {
        for ns in namespaces.flatten() {
            if let Ok(text) = fs::read_to_string(ns.path().join(id).join("config.json")) {
                return Some(("containerd", annotations(&text, CONTAINERD_KEYS)));
            }
        }
    }
    let crio = at("/run/containers/storage/overlay-containers")
        .join(id)
        .join("userdata/config.json");
    if let Ok(text) = fs::read_to_string(crio) {
        return Some(("cri-o", annotations(&text, CRIO_KEYS)));
    }
    let docker = at("/var/lib/docker/containers")
        .join(id)
        .join("config.v2.json");
    if let Ok(text) = fs::read_to_string(docker) {
        return Some(("docker", docker_labels(&text)));
    }
    None
}

/// Annotation names for (pod name, namespace, pod uid, container name).
type Keys = [&'static str; 4];
const CONTAINERD_KEYS: Keys = [
    "io.kubernetes.cri.sandbox-name",
    "io.kubernetes.cri.sandbox-namespace",
    "io.kubernetes.cri.sandbox-uid",
    "io.kubernetes.cri.container-name",
];
const CRIO_KEYS: Keys = [
    "io.kubernetes.pod.name",
    "io.kubernetes.pod.namespace",
    "io.kubernetes.pod.uid",
    "io.kubernetes.container.name",
];

/// The pod of an OCI bundle's `config.json`, from its `annotations`.
fn annotations(config: &str, keys: Keys) -> PodOf {
    let value: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    pod_of(&value["annotations"], keys)
}

/// The pod of a docker container's `config.v2.json`, from the labels the kubelet's
/// docker shim puts on it (`Config.Labels`).
fn docker_labels(config: &str) -> PodOf {
    let value: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    pod_of(&value["Config"]["Labels"], CRIO_KEYS)
}

fn pod_of(map: &serde_json::Value, keys: Keys) -> PodOf {
    let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
    PodOf {
        pod_name: get(keys[0]),
        pod_namespace: get(keys[1]),
        pod_uid: get(keys[2]),
        container_name: get(keys[3]),
    }
}

#[cfg(test)]
mod tests;
