"""The roles and playbooks for real, on three booted-systemd test hosts (one control plane, two GPU workers).

The tests run in file order: converge, idempotence, check mode, state verified with testinfra,
validation, a failing and an unreachable host, driver upgrade, reset. Vendor packages come from the
local signed STAND-IN repository (tests/ansible/standin_repo.py): their names, versions, repository
layout, keys and pins are real; their payload is not a driver. What needs a real kernel module or a
real GPU is asserted at file level here, and each such test says so.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import standin_repo as standin
import yaml
from labinventory import CONTROL_PLANE, GPU_WORKERS, write_inventory

from kubeforge.nodes import run_playbook

# One lab per session: under pytest-xdist keep these on one worker (--dist loadgroup).
pytestmark = [pytest.mark.hosts, pytest.mark.xdist_group("kubeforge-hosts")]
ALL = CONTROL_PLANE + GPU_WORKERS
K8S_PKG_VERSION = f"{standin.K8S_VERSION}-{standin.K8S_REVISION}"
CONTAINERD_VERSION = "1.6.20~ds1-1+deb12u3"


def _failures(result) -> str:
    return "; ".join(f"{h}: {r.first_failure}" for h, r in result.hosts.items() if r.first_failure)


@pytest.fixture(scope="module")
def converged(nodes_lab):
    """site.yml once on the fresh hosts; every later test starts from this state."""
    return run_playbook(nodes_lab.inventory, "site")


def test_converge_site_yml_on_three_hosts(converged):
    assert converged.ok, _failures(converged)
    assert sorted(converged.hosts) == sorted(ALL)
    for host in ALL:
        assert converged.hosts[host].changed > 0, f"{host} was not changed by the first run"
        assert converged.hosts[host].status == "changed"


def test_second_run_changes_nothing(nodes_lab, converged):
    again = run_playbook(nodes_lab.inventory, "site")
    assert again.ok, _failures(again)
    changed = {h: r.changed for h, r in again.hosts.items()}
    assert changed == dict.fromkeys(ALL, 0), f"not idempotent: {changed}"


def test_check_mode_on_converged_hosts_reports_no_changes(nodes_lab, converged):
    seen: list[tuple[str, str, str]] = []
    check = run_playbook(nodes_lab.inventory, "site", check=True, on_event=lambda *e: seen.append(e))
    assert check.ok, _failures(check)
    assert {h: r.changed for h, r in check.hosts.items()} == dict.fromkeys(ALL, 0)
    assert [e for e in seen if e[2] == "changed"] == []
    assert len(seen) > 50   # the whole playbook really ran in check mode


# --- real state, read with testinfra ------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_containerd_runs_the_rendered_config(nodes_lab, converged, name):
    host = nodes_lab.testinfra(name)
    svc = host.service("containerd")
    assert svc.is_running and svc.is_enabled
    cfg = host.file("/etc/containerd/config.toml")
    assert cfg.contains("SystemdCgroup = true")
    # The handler really restarted the daemon after the config was written (not only at install).
    started = host.check_output("date -d \"$(systemctl show -p ActiveEnterTimestamp --value containerd)\" +%s")
    assert int(started) >= cfg.mtime.timestamp() - 1
    dump = host.check_output("containerd config dump")
    assert "SystemdCgroup = true" in dump
    assert host.socket("unix:///run/containerd/containerd.sock").is_listening
    assert host.package("containerd").version == CONTAINERD_VERSION
    assert "containerd" in host.check_output("apt-mark showhold").split()


@pytest.mark.parametrize("name", GPU_WORKERS)
def test_gpu_nodes_containerd_has_the_nvidia_runtime_and_cdi(nodes_lab, converged, name):
    host = nodes_lab.testinfra(name)
    dump = host.check_output("containerd config dump")   # containerd's own reading of the file
    assert 'default_runtime_name = "nvidia"' in dump
    assert "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]" in dump
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in dump
    assert host.file("/etc/containerd/config.toml").contains("enable_cdi = true")
    assert host.file("/usr/bin/nvidia-container-runtime").is_file


def test_control_plane_containerd_has_no_nvidia_runtime(nodes_lab, converged):
    dump = nodes_lab.testinfra("kf-cp1").check_output("containerd config dump")
    assert "runtimes.nvidia" not in dump
    assert 'default_runtime_name = "runc"' in dump


@pytest.mark.parametrize("name", ALL)
def test_node_prep_state_is_live(nodes_lab, converged, name):
    host = nodes_lab.testinfra(name)
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.sysctl("net.bridge.bridge-nf-call-iptables") == 1
    assert host.sysctl("net.bridge.bridge-nf-call-ip6tables") == 1
    assert host.file("/etc/sysctl.d/90-kubeforge.conf").contains("net.ipv4.ip_forward=1")
    assert host.file("/proc/swaps").content_string.strip().count("\n") == 0   # header line only
    assert host.check_output("hostname") == name
    hosts = host.file("/etc/hosts").content_string
    for other in ALL:
        assert f"{nodes_lab.lab.host(other).ip} {other}" in hosts
    for pkg in ("python3-debian", "conntrack", "iptables", "socat", "chrony"):
        assert host.package(pkg).is_installed, pkg
    assert host.service("chrony").is_enabled
    # Every unit came up: nothing failed (kubelet waits for kubeadm, which is not a failure).
    assert host.check_output("systemctl is-system-running || true") == "running"


@pytest.mark.parametrize("name", ALL)
def test_modules_load_file_file_level_no_kernel_modules_in_test_hosts(nodes_lab, converged, name):
    """File level only: the test kernel cannot load modules (overlay, br_netfilter are built in)."""
    f = nodes_lab.testinfra(name).file("/etc/modules-load.d/kubeforge.conf")
    assert [ln for ln in f.content_string.splitlines() if not ln.startswith("#")] == ["overlay", "br_netfilter"]


@pytest.mark.parametrize("name", ALL)
def test_kubernetes_packages_pinned_held_and_configured_without_forming_a_cluster(nodes_lab, converged, name):
    """kubeadm init/join is off in the test inventory (no real control plane can run in these hosts)."""
    host = nodes_lab.testinfra(name)
    held = host.check_output("apt-mark showhold").split()
    for pkg in ("kubelet", "kubeadm", "kubectl"):
        assert host.package(pkg).version == K8S_PKG_VERSION
        assert pkg in held
    src = host.file("/etc/apt/sources.list.d/kubernetes.sources").content_string
    assert f"URIs: {nodes_lab.lab.proxy_url}/kubernetes/core:/stable:/v{standin.K8S_MINOR}/deb/" in src
    assert "Suites: /" in src
    assert "Signed-By: /etc/apt/keyrings/kubernetes.asc" in src
    assert host.file("/etc/apt/keyrings/kubernetes.asc").contains("BEGIN PGP PUBLIC KEY BLOCK")
    ip = nodes_lab.lab.host(name).ip
    assert host.file("/etc/default/kubelet").contains(f"KUBELET_EXTRA_ARGS=--node-ip={ip}")
    assert host.file("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").contains("/etc/default/kubelet")
    assert host.service("kubelet").is_enabled
    assert not host.file("/etc/kubernetes/admin.conf").exists


def test_kubeadm_config_is_valid_yaml_on_the_control_plane_only(nodes_lab, converged):
    cp = nodes_lab.testinfra("kf-cp1")
    docs = list(yaml.safe_load_all(cp.file("/etc/kubernetes/kubeadm-config.yaml").content_string))
    by_kind = {d["kind"]: d for d in docs if d}
    assert set(by_kind) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration",
                            "KubeProxyConfiguration"}
    cluster = by_kind["ClusterConfiguration"]
    assert cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cluster["kubernetesVersion"] == f"v{standin.K8S_VERSION}"
    assert cluster["controlPlaneEndpoint"] == f"{nodes_lab.lab.host('kf-cp1').ip}:6443"
    assert cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    assert by_kind["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert by_kind["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == nodes_lab.lab.host("kf-cp1").ip
    assert cp.file("/etc/kubernetes/kubeadm-config.yaml").mode == 0o600
    assert not nodes_lab.testinfra("kf-gpu1").file("/etc/kubernetes/kubeadm-config.yaml").exists


@pytest.mark.parametrize("name", GPU_WORKERS)
def test_stand_in_driver_and_toolkit_pinned_held_from_the_signed_repositories(nodes_lab, converged, name):
    host = nodes_lab.testinfra(name)
    held = host.check_output("apt-mark showhold").split()
    driver = f"nvidia-open-{standin.DRIVER_BRANCH}"
    assert host.package(driver).version == f"{standin.DRIVER_OLD}-1"
    assert driver in held
    for pkg in ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                "libnvidia-container1"):
        assert host.package(pkg).version == standin.TOOLKIT_VERSION
        assert pkg in held
    for name_, path in (("nvidia-cuda", standin.CUDA), ("nvidia-container-toolkit", standin.TOOLKIT)):
        src = host.file(f"/etc/apt/sources.list.d/{name_}.sources").content_string
        assert f"Signed-By: /etc/apt/keyrings/{name_}.asc" in src
        assert f"/{path}/" in src
    assert host.service("nvidia-persistenced").is_running   # the stand-in daemon, started by the role
    assert host.service("nvidia-persistenced").is_enabled
    assert "cdiVersion" in host.file("/etc/cdi/nvidia.yaml").content_string


@pytest.mark.parametrize("name", GPU_WORKERS)
def test_nouveau_blacklist_file_level_initramfs_not_rebuilt_in_containers(nodes_lab, converged, name):
    """File level: test hosts have no initramfs (nvidia_driver_rebuild_initramfs is false there)."""
    f = nodes_lab.testinfra(name).file("/etc/modprobe.d/blacklist-nouveau.conf")
    assert f.contains("^blacklist nouveau$") and f.contains("^options nouveau modeset=0$")


# --- validation ---------------------------------------------------------------------------------------

def test_validate_writes_a_passing_report_per_gpu_host_stand_in_nvidia_smi(nodes_lab, converged):
    """The real nodecheck.py on the host, reading a stand-in nvidia-smi that prints a real H100's output."""
    result = run_playbook(nodes_lab.inventory, "validate")
    assert result.ok, _failures(result)
    assert result.hosts["kf-cp1"].status == "not run"
    for name in GPU_WORKERS:
        report = json.loads((nodes_lab.artifacts / "validate" / f"{name}.json").read_text())
        assert report["ok"] is True and report["host"] == name
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["driver-version"]["actual"] == standin.DRIVER_OLD
        assert checks["gpu-model"]["actual"] == ["NVIDIA H100 80GB HBM3"]
        assert checks["cdi-spec"]["ok"] and checks["persistence-mode"]["ok"]


