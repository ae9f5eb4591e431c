"""Fixtures of the lifecycle tests: real renders of the shipped profiles from the mirror."""
from __future__ import annotations

import pytest

from kubeforge import api
from kubeforge.lifecycle.rendered import render_available

_CACHE: dict[str, object] = {}


@pytest.fixture(scope="session")
def render_profile(mirror_dir):
    """render_profile(name) -> Rendered, rendered once per session from the real upstream mirror.
    Helm-chart components come back without objects when `helm` is missing (as in the CLI);
    their names are in rendered.unrendered."""
    def get(name: str):
        if name not in _CACHE:
            rendered, missing = render_available(api.plan(api.load_profile(name)), mirror=str(mirror_dir))
            rendered.unrendered = missing
            _CACHE[name] = rendered
        return _CACHE[name]
    return get


@pytest.fixture(scope="session")
def training(render_profile):
    return render_profile("training")
