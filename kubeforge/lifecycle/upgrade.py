"""`kubeforge upgrade`: what moving from the installed platform to a profile implies, and whether
it is safe.

Per component: the version change and every object added, changed and removed; per CRD: versions
added and removed, served versions, the storage version, stored versions still in use (from the
cluster's CRD status, or assumed from the old storage version offline), and schema fields added and
removed. Gates (kubeforge/lifecycle/gates.py): each project's own upgrade policy from its
component.yaml `upgrade:` (Istio and Knative one minor at a time, cert-manager's recommendation),
and the Istio/Knative/KServe tuple on both sides. Order: wave by wave, CRDs first, then
controllers, then custom resources; objects the old release had and the new one lacks are pruned
afterwards in teardown order. A blocker refuses the upgrade with its reason and its fix.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.model import LABEL_COMPONENT, LABEL_PART_OF, LABEL_VERSION


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
    served: tuple[list[str], list[str]] = ([], [])  # (old, new) served versions
    stored_versions: list[str] = field(default_factory=list)
    stored_known: bool = False                     # True: read from the cluster; False: assumed
    fields_removed: dict[str, list[str]] = field(default_factory=dict)   # version -> paths
    fields_added: dict[str, list[str]] = field(default_factory=dict)     # version -> paths
    schema_changed: list[str] = field(default_factory=list)   # versions whose schema differs at all
    spec_changed: list[str] = field(default_factory=list)     # other spec keys that differ (names, ...)
    new: bool = False
    removed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.new or self.removed or self.versions_added or self.versions_removed
                    or self.schema_changed or self.spec_changed or self.storage[0] != self.storage[1]
                    or self.served[0] != self.served[1])


@dataclass
class ComponentChange:
    name: str
    old_version: str | None
    new_version: str | None
    change: str                                    # upgrade | downgrade | same | added | removed
    crds: list[CrdChange] = field(default_factory=list)
    # "Kind namespace/name" per kind of change, when both sides' objects are known
    objects: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # upstream upgrade notes to read for this step
    found: str = ""                                # how the installed version was told (--from cluster)
    adopt: int = 0                                 # objects another field manager owns, taken over


@dataclass
class Side:
    """One end of an upgrade: component versions, and the objects when they are known."""
    label: str                                     # where it came from, for messages
    versions: dict[str, str]
    objects: dict[str, list[dict]] | None = None   # component -> rendered (or live) objects
    plan: Any = None
    live: bool = False                             # objects read from a cluster (server defaults in them)
    found: dict[str, str] = field(default_factory=dict)   # component -> how its version was told
    adopt: dict[str, int] = field(default_factory=dict)   # component -> objects another manager owns
    rendered: Any = None                           # the Rendered, when rendered from a profile


@dataclass
class UpgradePlan:
    old: str
    new: str
    components: list[ComponentChange]
    blockers: list[Blocker]
    warnings: list[str]
    order: list[dict[str, Any]]
    tuples: dict[str, Any] = field(default_factory=dict)   # the compat tuple on each side
    prune: list[dict[str, Any]] = field(default_factory=list)   # old objects the new release lacks

    @property
    def ok(self) -> bool:
        return not self.blockers

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "from": self.old, "to": self.new,
                "components": [asdict(c) for c in self.components],
                "blockers": [asdict(b) for b in self.blockers], "warnings": self.warnings,
                "tuples": self.tuples, "order": self.order,
                "prune": [{"component": p["component"], "object": p["object"], "apiVersion": p["obj"]["apiVersion"],
                           "kind": p["obj"]["kind"], "name": p["obj"]["metadata"]["name"],
                           "namespace": p["obj"]["metadata"].get("namespace")} for p in self.prune]}


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


def served_versions(crd: dict) -> list[str]:
    return sorted(n for n, v in crd_versions(crd).items() if v.get("served", True))


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
                         served=([], served_versions(new)), new=True)
    ov, nv = crd_versions(old), crd_versions(new) if new else {}
    ch = CrdChange(name, versions_added=sorted(set(nv) - set(ov)), versions_removed=sorted(set(ov) - set(nv)),
                   storage=(storage_version(old), storage_version(new) if new else ""),
                   served=(served_versions(old), served_versions(new) if new else []),
                   removed=new is None)
    ch.stored_known = stored is not None
    ch.stored_versions = sorted(stored) if stored is not None else [storage_version(old)]
    for v in sorted(set(ov) & set(nv)):
        before, after = schema_paths(_schema(ov[v])), schema_paths(_schema(nv[v]))
        if before - after:
            ch.fields_removed[v] = sorted(before - after)
        if after - before:
            ch.fields_added[v] = sorted(after - before)
        if _schema(ov[v]) != _schema(nv[v]):
            ch.schema_changed.append(v)
    if new is not None:
        keys = set(old.get("spec") or {}) | set(new.get("spec") or {})
        ch.spec_changed = sorted(k for k in keys - {"versions"}
                                 if (old.get("spec") or {}).get(k) != (new.get("spec") or {}).get(k))
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
def policies(catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each component's upgrade policy (component.yaml `upgrade:`), from today's catalog."""
    from kubeforge.catalog import load_catalog
    from kubeforge.lifecycle.gates import policy_of

    catalog = load_catalog() if catalog is None else catalog
    return {n: p for n, c in catalog.items() if (p := policy_of(c)) is not None}


