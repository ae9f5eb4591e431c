"""The shipped profiles, and one representative of each set of profiles that resolve to the same
platform (same target and components; only name and description differ), so that tests running
per profile do not render, plan or run the same platform twice. Imported by name (tests/ is on
sys.path through tests/conftest.py)."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))


@cache
def representatives() -> dict[str, str]:
    """profile -> the shipped profile that stands in for it (itself unless an earlier one, in
    sorted order, resolves to the same platform)."""
    from kubeforge.profile import load_profile

    first: dict[str, str] = {}
    out = {}
    for name in SHIPPED:
        key = json.dumps(load_profile(name).model_dump(mode="json", exclude={"name", "description", "files"}),
                         sort_keys=True)
        out[name] = first.setdefault(key, name)
    return out


def distinct() -> list[str]:
    return sorted({r for r in representatives().values()})
