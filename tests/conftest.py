"""Shared fixtures: where the repository, the shared mirror and the GPU fixtures are."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared sits beside the checkout (development workspace and CI alike).
SHARED = Path(os.environ.get("KUBEFORGE_SHARED", REPO.parent / "shared"))
MIRROR = Path(os.environ.get("KUBEFORGE_TEST_MIRROR", SHARED / "mirror"))
GPU_FIXTURES = SHARED / "fixtures" / "gpu"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    if not (MIRROR / "github").is_dir():
        pytest.fail(f"the upstream mirror is missing at {MIRROR}; set KUBEFORGE_TEST_MIRROR")
    return MIRROR


@pytest.fixture(scope="session")
def gpu_fixtures() -> Path:
    return GPU_FIXTURES
