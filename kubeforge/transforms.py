"""Render transforms: pure functions over lists of plain Kubernetes objects (dicts).

render() calls them per component in this order: ensure_namespaces, common_labels,
rewrite_registry (when the profile names a registry), gpu_scheduling (GPU components only).
None of them modifies its input: changed objects are new dicts, unchanged ones are passed through
(so treat rendered objects as immutable, or copy before editing them in place). Output depends only
on the arguments, so renders are byte-identical.
"""
from __future__ import annotations

import re

from kubeforge.errors import KubeforgeError
from kubeforge.images import list_images, rewrite_registry, validate_registry
from kubeforge.model import LABEL_COMPONENT, LABEL_PART_OF, LABEL_VERSION, PART_OF

__all__ = ["ensure_namespaces", "common_labels", "validate_registry", "rewrite_registry", "list_images",
           "gpu_scheduling", "PSA_LEVELS"]

# Pod Security Standards, least to most strict.
PSA_LEVELS = ("privileged", "baseline", "restricted")
_PSA = "pod-security.kubernetes.io/"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def _psa_labels(level: str) -> dict[str, str]:
    # enforce: the component's level. audit: always restricted, so the API server's audit log shows
    # what keeps a namespace from restricted without bothering anyone. warn: the enforced level,
    # not restricted: warn=restricted would print a warning for every upstream controller in
    # baseline/privileged namespaces on every `pulumi up`/`kubectl apply`, noise users cannot act on.
    return {_PSA + "enforce": level, _PSA + "audit": "restricted", _PSA + "warn": level}


def ensure_namespaces(objs: list[dict], namespaces: dict[str, str], *, file: str | None = None) -> list[dict]:
    """Every namespace the component owns exists and carries Pod Security labels.

    `namespaces`: name -> privileged | baseline | restricted (component.yaml `namespaces`).
    Namespace objects already in `objs` keep their position and their other labels (e.g.
    istio-injection); missing ones are created, sorted by name, before all other objects.
    Namespaces in `objs` that the component does not declare are left alone.
    The declared level may not be weaker than an enforce level the upstream Namespace sets:
    kubeforge never silently loosens upstream Pod Security.
    """
    for name, level in namespaces.items():
        if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
            raise KubeforgeError(f"{name!r} is not a valid namespace name", file=file,
                                 field="namespaces", fix="use a DNS label: lower-case letters, digits and '-'")
        if level not in PSA_LEVELS:
            raise KubeforgeError(f"unknown Pod Security level {level!r} for namespace {name}", file=file,
                                 field=f"namespaces.{name}", fix=f"use one of: {', '.join(PSA_LEVELS)}")
    out, present = [], set()
    for obj in objs:
        name = (obj.get("metadata") or {}).get("name")
        if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1" and name in namespaces:
            level = namespaces[name]
            labels = (obj["metadata"].get("labels") or {})
            upstream = labels.get(_PSA + "enforce")
            if upstream in PSA_LEVELS and PSA_LEVELS.index(upstream) > PSA_LEVELS.index(level):
                raise KubeforgeError(
                    f"namespace {name} is declared {level}, but upstream enforces {upstream}",
                    file=file, field=f"namespaces.{name}",
                    fix=f"declare it at least as strict as upstream: namespaces: {{{name}: {upstream}}}")
            obj = {**obj, "metadata": {**obj["metadata"], "labels": {**labels, **_psa_labels(level)}}}
            present.add(name)
        out.append(obj)
    created = [{"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": _psa_labels(namespaces[name])}}
               for name in sorted(namespaces) if name not in present]
    return created + out


def common_labels(objs: list[dict], component: str, version: str, *, file: str | None = None) -> list[dict]:
    """Label every object part-of=kubeforge, component and component version (metadata.labels only).

    Selectors and pod-template labels are deliberately left alone: Deployment/DaemonSet/StatefulSet
    selectors are immutable, so a label added there turns the next upgrade into an apply error (or a
    delete/recreate), and Service/NetworkPolicy selectors would stop matching pods of the previous
    version mid-rollout. Upstream `app.kubernetes.io/part-of` values (e.g. istio) are replaced:
    Pulumi, teardown and verify find kubeforge's objects by it.
    """
    for field, value in (("name", component), ("version", version)):
        if not isinstance(value, str) or not value or not _LABEL_VALUE.fullmatch(value) or len(value) > 63:
            raise KubeforgeError(f"{value!r} cannot be a label value", file=file, field=field,
                                 fix="at most 63 letters, digits, '-', '_' or '.', starting and ending "
                                     "with a letter or digit")
    ours = {LABEL_PART_OF: PART_OF, LABEL_COMPONENT: component, LABEL_VERSION: version}
    out = []
    for obj in objs:
        md = obj.get("metadata") or {}
        out.append({**obj, "metadata": {**md, "labels": {**(md.get("labels") or {}), **ours}}})
    return out


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_EFFECTS = {"", "NoSchedule", "PreferNoSchedule", "NoExecute"}


def _check_scheduling(tolerations, node_selector, file) -> None:
    fix = "tolerations are {key, operator: Exists|Equal, value, effect: NoSchedule|PreferNoSchedule|NoExecute}"
    if not isinstance(tolerations, list):
        raise KubeforgeError("tolerations must be a list", file=file, field="gpu.tolerations", fix=fix)
    for i, t in enumerate(tolerations):
        bad = (not isinstance(t, dict) or not t or set(t) - _TOLERATION_KEYS
               or t.get("operator", "Equal") not in ("Exists", "Equal")
               or t.get("effect", "") not in _EFFECTS
               or (t.get("operator") == "Exists" and t.get("value"))
               or any(not isinstance(t.get(k, ""), str) for k in ("key", "operator", "value", "effect")))
        if bad:
            raise KubeforgeError(f"invalid toleration {t!r}", file=file, field=f"gpu.tolerations[{i}]", fix=fix)
    if not isinstance(node_selector, dict) or any(
            not isinstance(k, str) or not k or not isinstance(v, str) or not _LABEL_VALUE.fullmatch(v)
            for k, v in node_selector.items()):
        raise KubeforgeError(f"invalid node selector {node_selector!r}", file=file, field="gpu.nodeSelector",
                             fix="a map of node label keys to label values (strings), e.g. "
                                 "{nvidia.com/gpu.present: \"true\"}")


def gpu_scheduling(objs: list[dict], tolerations: list[dict], node_selector: dict[str, str], *,
                   file: str | None = None) -> list[dict]:
    """Add the profile's GPU tolerations (each once) and node selector to every DaemonSet's pods.

    Called for GPU components only (device plugin, GFD, DCGM exporter). Pod templates, not
    selectors, change; the profile's node selector wins over an upstream one with the same key.
    """
    _check_scheduling(tolerations, node_selector, file)
    out = []
    for obj in objs:
        if obj.get("kind") == "DaemonSet" and isinstance((obj.get("spec") or {}).get("template"), dict):
            spec = obj["spec"]
            pod = dict(spec["template"].get("spec") or {})
            have = list(pod.get("tolerations") or [])
            extra = [t for i, t in enumerate(tolerations) if t not in have and t not in tolerations[:i]]
            if extra:
                pod = {**pod, "tolerations": have + extra}
            if node_selector:
                pod["nodeSelector"] = {**(pod.get("nodeSelector") or {}), **node_selector}
            obj = {**obj, "spec": {**spec, "template": {**spec["template"], "spec": pod}}}
        out.append(obj)
    return out
