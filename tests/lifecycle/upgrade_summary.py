"""A stable, reviewable summary of the real upgrade report from kubeflow/manifests v1.11.0 to
today's 26.03 tuple, per profile (dev, full), rendered from the real trees of both releases.

The summaries are checked in under tests/lifecycle/upgrades/<release>-<profile>.json;
test_upgrade_release.py compares the report of the code with them, so a change to a pin, a gate or
the analysis shows up in review. Regenerate after an intended change with

    .venv/bin/python tests/lifecycle/upgrade_summary.py --write        # all profiles
    .venv/bin/python tests/lifecycle/upgrade_summary.py --write dev    # one
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUMMARIES = HERE / "upgrades"
RELEASE = "v1.11.0"
PROFILES = ("dev", "full")


def report(profile: str, mirror: Path, accept: tuple[str, ...] = ()):
    """The real analysis: the profile at RELEASE against the profile today."""
    from kubeforge import api
    from kubeforge.lifecycle import upgrade as up

    old = up.load_from(RELEASE, mirror=str(mirror), profile=profile)
    new = up.side_from_rendered(api.render(api.plan(api.load_profile(profile)), mirror=str(mirror)),
                                f"profile {profile}")
    return up.analyze(old, new, accept=accept, known=up.known_releases(), mirror_refs=up.mirror_refs(str(mirror)))


def _crd(ch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ch.new:
        out["new"] = ch.versions_added
    if ch.removed:
        out["removed"] = True
    if not ch.new and (ch.versions_added or ch.versions_removed):
        out["versions"] = {"added": ch.versions_added, "removed": ch.versions_removed}
    if not ch.new and ch.served[0] != ch.served[1]:
        out["served"] = list(ch.served)
    if not ch.new and ch.storage[0] != ch.storage[1]:
        out["storage"] = list(ch.storage)
    if ch.schema_changed:
        out["schema"] = {v: {"fieldsAdded": len(ch.fields_added.get(v, [])), "fieldsRemoved": ch.fields_removed.get(v, [])}
                         for v in ch.schema_changed}
    if ch.spec_changed:
        out["spec"] = ch.spec_changed
    return out


def summarize(result) -> dict[str, Any]:
    return {
        "from": result.old, "to": result.new, "ok": result.ok,
        "components": {c.name: {"from": c.old_version, "to": c.new_version, "change": c.change,
                                "objects": c.objects, "crds": {ch.crd: _crd(ch) for ch in c.crds},
                                "read": c.notes} for c in result.components},
        "tuple": result.tuples,
        "blockers": [{"component": b.component, "reason": b.reason, "fix": b.fix} for b in result.blockers],
        "warnings": result.warnings,
        "order": [[s["wave"], s["phase"], s["components"], s["objects"]] for s in result.order],
        "prune": [[p["component"], p["object"]] for p in result.prune],
    }


def path_of(profile: str) -> Path:
    return SUMMARIES / f"{RELEASE}-{profile}.json"


def dumps(summary: dict) -> str:
    return json.dumps(summary, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import MIRROR

    write = "--write" in argv
    profiles = [a for a in argv if not a.startswith("-")] or list(PROFILES)
    for profile in profiles:
        text = dumps(summarize(report(profile, MIRROR)))
        if write:
            SUMMARIES.mkdir(exist_ok=True)
            path_of(profile).write_text(text)
            print(f"wrote {path_of(profile).relative_to(REPO)}")
        else:
            print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