def version_gates(old: dict[str, str], new: dict[str, str], accept: tuple[str, ...] | list[str] = (),
                  known: dict[str, dict[str, str]] | None = None, mirror_refs: list[str] | None = None,
                  warnings: list[str] | None = None) -> list[Blocker]:
    """Jumps over more minor releases than the project's policy allows: a blocker each, or a
    warning (appended to `warnings`) for those the user accepted with --accept-skip."""
    from kubeforge.lifecycle.gates import find_steps, skip_gate, skips

    out = []
    for sk in skips(old, new, policies()):
        find_steps(sk, known or {}, mirror_refs)
        reason, fix = skip_gate(sk, sk.component in accept)
        if sk.component in accept:
            if warnings is not None:
                warnings.append(reason)
        else:
            out.append(Blocker(sk.component, reason, fix))
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
    """The waves and phases the upgrade applies: those of kubeforge apply (lifecycle/apply.py,
    from the stack graph) when the new side is a render; by kind alone otherwise."""
    from kubeforge.ordering import APPLY_PHASES, IN_CREATED_NAMESPACES, apply_phase, created_namespace

    if getattr(new, "rendered", None) is not None:
        from kubeforge.lifecycle.apply import plan_apply

        # in-created-namespaces is listed only where it has objects (a wave with Profiles and what
        # goes into their namespaces): most waves never have any.
        return [{"wave": wp.wave, "phase": phase, "components": wp.components, "objects": len(wp.phases[phase])}
                for wp in plan_apply(new.rendered, changed) for phase in APPLY_PHASES
                if phase != IN_CREATED_NAMESPACES or wp.phases[phase]]
    steps = []
    waves = new.plan.waves if new.plan is not None else [sorted(new.versions)]
    for i, wave in enumerate(waves):
        names = [n for n in wave if n in changed]
        if not names:
            continue
        batch = [o for n in names for o in (new.objects or {}).get(n, [])]
        created = {ns for o in batch if (ns := created_namespace(o))}
        for phase in APPLY_PHASES:
            objs = [o for o in batch if apply_phase(o, None, created) == phase]
            if phase == IN_CREATED_NAMESPACES and not objs:
                continue
            steps.append({"wave": i, "phase": phase, "components": names, "objects": len(objs)})
    return steps


# -- sides --------------------------------------------------------------------------------
def side_from_rendered(rendered: Any, label: str) -> Side:
    return Side(label, {n: c.version for n, c in rendered.components.items()},
                {n: c.objects for n, c in rendered.components.items()}, rendered.plan, rendered=rendered)


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


FROM_CLUSTER = "cluster"


