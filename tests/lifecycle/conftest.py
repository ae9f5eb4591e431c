"""Fixtures of the lifecycle tests (render_profile, the real renders, is in tests/conftest.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def training(render_profile):
    return render_profile("training")
