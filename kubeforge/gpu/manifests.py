"""Small edits of upstream GPU manifests (plain dicts), shared by the GPU components' generate.py.

Each function returns new objects or edits a deep copy the caller made; none reaches outside the
object it is given.
"""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.errors import KubeforgeError

# Kinds the GPU manifests carry that live in a namespace (others here are cluster-scoped).
NAMESPACED = {"DaemonSet", "Deployment", "Service", "ServiceAccount", "ConfigMap", "Role", "RoleBinding",
              "ServiceMonitor", "Secret"}


# Nodes with an NVIDIA GPU, as upstream's GFD DaemonSet (and the helm chart's default affinity for
# the plugin) finds them: NFD's PCI vendor label, NFD's Tegra CPU label, or nvidia.com/gpu.present
# set by hand (kubeforge ships no NFD, so GPU nodes need that label). A test keeps this equal to
# the pinned GFD manifest.
GPU_NODE_AFFINITY: dict[str, Any] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [
        {"matchExpressions": [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In",
                               "values": ["true"]}]},
        {"matchExpressions": [{"key": "feature.node.kubernetes.io/cpu-model.vendor_id", "operator": "In",
                               "values": ["NVIDIA"]}]},
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]},
    ]}}}


def gpu_nodes_only(ds: dict[str, Any]) -> None:
    """Keep a DaemonSet off nodes without a GPU, where the plugin or exporter would crash-loop
    (the static manifests of the plugin and the exporter have no affinity)."""
    pod = ds["spec"]["template"]["spec"]
    if not pod.get("affinity"):
        pod["affinity"] = copy.deepcopy(GPU_NODE_AFFINITY)


def set_namespace(objs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Namespaced objects go to `namespace` (upstream puts them in kube-system or nowhere)."""
    out = []
    for o in objs:
        if o.get("kind") in NAMESPACED:
            o = {**o, "metadata": {**o.get("metadata", {}), "namespace": namespace}}
        out.append(o)
    return out


def find(objs: list[dict[str, Any]], kind: str, name: str, component: str) -> dict[str, Any]:
    for o in objs:
        if o.get("kind") == kind and o.get("metadata", {}).get("name") == name:
            return o
    raise KubeforgeError(f"upstream manifests have no {kind} {name}", file=f"components/{component}/component.yaml",
                         field="sources", fix="the pinned upstream files changed shape: update generate.py")


def container(ds: dict[str, Any], name: str) -> dict[str, Any]:
    for c in ds["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise KubeforgeError(f"DaemonSet {ds['metadata']['name']} has no container {name}",
                         fix="the pinned upstream files changed shape: update generate.py")


def set_env(c: dict[str, Any], name: str, value: str) -> None:
    env = [e for e in (c.get("env") or []) if e.get("name") != name]
    env.append({"name": name, "value": value})
    c["env"] = env


def add_volume(ds: dict[str, Any], volume: dict[str, Any]) -> None:
    pod = ds["spec"]["template"]["spec"]
    pod["volumes"] = [v for v in (pod.get("volumes") or []) if v["name"] != volume["name"]] + [volume]


def add_mount(c: dict[str, Any], name: str, path: str, read_only: bool = False) -> None:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    c["volumeMounts"] = [m for m in (c.get("volumeMounts") or []) if m["name"] != name] + [mount]


def annotate_pods(ds: dict[str, Any], key: str, value: str) -> None:
    md = ds["spec"]["template"].setdefault("metadata", {})
    md["annotations"] = {**(md.get("annotations") or {}), key: value}
