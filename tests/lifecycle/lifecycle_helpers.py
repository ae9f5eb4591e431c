"""Helpers shared by the lifecycle tests (imported by name: tests/ has no packages)."""
from __future__ import annotations

import copy
from pathlib import Path

from shipped_profiles import distinct

REPO = Path(__file__).resolve().parents[2]
PROFILES = distinct()   # one per distinct platform (tests/shipped_profiles.py)


class InMemoryCluster:
    """Stand-in for the API server: objects by identity, finalizers block deletion."""

    def __init__(self, objects):
        self.store = {}
        for o in objects:
            self.put(o)
        self.deleted: list[str] = []   # deletion requests, in order
        self.applied: list[dict] = []  # apply requests, in order

    @staticmethod
    def key(api, kind, name, ns):
        return (api, kind, ns or None, name)

    def put(self, o):
        o = copy.deepcopy(o)
        md = o["metadata"]
        md.setdefault("uid", f"uid-{o['kind']}-{md['name']}")
        self.store[self.key(o["apiVersion"], o["kind"], md["name"], md.get("namespace"))] = o

    def get(self, api, kind, name, namespace=None):
        o = self.store.get(self.key(api, kind, name, namespace))
        return copy.deepcopy(o) if o else None

    def list(self, api, kind, namespace=None, label_selector=None):
        want = dict(kv.split("=", 1) for kv in label_selector.split(",")) if label_selector else {}
        out = []
        for (a, k, ns, _), o in self.store.items():
            labels = o["metadata"].get("labels") or {}
            if a == api and k == kind and (namespace is None or ns == namespace) and \
                    all(labels.get(x) == v for x, v in want.items()):
                out.append(copy.deepcopy(o))
        return out

    def delete(self, api, kind, name, namespace=None, propagation="Background"):
        k = self.key(api, kind, name, namespace)
        if k not in self.store:
            return False
        self.deleted.append(f"{kind} {name}")
        o = self.store[k]
        o["metadata"]["deletionTimestamp"] = "now"
        self._settle(k)
        return True

    def _settle(self, k):
        o = self.store.get(k)
        if o is None or "deletionTimestamp" not in o["metadata"] or o["metadata"].get("finalizers"):
            return
        if o["kind"] == "Namespace":
            name = o["metadata"]["name"]
            inside = [kk for kk in self.store if kk[2] == name]
            for kk in inside:  # the namespace controller deletes what it holds
                self.store[kk]["metadata"]["deletionTimestamp"] = "now"
                self._settle(kk)
            if any(kk[2] == name for kk in self.store):
                return
        del self.store[k]

    def patch(self, api, kind, name, namespace, body):
        k = self.key(api, kind, name, namespace)
        if k not in self.store:
            return None
        if body.get("metadata", {}).get("finalizers", "keep") is None:
            self.store[k]["metadata"].pop("finalizers", None)
        self._settle(k)
        for kk in list(self.store):  # a namespace may now finish
            if kk[1] == "Namespace":
                self._settle(kk)
        return self.get(api, kind, name, namespace)

    def served_kinds(self):
        return sorted({(a, k, ns is not None) for (a, k, ns, _) in self.store})

    def finalize_namespace(self, name):
        self._settle(("v1", "Namespace", None, name))

    # -- apply (upgrade, apply): what an API server with running controllers reports ----------
    def apply(self, obj, namespace=None):
        """Server-side apply: stored as given; CRDs come back Established and workloads rolled out,
        as their controllers would report them (this stand-in has no controllers)."""
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

    def forget(self, api_version, kind):
        pass



def objects_of(rendered, component: str, kind: str) -> list[dict]:
    """Deep copies, so a test may edit them (the render cache stays untouched)."""
    return [copy.deepcopy(o) for o in rendered.components[component].objects if o["kind"] == kind]
