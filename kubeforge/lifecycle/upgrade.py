"""`kubeforge upgrade`: what moving from the installed platform to a profile implies, and whether
it is safe.

Per component: the version change; per CRD: versions added and removed, the storage version,
stored versions still in use (from the cluster's CRD status, or assumed from the old storage
version offline), and schema fields removed. Gates: Istio moves one minor at a time; the target's
Istio/Knative/KServe tuple is one tested together. Order: wave by wave, CRDs first, then
controllers, then custom resources. A blocker refuses the upgrade with its reason and its fix.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.model import LABEL_COMPONENT, LABEL_VERSION

ONE_MINOR_AT_A_TIME = ("istio",)   # upstream supports skipping no minor release


@dataclass
class Blocker:
    component: str
    reason: str
    fix: str


@dataclass
class CrdChange:
    crd: str
    versions_added: list[str] = field(default_factory=list)
    versions_removed: list[str] = field(default_factory=list)
    storage: tuple[str, str] = ("", "")            # (old, new) storage version
    stored_versions: list[str] = field(default_factory=list)
    stored_known: bool = False                     # True: read from the cluster; False: assumed
    fields_removed: dict[str, list[str]] = field(default_factory=dict)   # version -> paths
    new: bool = False
    removed: bool = False


@dataclass
class ComponentChange:
    name: str
    old_version: str | None
    new_version: str | None
    change: str                                    # upgrade | downgrade | same | added | removed
    crds: list[CrdChange] = field(default_factory=list)


@dataclass
class Side:
    """One end of an upgrade: component versions, and the objects when they are known."""
    label: str                                     # where it came from, for messages
    versions: dict[str, str]
    objects: dict[str, list[dict]] | None = None   # component -> rendered objects
    plan: Any = None
    rendered: Any = None                           # the Rendered, when rendered from a profile


@dataclass
class UpgradePlan:
    old: str
    new: str
    components: list[ComponentChange]
    blockers: list[Blocker]
    warnings: list[str]
    order: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.blockers

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "from": self.old, "to": self.new,
                "components": [asdict(c) for c in self.components],
                "blockers": [asdict(b) for b in self.blockers], "warnings": self.warnings,
                "order": self.order}


# -- versions -----------------------------------------------------------------------------
def parse_version(v: str) -> tuple[int, ...]:
    core = v.lstrip("v").split("-")[0].split("+")[0]
    out = []
    for part in core.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def minor(v: str) -> str:
    return ".".join(str(x) for x in parse_version(v)[:2])


def classify(old: str | None, new: str | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    o, n = parse_version(old), parse_version(new)
    return "same" if o == n else ("upgrade" if n > o else "downgrade")


# -- CRD diff -----------------------------------------------------------------------------
def crd_versions(crd: dict) -> dict[str, dict]:
    return {v["name"]: v for v in (crd.get("spec") or {}).get("versions") or []}


def storage_version(crd: dict) -> str:
    return next((n for n, v in crd_versions(crd).items() if v.get("storage")), "")


def schema_paths(schema: dict | None, prefix: str = "") -> set[str]:
    """Dotted property paths of an openAPIV3Schema ('spec.template.metadata', arrays as '[]')."""
    out: set[str] = set()
    if not isinstance(schema, dict):
        return out
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        out |= schema_paths(sub, path)
    if isinstance(schema.get("items"), dict):
        out |= schema_paths(schema["items"], f"{prefix}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out |= schema_paths(schema["additionalProperties"], f"{prefix}.*")
    return out


def _schema(version: dict) -> dict:
    return ((version.get("schema") or {}).get("openAPIV3Schema")) or {}


def diff_crd(old: dict | None, new: dict | None, stored: list[str] | None = None) -> CrdChange:
    """What changes for one CRD. stored: status.storedVersions from the cluster, when known."""
    name = (new or old)["metadata"]["name"]
    if old is None:
        return CrdChange(name, versions_added=sorted(crd_versions(new)), storage=("", storage_version(new)),
                         new=True)
    ov, nv = crd_versions(old), crd_versions(new) if new else {}
    ch = CrdChange(name, versions_added=sorted(set(nv) - set(ov)), versions_removed=sorted(set(ov) - set(nv)),
                   storage=(storage_version(old), storage_version(new) if new else ""),
                   removed=new is None)
    ch.stored_known = stored is not None
    ch.stored_versions = sorted(stored) if stored is not None else [storage_version(old)]
    for v in sorted(set(ov) & set(nv)):
        gone = sorted(schema_paths(_schema(ov[v])) - schema_paths(_schema(nv[v])))
        if gone:
            ch.fields_removed[v] = gone
    return ch


def strand_blockers(component: str, ch: CrdChange) -> list[Blocker]:
    """Stored versions the new CRD no longer has: the API server could not read those objects."""
    if ch.removed or ch.new:
        return []
    out = []
    for v in ch.stored_versions:
        if v in ch.versions_removed:
            seen = "the cluster has objects stored as" if ch.stored_known else \
                "objects may be stored as (it was the storage version)"
            old_storage, new_storage = ch.storage
            if v != old_storage:
                # An older version lingers in storedVersions: rewriting stores at the current one.
                how = (f"rewrite every object so it is stored as {old_storage} (kubectl get {ch.crd} -A -o json "
                       f"| kubectl replace -f -), then set status.storedVersions to [{old_storage}] "
                       f"(kubectl patch crd {ch.crd} --subresource=status --type=merge "
                       f"-p '{{\"status\":{{\"storedVersions\":[\"{old_storage}\"]}}}}'), then upgrade")
            else:
                how = (f"first move storage off {v}: apply an intermediate CRD (or release) that serves both "
                       f"{v} and {new_storage} with {new_storage} as the storage version, rewrite every object "
                       f"(kubectl get {ch.crd} -A -o json | kubectl replace -f -), set status.storedVersions "
                       f"to [{new_storage}], then upgrade")
            out.append(Blocker(
                component,
                f"CRD {ch.crd}: the new release removes version {v}, and {seen} {v}; they would be stranded",
                how))
    return out


# -- gates --------------------------------------------------------------------------------
def version_gates(old: dict[str, str], new: dict[str, str]) -> list[Blocker]:
    out = []
    for name in ONE_MINOR_AT_A_TIME:
        if name in old and name in new:
            o, n = parse_version(old[name])[:2], parse_version(new[name])[:2]
            if o[0] == n[0] and n[1] - o[1] > 1:
                step = f"{o[0]}.{o[1] + 1}"
                out.append(Blocker(name, f"{name} {old[name]} -> {new[name]} skips minor releases; "
                                   f"{name} upgrades one minor at a time",
                                   f"upgrade to {name} {step}.x first, verify, then to {new[name]}"))
    return out


def compat_gates(plan: Any) -> list[Blocker]:
    """The target's components must be ones tested together (component.yaml `compat`)."""
    if plan is None:
        return []
    out = []
    for name, pc in plan.components.items():
        for other, minors in (pc.component.compat or {}).items():
            if other in plan.components:
                have = plan.components[other].version
                if minor(have) not in [minor(m) for m in minors]:
                    out.append(Blocker(name, f"{name} {pc.version} is tested with {other} "
                                       f"{', '.join(minors)}, but the target has {other} {have}",
                                       f"pick {other} {' or '.join(minors)} (the tuple kubeflow/manifests tests) "
                                       f"or a {name} release tested with {other} {minor(have)}"))
    return out


