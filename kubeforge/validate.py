"""Validate rendered objects before anything is applied: schemas, custom resources, policies.

`validate(objects, kubernetes_version)` checks
- every built-in object against the OpenAPI schema of the target Kubernetes minor (unknown fields
  are errors, as with kubectl's default server-side field validation), see kubeforge.schemas;
- every custom resource against the openAPIV3Schema of the CRD version it uses, the CRD being one
  of the same objects (a custom resource without its CRD would fail to apply);
- policies: pinned images, Pod Security labels on namespaces, object names and labels the
  apiserver accepts, no duplicate objects, namespaces where the scope needs them, and objects too
  large for client-side apply.
Known, accepted upstream violations live in components/_allowlist.yaml (one reviewed list, a
reason per entry); they are reported as allowed, and an entry that no longer matches is stale.

Only the standard library is imported at module level (the CLI starts fast); yaml and
jsonschema are imported when needed.
"""
from __future__ import annotations

import difflib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubeforge import paths, schemas
from kubeforge.errors import KubeforgeError
from kubeforge.model import LABEL_COMPONENT

ERROR, WARNING = "error", "warning"


def _monitoring_rules() -> dict[str, str]:
    from kubeforge.validate_monitoring import RULES as monitoring

    return monitoring

# kubectl's client-side apply stores the whole object in the last-applied-configuration
# annotation, and all annotations of an object together may hold at most 256 KiB.
CLIENT_SIDE_APPLY_LIMIT = 256 * 1024

PSA_PREFIX = "pod-security.kubernetes.io/"
PSA_LEVELS = ("privileged", "baseline", "restricted")

# Rules, so that the allowlist, tests and readers share one vocabulary.
RULES = {
    "object-identity": "apiVersion, kind and metadata.name are set",
    "schema": "a built-in object matches the Kubernetes OpenAPI schema of the target version",
    "unknown-kind": "the target Kubernetes version serves the apiVersion/kind",
    "crd-missing": "a custom resource's CRD is among the objects",
    "crd-schema": "a custom resource matches its CRD version's openAPIV3Schema",
    "crd-name": "a CRD is named <plural>.<group>",
    "image-latest": "no container image uses the :latest tag",
    "image-untagged": "every container image has a tag or digest (untagged means :latest)",
    "namespace-psa": "every Namespace has valid Pod Security labels (enforce at least)",
    "object-size": "objects over 256 KiB serialized need server-side apply",
    "duplicate-object": "no object appears twice",
    "metadata-name": "names are valid for their kind (DNS label / subdomain)",
    "label": "label keys and values are valid",
    "namespace-scope": "namespaced objects name a namespace; cluster-scoped ones do not",
    "resources": "workload containers request CPU/memory (warning)",
    "allowlist-stale": "every allowlist entry still matches a finding",
    "default-secret": "no object carries a known upstream default secret (components/_default_secrets.yaml)",
}
RULES.update(_monitoring_rules())

# Built-in kinds that are cluster-scoped (the OpenAPI schema does not say; kustomize keeps the
# same list). Anything else built in is namespaced.
CLUSTER_SCOPED = frozenset({
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding",
    "ClusterTrustBundle", "ComponentStatus", "CSIDriver", "CSINode", "CustomResourceDefinition",
    "DeviceClass", "FlowSchema", "IngressClass", "IPAddress", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration", "Namespace", "Node",
    "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "ResourceSlice",
    "RuntimeClass", "ServiceCIDR", "StorageClass", "StorageVersion", "StorageVersionMigration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration", "VolumeAttachment", "VolumeAttributesClass",
})
# Name rules of the apiserver: most kinds need a DNS-1123 subdomain, these a DNS-1123 label, and
# RBAC objects only a path segment (they may contain ':').
DNS_LABEL_KINDS = frozenset({"Namespace", "Service"})
PATH_SEGMENT_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                             "CronJob", "ReplicationController"})


