"""Apply an upgrade in order on a cluster installed with `kubeforge render | kubectl apply`:
wave by wave, CRDs (wait Established), then controllers (wait available), then custom resources.
A platform installed by Pulumi is upgraded by `pulumi up`, which follows the same order."""
from __future__ import annotations

from typing import Any

from kubeforge.errors import CheckFailed
from kubeforge.ordering import CRDS, CUSTOM_RESOURCES, apply_order, apply_phase

PULUMI_MANAGER_PREFIX = "pulumi"


def installer(live: dict) -> str:
    """'pulumi' when Pulumi's field manager owns fields of the object, else 'kubectl'."""
    for mf in (live.get("metadata") or {}).get("managedFields") or []:
        if str(mf.get("manager", "")).startswith(PULUMI_MANAGER_PREFIX):
            return "pulumi"
    return "kubectl"


def detect_installer(cluster: Any, rendered: Any) -> str:
    for rc in rendered.components.values():
        for o in rc.objects:
            if o["kind"] in ("Deployment", "Namespace"):
                live = cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
                if live:
                    return installer(live)
    return "kubectl"


def apply_upgrade(cluster: Any, rendered: Any, changed: list[str], echo: Any = print,
                  wait_s: float = 600.0) -> None:
    from kubeforge.verify.context import CheckContext
    from kubeforge.verify.readiness import WORKLOAD_KINDS, crd_problems, workload_problems

    ctx = CheckContext(cluster=cluster, plan=rendered.plan, component="", objects=[], timeout=wait_s * 4)
    for i, wave in enumerate(rendered.plan.waves):
        names = [n for n in wave if n in changed]
        if not names:
            continue
        objs = apply_order([o for n in names for o in rendered.components[n].objects])
        crds = [o for o in objs if apply_phase(o) == CRDS]
        crs = [o for o in objs if apply_phase(o) == CUSTOM_RESOURCES]
        rest = [o for o in objs if apply_phase(o) not in (CRDS, CUSTOM_RESOURCES)]
        for o in crds:
            cluster.apply(o)
        try:
            ctx.wait_clean(f"wave {i} CRDs Established", lambda crds=crds: [
                p for c in crds for p in crd_problems(
                    c["metadata"]["name"], cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                                      c["metadata"]["name"]))], timeout=wait_s)
            for o in crds:
                for v in (o["spec"].get("versions") or []):
                    cluster.forget(f"{o['spec']['group']}/{v['name']}", o["spec"]["names"]["kind"])
            for o in rest:
                cluster.apply(o)
            workloads = [o for o in rest if o["kind"] in WORKLOAD_KINDS]
            ctx.wait_clean(f"wave {i} controllers available", lambda w=workloads: [
                p for o in w for p in workload_problems(
                    o["kind"], f"{o['metadata'].get('namespace')}/{o['metadata']['name']}",
                    cluster.get("apps/v1", o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")))],
                timeout=wait_s)
        except AssertionError as exc:
            raise CheckFailed(f"upgrade stopped in wave {i} ({', '.join(names)}): {exc}",
                              fix="fix the cause and rerun kubeforge upgrade; applied waves stay applied") from None
        for o in crs:
            cluster.apply(o)
        echo(f"wave {i}: {', '.join(names)}: {len(crds)} CRDs, {len(rest)} objects, {len(crs)} custom resources applied")
