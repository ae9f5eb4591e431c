"""The rendered objects verify/teardown/upgrade work from, even where a component cannot be
rendered here: a Helm-chart component (the GPU Operator) needs `helm` outside Pulumi. Such a
component keeps only its generated objects; its readiness comes from component.yaml `health`,
and teardown finds the chart's objects on the cluster by the kubeforge.io/component label."""
from __future__ import annotations

import shutil
from typing import Any

from kubeforge.model import Plan, Rendered


def needs_helm(pc: Any) -> bool:
    from kubeforge.render import selected_sources

    return any(s.kind == "helm" for s in selected_sources(pc))


def render_available(plan: Plan, mirror: str | None = None) -> tuple[Rendered, list[str]]:
    """(Rendered with every planned component, names rendered without their Helm charts: also
    in Rendered.unrendered)."""
    from kubeforge import api

    missing = [] if shutil.which("helm") else [n for n, pc in plan.components.items() if needs_helm(pc)]
    rendered = api.render(plan, mirror=mirror, skip_helm=bool(missing))
    return rendered, rendered.unrendered
