"""An in-process stand-in for the Kubernetes API server with field management, for the upgrade and
adoption tests (the cluster is the boundary this machine cannot reach). Separate from the teardown
tests' InMemoryCluster on purpose: it models what adoption relies on and says where it simplifies.

What it models, after the API server's documented behaviour
(https://kubernetes.io/docs/reference/using-api/server-side-apply/):
- managedFields in the FieldsV1 format ("f:<field>", 'k:{"name":...}' for list items keyed by
  name, "." for an item itself), one entry per manager and operation;
- `kubectl apply` (client-side): the object plus the last-applied-configuration annotation,
  managed by `kubectl-client-side-apply` with operation Update;
- server-side apply (`kubectl apply --server-side --force-conflicts`, kubeforge's apply): the
  applier owns what it sent; with force, fields whose value another manager set differently move
  to it; a field it owned before and no longer sends is removed unless another manager owns it;
- merge patches (RFC 7386), a patch that carries managedFields replaces them as sent, and one that
  carries metadata.resourceVersion fails with a conflict when the object moved on;
- immutable workload selectors; CRDs: a version in status.storedVersions cannot leave
  spec.versions, the storage version joins storedVersions; custom resources are served only while
  their CRD serves their version;
- controllers, as far as the gates look: a CRD becomes Established, a workload available, a
  webhook configuration gets its caBundle, a Service's EndpointSlice lists a ready endpoint.

Simplifications, named: lists of maps are keyed by `name` when every item has one, other lists are
atomic (the real server keys some by other fields, e.g. containerPort); no defaulting, no
validation against schemas, no admission webhooks.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from kubeforge.errors import KubeforgeError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
ANNOTATIONS_LIMIT = 262144     # total size of an object's annotations the API server accepts
_IDENTITY = {"apiVersion", "kind"}
_META_IDENTITY = {"name", "namespace", "managedFields", "resourceVersion", "uid", "generation",
                  "creationTimestamp"}


class ApiError(Exception):
    """What the API server answers with a 4xx."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


# -- field sets -------------------------------------------------------------------------------
def _keyed(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(x, dict) and "name" in x for x in items)


def _item_key(item: dict) -> str:
    return "k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))


def fieldset(value: Any, top: bool = True) -> dict:
    """The FieldsV1 trie of what an applied configuration sets."""
    out: dict = {}
    if not isinstance(value, dict):
        return out
    for k, v in value.items():
        if top and (k in _IDENTITY or k == "status"):
            continue
        if top and k == "metadata":
            md = {kk: vv for kk, vv in v.items() if kk not in _META_IDENTITY}
            if md:
                out["f:metadata"] = fieldset(md, top=False)
            continue
        if isinstance(v, dict):
            out[f"f:{k}"] = fieldset(v, top=False)
        elif _keyed(v):
            out[f"f:{k}"] = {_item_key(x): {".": {}, **fieldset(x, top=False)} for x in v}
        else:
            out[f"f:{k}"] = {}
    return out


def paths(trie: dict, prefix: tuple = ()) -> set[tuple]:
    out = set()
    for k, v in trie.items():
        if k == ".":
            continue
        out.add(prefix + (k,))
        out |= paths(v, prefix + (k,))
    return out


def leaves(trie: dict, prefix: tuple = ()) -> set[tuple]:
    """Paths of the nodes with no field below them (a value, or an item or map set whole)."""
    out = set()
    for k, v in trie.items():
        if k == ".":
            continue
        below = leaves(v, prefix + (k,))
        out |= below or {prefix + (k,)}
    return out


def _trie_of(ps: set[tuple]) -> dict:
    out: dict = {}
    for p in sorted(ps):
        node = out
        for k in p:
            node = node.setdefault(k, {})
            if k.startswith("k:"):
                node.setdefault(".", {})
    return out


def _step(node: Any, key: str) -> Any:
    if node is None:
        return None
    if key.startswith("f:"):
        return node.get(key[2:]) if isinstance(node, dict) else None
    name = json.loads(key[2:])["name"]
    return next((x for x in node if isinstance(x, dict) and x.get("name") == name), None) \
        if isinstance(node, list) else None


