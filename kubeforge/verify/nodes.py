"""Node checks over an Ansible inventory, through testinfra (`kubeforge verify --inventory`).

The same facts the node roles' validation asserts, seen from the outside on each host: the
container runtime and kubelet run, swap is off, and on GPU hosts the driver answers, containerd
knows the nvidia runtime and the CDI spec exists.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.verify.checks import NODE, Check

GPU_GROUP = "gpu_nodes"
CONTAINERD_CONFIGS = ("/etc/containerd/config.toml", "/etc/containerd/conf.d/99-nvidia.toml")


def _ansible_on_path() -> None:
    """testinfra runs ansible's command-line tools; in a venv they sit beside its python, which
    is not on PATH when kubeforge is called as .venv/bin/kubeforge."""
    if shutil.which("ansible-inventory"):
        return
    bindir = str(Path(sys.executable).parent)
    if (Path(bindir) / "ansible-inventory").exists():
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def inventory_hosts(inventory: str) -> tuple[list[str], set[str]]:
    """(all hosts, GPU hosts) from the inventory (ansible-inventory; nothing connects)."""
    from testinfra.utils.ansible_runner import AnsibleRunner

    _ansible_on_path()

    try:
        runner = AnsibleRunner(inventory)
        hosts = sorted(runner.get_hosts("all"))
        gpu = set(runner.get_hosts(GPU_GROUP)) if GPU_GROUP in runner.inventory else set()
    except Exception as exc:
        raise KubeforgeError(f"cannot read the inventory: {exc}", file=inventory, field="--inventory",
                             fix="check it with ansible-inventory -i INVENTORY --list") from None
    if not hosts:
        raise KubeforgeError("the inventory lists no hosts", file=inventory, field="all",
                             fix="add hosts under kube_control_plane / kube_node")
    return hosts, gpu


def host_problems(host: Any, gpu: bool) -> list[str]:
    """What is wrong on one testinfra host."""
    out = []
    for svc in ("containerd", "kubelet"):
        if not host.service(svc).is_running:
            out.append(f"{svc} is not running")
    swaps = host.file("/proc/swaps").content_string.strip().splitlines()[1:]
    if swaps:
        out.append(f"swap is on ({len(swaps)} device(s)); kubelet needs it off")
    if gpu:
        smi = host.run("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader")
        if smi.rc != 0 or not smi.stdout.strip():
            out.append(f"nvidia-smi failed (rc {smi.rc}): {(smi.stderr or smi.stdout).strip()[:200]}")
        if not any(host.file(p).exists and "nvidia" in host.file(p).content_string for p in CONTAINERD_CONFIGS):
            out.append("containerd has no nvidia runtime configured (" + ", ".join(CONTAINERD_CONFIGS) + ")")
        if not (host.file("/etc/cdi/nvidia.yaml").exists or host.file("/var/run/cdi/nvidia.yaml").exists):
            out.append("no CDI spec (/etc/cdi/nvidia.yaml): nvidia-ctk cdi generate was not run")
    return out


def derive(inventory: str, plan: Any) -> list[Check]:
    hosts, gpu_hosts = inventory_hosts(inventory)

    def make(name: str) -> Any:
        def run(ctx: Any) -> str:
            import testinfra

            host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
            problems = host_problems(host, name in gpu_hosts)
            if problems:
                ctx.fail(f"{name}: " + "; ".join(problems))
            return "gpu node ok" if name in gpu_hosts else "node ok"
        return run

    return [Check(name=f"nodes/{h}", component="nodes", kind=NODE, fn=make(h), timeout=120,
                  description="runtime, kubelet, swap" + (", driver, nvidia runtime, CDI" if h in gpu_hosts else ""))
            for h in hosts]
