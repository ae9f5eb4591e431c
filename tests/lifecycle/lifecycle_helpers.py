"""Helpers shared by the lifecycle tests (imported by name: tests/ has no packages)."""
from __future__ import annotations

import copy
from pathlib import Path

from apiserver_standin import ApiServerStandIn
from shipped_profiles import distinct

REPO = Path(__file__).resolve().parents[2]
PROFILES = distinct()   # one per distinct platform (tests/shipped_profiles.py)


class InMemoryCluster(ApiServerStandIn):
    """The API server stand-in (apiserver_standin.py) holding exactly these objects: no system
    namespaces, no admission at put(), and an apply that reports at once what running controllers
    would (for tests of what is sent, not of when)."""

    def __init__(self, objects):
        super().__init__(objects, system_namespaces=False)

    # -- apply (upgrade, apply): what an API server with running controllers reports ----------
    def apply(self, obj, namespace=None, **_kw):
        """Server-side apply: stored as given; CRDs come back Established and workloads rolled out
        at once, as their controllers would report them later."""
        o = copy.deepcopy(obj)
        if namespace and not o["metadata"].get("namespace"):
            o["metadata"]["namespace"] = namespace
        if o["kind"] == "CustomResourceDefinition":
            o["status"] = {"conditions": [{"type": "Established", "status": "True"},
                                          {"type": "NamesAccepted", "status": "True"}]}
        elif o["kind"] in ("Deployment", "StatefulSet"):
            n = (o.get("spec") or {}).get("replicas", 1)
            o["status"] = {"replicas": n, "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n}
        elif o["kind"] == "DaemonSet":
            o["status"] = {"desiredNumberScheduled": 1, "numberAvailable": 1, "updatedNumberScheduled": 1}
        self.applied.append(o)
        self.put(o)
        return copy.deepcopy(o)


def objects_of(rendered, component: str, kind: str) -> list[dict]:
    """Deep copies, so a test may edit them (the render cache stays untouched)."""
    return [copy.deepcopy(o) for o in rendered.components[component].objects if o["kind"] == kind]
