"""Apply order of Kubernetes objects, and what a custom resource is: the one definition that
render, the Pulumi graph, upgrade, apply and teardown share (teardown walks the order backwards).
"""
from __future__ import annotations

from typing import Any

# The API groups Kubernetes itself serves, "" being core: the union over every minor whose schema
# kubernetes-validate bundles (1.25-1.37). Anything else is defined by a CRD (or an aggregated
# API), even under k8s.io: gateway.networking.k8s.io, snapshot.storage.k8s.io, cluster.x-k8s.io.
# tests/unit/test_ordering.py checks the list against those schemas and the kubernetes client.
BUILTIN_GROUPS = frozenset({
    "", "admission.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
    "apiregistration.k8s.io", "apps", "authentication.k8s.io", "authorization.k8s.io", "autoscaling",
    "batch", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "extensions", "flowcontrol.apiserver.k8s.io", "imagepolicy.k8s.io", "internal.apiserver.k8s.io",
    "lifecycle.k8s.io", "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io",
    "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
})

# Lower rank applies first. Namespaces and CRDs first so that everything namespaced and every
# custom resource has what it needs; webhook configurations after the workloads that serve them
# and before the custom resources they admit. Built-in kinds not listed rank with Services.
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
    "CronJob": 8,
    "HorizontalPodAutoscaler": 8,   # after the workloads they scale or protect
    "PodDisruptionBudget": 8,
    "APIService": 8,
    "MutatingWebhookConfiguration": 9,
    "ValidatingWebhookConfiguration": 9,
}
_BUILTIN_RANK = 6
CUSTOM_RANK = 10  # custom resources last: their CRDs and webhooks exist by then
# Objects in a namespace that a custom resource's controller creates at runtime (a Kubeflow
# Profile's namespace): after that custom resource.
IN_CREATED_NAMESPACE_RANK = 11

# A custom resource whose controller creates a namespace at runtime names it in this annotation
# (components/kubeflow-profiles: a Profile creates the namespace of its name). What kubeforge
# renders into that namespace is applied once it exists: render order, the stack graph's edge,
# kubeforge apply's phase and wait, and teardown's wait all read it here.
CREATES_NAMESPACE = "kubeforge.io/creates-namespace"

# The phases of one install wave (kubeforge apply, an upgrade's apply and its report). Inside a wave
# the order follows the object edges the Pulumi stack registers (kubeforge.pulumi.graph), so
# `kubeforge apply` waits where Pulumi waits:
#   crds              Namespaces and CRDs                                  -> CRDs Established
#   workloads         what needs nothing of its wave but those             -> workloads available
#   webhooks          webhook configurations and APIServices (after their backends)
#                                                                          -> caBundle + endpoints
#   custom-resources  what the stack orders after a controller, Service or webhook of its wave
#                                                                          -> created namespaces exist
#   in-created-namespaces  objects in the namespaces custom resources of the wave create
CRDS, WORKLOADS, WEBHOOKS, CUSTOM_RESOURCES = "crds", "workloads", "webhooks", "custom-resources"
IN_CREATED_NAMESPACES = "in-created-namespaces"
APPLY_PHASES = (CRDS, WORKLOADS, WEBHOOKS, CUSTOM_RESOURCES, IN_CREATED_NAMESPACES)
_FIRST_KINDS = ("Namespace", "CustomResourceDefinition")
_GATE_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService")
_SERVING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Service")


def api_group(obj: dict[str, Any]) -> str:
    api = obj.get("apiVersion") or ""
    return api.split("/", 1)[0] if "/" in api else ""


def is_custom(obj: dict[str, Any]) -> bool:
    """A custom resource: an object whose API group Kubernetes does not serve itself."""
    return api_group(obj) not in BUILTIN_GROUPS


def kind_rank(obj: dict[str, Any]) -> int:
    if is_custom(obj):   # before the kind table: Knative's Service is no core Service
        return CUSTOM_RANK
    return _KIND_RANK.get(obj.get("kind", ""), _BUILTIN_RANK)


def created_namespace(obj: dict[str, Any]) -> str | None:
    """The namespace this custom resource's controller creates at runtime (CREATES_NAMESPACE)."""
    if not is_custom(obj):
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(CREATES_NAMESPACE) or None


