"""GPU Operator: the sharing ConfigMap its device plugin reads, the DCGM counters its exporter
reads when gpu-monitoring is on, and the chart values the profile implies. The Pulumi stack installs the chart (helm.v4.Chart) with `chart_values(ctx)`.

Time-slicing / MPS and the MIG strategy come from the profile (gpu.sharing, gpu.mig) exactly as
in host mode: the config document is the same (kubeforge.gpu.sharing); the operator finds it by
`devicePlugin.config.name` and uses the key `devicePlugin.config.default` on every node.
"""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.gpu import dcgm, sharing


def _sharing(ctx: Any) -> sharing.Settings:
    return sharing.settings(ctx.profile, {})


def generate(ctx: Any) -> list[dict]:
    s = _sharing(ctx)
    ns = next(iter(ctx.component.component.namespaces))
    out = []
    if s.strategy != "none":
        out.append(sharing.configmap(ns, sharing.config_text(sharing.plugin_config(s))))
    if ctx.enabled("gpu-monitoring"):
        # The operator's DCGM exporter reads these counters (chart_values below).
        out.append(dcgm.configmap(ns, dcgm.counters_csv(ctx.source_bytes("dcgm-default-counters").decode())))
    return out


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
    if ctx.enabled("gpu-monitoring"):
        implied = _merge(implied, dcgm.chart_values())
    return _merge(implied, ctx.values.get("chart") or {})
