//! Cgroup paths as the kernel prints them for real runtimes and kubelet drivers, and
//! runtime state files in the shape the runtimes write them.

use super::*;

const ID: &str = "3f8b2c6d1e0a9f87b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3";
const UID: &str = "6e1d2c0a-7b5f-4c3e-9a8d-1f2e3d4c5b6a";
const UID_: &str = "6e1d2c0a_7b5f_4c3e_9a8d_1f2e3d4c5b6a";

fn labels(path: &str) -> Labels {
    Labels::from_cgroup_path(path)
}

#[test]
fn docker_cgroupfs_and_systemd_drivers() {
    let l = labels(&format!("/docker/{ID}"));
    assert_eq!(l.container_id.as_deref(), Some(ID));
    assert_eq!(l.container_runtime.as_deref(), Some("docker"));
    assert_eq!((l.pod_uid, l.systemd_unit), (None, None));

    let l = labels(&format!("/system.slice/docker-{ID}.scope"));
    assert_eq!(l.container_id.as_deref(), Some(ID));
    assert_eq!(l.container_runtime.as_deref(), Some("docker"));
    assert_eq!(l.systemd_unit, Some(format!("docker-{ID}.scope")));
    assert_eq!(l.pod_uid, None);
}

#[test]
fn kubernetes_systemd_driver_containerd_and_crio() {
    let l = labels(&format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
    ));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));
    assert_eq!(l.container_id.as_deref(), Some(ID));
    assert_eq!(l.container_runtime.as_deref(), Some("containerd"));
    assert_eq!(l.systemd_unit, Some(format!("cri-containerd-{ID}.scope")));

    // Guaranteed QoS has no QoS slice.
    let l = labels(&format!(
        "/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope"
    ));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));
    assert_eq!(l.container_runtime.as_deref(), Some("cri-o"));

    // cri-o's monitor is not the container.
    let l = labels(&format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-conmon-{ID}.scope"
    ));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));
    assert_eq!(l.container_id, None);
}

#[test]
fn kubernetes_cgroupfs_driver_and_kind_and_static_pods() {
    let l = labels(&format!("/kubepods/besteffort/pod{UID}/{ID}"));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));
    assert_eq!(l.container_id.as_deref(), Some(ID));
    assert_eq!(l.container_runtime, None, "the cgroupfs form does not say");
    assert_eq!(l.systemd_unit, None);

    // Guaranteed, cgroupfs.
    let l = labels(&format!("/kubepods/pod{UID}/{ID}"));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));

    // kind nests the node's kubelet under kubelet.slice.
    let l = labels(&format!(
        "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
    ));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));
    assert_eq!(l.container_id.as_deref(), Some(ID));

    // A static pod's UID is the hash of its manifest.
    let l = labels("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d4e5f60718293a4b5c6d7e8f9.slice");
    assert_eq!(
        l.pod_uid.as_deref(),
        Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    );

    // Seen from another cgroup namespace (an agent in a pod).
    let l = labels(&format!(
        "/../../kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
    ));
    assert_eq!(l.pod_uid.as_deref(), Some(UID));
}

#[test]
fn systemd_units_podman_and_plain_processes() {
    let l = labels("/system.slice/nginx.service");
    assert_eq!(l.systemd_unit.as_deref(), Some("nginx.service"));
    assert_eq!((l.container_id, l.pod_uid), (None, None));

    let l = labels("/user.slice/user-1000.slice/session-3.scope");
    assert_eq!(l.systemd_unit.as_deref(), Some("session-3.scope"));

    let l = labels(&format!(
        "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
    ));
    assert_eq!(l.container_runtime.as_deref(), Some("podman"));
    assert_eq!(l.systemd_unit, Some(format!("libpod-{ID}.scope")));

    let l = labels("/");
    assert_eq!(l.cgroup.as_deref(), Some("/"));
    assert_eq!(l.known().count(), 1);

    // Not pods: "pod" inside another word, or outside kubepods.
    assert_eq!(
        labels(&format!("/system.slice/ipod{UID_}.slice")).pod_uid,
        None
    );
    assert_eq!(labels(&format!("/pod{UID}")).pod_uid, None);
    // Not ids: wrong length.
    assert_eq!(labels("/docker/3f8b2c6d").container_id, None);
}

/// The path chosen from the text of a `/proc/PID/cgroup`, or None if it does not parse.
fn path_in(text: &str) -> Option<String> {
    use procfs::FromBufRead;
    cgroup_path(&ProcessCGroups::from_buf_read(text.as_bytes()).ok()?)
}

