"""An in-process STAND-IN for the Kubernetes API server and the controllers kubeforge waits on:
the cluster boundary this machine cannot reach (no API server, no kind, no Docker). The apply and
teardown tests load it with the real rendered objects of the shipped profiles.

It models, after the Kubernetes API conventions, what install ordering and teardown depend on.
Its notion of what is built in and what a webhook matches is its own (below), not kubeforge's:
- objects by identity; a namespaced object only in an existing, non-terminating namespace
  (NamespaceLifecycle); namespaces carry `kubernetes.io/metadata.name`;
- discovery: a custom resource is served only once its CRD is Established, which the
  apiextensions controller does a second after the CRD is created; before that a write is
  refused with 404 "no matches for kind";
- admission: a create/update that a webhook configuration's rules, namespaceSelector and
  objectSelector match is refused (failurePolicy Fail, the default) while its Service has no ready
  endpoints or the webhook has no caBundle; dry runs call only side-effect-free webhooks; objects
  stored before a webhook configuration that matches them is created are noted as `unadmitted`
  (never validated or defaulted by it);
- server-side apply: each field is owned by the field managers that applied it; applying a value
  over another manager's field is a 409 conflict unless forced; fields a manager stops applying
  are removed; resourceVersion (and generation, for spec changes) bumps only on a real change;
  dryRun=All admits and answers but persists nothing;
- controllers, advanced by `advance(seconds)` (the tests' sleep; nothing moves between calls):
  a Deployment/StatefulSet/DaemonSet becomes available POD_START_S after its pod can start (its
  namespace, service account and non-optional Secret/ConfigMap volumes exist, its image pulls,
  admission webhooks on pods answer); EndpointSlices list the available pods a Service selects;
  a webhook configuration gets its caBundle once its backend serves; what upstream controllers
  create at runtime that rendered workloads mount: cert-manager writes each Certificate's Secret,
  istiod publishes the `istio-ca-root-cert` ConfigMap in every namespace;
- deletion: finalizers block it; the namespace controller empties a terminating namespace; a
  finalizer listed in `finalizer_controllers` is removed once its controller is available; the
  garbage collector deletes what an object owns (ownerReferences by uid) once the owner is gone;
- a STAND-IN for Kubeflow's profile controller (kubeflow/kubeflow v1.10.0
  components/profile-controller, PROFILE_CONTROLLER below), while its Deployment is available:
  each Profile gets its namespace (owned by it, annotated `owner`, labelled istio-injection and
  the labels of the namespace-labels ConfigMap the controller mounts, Pod Security included; on
  later reconciles a missing default label is added back, as setNamespaceLabels does), the
  AuthorizationPolicy `ns-owner-access-istio`, the service accounts default-editor/default-viewer
  with their RoleBindings, the owner's RoleBinding `namespaceAdmin`, the ResourceQuota
  `kf-resource-quota` when the Profile asks for one, then the finalizer `profile-finalizer`; a
  Profile whose namespace exists with another owner gets a Failed condition instead; a deleted
  Profile loses the finalizer (and so, through the garbage collector, its namespace). With the
  controller gone, a deleted Profile keeps its finalizer and its namespace stays.

Simplifications, named so nobody mistakes them for Kubernetes: one node (a CPU node; gpu_node=True adds the GPU labels); lists whose items all
carry a distinct `name` merge by name (listType=map: containers, env, ports, webhooks, ...), other
lists are atomic, and so is a CRD's openAPIV3Schema (nobody else writes there); no defaulting;
one served version per kind; objects put() directly (the teardown fixtures) skip admission.
"""
from __future__ import annotations

import pickle
from typing import Any

import yaml

from kubeforge.verify.cluster import ApiRejected

ADMISSION = "admissionregistration.k8s.io/v1"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "rbac.authorization.k8s.io", "networking.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
    "apiregistration.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
    "certificates.k8s.io", "flowcontrol.apiserver.k8s.io", "events.k8s.io", "resource.k8s.io"})
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "StorageClass", "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "APIService", "CSIDriver", "CSINode", "IngressClass", "RuntimeClass", "VolumeAttachment",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration"})
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                   "deletionTimestamp", "selfLink")
ATOMIC_KEYS = frozenset({"openAPIV3Schema"})
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CRD_ESTABLISH_S = 1.0
POD_START_S = 5.0
NODE_LABELS = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
               "kubernetes.io/hostname": "standin-node"}
# What Node Feature Discovery and GPU Feature Discovery put on a node with an NVIDIA GPU.
GPU_NODE_LABELS = {"feature.node.kubernetes.io/pci-10de.present": "true", "nvidia.com/gpu.present": "true"}
CERT_MANAGER = ("cert-manager", "cert-manager")   # the controller that issues Certificates
ISTIOD = ("istio-system", "istiod")                # publishes istio-ca-root-cert in every namespace
PROFILE_CONTROLLER = ("kubeflow", "profiles-deployment")   # Kubeflow's profile controller (+ KFAM)
PROFILE_FINALIZER = "profile-finalizer"


def _copy(o: Any) -> Any:
    return pickle.loads(pickle.dumps(o, protocol=5))


