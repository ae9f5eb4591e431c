"""DCGM exporter: upstream names no namespace and no node affinity; put its objects in the
component's namespace and its pods on GPU nodes only (elsewhere it finds no GPU and crash-loops).
With gpu-monitoring enabled the exporter reads kubeforge's counters (kubeforge.gpu.dcgm): the
ConfigMap is this component's, so it exists before the DaemonSet's pods start."""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.gpu import dcgm, manifests


def _namespace(ctx: Any) -> str:
    return next(iter(ctx.component.component.namespaces))


def generate(ctx: Any) -> list[dict]:
    if not ctx.enabled("gpu-monitoring"):
        return []
    return [dcgm.configmap(_namespace(ctx), dcgm.counters_csv(ctx.source_bytes("default-counters").decode()))]


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    objs = manifests.set_namespace(copy.deepcopy(objects), _namespace(ctx))
    for o in objs:
        if o.get("kind") == "DaemonSet":
            manifests.gpu_nodes_only(o)
            if ctx.enabled("gpu-monitoring"):
                dcgm.mount_counters(o)
    return objs
