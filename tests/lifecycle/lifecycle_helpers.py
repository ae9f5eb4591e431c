"""Helpers shared by the lifecycle tests (imported by name: tests/ has no packages)."""
from __future__ import annotations

import copy
from pathlib import Path

from shipped_profiles import distinct

REPO = Path(__file__).resolve().parents[2]
PROFILES = distinct()   # one per distinct platform (tests/shipped_profiles.py)


def objects_of(rendered, component: str, kind: str) -> list[dict]:
    """Deep copies, so a test may edit them (the render cache stays untouched)."""
    return [copy.deepcopy(o) for o in rendered.components[component].objects if o["kind"] == kind]
