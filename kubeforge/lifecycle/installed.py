"""`kubeforge upgrade --from cluster`: what is installed, read from the cluster itself.

Objects are found by identity (API group, kind, namespace, name) against the profile rendered at
every release kubeforge knows (today's and each under `previous:` in components/_repos.yaml), so
an install that kubeflow/manifests' own `kubectl apply` made is found as surely as one kubeforge
made. A component's installed version is, in this order:
  1. its kubeforge.io/component-version label (kubeforge installed it);
  2. the release whose rendered images of the component equal the live ones (the images are a
     release's fingerprint: gcr.io/istio-release/pilot:1.28.0 is Istio 1.28.0);
  3. the upstream app.kubernetes.io/version label of its workloads (Knative and cert-manager set it);
  4. "unknown", which the analysis reports (and refuses where a version policy must be checked).
CRDs come back as the cluster has them: served versions and status.storedVersions included.
"""
from __future__ import annotations

from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.model import LABEL_COMPONENT, LABEL_VERSION

POD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob")
UPSTREAM_VERSION = "app.kubernetes.io/version"


def pod_images(o: dict) -> list[str]:
    """The container images of a workload (init containers included), in order."""
    spec = (o.get("spec") or {})
    if o.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    pod = ((spec.get("template") or {}).get("spec") or {})
    return [c.get("image", "") for key in ("initContainers", "containers") for c in pod.get(key) or []]


def releases_rendered(profile: str, mirror: str | None) -> dict[str, Any]:
    """The profile rendered at every release kubeforge knows: {release name: Rendered}, today's first."""
    from kubeforge import api
    from kubeforge.catalog import release_names

    today, earlier = release_names()
    prof = api.load_profile(profile)
    out = {}
    for rel in [None, *earlier]:
        plan = api.plan(prof, release=rel)
        out[rel or today] = api.render(plan, mirror=mirror, skip_helm=True)
    return out


def _live_index(cluster: Any, renders: dict[str, Any]) -> dict[tuple, dict]:
    """Live objects of every kind the renders hold, in the namespaces they use, by identity."""
    from kubeforge.lifecycle.upgrade import ident

    where: dict[tuple[str, str], set[str | None]] = {}
    for r in renders.values():
        for rc in r.components.values():
            for o in rc.objects:
                where.setdefault((o["apiVersion"], o["kind"]), set()).add(o["metadata"].get("namespace"))
    live: dict[tuple, dict] = {}
    for (api_version, kind), namespaces in sorted(where.items(), key=lambda kv: kv[0]):
        scopes = [None] if None in namespaces else sorted(namespaces)
        for ns in scopes:
            for o in cluster.list(api_version, kind, namespace=ns):
                live.setdefault(ident(o), o)
    return live


def _version_by_images(name: str, objs: list[dict], renders: dict[str, Any]) -> tuple[str | None, str]:
    """(version, evidence) from the release whose images of this component equal the live ones;
    (None, why) when none does, or releases of different versions ship the same images."""
    from kubeforge.lifecycle.upgrade import ident

    live = {ident(o): pod_images(o) for o in objs if o.get("kind") in POD_KINDS}
    if not live:
        return None, "no workloads"
    matches = []
    for rel, r in renders.items():
        rc = r.components.get(name)
        if rc is None:
            continue
        want = {ident(o): pod_images(o) for o in rc.objects if o.get("kind") in POD_KINDS}
        common = [k for k in live if k in want]
        if common and all(live[k] == want[k] for k in common):
            matches.append((len(common), rel, rc.version))
    if not matches:
        return None, "its images match no release kubeforge knows"
    best = max(m[0] for m in matches)
    versions = sorted({v for n, _, v in matches if n == best})
    rels = [rel for n, rel, v in matches if n == best]
    if len(versions) != 1:
        # kubeflow/manifests 26.03 charts Istio 1.29.0 but runs the 1.28.0 images of v1.11.0.
        return None, f"its images are the same at {' and '.join(rels)}"
    images = sorted({i for imgs in live.values() for i in imgs})
    more = f", {len(images) - 1} more" if len(images) > 1 else ""
    return versions[0], f"images of release {' and '.join(rels)}: {images[0].split('@')[0]}{more}"