def test_failed_check_is_reported_per_host_with_exit_code_1(nodes_lab, converged):
    """Through the CLI: 8 GPUs expected, 1 present -> both GPU hosts fail by name, JSON on stdout, exit 1."""
    proc = subprocess.run([sys.executable, "-m", "kubeforge.cli", "nodes", "validate", "-i", str(nodes_lab.inventory),
                           "--json", "-e", "gpu_node_validate_expect_gpu_count=8"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    status = {h["host"]: h["status"] for h in out["hosts"]}
    assert status == {"kf-cp1": "not run", "kf-gpu1": "failed", "kf-gpu2": "failed"}
    failure = next(h["failure"] for h in out["hosts"] if h["host"] == "kf-gpu1")
    assert "gpu-count" in failure and "8 expected" in failure
    assert "validate failed on kf-gpu1, kf-gpu2" in proc.stderr
    report = json.loads((nodes_lab.artifacts / "validate" / "kf-gpu1.json").read_text())
    assert report["ok"] is False


def test_one_unreachable_host_is_named_and_does_not_hide_the_others(nodes_lab, converged, tmp_path):
    # An address on the test bridge where nothing listens.
    gone = str(nodes_lab.lab.subnet.broadcast_address - 2)
    inv = write_inventory(tmp_path / "inv", nodes_lab.lab, CONTROL_PLANE, GPU_WORKERS,
                          extra_hosts={"kf-gone": gone})
    result = run_playbook(inv, "validate")
    assert not result.ok
    assert result.hosts["kf-gone"].status == "unreachable"
    assert result.hosts["kf-gpu1"].status == "ok" and result.hosts["kf-gpu2"].status == "ok"
    assert (inv / "artifacts" / "validate" / "kf-gpu1.json").is_file()


def test_bad_variable_stops_the_run_before_any_host_is_touched(nodes_lab, converged):
    """ansible's own argument-spec check (playbooks/preflight.yml): a templated value passes kubeforge's
    inventory check (it cannot render templates) and is caught by the playbook's first, connection-less play."""
    result = run_playbook(nodes_lab.inventory, "site", extravars={"containerd_socket_timeout": "{{ 'soon' }}"})
    assert not result.ok
    assert any("containerd_socket_timeout" in m and "int" in m for m in result.bad_variables), result.bad_variables
    touched = [t for _, t in result.tasks_run if not t.startswith(("Validat", "Variables are valid"))]
    assert touched == [], f"tasks ran on hosts after a bad variable: {touched}"


# --- driver upgrade, then reset -----------------------------------------------------------------------

def test_upgrade_driver_one_node_at_a_time_stand_in_packages(nodes_lab, converged):
    """No cluster in test hosts, so drain/uncordon are skipped (kubernetes_form_cluster is false)."""
    before = {n: nodes_lab.testinfra(n).file("/etc/cdi/nvidia.yaml").mtime for n in GPU_WORKERS}
    order: list[str] = []
    result = run_playbook(nodes_lab.inventory, "upgrade-driver",
                          extravars={"nvidia_driver_version": standin.DRIVER_NEW},
                          on_event=lambda h, t, s: order.append(h) if s == "changed" else None)
    assert result.ok, _failures(result)
    # serial: 1 -> every event of the first node comes before any of the second.
    first = order[0]
    assert order == sorted(order, key=lambda h: h != first)
    for name in GPU_WORKERS:
        host = nodes_lab.testinfra(name)
        assert host.package(f"nvidia-open-{standin.DRIVER_BRANCH}").version == f"{standin.DRIVER_NEW}-1"
        assert f"nvidia-open-{standin.DRIVER_BRANCH}" in host.check_output("apt-mark showhold").split()
        assert host.file("/etc/cdi/nvidia.yaml").mtime > before[name]   # CDI spec regenerated
        report = json.loads((nodes_lab.artifacts / "validate" / f"{name}.json").read_text())
        assert {c["name"]: c["actual"] for c in report["checks"]}["driver-version"] == standin.DRIVER_NEW


def test_reset_returns_hosts_clean(nodes_lab, converged):
    proc = subprocess.run([sys.executable, "-m", "kubeforge.cli", "nodes", "reset", "-i", str(nodes_lab.inventory),
                           "--remove-gpu-stack", "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for name in ALL:
        host = nodes_lab.testinfra(name)
        for pkg in ("kubelet", "kubeadm", "kubectl", "cri-tools", "kubernetes-cni", "nvidia-open-580",
                    "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container1"):
            assert not host.package(pkg).is_installed, f"{name}: {pkg}"
        for path in ("/etc/kubernetes", "/var/lib/kubelet", "/etc/cni/net.d", "/etc/default/kubelet",
                     "/etc/apt/sources.list.d/kubernetes.sources", "/etc/apt/sources.list.d/nvidia-cuda.sources",
                     "/etc/apt/sources.list.d/nvidia-container-toolkit.sources", "/etc/cdi/nvidia.yaml"):
            assert not host.file(path).exists, f"{name}: {path}"
        rules = host.check_output("iptables -S").splitlines()
        assert all(r.startswith("-P ") for r in rules), rules
        assert host.check_output("apt-mark showhold").split() == ["containerd"]
        assert host.service("containerd").is_running   # the runtime stays; only the cluster is undone
        assert host.check_output("systemctl is-system-running || true") == "running"