# -- order --------------------------------------------------------------------------------
def upgrade_order(new: Side, changed: list[str]) -> list[dict[str, Any]]:
    from kubeforge.ordering import APPLY_PHASES, apply_phase

    steps = []
    waves = new.plan.waves if new.plan is not None else [sorted(new.versions)]
    for i, wave in enumerate(waves):
        names = [n for n in wave if n in changed]
        if not names:
            continue
        for phase in APPLY_PHASES:
            objs = [o for n in names for o in (new.objects or {}).get(n, []) if apply_phase(o) == phase]
            steps.append({"wave": i, "phase": phase, "components": names, "objects": len(objs)})
    return steps


# -- sides --------------------------------------------------------------------------------
def side_from_rendered(rendered: Any, label: str) -> Side:
    return Side(label, {n: c.version for n, c in rendered.components.items()},
                {n: c.objects for n, c in rendered.components.items()}, rendered.plan, rendered)


def side_from_objects(objs: list[dict], label: str) -> Side:
    """From labelled objects (a render directory, or the cluster)."""
    versions: dict[str, str] = {}
    by: dict[str, list[dict]] = {}
    for o in objs:
        labels = (o.get("metadata") or {}).get("labels") or {}
        comp = labels.get(LABEL_COMPONENT)
        if comp:
            by.setdefault(comp, []).append(o)
            if labels.get(LABEL_VERSION):
                versions.setdefault(comp, labels[LABEL_VERSION])
    return Side(label, versions, by)


def load_from(ref: str, mirror: str | None = None) -> Side:
    """--from: a render directory (kubeforge render -o DIR), a lock file (component: version), or a profile."""
    p = Path(ref)
    if p.is_dir():
        from kubeforge.yamlio import load_all

        files = sorted(p.glob("*.yaml"))
        if not files:
            raise KubeforgeError("the directory holds no rendered YAML", file=ref, field="--from",
                                 fix="pass the output directory of `kubeforge render -o DIR` of the old release")
        objs = [d for f in files for d in load_all(f.read_text()) if isinstance(d, dict)]
        side = side_from_objects(objs, ref)
        if not side.versions:
            raise KubeforgeError("no object in it carries the kubeforge.io/component labels", file=ref,
                                 field="--from", fix="render it with kubeforge (kubeforge render -o DIR)")
        return side
    if p.is_file() and p.suffix in (".json", ".lock") or (p.is_file() and _looks_like_lock(p)):
        return Side(ref, read_lock(p))
    from kubeforge import api

    rendered = api.render(api.plan(api.load_profile(ref)), mirror=mirror)
    return side_from_rendered(rendered, f"profile {ref}")


