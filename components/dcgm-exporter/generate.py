"""DCGM exporter: upstream names no namespace and no node affinity; put its objects in the
component's namespace and its pods on GPU nodes only (elsewhere it finds no GPU and crash-loops)."""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.gpu import manifests


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    objs = manifests.set_namespace(copy.deepcopy(objects), next(iter(ctx.component.component.namespaces)))
    for o in objs:
        if o.get("kind") == "DaemonSet":
            manifests.gpu_nodes_only(o)
    return objs
