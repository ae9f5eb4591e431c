"""What the three cloud cluster programs (eks.py, gke.py, aks.py) share: reading the stack config,
the `kubeforge:cluster:<Cloud>` component, the exec-auth kubeconfig and the stack outputs that
stacks/platform and `kubeforge verify` read.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi

from kubeforge.errors import KubeforgeError
from kubeforge.pulumi import clusters

# Config values the engine hands over as text that must stay text ("1.34" is not a float).
_TEXT_KEYS = {"profile", "clusterName", "kubernetesVersion", "region", "project", "releaseChannel", "resourceGroup"}


def read_config(cloud: str) -> dict[str, Any]:
    """The stack's kubeforge:* config, objects/lists/booleans decoded as the stack file wrote them."""
    cfg = pulumi.Config("kubeforge")
    out: dict[str, Any] = {}
    for key in clusters.COMMON_KEYS + clusters.CLOUD_KEYS[cloud]:
        raw = cfg.get(key)
        if raw is None:
            continue
        if key in _TEXT_KEYS:
            out[key] = raw
        else:
            try:
                out[key] = json.loads(raw)
            except ValueError:
                out[key] = raw          # parse() names the field and what it must be
    return out


class ClusterComponent(pulumi.ComponentResource):
    """`kubeforge:cluster:EKS|GKE|AKS`: the parent of everything the cluster stack creates."""

    def __init__(self, cloud: str, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"kubeforge:cluster:{cloud.upper()}", name, None, opts)


def exec_kubeconfig(name: str, server: str, ca_data: str, command: str, args: list[str],
                    env: dict[str, str] | None = None, hint: str = "", cluster_info: bool = False) -> str:
    """A kubeconfig whose user runs `command` for a short-lived token (never a static credential)."""
    user: dict[str, Any] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command,
                                     "args": args, "interactiveMode": "Never", "provideClusterInfo": cluster_info}}
    if env:
        user["exec"]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if hint:
        user["exec"]["installHint"] = hint
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": name,
           "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
           "users": [{"name": name, "user": user}],
           "contexts": [{"name": name, "context": {"cluster": name, "user": name}}]}
    return json.dumps(doc, indent=2) + "\n"


def require_exec_auth(text: str, source: str) -> str:
    """Refuse a kubeconfig that carries a static credential (token, client key, password)."""
    import yaml

    doc = yaml.safe_load(text) or {}
    for u in doc.get("users") or []:
        user = u.get("user") or {}
        static = sorted(k for k in ("token", "client-key-data", "client-key", "password", "auth-provider") if k in user)
        if static or "exec" not in user:
            raise KubeforgeError(f"{source} returned a kubeconfig whose user {u.get('name')!r} has "
                                 f"{', '.join(static) or 'no exec plugin'}: a static credential would land in the state",
                                 fix="enable Entra ID (aadProfile.managed) with local accounts disabled, and ask for "
                                     "format=exec credentials")
    return text


def export(s: clusters.ClusterSettings, kubeconfig: pulumi.Output, node_groups: dict[str, Any],
           cluster_id: pulumi.Input[str], endpoint: pulumi.Input[str]) -> None:
    """Outputs every cluster stack has: the platform reads kubeconfig, gpuMode and kubernetesVersion."""
    pulumi.export("kubeconfig", pulumi.Output.secret(kubeconfig))
    pulumi.export("clusterName", s.cluster_name)
    pulumi.export("clusterId", cluster_id)
    pulumi.export("endpoint", endpoint)
    pulumi.export("kubernetesVersion", s.kubernetes_version)
    pulumi.export("gpuMode", s.gpu_mode)
    pulumi.export("gpuCapacity", s.capacity())
    pulumi.export("expectedGpus", s.expected_gpus())
    pulumi.export("nodeGroups", node_groups)


def run(cloud: str, deploy: Callable[[clusters.ClusterSettings], None]) -> None:
    """The program: settings checked first (one RunError naming file, field and fix), then deploy."""
    try:
        s = clusters.parse(cloud, read_config(cloud), file=f"Pulumi.{pulumi.get_stack()}.yaml")
    except KubeforgeError as exc:
        raise pulumi.RunError(exc.render()) from None
    for w in s.warnings:
        pulumi.log.warn(w)
    deploy(s)
