"""Fixtures of the render tests."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A render cache of this test module's own (KUBEFORGE_CACHE), so that its renders are cold once
    and warm after, whatever other modules rendered."""
    d = tmp_path_factory.mktemp("render-cache")
    old = os.environ.get("KUBEFORGE_CACHE")
    os.environ["KUBEFORGE_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("KUBEFORGE_CACHE")
    else:
        os.environ["KUBEFORGE_CACHE"] = old