@dataclass
class Finding:
    severity: str            # error | warning
    rule: str                # a key of RULES
    message: str
    kind: str = ""
    api_version: str = ""
    namespace: str = ""
    name: str = ""
    component: str = ""      # from the kubeforge.io/component label, when rendered by kubeforge
    path: str = ""           # JSON path inside the object, e.g. spec.template.spec.containers[0]
    allowed: bool = False    # matched by the allowlist
    reason: str = ""         # the allowlist entry's reason

    @property
    def object(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def line(self) -> str:
        who = f"[{self.component}] " if self.component else ""
        at = f" {self.path}:" if self.path else ":"
        tail = f" (allowed: {self.reason})" if self.allowed else ""
        return f"{self.severity} {self.rule}: {who}{self.object}{at} {self.message}{tail}"


@dataclass
class Report:
    kubernetes_version: str
    objects: int
    findings: list[Finding]
    seconds: float                       # validation wall time, all objects
    object_ms: list[tuple[str, float]] = field(default_factory=list)   # (object, ms), input order

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR and not f.allowed]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING and not f.allowed]

    @property
    def allowed(self) -> list[Finding]:
        return [f for f in self.findings if f.allowed]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def ms_per_object(self) -> float:
        return 1000 * self.seconds / self.objects if self.objects else 0.0

    def counts(self) -> dict[str, Any]:
        by_rule: dict[str, int] = {}
        for f in self.findings:
            if not f.allowed:
                by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
        return {"objects": self.objects, "errors": len(self.errors), "warnings": len(self.warnings),
                "allowed": len(self.allowed), "by_rule": dict(sorted(by_rule.items()))}

    def slowest(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.object_ms, key=lambda x: -x[1])[:n]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """The report as to_dict() wrote it (per-object timings are not kept, only the slowest)."""
        return cls(d["kubernetesVersion"], d["counts"]["objects"], [Finding(**f) for f in d["findings"]],
                   d["seconds"], [(s["object"], s["ms"]) for s in d.get("slowest") or []])

    def to_dict(self) -> dict[str, Any]:
        return {"kubernetesVersion": self.kubernetes_version, "ok": self.ok, "counts": self.counts(),
                "seconds": round(self.seconds, 4), "msPerObject": round(self.ms_per_object, 4),
                "slowest": [{"object": o, "ms": round(ms, 3)} for o, ms in self.slowest()],
                "findings": [asdict(f) for f in self.findings]}

    def summary(self) -> str:
        return self.text()

    def text(self, show_allowed: bool = False) -> str:
        lines = [f.line() for f in self.findings
                 if show_allowed or not f.allowed]
        c = self.counts()
        lines.append(f"{c['objects']} objects validated against Kubernetes {self.kubernetes_version}: "
                     f"{c['errors']} errors, {c['warnings']} warnings, {c['allowed']} allowed "
                     f"({self.ms_per_object:.2f} ms/object)")
        return "\n".join(lines)


# --- allowlist ----------------------------------------------------------------------------------

_ENTRY_KEYS = {"rule", "kind", "name", "namespace", "component", "path", "message", "reason"}


@dataclass(frozen=True)
class AllowEntry:
    rule: str
    kind: str
    name: str
    reason: str
    namespace: str | None = None
    component: str | None = None
    path: str | None = None       # the finding's path; `*` matches anything (brackets are literal)
    message: str | None = None    # substring of the finding's message

    def matches(self, f: Finding) -> bool:
        return (f.rule == self.rule and f.kind == self.kind and f.name == self.name
                and (self.namespace is None or f.namespace == self.namespace)
                and (self.component is None or f.component == self.component)
                and (self.path is None or _star_match(self.path, f.path))
                and (self.message is None or self.message in f.message))

    def targets(self, kind: str, namespace: str, name: str) -> bool:
        return (kind == self.kind and name == self.name
                and (self.namespace is None or namespace == self.namespace))

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.rule} {self.kind} {where}" + (f" {self.path}" if self.path else "")


