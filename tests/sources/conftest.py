"""A private cache per test; no mirror from the environment leaks in."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("KUBEFORGE_CACHE", str(root))
    monkeypatch.delenv("KUBEFORGE_MIRROR", raising=False)
    return root
