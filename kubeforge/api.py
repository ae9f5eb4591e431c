"""The façade the CLI, the Pulumi program and the lifecycle code use: profile -> plan -> render
-> validate, each a plain function over plain data."""
from __future__ import annotations

from typing import Any

from kubeforge.model import Plan, Rendered


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None):
    from kubeforge.profile import load_profile as _load

    return _load(name_or_path, overrides)


def plan(profile, release: str | None = None) -> Plan:
    from kubeforge.plan import make_plan

    return make_plan(profile, release=release)


def render(plan_or_profile, mirror: str | None = None, use_cache: bool = True,
           skip_helm: bool = False, secrets=None) -> Rendered:
    """secrets: the install's kubeforge.secrets.Store (default: the profile's secrets file)."""
    from kubeforge.render import render as _render

    p = plan_or_profile if isinstance(plan_or_profile, Plan) else plan(plan_or_profile)
    return _render(p, mirror=mirror, use_cache=use_cache, skip_helm=skip_helm, secrets=secrets)


def validate(rendered: Rendered):
    from kubeforge.validate import validate as _validate

    return _validate(rendered.objects(), rendered.plan.profile.kubernetesVersion)