def load_from(ref: str, mirror: str | None = None, *, profile: str | None = None, cluster: Any = None,
              renders: dict | None = None) -> Side:
    """--from: `cluster` (read what is installed), a release name (the profile rendered at that
    release), a render directory (kubeforge render -o DIR), a lock file (component: version), or a
    profile."""
    from kubeforge.catalog import release_names

    if ref == FROM_CLUSTER:
        if cluster is None or profile is None:
            raise KubeforgeError("--from cluster reads the installed platform from a cluster", field="--from",
                                 fix="pass --kubeconfig (or set KUBECONFIG) and the profile with -p")
        from kubeforge.lifecycle.installed import read_installed

        return read_installed(cluster, profile, mirror, renders)
    today, earlier = release_names()
    if ref in earlier:
        if profile is None:
            raise KubeforgeError(f"release {ref} needs a profile to render", field="--from",
                                 fix="pass the profile with -p")
        from kubeforge import api

        rendered = api.render(api.plan(api.load_profile(profile), release=ref), mirror=mirror, skip_helm=True)
        return side_from_rendered(rendered, f"release {ref} (profile {profile})")
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


def known_releases() -> dict[str, dict[str, str]]:
    """release -> {component: version} for today's release and each earlier one kubeforge knows."""
    from kubeforge.catalog import load_catalog, release_names

    today, earlier = release_names()
    out = {today: {n: c.version for n, c in load_catalog().items()}}
    for r in earlier:
        out[r] = {n: c.version for n, c in load_catalog(release=r).items()}
    return out


def mirror_refs(mirror: str | None) -> list[str] | None:
    """The refs of the released repositories (components/_repos.yaml `previous:`) that a local
    mirror directory holds; None for no mirror or an HTTP one (it cannot be listed)."""
    import os

    from kubeforge import releases
    from kubeforge.catalog import _repos
    from kubeforge.paths import components_dir

    mirror = mirror or os.environ.get("KUBEFORGE_MIRROR")
    if not mirror or "://" in str(mirror) or not Path(mirror).is_dir():
        return None
    out = []
    for repo in _repos(components_dir()).values():
        if isinstance(repo, dict) and repo.get(releases.KEY):
            base = Path(mirror) / "github" / repo["owner"] / repo["name"]
            refs = sorted(d.name for d in base.iterdir() if d.is_dir()) if base.is_dir() else []
            out.append(f"{repo['owner']}/{repo['name']} {' and '.join(refs) or '(nothing)'}")
    return out


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


# -- objects ------------------------------------------------------------------------------
def ident(o: dict) -> tuple[str, str, str, str]:
    """An object's identity across releases: API group (not version), kind, namespace, name."""
    md = o.get("metadata") or {}
    return o.get("apiVersion", "").rpartition("/")[0], o.get("kind", ""), md.get("namespace") or "", md.get("name", "")


def describe(o: dict) -> str:
    md = o.get("metadata") or {}
    return f"{o.get('kind')} {md['namespace'] + '/' if md.get('namespace') else ''}{md.get('name')}"


# What a server or another installer adds, which says nothing about the release's content.
_META_NOISE = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink",
               "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
_KUBEFORGE_LABELS = (LABEL_PART_OF, LABEL_COMPONENT, LABEL_VERSION)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def content(o: dict) -> dict:
    """The object without status, server bookkeeping and kubeforge's own labels."""
    out = {k: v for k, v in o.items() if k != "status"}
    md = {k: v for k, v in (o.get("metadata") or {}).items() if k not in _META_NOISE}
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k not in _KUBEFORGE_LABELS}
    notes = {k: v for k, v in (md.get("annotations") or {}).items() if k != LAST_APPLIED}
    md = {k: v for k, v in md.items() if k not in ("labels", "annotations")}
    if labels:
        md["labels"] = labels
    if notes:
        md["annotations"] = notes
    out["metadata"] = md
    return out