def _star_match(pattern: str, text: str) -> bool:
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), text) is not None


def parse_allowlist(data: Any, file: str = "components/_allowlist.yaml") -> list[AllowEntry]:
    """Allowlist entries from loaded YAML ({entries: [...]}); bad entries name field and fix."""
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("entries", []), list):
        raise KubeforgeError("the allowlist must be a mapping with a list `entries`", file=file,
                             field="entries", fix="write `entries:` followed by a list of entries")
    out = []
    for i, e in enumerate(data.get("entries") or []):
        where = f"entries[{i}]"
        if not isinstance(e, dict):
            raise KubeforgeError("an allowlist entry must be a mapping", file=file, field=where,
                                 fix="give rule, kind, name and reason")
        extra = set(e) - _ENTRY_KEYS
        if extra:
            raise KubeforgeError(f"unknown field(s) {sorted(extra)}", file=file, field=where,
                                 fix=f"use only {sorted(_ENTRY_KEYS)}")
        for k in ("rule", "kind", "name", "reason"):
            if not isinstance(e.get(k), str) or not e[k].strip():
                raise KubeforgeError(f"`{k}` is required (a non-empty string)", file=file,
                                     field=f"{where}.{k}",
                                     fix="name one object and rule, and say why it is accepted"
                                     if k != "reason" else "say why this upstream violation is accepted")
        if e["rule"] not in RULES:
            raise KubeforgeError(f"unknown rule {e['rule']!r}", file=file, field=f"{where}.rule",
                                 fix=f"use one of {sorted(RULES)}")
        if any(c in e["name"] for c in "*?["):
            raise KubeforgeError("`name` must name one object, not a pattern", file=file,
                                 field=f"{where}.name", fix="add one entry per object")
        for k in ("namespace", "component", "path", "message"):
            if k in e and not isinstance(e[k], str):
                raise KubeforgeError(f"`{k}` must be a string", file=file, field=f"{where}.{k}",
                                     fix="quote the value")
        out.append(AllowEntry(**e))
    return out


_ALLOWLIST_CACHE: dict[tuple[str, float], list[AllowEntry]] = {}


def allowlist_file() -> Path:
    return paths.components_dir() / "_allowlist.yaml"


def load_allowlist(path: str | Path | None = None) -> list[AllowEntry]:
    path = Path(path) if path is not None else allowlist_file()
    if not path.exists():
        return []
    key = (str(path), path.stat().st_mtime)
    if key not in _ALLOWLIST_CACHE:
        import yaml

        try:
            data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as e:
            raise KubeforgeError(f"not valid YAML: {e}", file=str(path),
                                 fix="fix the YAML syntax") from None
        _ALLOWLIST_CACHE[key] = parse_allowlist(data, file=str(path))
    return _ALLOWLIST_CACHE[key]


def _resolve_allowlist(allowlist: Any) -> list[AllowEntry]:
    if allowlist is None:
        return load_allowlist()
    if isinstance(allowlist, (str, Path)):
        return load_allowlist(allowlist)
    if isinstance(allowlist, dict):
        return parse_allowlist(allowlist, file="<allowlist>")
    return [e if isinstance(e, AllowEntry) else parse_allowlist({"entries": [e]}, "<allowlist>")[0]
            for e in allowlist]


# --- the checks ---------------------------------------------------------------------------------