def apply_phase(obj: dict[str, Any], dep_kinds: list[str] | tuple[str, ...] | None = None,
                created: frozenset[str] | set[str] = frozenset()) -> str:
    """The phase of `obj` in its wave. dep_kinds: kinds of the objects of the same wave the stack's
    graph orders it after (edges to earlier waves are met by their wave's waits); None when the
    edges are unknown (no plan): then every custom resource waits for its wave's controllers.
    created: the namespaces custom resources of the same wave create (created_namespace)."""
    kind = obj.get("kind", "")
    if (obj.get("metadata") or {}).get("namespace") in created:
        return IN_CREATED_NAMESPACES
    if kind in _FIRST_KINDS and not is_custom(obj):
        return CRDS
    if kind in _GATE_KINDS and not is_custom(obj):
        return WEBHOOKS
    if dep_kinds is None:
        return CUSTOM_RESOURCES if is_custom(obj) else WORKLOADS
    if any(k in _SERVING_KINDS or k in _GATE_KINDS for k in dep_kinds):
        return CUSTOM_RESOURCES
    return WORKLOADS


Identity = tuple[str, str, str, str]   # (group, kind, namespace, name); the version does not count


def identity(obj: dict[str, Any]) -> Identity:
    md = obj.get("metadata") or {}
    return api_group(obj), obj.get("kind", ""), md.get("namespace") or "", md.get("name") or ""


def _issuer_ref(obj: dict[str, Any], ns: str) -> list[Identity]:
    ref = (obj.get("spec") or {}).get("issuerRef") or {}
    if not ref.get("name"):
        return []
    kind = ref.get("kind") or "Issuer"
    return [(ref.get("group") or "cert-manager.io", kind, "" if kind == "ClusterIssuer" else ns, ref["name"])]


def _istio_gateways(obj: dict[str, Any], ns: str) -> list[Identity]:
    out = []
    for gw in (obj.get("spec") or {}).get("gateways") or []:
        if isinstance(gw, str) and gw != "mesh":
            gns, _, name = gw.rpartition("/")
            out.append(("networking.istio.io", "Gateway", gns or ns, name))
    return out


# Known references per (group, kind) that name another object the referrer needs.
_KNOWN_REFS = {
    ("cert-manager.io", "Certificate"): _issuer_ref,
    ("cert-manager.io", "CertificateRequest"): _issuer_ref,
    ("networking.istio.io", "VirtualService"): _istio_gateways,
}


def references(obj: dict[str, Any]) -> list[Identity]:
    """Objects this one depends on: its owners (metadata.ownerReferences: same namespace, or
    cluster-scoped) and the known references of its kind (a Certificate's issuerRef, a
    VirtualService's gateways). A dependent is applied after, and deleted before, what it names."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace") or ""
    out = [(str(r.get("apiVersion") or "").rpartition("/")[0], r.get("kind", ""), ns, r.get("name", ""))
           for r in md.get("ownerReferences") or [] if isinstance(r, dict)]
    known = _KNOWN_REFS.get((api_group(obj), obj.get("kind", "")))
    return out + (known(obj, ns) if known else [])


def resolve(ref: Identity, present: dict[Identity, Any]) -> Any:
    """What `present` holds for a reference: in the referrer's namespace, else cluster-scoped."""
    hit = present.get(ref)
    return hit if hit is not None else present.get((ref[0], ref[1], "", ref[3]))


def sort_key(obj: dict[str, Any]) -> tuple:
    md = obj.get("metadata", {})
    return (kind_rank(obj), obj.get("kind", ""), md.get("namespace", ""), md.get("name", ""))


def _created_key(obj: dict[str, Any], created: set[str]) -> tuple:
    key = sort_key(obj)
    if created and (obj.get("metadata") or {}).get("namespace") in created and obj.get("kind") != "Namespace":
        return (IN_CREATED_NAMESPACE_RANK, *key[1:])
    return key


def apply_order(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable, deterministic apply order of a batch of objects: by rank, then kind and name, and
    among objects of one rank each after those it references (an Issuer before the Certificates
    that name it). Objects in a namespace that a custom resource of the batch creates come after
    every custom resource (created_namespace). A reference to a lower rank holds by rank; one to
    a higher rank is not followed."""
    created = {ns for o in objs if (ns := created_namespace(o))}
    ordered = sorted(objs, key=lambda o: _created_key(o, created))
    refs = {i: r for i, o in enumerate(ordered) if (r := references(o))}
    if not refs:
        return ordered
    index = {identity(o): i for i, o in enumerate(ordered)}
    deps: dict[int, list[int]] = {}
    for i, rs in refs.items():
        rank = _created_key(ordered[i], created)[0]
        deps[i] = [j for r in rs if (j := resolve(r, index)) is not None and j != i
                   and _created_key(ordered[j], created)[0] == rank]
    out: list[dict[str, Any]] = []
    seen: set[int] = set()

    def visit(i: int) -> None:
        if i in seen:          # done, or on the current path (a cycle keeps the sorted order)
            return
        seen.add(i)
        for j in deps.get(i, ()):
            visit(j)
        out.append(ordered[i])

    for i in range(len(ordered)):
        visit(i)
    return out
