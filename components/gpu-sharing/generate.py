"""The device plugin's config ConfigMap from the profile (time-slicing / MPS replicas, MIG strategy),
checked against the card's MIG profiles when the values name them. The device plugin's transform
mounts it; both take names and content from kubeforge.gpu.sharing."""
from __future__ import annotations

from typing import Any

from kubeforge.gpu import sharing


def generate(ctx: Any) -> list[dict]:
    s = sharing.settings(ctx.profile, ctx.values)
    return [sharing.configmap(sharing.plugin_namespace(ctx), sharing.config_text(sharing.plugin_config(s)))]