class _Object:
    """One object being checked: its identity, and findings bound to it."""

    __slots__ = ("obj", "api_version", "group", "version", "kind", "namespace", "name",
                 "component", "out")

    def __init__(self, obj: dict, out: list[Finding]):
        self.obj = obj
        md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        self.api_version = str(obj.get("apiVersion") or "")
        self.group, _, self.version = self.api_version.rpartition("/")
        self.kind = str(obj.get("kind") or "")
        self.namespace = str(md.get("namespace") or "")
        self.name = str(md.get("name") or md.get("generateName") or "")
        labels = md.get("labels") if isinstance(md.get("labels"), dict) else {}
        self.component = str(labels.get(LABEL_COMPONENT) or "")
        self.out = out

    def add(self, severity: str, rule: str, message: str, path: str | list = "") -> None:
        if isinstance(path, list):
            path = schemas.format_path(path)
        self.out.append(Finding(severity, rule, message, self.kind, self.api_version, self.namespace,
                                self.name, self.component, path))


def _d(value: Any) -> dict:
    """The value if it is a mapping, else {}: malformed input gets schema findings, not a crash."""
    return value if isinstance(value, dict) else {}


def _crd_index(objects: list[dict]) -> dict[tuple[str, str], dict]:
    out = {}
    for o in objects:
        if (isinstance(o, dict) and o.get("kind") == "CustomResourceDefinition"
                and str(o.get("apiVersion", "")).startswith("apiextensions.k8s.io/")):
            spec = _d(o.get("spec"))
            kind = _d(spec.get("names")).get("kind")
            if spec.get("group") and kind:
                out[(spec["group"], kind)] = o
    return out


def _check_schema(ob: _Object, k8s: schemas.BuiltinSchemas, crds: dict, crd_checks: dict,
                  cluster: Any = None) -> str | None:
    """Schema checks; returns the object's scope ("Namespaced"/"Cluster") when known."""
    check = k8s.validator(ob.group, ob.version, ob.kind)
    if check is not False:
        errs: list = []
        if check is not None:
            check(ob.obj, None, errs)
        for chain, msg in errs:
            ob.add(ERROR, "schema", msg, schemas.path_list(chain))
        return "Cluster" if ob.kind in CLUSTER_SCOPED else "Namespaced"
    if ob.group in k8s.groups or (not ob.group and ob.version == "v1"):
        served = k8s.served(kind=ob.kind)
        if served:
            hint = f"Kubernetes {k8s.version} serves it as " + ", ".join(served)
            fix = f"use apiVersion {served[-1].split()[0]}"
        else:
            near = difflib.get_close_matches(ob.kind, sorted({k for _, _, k in k8s.gvk}), n=1)
            hint = f"no such kind in Kubernetes {k8s.version}"
            fix = f"did you mean {k8s.served(kind=near[0])[-1]}?" if near else "check the kind's spelling"
        ob.add(ERROR, "unknown-kind", f"{ob.api_version} {ob.kind} is not served: {hint}; {fix}")
        return None
    crd = crds.get((ob.group, ob.kind))
    if crd is None and cluster is not None and cluster.provides(ob.group, ob.kind):
        return None                     # the profile says the cluster serves it (cluster.apis)
    if crd is None:
        ob.add(ERROR, "crd-missing",
               f"custom resource {ob.kind} ({ob.api_version}) has no CustomResourceDefinition among "
               f"the objects: enable the component that provides the {ob.group} CRDs, add the "
               f"CRD to this component's sources, or declare `cluster.apis: [{ob.group}]` in the "
               f"profile if the cluster already serves it")
        return None
    spec = _d(crd.get("spec"))
    versions = [v for v in spec.get("versions") or () if isinstance(v, dict)]
    version = next((v for v in versions if v.get("name") == ob.version), None)
    crd_name = _d(crd.get("metadata")).get("name", "")
    if version is None or not version.get("served", True):
        served = [str(v.get("name")) for v in versions if v.get("served", True)]
        ob.add(ERROR, "crd-schema",
               f"CRD {crd_name} does not serve version {ob.version} (served: {', '.join(served)}); "
               f"use apiVersion {ob.group}/{served[-1] if served else '?'}")
        return spec.get("scope")
    schema = (_d(version.get("schema")).get("openAPIV3Schema")
              or _d(spec.get("validation")).get("openAPIV3Schema"))
    if isinstance(schema, dict) and schema:
        if id(schema) not in crd_checks:
            crd_checks[id(schema)] = schemas.crd_validator(schema)
        for path, msg in crd_checks[id(schema)](ob.obj):
            ob.add(ERROR, "crd-schema", msg, path)
    meta = ob.obj.get("metadata")
    meta_check = k8s.object_meta()
    if meta is not None and meta_check is not None:
        errs = []
        meta_check(meta, (None, "metadata"), errs)
        for chain, msg in errs:
            ob.add(ERROR, "crd-schema", msg, schemas.path_list(chain))
    return spec.get("scope")


