"""The test inventory for the lab hosts, shared by the fixtures, the tests and benchmarks/nodes.py."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import hostlab

HERE = Path(__file__).resolve().parent
GPU_FIXTURE = "h100-80gb-hbm3-ubuntu2404"
CONTROL_PLANE = ["kf-cp1"]
GPU_WORKERS = ["kf-gpu1", "kf-gpu2"]


@dataclass
class NodesLab:
    lab: hostlab.Lab
    inventory: Path          # folder: hosts.yml + group_vars/
    artifacts: Path

    @property
    def hosts_file(self) -> Path:
        return self.inventory / "hosts.yml"

    def testinfra(self, name: str):
        import testinfra

        return testinfra.get_host(f"ansible://{name}?ansible_inventory={self.hosts_file}")


def write_inventory(dest: Path, lab: hostlab.Lab, control_plane: list[str], gpu: list[str],
                    extra_hosts: dict[str, str] | None = None) -> Path:
    """The test inventory: tracked group_vars (pins) + generated hosts.yml (addresses, key, repo)."""
    import yaml

    shutil.copytree(HERE / "inventory", dest, dirs_exist_ok=True)
    addr = {h.name: h.ip for h in lab.hosts} | (extra_hosts or {})
    host = {n: {"ansible_host": ip, "ip": ip} for n, ip in addr.items()}
    gpu_all = gpu + [n for n in (extra_hosts or {}) if n not in gpu]
    doc = {"all": {
        "vars": {
            # Plain values (no templates): testinfra reads them through ansible-inventory unrendered.
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(lab.key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o ConnectTimeout=5",
            "kubeforge_test_repo": lab.proxy_url,
            "kubeforge_artifacts_dir": str(dest / "artifacts"),
        },
        "children": {
            "kube_control_plane": {"hosts": {n: host[n] for n in control_plane}},
            "kube_node": {"hosts": {n: host[n] for n in gpu_all}},
            "gpu_nodes": {"hosts": {n: None for n in gpu_all}},
            "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
        }}}
    (dest / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


