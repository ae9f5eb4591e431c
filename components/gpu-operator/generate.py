"""GPU Operator: the sharing ConfigMap its device plugin reads, and the chart values the profile
implies. The Pulumi stack installs the chart (helm.v4.Chart) with `chart_values(ctx)`.

Time-slicing / MPS and the MIG strategy come from the profile (gpu.sharing, gpu.mig) exactly as
in host mode: the config document is the same (kubeforge.gpu.sharing); the operator finds it by
`devicePlugin.config.name` and uses the key `devicePlugin.config.default` on every node.
"""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.gpu import sharing


def _sharing(ctx: Any) -> sharing.Settings:
    return sharing.settings(ctx.profile, {})


def generate(ctx: Any) -> list[dict]:
    s = _sharing(ctx)
    if s.strategy == "none":
        return []
    ns = next(iter(ctx.component.component.namespaces))
    return [sharing.configmap(ns, sharing.config_text(sharing.plugin_config(s)))]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def chart_values(ctx: Any) -> dict[str, Any]:
    """Chart values: the profile's MIG strategy and sharing config, then the profile's own `chart`
    values over them (the user wins)."""
    s = _sharing(ctx)
    implied: dict[str, Any] = {"mig": {"strategy": s.mig_strategy}}
    if s.strategy != "none":
        implied["devicePlugin"] = {"config": {"name": sharing.CONFIGMAP_NAME, "create": False,
                                              "default": sharing.CONFIG_KEY}}
    return _merge(implied, ctx.values.get("chart") or {})