def _image_findings(ob: _Object, node: Any, path: list) -> None:
    """Every containers/initContainers/ephemeralContainers list anywhere (pod templates of
    built-in workloads and of custom resources such as KServe's serving runtimes)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _CONTAINER_LISTS and isinstance(v, list):
                for i, c in enumerate(v):
                    if isinstance(c, dict) and isinstance(c.get("image"), str):
                        _check_image(ob, c["image"], [*path, k, i, "image"])
            if isinstance(v, (dict, list)):
                _image_findings(ob, v, [*path, k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                _image_findings(ob, v, [*path, i])


def _configmap_images(ob: _Object) -> None:
    """Images that controllers read from ConfigMaps (KServe's inferenceservice-config, Knative's
    queue-proxy, Katib's collectors), found by the same walker as `kubeforge images`, which
    spells an untagged reference out as :latest."""
    from kubeforge.images import list_images

    for image in list_images([ob.obj]):
        if image.endswith(":latest"):
            ob.add(ERROR, "image-latest", f'image "{image}" (in the ConfigMap\'s data) uses the :latest '
                   "tag or no tag; pin a version tag or a digest", ["data"])


def _check_image(ob: _Object, image: str, path: list) -> None:
    from kubeforge.images import floating_tag

    if not image:                          # empty: the schema's business
        return
    tag = floating_tag(image)
    if tag == "":
        ob.add(ERROR, "image-untagged", f'image "{image}" has no tag, so it means :latest; pin a '
               f"version tag or a digest", path)
    elif tag == "latest":
        ob.add(ERROR, "image-latest", f'image "{image}" uses the :latest tag; pin a version tag or '
               f"a digest", path)


def _check_requests(ob: _Object) -> None:
    spec = ob.obj.get("spec")
    if not isinstance(spec, dict):
        return
    if ob.kind == "CronJob":
        spec = _d(_d(spec.get("jobTemplate")).get("spec"))
    pod = spec if ob.kind == "Pod" else _d(_d(spec.get("template")).get("spec"))
    base = ["spec"] if ob.kind == "Pod" else (["spec", "jobTemplate", "spec", "template", "spec"]
                                               if ob.kind == "CronJob" else ["spec", "template", "spec"])
    containers = pod.get("containers")
    for i, c in enumerate(containers if isinstance(containers, list) else ()):
        if isinstance(c, dict) and not _d(c.get("resources")).get("requests"):
            ob.add(WARNING, "resources", f'container "{c.get("name")}" sets no resources.requests: '
                   "the scheduler cannot account for it", [*base, "containers", i])


def _check_namespace(ob: _Object, labels: dict) -> None:
    enforce = labels.get(PSA_PREFIX + "enforce")
    if enforce is None:
        ob.add(ERROR, "namespace-psa", f"Namespace {ob.name} has no {PSA_PREFIX}enforce label; set "
               f"it to one of {', '.join(PSA_LEVELS)} (the component's namespaces: level)",
               ["metadata", "labels"])
    for mode in ("enforce", "audit", "warn"):
        level = labels.get(PSA_PREFIX + mode)
        if level is not None and level not in PSA_LEVELS:
            ob.add(ERROR, "namespace-psa", f"{PSA_PREFIX}{mode} is {level!r}; it must be one of "
                   f"{', '.join(PSA_LEVELS)}", ["metadata", "labels", PSA_PREFIX + mode])
        ver = labels.get(PSA_PREFIX + mode + "-version")
        if ver is not None and not re.fullmatch(r"latest|v1\.\d+", str(ver)):
            ob.add(ERROR, "namespace-psa", f"{PSA_PREFIX}{mode}-version is {ver!r}; it must be "
                   f"latest or v1.N", ["metadata", "labels", PSA_PREFIX + mode + "-version"])


def _check_metadata(ob: _Object, md: dict) -> None:
    name = md.get("name")
    if isinstance(name, str) and name:
        if ob.kind in DNS_LABEL_KINDS:
            if len(name) > 63 or not _DNS_LABEL.match(name):
                ob.add(ERROR, "metadata-name", f"{ob.kind} name {name!r} must be a DNS-1123 label "
                       "(lower-case alphanumerics and '-', at most 63)", ["metadata", "name"])
        elif ob.kind in PATH_SEGMENT_KINDS:
            if name in (".", "..") or "/" in name or "%" in name:
                ob.add(ERROR, "metadata-name", f"{ob.kind} name {name!r} may not be '.', '..' or "
                       "contain '/' or '%'", ["metadata", "name"])
        elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            ob.add(ERROR, "metadata-name", f"{ob.kind} name {name!r} must be a DNS-1123 subdomain "
                   "(lower-case alphanumerics, '-' and '.', at most 253)", ["metadata", "name"])
    labels = md.get("labels")
    if isinstance(labels, dict):
        for k, v in labels.items():
            prefix, _, key = str(k).rpartition("/")
            if (len(key) > 63 or not _LABEL_NAME.match(key)
                    or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))):
                ob.add(ERROR, "label", f"label key {k!r} is not a valid qualified name",
                       ["metadata", "labels", k])
            if isinstance(v, str) and v and (len(v) > 63 or not _LABEL_NAME.match(v)):
                ob.add(ERROR, "label", f"label value {v!r} is invalid (at most 63 characters: "
                       "alphanumerics, '-', '_', '.', starting and ending alphanumeric)",
                       ["metadata", "labels", k])


def _check_object(ob: _Object, k8s: schemas.BuiltinSchemas, crds: dict, crd_checks: dict,
                  cluster: Any = None) -> None:
    obj = ob.obj
    md = obj.get("metadata")
    if not ob.api_version or not ob.kind or not isinstance(md, dict) or not ob.name:
        missing = [k for k, ok in (("apiVersion", ob.api_version), ("kind", ob.kind),
                                   ("metadata.name", ob.name)) if not ok]
        ob.add(ERROR, "object-identity", f"the object has no {', '.join(missing)}",
               missing[0] if missing else "")
        return
    scope = _check_schema(ob, k8s, crds, crd_checks, cluster)
    _check_metadata(ob, md)
    if scope == "Cluster" and ob.namespace:
        ob.add(WARNING, "namespace-scope", f"{ob.kind} is cluster-scoped; metadata.namespace "
               f"{ob.namespace!r} is ignored", ["metadata", "namespace"])
    elif scope == "Namespaced" and not ob.namespace:
        ob.add(WARNING, "namespace-scope", f"{ob.kind} is namespaced but sets no "
               "metadata.namespace: it would land in the kubeconfig's current namespace",
               ["metadata", "namespace"])
    if ob.kind == "CustomResourceDefinition":
        spec = _d(obj.get("spec"))
        want = f"{_d(spec.get('names')).get('plural')}.{spec.get('group')}"
        if ob.name != want:
            ob.add(ERROR, "crd-name", f"a CRD must be named <plural>.<group>: {want!r}",
                   ["metadata", "name"])
    else:
        _image_findings(ob, obj.get("spec"), ["spec"])
        if ob.kind == "ConfigMap" and not ob.group:
            _configmap_images(ob)
        if ob.kind == "Namespace" and not ob.group:
            _check_namespace(ob, md.get("labels") if isinstance(md.get("labels"), dict) else {})
        if ob.kind in _WORKLOAD_KINDS and k8s.validator(ob.group, ob.version, ob.kind) is not False:
            _check_requests(ob)
    # Close to what kubectl stores (Go escapes non-ASCII differently; the C encoder is fast).
    size = len(json.dumps(obj, separators=(",", ":"), check_circular=False, default=str))
    if size > CLIENT_SIDE_APPLY_LIMIT:
        ob.add(WARNING, "object-size",
               f"{ob.kind} is {size / 1024:.0f} KiB serialized, over the {CLIENT_SIDE_APPLY_LIMIT // 1024}"
               " KiB annotation limit of client-side apply (last-applied-configuration): "
               "server-side-apply only")


def validate(objects: list[dict], kubernetes_version: str, allowlist: Any = None,
             cluster: Any = None) -> Report:
    """Validate objects for a Kubernetes version ("1.34"); never modifies them.

    allowlist: None for components/_allowlist.yaml, a path, a {entries: [...]} mapping, a list of
    entries, or [] for none. cluster: the profile's `cluster` (kubeforge.profile.Cluster): custom
    resources of the APIs it says the cluster serves need no CRD among the objects.
    """
    k8s = schemas.builtin(kubernetes_version)
    entries = _resolve_allowlist(allowlist)
    start = time.perf_counter()
    crds = _crd_index(objects)
    crd_checks: dict[int, Any] = {}     # id(CRD version schema) -> check, for this call
    findings: list[Finding] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    object_ms = []
    for i, obj in enumerate(objects):
        t0 = time.perf_counter()
        if not isinstance(obj, dict):
            findings.append(Finding(ERROR, "object-identity",
                                    f"object #{i} is a {type(obj).__name__}, not a mapping"))
            continue
        ob = _Object(obj, findings)
        _check_object(ob, k8s, crds, crd_checks, cluster)
        key = (ob.group, ob.kind, ob.namespace, ob.name)
        if ob.kind and ob.name and key in seen:
            ob.add(ERROR, "duplicate-object", f"the same object is also object #{seen[key]}; the "
                   "later one would overwrite it")
        seen.setdefault(key, i)
        object_ms.append((f"{ob.kind} {ob.namespace + '/' if ob.namespace else ''}{ob.name}",
                          1000 * (time.perf_counter() - t0)))
    _monitoring(objects, findings)
    _default_secrets(objects, findings)
    _apply_allowlist(findings, entries, objects)
    return Report(k8s.version, len(objects), findings, time.perf_counter() - start, object_ms)


def _monitoring(objects: list, findings: list[Finding]) -> None:
    """Rules across monitoring objects (kubeforge.validate_monitoring): PromQL, monitor targets,
    dashboards' datasources."""
    from kubeforge import validate_monitoring

    for severity, rule, message, obj, path in validate_monitoring.check(objects):
        _Object(obj, findings).add(severity, rule, message, path)


def _default_secrets(objects: list, findings: list[Finding]) -> None:
    """Upstream's published sample secrets, wherever a render could carry one (kubeforge.default_secrets)."""
    from kubeforge import default_secrets

    for rule, message, obj, path in default_secrets.check(objects):
        _Object(obj, findings).add(ERROR, rule, message, path)


def _apply_allowlist(findings: list[Finding], entries: list[AllowEntry], objects: list) -> None:
    used = set()
    for f in findings:
        for e in entries:
            if e.matches(f):
                f.allowed, f.reason = True, e.reason
                used.add(e)
                break
    present = [(o.get("kind"), _d(o.get("metadata")).get("namespace") or "",
                _d(o.get("metadata")).get("name")) for o in objects if isinstance(o, dict)]
    for e in entries:
        # Stale: the object it names is here, yet the finding is gone (fixed upstream). Entries
        # for objects not in this set (another profile's components) are simply not in play.
        if e not in used and any(e.targets(*p) for p in present):
            findings.append(Finding(WARNING, "allowlist-stale",
                                    f"allowlist entry `{e.describe()}` matches no finding any more: "
                                    "remove it from components/_allowlist.yaml",
                                    e.kind, "", e.namespace or "", e.name, e.component or ""))


# What a validation report depends on besides the objects: this code and the bundled schemas.
_VALIDATION_CODE = ("validate.py", "schemas.py", "images.py", "validate_monitoring.py", "gpu/dcgm.py",
                    "default_secrets.py")


def validate_cached(rendered: Any, render_key: str, use_cache: bool = True, secrets: Any = None) -> tuple[Report, bool]:
    """(report, from_cache) for a render, cached under its render key (kubeforge.render.render_key),
    the fingerprint of the per-install secrets it used (`secrets`: the store it was rendered with,
    default the profile's), the allowlist, the validation code and kubernetes-validate's version:
    a warm `kubeforge render` validates nothing again."""
    import hashlib
    from importlib.metadata import version

    from kubeforge.render import _write_atomic
    from kubeforge.sources import cache_root

    kv = rendered.plan.profile.kubernetesVersion
    here = Path(__file__).parent
    h = hashlib.sha256(f"{render_key} {kv} {version('kubernetes-validate')}".encode())
    from kubeforge.default_secrets import file_path as default_secrets_file

    allow = allowlist_file()
    for p in [*(here / n for n in _VALIDATION_CODE), allow, default_secrets_file()]:
        h.update(p.read_bytes() if p.exists() else b"-")
    used = {n: rc.secrets for n, rc in rendered.components.items() if rc.secrets}
    if used:   # the same render key renders other objects once the install's secrets change
        from kubeforge.secrets import digest, store_for

        store = secrets if secrets is not None else store_for(rendered.plan.profile)
        h.update(json.dumps({n: digest(store, names) for n, names in sorted(used.items())}).encode())
    path = cache_root() / "validated" / f"{h.hexdigest()}.json"
    if use_cache and path.exists():
        try:
            return Report.from_dict(json.loads(path.read_text())), True
        except (ValueError, KeyError, TypeError):   # a torn entry is only a miss
            pass
    report = validate(rendered.objects(), kv, cluster=rendered.plan.profile.cluster)
    if use_cache:
        _write_atomic(path, json.dumps(report.to_dict()).encode())
    return report, False


def bench(objects: list[dict], kubernetes_version: str = "1.34", repeat: int = 3) -> dict[str, Any]:
    """Validation timing for benchmarks/render.py: cold (schemas loaded and compiled on the way)
    and warm (best of `repeat`), in ms per object against the 2 ms target."""
    schemas.clear_caches()
    t = time.perf_counter()
    report = validate(objects, kubernetes_version)
    cold = time.perf_counter() - t
    warm = min(_timed(objects, kubernetes_version) for _ in range(max(1, repeat)))
    n = max(1, len(objects))
    return {"objects": len(objects), "kubernetes_version": report.kubernetes_version,
            "cold_s": round(cold, 4), "warm_s": round(warm, 4),
            "cold_ms_per_object": round(1000 * cold / n, 4),
            "warm_ms_per_object": round(1000 * warm / n, 4),
            "target_ms_per_object": 2.0,
            "cold_ratio_to_target": round(1000 * cold / n / 2.0, 3),
            "errors": len(report.errors), "warnings": len(report.warnings),
            "allowed": len(report.allowed), "slowest": report.slowest(3)}


def _timed(objects: list[dict], kubernetes_version: str) -> float:
    t = time.perf_counter()
    validate(objects, kubernetes_version)
    return time.perf_counter() - t
