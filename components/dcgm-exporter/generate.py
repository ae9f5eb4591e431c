"""DCGM exporter: upstream names no namespace; put its objects in the component's own."""
from __future__ import annotations

from typing import Any

from kubeforge.gpu import manifests


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    return manifests.set_namespace(objects, next(iter(ctx.component.component.namespaces)))
