"""Apply order of Kubernetes objects: one ranking shared by render, Pulumi and teardown."""
from __future__ import annotations

from typing import Any

# Lower rank applies first (teardown uses the reverse). Namespaces and CRDs first so that
# everything namespaced and every custom resource has what it needs.
_KIND_RANK = {
    "Namespace": 0,
    "CustomResourceDefinition": 1,
    "PriorityClass": 2,
    "StorageClass": 2,
    "ServiceAccount": 3,
    "Secret": 3,
    "ConfigMap": 3,
    "ClusterRole": 4,
    "Role": 4,
    "ClusterRoleBinding": 5,
    "RoleBinding": 5,
    "Service": 6,
    "Deployment": 7,
    "StatefulSet": 7,
    "DaemonSet": 7,
    "Job": 8,
    "APIService": 8,
    "MutatingWebhookConfiguration": 9,
    "ValidatingWebhookConfiguration": 9,
}
_CUSTOM_RANK = 10  # custom resources last: their CRDs and webhooks exist by then


def is_builtin_kind(kind: str) -> bool:
    return kind in _KIND_RANK


def kind_rank(obj: dict[str, Any]) -> int:
    kind = obj.get("kind", "")
    if kind in _KIND_RANK:
        return _KIND_RANK[kind]
    api = obj.get("apiVersion", "")
    # Built-in API groups have no dot (apps/v1, v1, batch/v1) or end in k8s.io.
    group = api.split("/")[0] if "/" in api else ""
    if not group or group.endswith(".k8s.io"):
        return 6
    return _CUSTOM_RANK


def sort_key(obj: dict[str, Any]) -> tuple:
    md = obj.get("metadata", {})
    return (kind_rank(obj), obj.get("kind", ""), md.get("namespace", ""), md.get("name", ""))


def apply_order(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable, deterministic apply order of a batch of objects."""
    return sorted(objs, key=sort_key)


# -- the phases of one install wave (kubeforge apply, and the apply step of an upgrade) ---------
# Inside a wave the order follows the object edges the Pulumi stack registers
# (kubeforge.pulumi.graph.build_graph), so `kubeforge apply` waits exactly where Pulumi waits:
#   crds              Namespaces and CRDs                                  -> CRDs Established
#   workloads         what needs nothing of its wave but those             -> workloads available
#   webhooks          webhook configurations and APIServices (after their backends)
#                                                                          -> caBundle + endpoints
#   custom-resources  what the stack orders after a controller, Service or webhook of its wave
CRDS, WORKLOADS, WEBHOOKS, CUSTOM_RESOURCES = "crds", "workloads", "webhooks", "custom-resources"
APPLY_PHASES = (CRDS, WORKLOADS, WEBHOOKS, CUSTOM_RESOURCES)
_FIRST_KINDS = ("Namespace", "CustomResourceDefinition")
_GATE_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService")
_SERVING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Service")


def apply_phase(obj: dict[str, Any], dep_kinds: list[str] | tuple[str, ...] = ()) -> str:
    """The phase of `obj` in its wave; dep_kinds: kinds of the objects of the same wave that the
    stack's graph orders it after (edges to earlier waves are satisfied by the wave gates)."""
    kind = obj.get("kind", "")
    if kind in _FIRST_KINDS:
        return CRDS
    if kind in _GATE_KINDS:
        return WEBHOOKS
    if any(k in _SERVING_KINDS or k in _GATE_KINDS for k in dep_kinds):
        return CUSTOM_RESOURCES
    return WORKLOADS