def _looks_like_lock(p: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(p.read_text())
    except Exception:
        return False
    return isinstance(data, dict) and data.get("kind") == "PlatformLock"


def read_lock(p: Path) -> dict[str, str]:
    """A platform lock: {"kind": "PlatformLock", "components": {name: version | {version: ...}}}."""
    import yaml

    try:
        data = yaml.safe_load(p.read_text())
    except Exception as exc:
        raise KubeforgeError(f"cannot parse the lock: {exc}", file=str(p), field="--from",
                             fix="pass a lock written by `kubeforge upgrade --write-lock`") from None
    comps = (data or {}).get("components") if isinstance(data, dict) else None
    if not isinstance(comps, dict) or not comps:
        raise KubeforgeError("the lock has no components mapping", file=str(p), field="components",
                             fix="components: {istio: 1.28.2, ...} (as `kubeforge upgrade --write-lock` writes)")
    out = {}
    for name, v in comps.items():
        ver = v.get("version") if isinstance(v, dict) else v
        if not ver:
            raise KubeforgeError(f"component {name} has no version", file=str(p), field=f"components.{name}",
                                 fix="give each component its installed version")
        out[name] = str(ver)
    return out


def lock_of(side: Side) -> dict[str, Any]:
    return {"kind": "PlatformLock", "components": {n: {"version": v} for n, v in sorted(side.versions.items())}}


# -- the analysis -------------------------------------------------------------------------
def analyze(old: Side, new: Side, stored: dict[str, list[str]] | None = None,
            live_crds: dict[str, dict] | None = None) -> UpgradePlan:
    """Compare old and new; stored: CRD name -> status.storedVersions (cluster), when known.
    live_crds: the cluster's CRDs, used as the old CRDs when the old side has no objects."""
    comps: list[ComponentChange] = []
    blockers: list[Blocker] = []
    warnings: list[str] = []
    names = list(new.versions) + [n for n in old.versions if n not in new.versions]
    for name in names:
        ov, nv = old.versions.get(name), new.versions.get(name)
        cc = ComponentChange(name, ov, nv, classify(ov, nv))
        old_crds = _crds_of(old, name, live_crds)
        new_crds = {o["metadata"]["name"]: o for o in (new.objects or {}).get(name, [])
                    if o.get("kind") == "CustomResourceDefinition"}
        if old_crds is None:
            if new_crds and cc.change not in ("added", "same"):
                warnings.append(f"{name}: the old CRDs are unknown (a lock without objects and no cluster), "
                                "so CRD changes are not checked; run against the cluster to check them")
            old_crds = new_crds if cc.change == "same" else ({} if cc.change == "added" else None)
        for crd in sorted(set(old_crds or {}) | set(new_crds)) if old_crds is not None else []:
            ch = diff_crd((old_crds or {}).get(crd), new_crds.get(crd),
                          (stored or {}).get(crd) if stored and crd in stored else None)
            if ch.new or ch.removed or ch.versions_added or ch.versions_removed or ch.fields_removed \
                    or ch.storage[0] != ch.storage[1]:
                cc.crds.append(ch)
            blockers += strand_blockers(name, ch)
            for v, paths in ch.fields_removed.items():
                warnings.append(f"{name}: CRD {crd} {v} drops {len(paths)} field(s) "
                                f"({', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}); values set "
                                "there are pruned at the next write")
        if cc.change == "downgrade":
            warnings.append(f"{name}: {ov} -> {nv} is a downgrade; upstream projects do not support it")
        comps.append(cc)
    blockers += version_gates(old.versions, new.versions)
    blockers += compat_gates(new.plan)
    changed = [c.name for c in comps if c.change in ("upgrade", "downgrade", "added")
               or (c.change == "same" and c.crds)]
    order = upgrade_order(new, changed)
    removed = [c.name for c in comps if c.change == "removed"]
    if removed:
        order.append({"wave": None, "phase": "remove", "components": removed,
                      "objects": None, "note": "kubeforge teardown of these components, after the upgrade"})
    return UpgradePlan(old.label, new.label, comps, blockers, warnings, order)


def _crds_of(side: Side, name: str, live_crds: dict[str, dict] | None) -> dict[str, dict] | None:
    if side.objects is not None and name in side.objects:
        return {o["metadata"]["name"]: o for o in side.objects[name] if o.get("kind") == "CustomResourceDefinition"}
    if live_crds is not None:
        return {n: c for n, c in live_crds.items()
                if ((c.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT) == name}
    return None


def dumps(plan: UpgradePlan) -> str:
    return json.dumps(plan.as_dict(), indent=2)