def _differs_from_live(want: Any, live: Any) -> bool:
    """Would applying `want` change `live`? Fields the server defaulted in `live` do not count."""
    if isinstance(want, dict):
        return not isinstance(live, dict) or any(_differs_from_live(v, live.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return not isinstance(live, list) or len(want) != len(live) or \
            any(_differs_from_live(a, b) for a, b in zip(want, live, strict=True))
    return want != live and not (want is None and live in ({}, [], None))


def object_changes(old: list[dict], new: list[dict], live: bool) -> dict[str, list[str]]:
    """Added, removed and changed objects of one component (live: old came from a cluster)."""
    o, n = {ident(x): x for x in old}, {ident(x): x for x in new}
    out = {"added": [describe(n[k]) for k in n if k not in o],
           "removed": [describe(o[k]) for k in o if k not in n], "changed": []}
    for k in n:
        if k in o and (_differs_from_live(content(n[k]), o[k]) if live else content(n[k]) != content(o[k])):
            out["changed"].append(describe(n[k]))
    return {kind: sorted(v) for kind, v in out.items()}


def prune_list(old: Side, new: Side) -> list[dict[str, Any]]:
    """Objects of the old side that no component of the new side has (by identity), with their
    old component; an object that moved to another component is not pruned."""
    if old.objects is None or new.objects is None:
        return []
    keep = {ident(o) for objs in new.objects.values() for o in objs}
    out = []
    for comp, objs in old.objects.items():
        for o in objs:
            if ident(o) not in keep:
                out.append({"component": comp, "object": describe(o), "obj": o})
    return out


# -- the analysis -------------------------------------------------------------------------
def analyze(old: Side, new: Side, stored: dict[str, list[str]] | None = None,
            live_crds: dict[str, dict] | None = None, accept: tuple[str, ...] | list[str] = (),
            known: dict[str, dict[str, str]] | None = None, mirror_refs: list[str] | None = None) -> UpgradePlan:
    """Compare old and new; stored: CRD name -> status.storedVersions (cluster), when known.
    live_crds: the cluster's CRDs, used as the old CRDs when the old side has no objects.
    accept: components whose policy skip the user accepted (--accept-skip); known: release ->
    {component: version} of the releases kubeforge knows, to name steps; mirror_refs: the
    kubeflow/manifests refs the mirror holds (None: not a local mirror)."""
    from kubeforge.lifecycle.gates import _minor

    comps: list[ComponentChange] = []
    blockers: list[Blocker] = []
    warnings: list[str] = []
    pols = policies()
    names = list(new.versions) + [n for n in old.versions if n not in new.versions]
    for name in names:
        ov, nv = old.versions.get(name), new.versions.get(name)
        cc = ComponentChange(name, ov, nv, classify(ov, nv) if ov != "unknown" else "adopt",
                             found=old.found.get(name, ""), adopt=old.adopt.get(name, 0))
        old_crds = _crds_of(old, name, live_crds)
        new_crds = {o["metadata"]["name"]: o for o in (new.objects or {}).get(name, [])
                    if o.get("kind") == "CustomResourceDefinition"}
        if old_crds is None:
            if new_crds and cc.change not in ("added", "same"):
                warnings.append(f"{name}: the old CRDs are unknown (a lock without objects and no cluster), "
                                "so CRD changes are not checked; run against the cluster to check them")
            old_crds = new_crds if cc.change == "same" else ({} if cc.change == "added" else None)
        for crd in sorted(set(old_crds or {}) | set(new_crds)) if old_crds is not None else []:
            live_stored = _stored_of((old_crds or {}).get(crd)) if old.live else None
            ch = diff_crd((old_crds or {}).get(crd), new_crds.get(crd),
                          (stored or {}).get(crd) if stored and crd in stored else live_stored)
            if ch.changed:
                cc.crds.append(ch)
            blockers += strand_blockers(name, ch)
            for v, paths in ch.fields_removed.items():
                warnings.append(f"{name}: CRD {crd} {v} drops {len(paths)} field(s) "
                                f"({', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}); values set "
                                "there are pruned at the next write")
        if old.objects is not None and new.objects is not None and (name in old.objects or name in new.objects):
            cc.objects = object_changes(old.objects.get(name, []), new.objects.get(name, []), old.live)
        if cc.change == "downgrade":
            warnings.append(f"{name}: {ov} -> {nv} is a downgrade; upstream projects do not support it")
        if cc.change == "upgrade" and name in pols:
            cc.notes = pols[name].notes(_minor(ov), _minor(nv))
        if cc.change == "adopt":
            warnings.append(f"{name}: objects of it are on the cluster but match no release kubeforge knows "
                            f"({cc.found}); they are taken over and replaced by {name} {nv}")
            if name in pols and pols[name].minor_step is not None:
                blockers.append(Blocker(name, f"the installed version of {name} is unknown, so its upgrade policy "
                                        f"({pols[name].docs}) cannot be checked",
                                        f"pass --from a lock naming the installed {name} version"))
        comps.append(cc)
    blockers += version_gates({k: v for k, v in old.versions.items() if v != "unknown"}, new.versions,
                              accept, known, mirror_refs, warnings)
    blockers += compat_gates(new.plan)
    tuples = _tuples(old, new)
    warnings += [f"installed tuple: {p}" for p in tuples.get("old_problems", [])]
    changed = [c.name for c in comps if c.change in ("upgrade", "downgrade", "added", "adopt")
               or (c.change == "same" and (c.crds or c.adopt or any(c.objects.get(k) for k in ("added", "changed"))))]
    order = _with_adoption(upgrade_order(new, changed), old.adopt)
    prune = prune_list(old, new)
    removed = [c.name for c in comps if c.change == "removed"]
    if prune:
        order.append({"wave": None, "phase": "prune", "components": sorted({p["component"] for p in prune}),
                      "objects": len(prune), "note": "objects the new release no longer has, in teardown order, "
                                                      "after confirmation"})
    if removed:
        order.append({"wave": None, "phase": "remove", "components": removed,
                      "objects": None, "note": "kubeforge teardown of these components, after the upgrade"})
    return UpgradePlan(old.label, new.label, comps, blockers, warnings, order, tuples, prune)


def _with_adoption(order: list[dict[str, Any]], adopt: dict[str, int]) -> list[dict[str, Any]]:
    """A step per wave that names the objects whose kubectl-owned fields pass to kubeforge (each
    just before kubeforge first applies it, kubeforge/lifecycle/adopt.py)."""
    out, seen = [], set()
    for step in order:
        if step["wave"] is not None and step["wave"] not in seen:
            seen.add(step["wave"])
            names = [n for n in step["components"] if adopt.get(n)]
            if names:
                out.append({"wave": step["wave"], "phase": "adopt", "components": names,
                            "objects": sum(adopt[n] for n in names),
                            "note": "kubectl's fields pass to kubeforge, each just before its apply"})
        out.append(step)
    return out


def _stored_of(crd: dict | None) -> list[str] | None:
    """status.storedVersions of a CRD read from a cluster."""
    if crd is None or "status" not in crd:
        return None
    return list((crd.get("status") or {}).get("storedVersions") or [])


def _tuples(old: Side, new: Side) -> dict[str, Any]:
    """The compat tuple (components with `compat:`) on both sides, and what breaks it."""
    from kubeforge.catalog import load_catalog, release_names
    from kubeforge.lifecycle.gates import compat_for, tuple_of, tuple_problems

    today, earlier = release_names()
    catalogs = {None: load_catalog(), **{r: load_catalog(release=r) for r in earlier}}
    names = sorted({n for cat in catalogs.values() for n, c in cat.items() if c.compat})
    old_compat = {n: pc.component.compat for n, pc in old.plan.components.items()} if old.plan is not None \
        else compat_for(old.versions, catalogs)
    new_compat = {n: pc.component.compat for n, pc in new.plan.components.items()} if new.plan is not None \
        else compat_for(new.versions, catalogs)
    known_old = [n for n in names if n in old.versions and old.versions[n] != "unknown"]
    return {"components": [n for n in names if n in old.versions or n in new.versions],
            "old": tuple_of(old.versions, known_old), "new": tuple_of(new.versions, names),
            "old_problems": [p for _, p in tuple_problems({n: old.versions[n] for n in known_old}, old_compat)],
            "new_problems": [p for _, p in tuple_problems(new.versions, new_compat)]}


def _crds_of(side: Side, name: str, live_crds: dict[str, dict] | None) -> dict[str, dict] | None:
    if side.objects is not None and name in side.objects:
        return {o["metadata"]["name"]: o for o in side.objects[name] if o.get("kind") == "CustomResourceDefinition"}
    if live_crds is not None:
        return {n: c for n, c in live_crds.items()
                if ((c.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT) == name}
    return None


def dumps(plan: UpgradePlan) -> str:
    return json.dumps(plan.as_dict(), indent=2)
