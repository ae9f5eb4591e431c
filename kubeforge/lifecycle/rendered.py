"""The rendered objects verify/teardown/upgrade work from, even where a component cannot be
rendered here: a Helm-chart component (the GPU Operator) needs `helm` outside Pulumi. Such a
component gets no objects; its readiness comes from component.yaml `health`, and teardown finds
its objects on the cluster by the kubeforge.io/component label instead."""
from __future__ import annotations

import shutil
from typing import Any

from kubeforge.model import Plan, Rendered, RenderedComponent


def needs_helm(pc: Any) -> bool:
    from kubeforge.render import selected_sources

    return any(s.kind == "helm" for s in selected_sources(pc))


def render_available(plan: Plan, mirror: str | None = None) -> tuple[Rendered, list[str]]:
    """(Rendered with every planned component, names rendered without objects)."""
    from kubeforge import api

    missing = [] if shutil.which("helm") else [n for n, pc in plan.components.items() if needs_helm(pc)]
    if not missing:
        return api.render(plan, mirror=mirror), []
    sub = Plan(plan.profile, {n: pc for n, pc in plan.components.items() if n not in missing},
               [[n for n in w if n not in missing] for w in plan.waves], plan.warnings)
    sub.waves = [w for w in sub.waves if w]
    part = api.render(sub, mirror=mirror) if sub.components else None
    comps = {}
    for n, pc in plan.components.items():
        comps[n] = part.components[n] if n not in missing else \
            RenderedComponent(name=n, version=pc.version, wave=pc.wave, objects=[])
    return Rendered(plan=plan, components=comps), missing