# -- field paths (server-side apply) ------------------------------------------------------
def _fieldmap(node: Any, prefix: tuple = (), out: dict | None = None) -> dict[tuple, Any]:
    out = {} if out is None else out
    if isinstance(node, dict) and node and (not prefix or prefix[-1] not in ATOMIC_KEYS):
        for k, v in node.items():
            _fieldmap(v, (*prefix, k), out)
    elif isinstance(node, list) and node and all(isinstance(i, dict) and "name" in i for i in node) \
            and len({str(i["name"]) for i in node}) == len(node):
        for item in node:
            _fieldmap(item, (*prefix, ("name", item["name"])), out)
    else:
        out[prefix] = node
    return out


class _Keyed(dict):
    """A list merged by item name, while it is being rebuilt."""


def _unflatten(fields: dict[tuple, Any]) -> dict:
    root: dict = {}
    for path, value in fields.items():
        node = root
        for i, el in enumerate(path[:-1]):
            key = el[1] if isinstance(el, tuple) else el
            if key not in node:
                node[key] = _Keyed() if isinstance(path[i + 1], tuple) else {}
            node = node[key]
        last = path[-1]
        node[last[1] if isinstance(last, tuple) else last] = _copy(value) if isinstance(value, list | dict) else value

    def finish(n: Any) -> Any:
        if isinstance(n, _Keyed):
            return [finish(v) for v in n.values()]
        if isinstance(n, dict):
            return {k: finish(v) for k, v in n.items()}
        return n
    return finish(root)


def _dotted(path: tuple) -> str:
    return "." + ".".join(f"[name={el[1]}]" if isinstance(el, tuple) else str(el) for el in path)


# -- selectors and webhook rules (this stand-in's own reading of the API) ----------------
def selector_matches(sel: dict | None, labels: dict) -> bool:
    if not sel:
        return True
    if any(labels.get(k) != v for k, v in (sel.get("matchLabels") or {}).items()):
        return False
    for e in sel.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _rule_matches(rule: dict, group: str, version: str, plural: str, op: str, namespaced: bool) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and op not in ops:
        return False
    if not any(g in ("*", group) for g in rule.get("apiGroups") or []):
        return False
    if not any(v in ("*", version) for v in rule.get("apiVersions") or ["*"]):
        return False
    if not any(r in ("*", "*/*", plural) for r in rule.get("resources") or []):
        return False
    scope = rule.get("scope", "*")
    return scope == "*" or (scope == "Namespaced") == namespaced


def _set_namespace_labels(labels: dict, defaults: dict) -> dict:
    """The profile controller's setNamespaceLabels: a default label is added when its key is
    missing (never replaced), and removed when its default value is ''."""
    out = dict(labels)
    for k, v in defaults.items():
        if not v:
            out.pop(k, None)
        elif k not in out:
            out[k] = v
    return out


def _builtin_plural(kind: str) -> str:
    low = kind.lower()
    if low == "endpoints":
        return low
    if low.endswith("y") and not low.endswith("ey"):
        return low[:-1] + "ies"
    return low + ("es" if low.endswith("s") else "s")