def value_at(obj: dict, path: tuple) -> Any:
    node: Any = obj
    for k in path:
        node = _step(node, k)
    return node


def remove_at(obj: dict, path: tuple) -> None:
    parent: Any = obj
    for k in path[:-1]:
        parent = _step(parent, k)
        if parent is None:
            return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        name = json.loads(last[2:])["name"]
        parent[:] = [x for x in parent if not (isinstance(x, dict) and x.get("name") == name)]


def merge(live: Any, config: Any) -> Any:
    """Server-side apply's merge of a configuration into the live object."""
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for k, v in config.items():
            out[k] = merge(live.get(k), v)
        return out
    if _keyed(config) and isinstance(live, list) and all(isinstance(x, dict) and "name" in x for x in live):
        by = {x["name"]: x for x in live}
        merged = [merge(by.get(x["name"]), x) for x in config]
        names = {x["name"] for x in config}
        return merged + [x for x in live if x["name"] not in names]
    return copy.deepcopy(config)


# -- the stand-in ------------------------------------------------------------------------------
class ApiStandIn:
    """Objects by (group, kind, namespace, name); kubeforge's Cluster interface plus kubectl's two
    ways of applying, to load a cluster as kubeflow/manifests' README leaves it."""

    def __init__(self, server: str = "https://api-standin.invalid:6443"):
        self.server = server
        self.store: dict[tuple, dict] = {}
        self.writes: list[tuple[str, tuple]] = []    # (verb, identity) of every mutating call
        self._rv = 0

    # identity
    @staticmethod
    def key(api_version: str, kind: str, name: str, namespace: str | None) -> tuple:
        return api_version.rpartition("/")[0], kind, namespace or "", name

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def served(self, api_version: str, kind: str) -> bool:
        group, _, version = api_version.rpartition("/")
        if not group or group.endswith("k8s.io") or "." not in group:
            return True
        for o in self.store.values():
            if o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == group and \
                    o["spec"]["names"]["kind"] == kind:
                return any(v["name"] == version and v.get("served", True) for v in o["spec"]["versions"])
        return False

    # kubeforge's Cluster interface ------------------------------------------------------
    def get(self, api_version, kind, name, namespace=None):
        o = self.store.get(self.key(api_version, kind, name, namespace))
        if o is None or not self.served(api_version, kind):
            return None
        return dict(copy.deepcopy(o), apiVersion=api_version)

    def list(self, api_version, kind, namespace=None, label_selector=None):
        if not self.served(api_version, kind):
            return []
        want = dict(kv.split("=", 1) for kv in label_selector.split(",")) if label_selector else {}
        if kind == "EndpointSlice":   # every Service's pods are ready (as the workloads are available)
            svc = want.get("kubernetes.io/service-name")
            return [{"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}]}] \
                if ("", "Service", namespace or "", svc) in self.store else []
        group = api_version.rpartition("/")[0]
        out = []
        for (g, k, ns, _), o in self.store.items():
            labels = o["metadata"].get("labels") or {}
            if g == group and k == kind and (namespace is None or ns == namespace) and \
                    all(labels.get(x) == v for x, v in want.items()):
                out.append(dict(copy.deepcopy(o), apiVersion=api_version))
        return out

    def apply(self, obj, namespace=None, manager="kubeforge", force=True, dry_run=False):
        """Server-side apply (kubeforge's Cluster.apply: field manager kubeforge, force)."""
        assert not dry_run, "this stand-in does not model dryRun=All (apiserver_standin.py does)"
        return self._apply(obj, manager, force)

    def forget(self, api_version, kind):
        pass

    def patch(self, api_version, kind, name, namespace, body):
        k = self.key(api_version, kind, name, namespace)
        if k not in self.store:
            return None
        live = self.store[k]
        want_rv = (body.get("metadata") or {}).get("resourceVersion")
        if want_rv is not None and want_rv != live["metadata"]["resourceVersion"]:
            raise ApiError(409, f"the object has been modified; resourceVersion {want_rv} is stale")
        self.writes.append(("patch", k))
        new = _merge_patch(live, body)
        new["metadata"]["resourceVersion"] = self._next_rv()
        if "managedFields" not in (body.get("metadata") or {}):
            new["metadata"]["managedFields"] = live["metadata"].get("managedFields", [])
        self.store[k] = new
        self._settle(k)
        return self.get(api_version, kind, name, namespace)

    def delete(self, api_version, kind, name, namespace=None, propagation="Background"):
        k = self.key(api_version, kind, name, namespace)
        if k not in self.store:
            return False
        self.writes.append(("delete", k))
        self.store[k]["metadata"]["deletionTimestamp"] = "now"
        self._settle(k)
        return True

    def served_kinds(self):
        return sorted({(o["apiVersion"], o["kind"], bool(k[2])) for k, o in self.store.items()})

    def finalize_namespace(self, name):
        self._settle(("", "Namespace", "", name))

    # kubectl's ways of applying ----------------------------------------------------------
    def kubectl_apply(self, obj: dict) -> dict:
        """`kubectl apply -f` (client-side) of a new object: the object with the
        last-applied-configuration annotation, managed by kubectl-client-side-apply (Update)."""
        o = copy.deepcopy(obj)
        o["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(obj, sort_keys=True) + "\n"
        size = sum(len(k) + len(v) for k, v in o["metadata"]["annotations"].items())
        if size > ANNOTATIONS_LIMIT:   # why KServe's and the trainer's README lines apply server-side
            raise ApiError(422, f"metadata.annotations: Too long: must have at most {ANNOTATIONS_LIMIT} bytes")
        k = self.key(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
        if k in self.store:
            raise AssertionError("the loader creates objects; use apply() to change them")
        self._require_served(o)
        self.writes.append(("create", k))
        entry = {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": o["apiVersion"],
                 "time": "2025-11-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fieldset(o)}
        self._store(k, o, [entry], generation=1)
        return self.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))

    def kubectl_apply_server_side(self, obj: dict) -> dict:
        """`kubectl apply --server-side --force-conflicts -f`: field manager kubectl, operation Apply."""
        return self._apply(obj, "kubectl", True)

    # the server's side of apply ------------------------------------------------------------
    def _require_served(self, o: dict) -> None:
        if not self.served(o["apiVersion"], o["kind"]):
            raise KubeforgeError(f"the cluster does not serve {o['apiVersion']} {o['kind']}", field="apiVersion",
                                 fix="install the component that provides this CRD first")

    def _apply(self, obj: dict, manager: str, force: bool) -> dict:
        self._require_served(obj)
        md = obj["metadata"]
        k = self.key(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        config = copy.deepcopy(obj)
        mine = fieldset(config)
        live = self.store.get(k)
        self.writes.append(("apply", k))
        if live is None:
            entry = {"manager": manager, "operation": "Apply", "apiVersion": obj["apiVersion"],
                     "fieldsType": "FieldsV1", "fieldsV1": mine}
            self._store(k, config, [entry], generation=1)
            return self.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        entries = copy.deepcopy(live["metadata"].get("managedFields") or [])
        before = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"), None)
        others = [e for e in entries if e is not before]
        wanted = leaves(mine)
        kept_others = []
        for e in others:
            held = leaves(e.get("fieldsV1") or {})
            conflicts = {p for p in wanted & held if value_at(live, p) != value_at(config, p)}
            if conflicts and not force:
                raise ApiError(409, f"conflict with {e['manager']}: {sorted(conflicts)[:3]}")
            held -= conflicts          # force: those fields move to the applier; shared equal values stay
            if held:
                kept_others.append(dict(e, fieldsV1=_trie_of({p[:i] for p in held for i in range(1, len(p) + 1)})))
        owned_by_others = set().union(*(paths(e["fieldsV1"]) for e in kept_others)) if kept_others else set()
        dropped = paths((before or {}).get("fieldsV1") or {}) - paths(mine) - owned_by_others
        new = copy.deepcopy(live)
        for p in sorted(dropped, key=len):          # shallowest first: a removed map takes its fields
            if not any(p[:i] in dropped for i in range(1, len(p))):
                remove_at(new, p)
        new = merge(new, {kk: vv for kk, vv in config.items() if kk != "status"})
        self._check_update(live, new)
        entry = {"manager": manager, "operation": "Apply", "apiVersion": obj["apiVersion"],
                 "fieldsType": "FieldsV1", "fieldsV1": mine}
        spec_changed = live.get("spec") != new.get("spec")
        self._store(k, new, [entry] + kept_others,
                    generation=live["metadata"].get("generation", 1) + (1 if spec_changed else 0))
        return self.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))

    def _check_update(self, live: dict, new: dict) -> None:
        kind = live["kind"]
        if kind in WORKLOADS and (live.get("spec") or {}).get("selector") != (new.get("spec") or {}).get("selector"):
            raise ApiError(422, f"{kind}.apps \"{live['metadata']['name']}\" is invalid: spec.selector: "
                                "field is immutable")
        if kind == "CustomResourceDefinition":
            names = {v["name"] for v in new["spec"]["versions"]}
            for v in (live.get("status") or {}).get("storedVersions") or []:
                if v not in names:
                    raise ApiError(422, f"CustomResourceDefinition \"{live['metadata']['name']}\" is invalid: "
                                        f"status.storedVersions: Invalid value: \"{v}\": must appear in spec.versions")

    def _store(self, k: tuple, o: dict, entries: list[dict], generation: int) -> None:
        md = o["metadata"]
        old = self.store.get(k)
        md["uid"] = (old or {}).get("metadata", {}).get("uid") or f"uid-{len(self.store)}-{md['name']}"
        md["resourceVersion"] = self._next_rv()
        md["generation"] = generation
        md["managedFields"] = entries
        if old and "status" in old:
            o["status"] = old["status"]
        self.store[k] = o
        self._controllers(o)

    def _controllers(self, o: dict) -> None:
        """What the controllers the upgrade waits for would report."""
        st = o.setdefault("status", {})
        gen = o["metadata"]["generation"]
        if o["kind"] == "CustomResourceDefinition":
            storage = next(v["name"] for v in o["spec"]["versions"] if v.get("storage"))
            st["storedVersions"] = sorted(set(st.get("storedVersions") or []) | {storage})
            st["conditions"] = [{"type": t, "status": "True"} for t in ("Established", "NamesAccepted")]
        elif o["kind"] in ("Deployment", "StatefulSet"):
            n = (o.get("spec") or {}).get("replicas", 1)
            st.update(observedGeneration=gen, replicas=n, updatedReplicas=n, availableReplicas=n, readyReplicas=n,
                      conditions=[{"type": "Available", "status": "True"}])
        elif o["kind"] == "DaemonSet":
            st.update(observedGeneration=gen, desiredNumberScheduled=1, numberAvailable=1, updatedNumberScheduled=1)
        elif o["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for wh in o.get("webhooks") or []:   # the CA injector / the webhook's own controller
                cc = wh.get("clientConfig") or {}
                if cc.get("service") and not cc.get("caBundle"):
                    cc["caBundle"] = "c3RhbmRpbi1jYQ=="
            if not st:
                o.pop("status")
        else:
            if not st:
                o.pop("status")

    def _settle(self, k: tuple) -> None:
        o = self.store.get(k)
        if o is None or "deletionTimestamp" not in o["metadata"] or o["metadata"].get("finalizers"):
            return
        if o["kind"] == "Namespace":
            for kk in [kk for kk in self.store if kk[2] == o["metadata"]["name"]]:
                self.store[kk]["metadata"]["deletionTimestamp"] = "now"
                self._settle(kk)
            if any(kk[2] == o["metadata"]["name"] for kk in self.store):
                return
        if o["kind"] == "CustomResourceDefinition":   # its instances go with it
            group, kind = o["spec"]["group"], o["spec"]["names"]["kind"]
            for kk in [kk for kk in self.store if kk[0] == group and kk[1] == kind]:
                del self.store[kk]
        del self.store[k]


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out
