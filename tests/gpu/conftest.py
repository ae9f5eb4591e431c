"""The real H100 node output in ../shared/fixtures/gpu/ (see its README.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

H100 = "h100-80gb-hbm3-ubuntu2404"


@pytest.fixture(scope="session")
def h100(gpu_fixtures: Path) -> Path:
    d = gpu_fixtures / H100
    if not (d / "nvidia-smi-q.xml").is_file():
        pytest.fail(f"the real H100 fixtures are missing at {d}; set KUBEFORGE_SHARED")
    return d
