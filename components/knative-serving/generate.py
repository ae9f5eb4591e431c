"""Knative Serving 1.21 exports no metrics unless config-observability sets `metrics-protocol`
(the default is none). When platform-monitors scrapes it, serve Prometheus metrics on the
components' http-metrics port (9090)."""
from __future__ import annotations

import copy
from typing import Any


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    if not ctx.enabled("platform-monitors"):
        return objects
    out = []
    for o in objects:
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == "config-observability":
            o = copy.deepcopy(o)
            o.setdefault("data", {})["metrics-protocol"] = "prometheus"
        out.append(o)
    return out