class ApiServerStandIn:
    """See the module docstring. The Cluster interface kubeforge uses (get, list, apply, delete,
    patch, resource, forget, served_kinds, finalize_namespace), plus advance(seconds)/clock() for
    the tests to hand to kubeforge as its sleep and clock."""

    server = "https://apiserver.standin.invalid"

    def __init__(self, objects: Any = (), *, finalizer_controllers: dict[str, tuple[str, str]] | None = None,
                 unpullable: Any = (), system_namespaces: bool = True, gpu_node: bool = False):
        self.store: dict[tuple, dict] = {}        # (apiVersion, kind, namespace|None, name) -> object
        self.fields: dict[tuple, dict] = {}       # key -> {field path: value}: what was applied
        self.owners: dict[tuple, dict] = {}       # key -> {manager: (operation, set of field paths)}
        self.now = 0.0
        self._rv = 0
        self._uid = 0
        self.created_at: dict[tuple, float] = {}
        self.ready_at: dict[tuple, float] = {}    # workload -> when its pod is Ready
        self.blocked: dict[tuple, str] = {}       # workload -> why its pod cannot start
        self.rolled: dict[tuple, int] = {}        # workload -> generation its pods run
        self.writes: list[tuple[str, str, bool]] = []       # (verb, object, dry run) of every write
        self.rejections: list[tuple[str, int, str]] = []    # (object, status, message) of refused writes
        self.unadmitted: list[tuple[str, str, str]] = []    # (configuration, webhook, object) never admitted
        self.deleted: list[str] = []              # deletion requests, in order
        self.applied: list[dict] = []             # objects sent to apply (not dry runs), in order
        self.finalizer_controllers = dict(finalizer_controllers or {})
        self.unpullable = set(unpullable)
        self.node_labels = dict(NODE_LABELS, **(GPU_NODE_LABELS if gpu_node else {}))
        self.interrupt_after: int | None = None   # raise KeyboardInterrupt at this many more applies
        if system_namespaces:   # what every cluster has before anything is installed
            for ns in SYSTEM_NAMESPACES:
                self.put({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
        for o in objects:
            self.put(o)

    # -- time ------------------------------------------------------------------------------
    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        for _ in range(20):   # to a fixpoint: one controller's output unblocks another's
            if not self._reconcile():
                break

    # -- identity and discovery ------------------------------------------------------------
    @staticmethod
    def key(api, kind, name, ns):
        return (api, kind, ns or None, name)

    @staticmethod
    def _split(api: str) -> tuple[str, str]:
        return (api.split("/", 1)[0], api.split("/", 1)[1]) if "/" in api else ("", api)

    def _crd(self, group: str, kind: str) -> dict | None:
        for (_a, k, _ns, _n), o in self.store.items():
            if k == "CustomResourceDefinition" and o["spec"]["group"] == group and \
                    o["spec"]["names"]["kind"] == kind:
                return o
        return None

    @staticmethod
    def _established(crd: dict) -> bool:
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in (crd.get("status") or {}).get("conditions") or [])

    def namespaced(self, api: str, kind: str) -> bool | None:
        """Whether the kind is namespaced; None when the server does not serve it."""
        group, version = self._split(api)
        if group in BUILTIN_GROUPS:
            return kind not in CLUSTER_SCOPED
        crd = self._crd(group, kind)
        if crd is None or not self._established(crd) or "deletionTimestamp" in crd["metadata"] or \
                not any(v["name"] == version and v.get("served", True) for v in crd["spec"].get("versions") or []):
            return None
        return crd["spec"].get("scope", "Namespaced") == "Namespaced"

    def resource(self, api_version: str, kind: str) -> Any:
        return True if self.namespaced(api_version, kind) is not None else None

    def forget(self, api_version: str, kind: str) -> None:
        """Discovery is never cached here."""

    def _plural(self, group: str, kind: str) -> str:
        if group in BUILTIN_GROUPS:
            return _builtin_plural(kind)
        crd = self._crd(group, kind)
        return crd["spec"]["names"]["plural"] if crd else kind.lower() + "s"

    # -- reads -----------------------------------------------------------------------------
    def get(self, api, kind, name, namespace=None):
        o = self.store.get(self.key(api, kind, name, namespace))
        return _copy(o) if o else None

    def list(self, api, kind, namespace=None, label_selector=None):
        want = dict(kv.split("=", 1) for kv in label_selector.split(",")) if label_selector else {}
        if (api, kind) == ("v1", "Pod"):
            return [p for p in self._pods(namespace) if all(p["metadata"]["labels"].get(k) == v
                                                            for k, v in want.items())]
        if (api, kind) == ("discovery.k8s.io/v1", "EndpointSlice"):
            return self._endpoint_slices(namespace, want.get("kubernetes.io/service-name"))
        out = []
        for (a, k, ns, _), o in self.store.items():
            labels = o["metadata"].get("labels") or {}
            if a == api and k == kind and (namespace is None or ns == namespace) and \
                    all(labels.get(x) == v for x, v in want.items()):
                out.append(_copy(o))
        return out

    def served_kinds(self):
        return sorted({(a, k, ns is not None) for (a, k, ns, _) in self.store})

    def rvs(self) -> dict[tuple, str]:
        """resourceVersion of every object: what a second apply must leave equal."""
        return {k: o["metadata"].get("resourceVersion") for k, o in self.store.items()}

    # -- writes ----------------------------------------------------------------------------
    def put(self, o):
        """Load an object as if it had always been there (no admission, no managers)."""
        o = _copy(o)
        md = o["metadata"]
        key = self.key(o["apiVersion"], o["kind"], md["name"], md.get("namespace"))
        md.setdefault("uid", f"uid-{o['kind']}-{md['name']}")
        md["resourceVersion"] = self._next_rv()
        self.store[key] = o
        self.fields[key] = _fieldmap(self._applied_config(o, md.get("namespace")))
        self.owners[key] = {}
        self.created_at[key] = self.now

    def apply(self, obj, namespace=None, *, force=False, dry_run=False, field_manager="kubeforge"):
        ref = f"{obj['kind']} {obj['metadata'].get('namespace', '') + '/' if obj['metadata'].get('namespace') else ''}" \
              f"{obj['metadata']['name']}"
        if self.interrupt_after is not None and not dry_run:
            if self.interrupt_after <= 0:
                raise KeyboardInterrupt
            self.interrupt_after -= 1
        self.writes.append(("apply", ref, dry_run))
        if not dry_run:
            self.applied.append(obj)
        try:
            return self._apply(obj, namespace, force, dry_run, field_manager)
        except ApiRejected as exc:
            self.rejections.append((ref, exc.status, exc.message))
            raise

    def _apply(self, obj, namespace, force, dry_run, manager):
        api, kind, md = obj["apiVersion"], obj["kind"], obj["metadata"]
        scoped = self.namespaced(api, kind)
        if scoped is None:
            raise ApiRejected(404, "NotFound", f'the server could not find the requested resource '
                              f'(no matches for kind "{kind}" in version "{api}")')
        ns = (namespace or md.get("namespace")) if scoped else None
        if scoped:
            nso = self.store.get(("v1", "Namespace", None, ns))
            if nso is None:
                raise ApiRejected(404, "NotFound", f'namespaces "{ns}" not found')
            if "deletionTimestamp" in nso["metadata"]:
                raise ApiRejected(403, "Forbidden", f"unable to create new content in namespace {ns} "
                                  "because it is being terminated")
        key = self.key(api, kind, md["name"], ns)
        cur = self.store.get(key)
        applied = _fieldmap(self._applied_config(obj, ns))
        old = self.fields.get(key, {}) if cur else {}
        owners = {m: (op, set(p)) for m, (op, p) in (self.owners.get(key, {}) if cur else {}).items()}
        conflicts = [(m, p) for p, v in applied.items() if p in old and old[p] != v
                     for m, (_op, paths) in owners.items() if m != manager and p in paths]
        if conflicts and not force:
            raise ApiRejected(409, "Conflict", f"Apply failed with {len(conflicts)} conflict(s): " + "; ".join(
                f'conflict with "{m}": {_dotted(p)}' for m, p in conflicts))
        for m, p in conflicts:
            owners[m][1].discard(p)
        others = set().union(*[paths for m, (_op, paths) in owners.items() if m != manager])
        new = {p: v for p, v in old.items()
               if p in applied or p in others or p not in owners.get(manager, ("", set()))[1]}
        new.update(applied)
        owners[manager] = ("Apply", set(applied))
        owners = {m: v for m, v in owners.items() if v[1]}
        changed = cur is None or new != old or \
            {m: p for m, (_o, p) in owners.items()} != {m: p for m, (_o, p) in self.owners.get(key, {}).items()}
        candidate = self._materialize(key, api, kind, new, owners, cur) if changed else cur
        self._admit(candidate, "UPDATE" if cur else "CREATE", dry_run)
        if dry_run or not changed:
            return _copy(candidate)
        if cur is None and kind in WEBHOOK_KINDS:
            self._note_unadmitted(candidate)
        self.store[key], self.fields[key], self.owners[key] = candidate, new, owners
        self.created_at.setdefault(key, self.now)
        return _copy(candidate)

    @staticmethod
    def _applied_config(obj: dict, ns: str | None) -> dict:
        body = {k: v for k, v in obj.items() if k != "status"}
        md = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
        if ns:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        return {**body, "metadata": md}

    def _materialize(self, key, api, kind, fields, owners, cur) -> dict:
        obj = _unflatten(fields)
        md = obj.setdefault("metadata", {})
        old_md = (cur or {}).get("metadata", {})
        self._uid += 0 if cur else 1
        md["uid"] = old_md.get("uid") or f"uid-{self._uid}"
        md["creationTimestamp"] = old_md.get("creationTimestamp") or f"t{self.now:.0f}"
        gen = old_md.get("generation", 0)
        spec_changed = cur is None or {p: v for p, v in fields.items() if p[:1] == ("spec",)} != \
            {p: v for p, v in self.fields.get(key, {}).items() if p[:1] == ("spec",)}
        md["generation"] = gen + 1 if spec_changed else gen
        md["resourceVersion"] = self._next_rv()
        md["managedFields"] = [{"manager": m, "operation": op, "apiVersion": api, "fieldsType": "FieldsV1"}
                               for m, (op, _p) in sorted(owners.items())]
        if "deletionTimestamp" in old_md:
            md["deletionTimestamp"] = old_md["deletionTimestamp"]
        if kind == "Namespace":
            md["labels"] = {**(md.get("labels") or {}), "kubernetes.io/metadata.name": md["name"]}
        if cur is not None and "status" in cur:
            obj["status"] = cur["status"]
        return obj

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _set_status(self, key, status: dict) -> bool:
        o = self.store[key]
        if o.get("status") == status:
            return False
        o["status"] = status
        o["metadata"]["resourceVersion"] = self._next_rv()
        return True

    def _controller_write(self, key, path: tuple, value: Any, manager: str) -> None:
        """A controller's update of one field (operation Update), e.g. an injected caBundle."""
        fields = dict(self.fields[key])
        fields[path] = value
        owners = dict(self.owners[key])
        op, paths = owners.get(manager, ("Update", set()))
        owners[manager] = (op, paths | {path})
        api, kind = key[0], key[1]
        self.store[key] = self._materialize(key, api, kind, fields, owners, self.store[key])
        self.fields[key], self.owners[key] = fields, owners

    def _controller_labels(self, key, labels: dict, manager: str) -> None:
        """A controller's update of an object's labels (operation Update): these, and no others."""
        prefix = ("metadata", "labels")
        fields = {p: v for p, v in self.fields[key].items() if p[:2] != prefix}
        fields.update({(*prefix, k): v for k, v in labels.items()})
        owners = {m: (op, {p for p in paths if p in fields}) for m, (op, paths) in self.owners[key].items()}
        op, paths = owners.get(manager, ("Update", set()))
        owners[manager] = (op, paths | {(*prefix, k) for k in labels})
        self.store[key] = self._materialize(key, key[0], key[1], fields, owners, self.store[key])
        self.fields[key], self.owners[key] = fields, owners

    def _create_runtime(self, obj: dict, manager: str) -> None:
        md = obj["metadata"]
        key = self.key(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        fields = _fieldmap(self._applied_config(obj, md.get("namespace")))
        owners = {manager: ("Update", set(fields))}
        self.store[key] = self._materialize(key, obj["apiVersion"], obj["kind"], fields, owners, None)
        self.fields[key], self.owners[key] = fields, owners
        self.created_at[key] = self.now

    # -- admission -------------------------------------------------------------------------
    def _admit(self, obj: dict, op: str, dry_run: bool) -> None:
        if obj["kind"] in WEBHOOK_KINDS:
            return   # the API server never sends webhook configurations to webhooks
        refused = self._webhook_refusal(obj, op, dry_run)
        if refused:
            raise ApiRejected(*refused)

    def _matching_webhooks(self, obj: dict, op: str, configs: list[dict] | None = None) -> list[dict]:
        """The webhooks (of `configs`, default: every configuration stored) that admit this write."""
        group, version = self._split(obj["apiVersion"])
        ns = obj["metadata"].get("namespace")
        namespaced = ns is not None
        plural = self._plural(group, obj["kind"])
        if obj["kind"] == "Namespace":
            ns_labels = obj["metadata"].get("labels") or {}
        elif namespaced:
            ns_labels = (self.store.get(("v1", "Namespace", None, ns)) or {}).get("metadata", {}).get("labels") or {}
        else:
            ns_labels = None   # cluster-scoped: namespaceSelector does not apply
        labels = obj["metadata"].get("labels") or {}
        if configs is None:
            configs = [cfg for (_a, k, _n, _name), cfg in sorted(self.store.items(), key=lambda kv: str(kv[0]))
                       if k in WEBHOOK_KINDS and "deletionTimestamp" not in cfg["metadata"]]
        out = []
        for cfg in configs:
            for wh in cfg.get("webhooks") or []:
                if not any(_rule_matches(r, group, version, plural, op, namespaced) for r in wh.get("rules") or []):
                    continue
                if ns_labels is not None and not selector_matches(wh.get("namespaceSelector"), ns_labels):
                    continue
                if selector_matches(wh.get("objectSelector"), labels):
                    out.append(wh)
        return out

    def _webhook_refusal(self, obj: dict, op: str, dry_run: bool) -> tuple[int, str, str] | None:
        for wh in self._matching_webhooks(obj, op):
            if dry_run and wh.get("sideEffects") not in ("None", "NoneOnDryRun"):
                return 400, "BadRequest", f'admission webhook "{wh["name"]}" does not support dry run'
            down = self._webhook_down(wh)
            if down and wh.get("failurePolicy", "Fail") == "Fail":
                return 500, "InternalError", f'Internal error occurred: failed calling webhook "{wh["name"]}": {down}'
        return None

    def _note_unadmitted(self, cfg: dict) -> None:
        """A webhook configuration created after objects it would have admitted: those objects were
        never validated or defaulted by it (no error, but not what the stack's order promises)."""
        for key, o in self.store.items():
            if key[1] in WEBHOOK_KINDS or key[1] == "Namespace" and key[3] in SYSTEM_NAMESPACES:
                continue
            for wh in self._matching_webhooks(o, "CREATE", [cfg]):
                self.unadmitted.append((cfg["metadata"]["name"], wh["name"], f"{key[1]} {key[3]}"))

    def _webhook_down(self, wh: dict) -> str | None:
        cc = wh.get("clientConfig") or {}
        svc = cc.get("service")
        if not svc:
            return None
        ns, name = svc.get("namespace"), svc.get("name")
        if self._ready_endpoints(ns, name) < 1:
            return (f'failed to call webhook: Post "https://{name}.{ns}.svc:{svc.get("port", 443)}'
                    f'{svc.get("path", "/")}": no endpoints available for service "{name}"')
        if not cc.get("caBundle"):
            return "failed to call webhook: tls: failed to verify certificate: x509: certificate signed by unknown authority"
        return None

    # -- workloads, pods, endpoints --------------------------------------------------------
    @staticmethod
    def _template(o: dict) -> dict:
        return (o.get("spec") or {}).get("template") or {}

    def _desired(self, o: dict) -> int:
        if o["kind"] == "DaemonSet":
            pod = self._template(o).get("spec") or {}
            sel = pod.get("nodeSelector") or {}
            terms = ((((pod.get("affinity") or {}).get("nodeAffinity") or {})
                      .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")) or []
            fits = all(self.node_labels.get(k) == v for k, v in sel.items()) and \
                (not terms or any(selector_matches({"matchExpressions": t.get("matchExpressions") or []},
                                                   self.node_labels) for t in terms))
            return 1 if fits else 0
        return int((o.get("spec") or {}).get("replicas", 1))

    def _pod_blocker(self, key, o: dict) -> str | None:
        """Why the workload's pod cannot start, as kubectl describe would say it; None when it can."""
        ns = key[2]
        nso = self.store.get(("v1", "Namespace", None, ns))
        if nso is None or "deletionTimestamp" in nso["metadata"]:
            return f"FailedCreate: namespace {ns} is missing or terminating"
        pod = self._template(o).get("spec") or {}
        sa = pod.get("serviceAccountName") or pod.get("serviceAccount")
        if sa and sa != "default" and ("v1", "ServiceAccount", ns, sa) not in self.store:
            return (f'FailedCreate: pods "{key[3]}-" is forbidden: error looking up service account '
                    f'{ns}/{sa}: serviceaccount "{sa}" not found')
        pod_obj = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{key[3]}-pod", "namespace": ns,
                                "labels": (self._template(o).get("metadata") or {}).get("labels") or {}}}
        refused = self._webhook_refusal(pod_obj, "CREATE", False)
        if refused:
            return f"FailedCreate: {refused[2]}"
        for v in pod.get("volumes") or []:
            sources = [v] + [s for s in ((v.get("projected") or {}).get("sources") or [])]
            for s in sources:
                if "secret" in s:
                    ref = s["secret"]
                    nm = ref.get("secretName") or ref.get("name")
                    if not ref.get("optional") and ("v1", "Secret", ns, nm) not in self.store:
                        return f'ContainerCreating: MountVolume.SetUp failed for volume "{v["name"]}" : secret "{nm}" not found'
                if "configMap" in s:
                    ref = s["configMap"]
                    if not ref.get("optional") and ("v1", "ConfigMap", ns, ref["name"]) not in self.store:
                        return (f'ContainerCreating: MountVolume.SetUp failed for volume "{v["name"]}" : '
                                f'configmap "{ref["name"]}" not found')
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            if c.get("image") in self.unpullable:
                return f'ErrImagePull: failed to pull and unpack image "{c["image"]}": not found'
        return None

    def _available(self, ns: str, name: str, kind: str = "Deployment") -> bool:
        o = self.store.get(("apps/v1", kind, ns, name))
        st = (o or {}).get("status") or {}
        return bool(o) and "deletionTimestamp" not in o["metadata"] and \
            (st.get("availableReplicas", 0) or st.get("numberAvailable", 0)) > 0

    def _ready_endpoints(self, ns: str, svc: str) -> int:
        s = self.store.get(("v1", "Service", ns, svc))
        if s is None:
            return 0
        sel = (s.get("spec") or {}).get("selector") or {}
        if not sel:
            return 0
        n = 0
        for (a, k, wns, _), o in self.store.items():
            if a == "apps/v1" and k in WORKLOADS and wns == ns:
                labels = (self._template(o).get("metadata") or {}).get("labels") or {}
                st = o.get("status") or {}
                if all(labels.get(x) == v for x, v in sel.items()):
                    n += st.get("availableReplicas", 0) or st.get("numberAvailable", 0) or 0
        return n

    def _endpoint_slices(self, ns: str | None, svc: str | None) -> list[dict]:
        if svc is None or ("v1", "Service", ns, svc) not in self.store:
            return []
        n = self._ready_endpoints(ns, svc)
        return [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{svc}-standin", "namespace": ns,
                              "labels": {"kubernetes.io/service-name": svc}},
                 "endpoints": [{"addresses": [f"10.0.0.{i + 1}"], "conditions": {"ready": True}}
                               for i in range(n)]}]

    def _pods(self, ns: str | None) -> list[dict]:
        out = []
        for key, o in self.store.items():
            if key[0] != "apps/v1" or key[1] not in WORKLOADS or (ns is not None and key[2] != ns):
                continue
            if self._desired(o) < 1 or "deletionTimestamp" in o["metadata"]:
                continue
            ready = (o.get("status") or {}).get("readyReplicas", 0) or (o.get("status") or {}).get("numberReady", 0)
            why = self.blocked.get(key, "ContainerCreating: ")
            reason, _, message = why.partition(": ")
            cs = {"name": "main", "ready": bool(ready), "restartCount": 0,
                  "state": {"running": {}} if ready else {"waiting": {"reason": reason, "message": message}}}
            out.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"{key[3]}-standin", "namespace": key[2],
                                     "labels": (self._template(o).get("metadata") or {}).get("labels") or {}},
                        "status": {"phase": "Running" if ready else "Pending",
                                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                                   "containerStatuses": [cs]}})
        return out

    # -- controllers -----------------------------------------------------------------------
    def _reconcile(self) -> bool:
        changed = False
        for key in list(self.store):
            o = self.store.get(key)
            if o is None:
                continue
            if key[1] == "CustomResourceDefinition":
                changed |= self._establish(key, o)
            elif key[0] == "apps/v1" and key[1] in WORKLOADS:
                changed |= self._roll(key, o)
        changed |= self._inject_ca_bundles()
        changed |= self._mark_api_services()
        changed |= self._issue_certificates()
        changed |= self._publish_istio_root_cert()
        changed |= self._reconcile_profiles()
        changed |= self._finalize()
        return changed

    def _establish(self, key, o) -> bool:
        if self._established(o) or self.now < self.created_at.get(key, 0) + CRD_ESTABLISH_S:
            return False
        spec = o["spec"]
        storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), "v1")
        return self._set_status(key, {
            "acceptedNames": spec["names"], "storedVersions": [storage],
            "conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                           {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]})

    def _roll(self, key, o) -> bool:
        gen = o["metadata"].get("generation", 1)
        want = self._desired(o)
        running = self.rolled.get(key) == gen and self.now >= self.ready_at.get(key, float("inf"))
        # Pods that run keep running: admission and mounts are checked when a pod is created.
        blocker = self._pod_blocker(key, o) if want and not running else None
        if blocker:
            self.blocked[key] = blocker
            self.ready_at.pop(key, None)
        else:
            self.blocked.pop(key, None)
            if key not in self.ready_at or self.rolled.get(key) != gen:
                self.ready_at[key], self.rolled[key] = self.now + POD_START_S, gen
        new_ready = not blocker and self.now >= self.ready_at.get(key, float("inf"))
        st = o.get("status") or {}
        # A rolling update keeps the old pods serving until the new ones are ready.
        old = st.get("availableReplicas", st.get("numberAvailable", 0)) or 0
        ready, updated = (want, want) if new_ready else (min(old, want) if st else 0, 0)
        if o["kind"] == "DaemonSet":
            status = {"observedGeneration": gen, "desiredNumberScheduled": want, "currentNumberScheduled": want,
                      "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": updated}
        else:
            status = {"observedGeneration": gen, "replicas": want, "updatedReplicas": updated,
                      "readyReplicas": ready, "availableReplicas": ready}
            if o["kind"] == "Deployment":
                status["conditions"] = [{"type": "Available", "status": "True" if ready >= want else "False",
                                         "message": "standin"}]
        return self._set_status(key, status)

    def _inject_ca_bundles(self) -> bool:
        changed = False
        for key, cfg in list(self.store.items()):
            if key[1] not in WEBHOOK_KINDS:
                continue
            for wh in cfg.get("webhooks") or []:
                cc = wh.get("clientConfig") or {}
                svc = cc.get("service")
                if svc and not cc.get("caBundle") and self._ready_endpoints(svc.get("namespace"), svc.get("name")):
                    path = ("webhooks", ("name", wh["name"]), "clientConfig", "caBundle")
                    self._controller_write(key, path, "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "ca-injector")
                    changed = True
        return changed

    def _mark_api_services(self) -> bool:
        """kube-aggregator's availability controller: an APIService backed by a Service is
        Available once that Service has ready endpoints (a local one, no service, always is)."""
        changed = False
        for key, o in list(self.store.items()):
            if key[1] != "APIService" or "deletionTimestamp" in o["metadata"]:
                continue
            svc = (o.get("spec") or {}).get("service")
            up = svc is None or bool(self._ready_endpoints(svc.get("namespace"), svc.get("name")))
            changed |= self._set_status(key, {"conditions": [
                {"type": "Available", "status": "True" if up else "False",
                 "reason": "Passed" if up else "MissingEndpoints"}]})
        return changed

    def _issue_certificates(self) -> bool:
        if not self._available(*CERT_MANAGER):
            return False
        changed = False
        for (a, k, ns, name), o in list(self.store.items()):
            if k != "Certificate" or not a.startswith("cert-manager.io/") or "deletionTimestamp" in o["metadata"]:
                continue
            secret = (o.get("spec") or {}).get("secretName")
            if secret and ("v1", "Secret", ns, secret) not in self.store:
                self._create_runtime({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                      "metadata": {"name": secret, "namespace": ns},
                                      "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5", "ca.crt": "Y2E="}},
                                     "cert-manager-certificates")
                changed = True
            changed |= self._set_status((a, k, ns, name), {"conditions": [{"type": "Ready", "status": "True"}]})
        return changed

    def _publish_istio_root_cert(self) -> bool:
        if not self._available(*ISTIOD):
            return False
        changed = False
        for (_a, k, _ns, name), o in list(self.store.items()):
            if k == "Namespace" and "deletionTimestamp" not in o["metadata"] and \
                    ("v1", "ConfigMap", name, "istio-ca-root-cert") not in self.store:
                self._create_runtime({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "istio-ca-root-cert", "namespace": name},
                                      "data": {"root-cert.pem": "standin"}}, "istiod")
                changed = True
        return changed

    # -- the profile controller (a stand-in; see the module docstring) ----------------------
    def _namespace_labels(self) -> dict[str, str]:
        """The labels the controller reads from the file its `namespace-labels` volume mounts."""
        dep = self.store.get(("apps/v1", "Deployment", *PROFILE_CONTROLLER))
        pod = self._template(dep).get("spec") or {}
        for v in pod.get("volumes") or []:
            if v.get("name") == "namespace-labels" and "configMap" in v:
                cm = self.store.get(("v1", "ConfigMap", PROFILE_CONTROLLER[0], v["configMap"]["name"])) or {}
                return {str(k): str(val) for k, val in
                        (yaml.safe_load((cm.get("data") or {}).get("namespace-labels.yaml", "")) or {}).items()}
        return {}

    def _reconcile_profiles(self) -> bool:
        if not self._available(*PROFILE_CONTROLLER):
            return False
        changed = False
        for key, o in list(self.store.items()):
            if key[1] != "Profile" or not key[0].startswith("kubeflow.org/"):
                continue
            md = o["metadata"]
            fins = md.get("finalizers") or []
            if "deletionTimestamp" in md:
                if PROFILE_FINALIZER in fins:
                    md["finalizers"] = [f for f in fins if f != PROFILE_FINALIZER]
                    self._settle(key)
                    changed = True
                continue
            changed |= self._reconcile_profile(key, o)
        return changed

    def _reconcile_profile(self, key, prof: dict) -> bool:
        name, owner = prof["metadata"]["name"], ((prof.get("spec") or {}).get("owner") or {})
        ns_key = ("v1", "Namespace", None, name)
        ns = self.store.get(ns_key)
        if ns is not None and (ns["metadata"].get("annotations") or {}).get("owner") != owner.get("name"):
            msg = f"namespace already exist, but not owned by profile creator {owner.get('name')}"
            return self._set_status(key, {"conditions": [{"type": "Failed", "message": msg}]})
        ref = [{"apiVersion": prof["apiVersion"], "kind": "Profile", "name": name,
                "uid": prof["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        changed = False

        def ensure(obj: dict) -> None:
            nonlocal changed
            md = obj["metadata"]
            k = self.key(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
            if k not in self.store:
                md["ownerReferences"] = ref
                self._create_runtime(obj, "profile-controller")
                changed = True

        defaults = self._namespace_labels()
        if ns is None:
            ensure({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "annotations": {"owner": owner.get("name")},
                                 "labels": _set_namespace_labels({"istio-injection": "enabled"}, defaults)}})
        else:   # its own namespace: the default labels again (istio-injection only at creation)
            have = ns["metadata"].get("labels") or {}
            want = _set_namespace_labels(have, defaults)
            if want != have:
                self._controller_labels(ns_key, want, "profile-controller")
                changed = True
        who = {"user": owner.get("name"), "role": "admin"}
        if self.namespaced("security.istio.io/v1beta1", "AuthorizationPolicy") is not None:
            ensure({"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
                    "metadata": {"name": "ns-owner-access-istio", "namespace": name, "annotations": who},
                    "spec": {"action": "ALLOW", "rules": [{"when": [{"key": "request.headers[kubeflow-userid]",
                                                                     "values": [owner.get("name")]}]}]}})
        for sa, role in (("default-editor", "kubeflow-edit"), ("default-viewer", "kubeflow-view")):
            ensure({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": name}})
            ensure({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": sa, "namespace": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": name}]})
        ensure({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "namespaceAdmin", "namespace": name, "annotations": who},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeflow-admin"},
                "subjects": [owner]})
        hard = ((prof.get("spec") or {}).get("resourceQuotaSpec") or {}).get("hard")
        if hard:
            ensure({"apiVersion": "v1", "kind": "ResourceQuota",
                    "metadata": {"name": "kf-resource-quota", "namespace": name},
                    "spec": prof["spec"]["resourceQuotaSpec"]})
        fins = prof["metadata"].get("finalizers") or []
        if PROFILE_FINALIZER not in fins:
            self._controller_write(key, ("metadata", "finalizers"), [*fins, PROFILE_FINALIZER], "profile-controller")
            changed = True
        return changed

    def _finalize(self) -> bool:
        changed = False
        for key, o in list(self.store.items()):
            fins = o["metadata"].get("finalizers") or []
            if "deletionTimestamp" not in o["metadata"] or not fins:
                continue
            keep = [f for f in fins if f not in self.finalizer_controllers
                    or not self._available(*self.finalizer_controllers[f])]
            if keep != fins:
                o["metadata"]["finalizers"] = keep
                self._settle(key)
                changed = True
        if changed:
            for kk in [k for k in self.store if k[1] == "Namespace"]:
                self._settle(kk)
        return changed

    # -- deletion (what teardown relies on) ------------------------------------------------
    def delete(self, api, kind, name, namespace=None, propagation="Background"):
        k = self.key(api, kind, name, namespace)
        if k not in self.store:
            return False
        self.deleted.append(f"{kind} {name}")
        self.writes.append(("delete", f"{kind} {name}", False))
        self.store[k]["metadata"]["deletionTimestamp"] = "now"
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
        for table in (self.fields, self.owners, self.ready_at, self.blocked, self.rolled):
            table.pop(k, None)
        self._collect_garbage(o["metadata"].get("uid"))

    def _collect_garbage(self, uid: str | None) -> None:
        """The garbage collector (background propagation): what the removed object owned goes too."""
        if not uid:
            return
        for kk, dep in list(self.store.items()):
            if any(r.get("uid") == uid for r in dep["metadata"].get("ownerReferences") or []) and kk in self.store:
                self.deleted.append(f"{kk[1]} {kk[3]} (garbage collected)")
                self.store[kk]["metadata"]["deletionTimestamp"] = "now"
                self._settle(kk)

    def patch(self, api, kind, name, namespace, body):
        k = self.key(api, kind, name, namespace)
        if k not in self.store:
            return None
        if body.get("metadata", {}).get("finalizers", "keep") is None:
            self.store[k]["metadata"].pop("finalizers", None)
            self.fields[k] = {p: v for p, v in self.fields.get(k, {}).items() if p[:2] != ("metadata", "finalizers")}
        self._settle(k)
        for kk in list(self.store):  # a namespace may now finish
            if kk[1] == "Namespace":
                self._settle(kk)
        return self.get(api, kind, name, namespace)

    def finalize_namespace(self, name):
        self._settle(("v1", "Namespace", None, name))