def _version_by_label(objs: list[dict]) -> str | None:
    found = {str((o.get("metadata", {}).get("labels") or {}).get(UPSTREAM_VERSION, "")).lstrip("v")
             for o in objs if o.get("kind") in POD_KINDS}
    found.discard("")
    return found.pop() if len(found) == 1 else None


def foreign_owned(o: dict) -> bool:
    """Fields of the object are held by kubectl's field managers (client-side or server-side apply)."""
    from kubeforge.lifecycle.adopt import transferable

    return bool(transferable(o))


def read_installed(cluster: Any, profile: str, mirror: str | None = None, renders: dict | None = None):
    """The Side of an upgrade that the cluster is: versions, live objects per component, how each
    version was told, and how many of each component's objects another field manager owns."""
    from kubeforge.lifecycle.upgrade import Side, ident
    from kubeforge.verify.cluster import installed_components

    renders = renders or releases_rendered(profile, mirror)
    live = _live_index(cluster, renders)
    today = next(iter(renders.values()))
    versions: dict[str, str] = {}
    objects: dict[str, list[dict]] = {}
    found: dict[str, str] = {}
    adopt: dict[str, int] = {}
    for name in today.plan.components:
        keys: dict[tuple, None] = {}
        for r in renders.values():
            for o in (r.components.get(name).objects if name in r.components else []):
                keys.setdefault(ident(o))
        objs = [live[k] for k in keys if k in live]
        objs += [o for k, o in live.items() if k not in keys and
                 ((o.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT) == name]
        if not objs:
            continue
        objects[name] = objs
        adopt[name] = sum(1 for o in objs if foreign_owned(o))
        labelled = [((o.get("metadata") or {}).get("labels") or {}) for o in objs]
        mine = next((lb[LABEL_VERSION] for lb in labelled if lb.get(LABEL_COMPONENT) == name and
                     lb.get(LABEL_VERSION)), None)
        by_images, why = _version_by_images(name, objs, renders)
        only = {r.components[name].version for r in renders.values() if name in r.components}
        if mine:
            versions[name], found[name] = mine, "kubeforge.io/component-version label"
        elif by_images:
            versions[name], found[name] = by_images, why
        elif (v := _version_by_label(objs)) is not None:
            versions[name], found[name] = v, f"{UPSTREAM_VERSION} label of its workloads ({why})"
        elif why == "no workloads" and len(only) == 1:
            versions[name] = only.pop()
            found[name] = f"every release kubeforge knows has {versions[name]} (no workloads to tell by)"
        else:
            imgs = sorted({i for o in objs for i in pod_images(o)})
            versions[name] = "unknown"
            found[name] = f"{len(objs)} object(s), {why}; images {', '.join(imgs[:3]) or 'none'}"
    # Components kubeforge installed that the profile no longer has: they go (teardown).
    for name, v in installed_components(cluster).items():
        if name not in versions and name not in today.plan.components:
            versions[name], found[name] = v or "unknown", "kubeforge.io/component-version label"
            objects[name] = [o for o in live.values()
                             if ((o.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT) == name]
    if not versions:
        raise KubeforgeError(
            f"nothing of profile {today.plan.profile.name} is on {getattr(cluster, 'server', 'the cluster')}: "
            "no object of its components at any release kubeforge knows", field="--from",
            fix="install it first (kubeforge up, or kubeforge render + kubectl apply), or point --kubeconfig "
                "at the cluster that runs it")
    return Side(f"cluster {getattr(cluster, 'server', '')}".strip(), versions, objects, None, live=True,
                found=found, adopt=adopt)
