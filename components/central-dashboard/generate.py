"""The dashboard's menu links only what the profile installs: upstream's `centraldashboard-config`
links every Kubeflow app (a click on one that is not installed ends in a 404 behind the gateway),
so links to an app whose component is not in the plan are dropped. Links kubeforge cannot map to
a component stay as upstream wrote them."""
from __future__ import annotations

import json
from typing import Any

CONFIGMAP = "centraldashboard-config"
# The path prefix each app is served under (its VirtualService) -> the component that serves it.
APP_PATHS = {
    "/jupyter/": "notebooks",
    "/tensorboards/": "tensorboards",
    "/volumes/": "volumes",
    "/katib/": "katib",
    "/kserve-endpoints/": "kserve",
    "/pipeline/": "pipelines",
}
# Documentation links of kubeflow.org per component.
DOC_PATHS = {
    "/docs/components/pipelines/": "pipelines",
    "/docs/components/notebooks/": "notebooks",
    "/docs/components/training/": "training-operator",
    "/docs/components/katib/": "katib",
}


def component_of(link: str) -> str | None:
    for prefix, comp in APP_PATHS.items():
        if link.startswith(prefix):
            return comp
    for part, comp in DOC_PATHS.items():
        if link.startswith("https://www.kubeflow.org") and part in link:
            return comp
    return None


def _keep(item: dict, enabled: Any) -> dict | None:
    """The item if what it links is enabled; a section keeps its enabled items (and goes when none is)."""
    if "items" in item:
        items = [i for i in (_keep(x, enabled) for x in item["items"]) if i is not None]
        return {**item, "items": items} if items else None
    comp = component_of(str(item.get("link", "")))
    return item if comp is None or enabled(comp) else None


def links(text: str, enabled: Any) -> str:
    doc = json.loads(text)
    out = {k: [i for i in (_keep(x, enabled) for x in v) if i is not None] if isinstance(v, list) else v
           for k, v in doc.items()}
    return json.dumps(out, indent=4)


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    out = []
    for o in objects:
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == CONFIGMAP and "links" in (o.get("data") or {}):
            o = {**o, "data": {**o["data"], "links": links(o["data"]["links"], ctx.enabled)}}
        out.append(o)
    return out