#[test]
fn the_cgroup_line_is_chosen_on_v1_v2_and_hybrid_hosts() {
    assert_eq!(
        path_in("0::/system.slice/a.service\n").as_deref(),
        Some("/system.slice/a.service")
    );
    // Hybrid: the v2 hierarchy is unused, systemd's v1 one names the unit.
    let hybrid =
        "12:memory:/system.slice/b.service\n1:name=systemd:/system.slice/b.service\n0::/\n";
    assert_eq!(path_in(hybrid).as_deref(), Some("/system.slice/b.service"));
    // systemd's hierarchy before other controllers, whatever their order.
    let named = "4:memory:/a\n1:name=systemd:/b.service\n0::/\n";
    assert_eq!(path_in(named).as_deref(), Some("/b.service"));
    // This machine's shape: only one v1 controller is not at /.
    let v1 = "9:name=systemd:/\n4:memory:/process_api/38f9\n0::/\n";
    assert_eq!(path_in(v1).as_deref(), Some("/process_api/38f9"));
    assert_eq!(path_in("0::/\n").as_deref(), Some("/"));
    // A path may hold colons: only the first two separate fields.
    assert_eq!(path_in("0::/a:b\n").as_deref(), Some("/a:b"));
    assert_eq!(path_in("garbage"), None);
    assert_eq!(path_in(""), None);
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn pod_names_come_from_the_runtime_state() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(
        r,
        &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"),
        r#"{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.sandbox-name":"api-7d9f","io.kubernetes.cri.sandbox-namespace":"shop",
            "io.kubernetes.cri.sandbox-uid":"6e1d2c0a-7b5f-4c3e-9a8d-1f2e3d4c5b6a",
            "io.kubernetes.cri.container-name":"server"}}"#,
    );
    let mut l = labels(&format!("/kubepods/besteffort/pod{UID}/{ID}"));
    assert!(l.unknown_pod_warning().is_some());
    l.resolve_pod(&[PathBuf::from("/nonexistent"), r.to_path_buf()]);
    assert_eq!(l.pod_name.as_deref(), Some("api-7d9f"));
    assert_eq!(l.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(l.container_name.as_deref(), Some("server"));
    assert_eq!(l.container_runtime.as_deref(), Some("containerd"));
    assert_eq!(l.unknown_pod_warning(), None);

    let crio = tempfile::tempdir().unwrap();
    write(
        crio.path(),
        &format!("run/containers/storage/overlay-containers/{ID}/userdata/config.json"),
        r#"{"annotations":{"io.kubernetes.pod.name":"db-0","io.kubernetes.pod.namespace":"data",
            "io.kubernetes.container.name":"pg"}}"#,
    );
    let mut l = labels(&format!(
        "/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope"
    ));
    l.resolve_pod(&[crio.path().to_path_buf()]);
    assert_eq!(
        (l.pod_name.as_deref(), l.pod_namespace.as_deref()),
        (Some("db-0"), Some("data"))
    );

    let docker = tempfile::tempdir().unwrap();
    write(
        docker.path(),
        &format!("var/lib/docker/containers/{ID}/config.v2.json"),
        r#"{"Name":"/k8s_web_web-1_default","Config":{"Labels":{"io.kubernetes.pod.name":"web-1",
            "io.kubernetes.pod.namespace":"default","io.kubernetes.container.name":"web"}}}"#,
    );
    let mut l = labels(&format!("/kubepods/pod{UID}/{ID}"));
    l.resolve_pod(&[docker.path().to_path_buf()]);
    assert_eq!(l.pod_name.as_deref(), Some("web-1"));
    assert_eq!(l.container_runtime.as_deref(), Some("docker"));

    // A plain docker container: no pod, no warning, nothing invented.
    write(
        docker.path(),
        &format!("var/lib/docker/containers/{ID}/config.v2.json"),
        r#"{"Config":{"Labels":{}}}"#,
    );
    let mut l = labels(&format!("/docker/{ID}"));
    l.resolve_pod(&[docker.path().to_path_buf()]);
    assert_eq!(l.unknown_pod_warning(), None);
    assert_eq!((l.pod_name, l.pod_uid), (None, None));
}

#[test]
fn our_own_process_has_a_cgroup() {
    let l = Labels::of_process(std::process::id());
    assert!(l.cgroup.is_some());
    assert_eq!(Labels::of_process(0), Labels::default());
}
