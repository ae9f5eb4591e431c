"""Adopting an install kubeforge did not make, and pruning what the new release dropped.

kubeflow/manifests installs with `kubectl apply` (v1.11.0's README: most components client-side,
`kustomize build ... | kubectl apply -f -`; KServe, the trainer and the one-command install
server-side, `kubectl apply --server-side --force-conflicts`). Client-side apply leaves the field
manager `kubectl-client-side-apply` (operation Update) and the
`kubectl.kubernetes.io/last-applied-configuration` annotation; server-side apply leaves `kubectl`
(operation Apply). A server-side apply by kubeforge with force takes the fields it sets, but the
fields the old release set and the new one does not would stay owned by kubectl, and stay on the
object. So before kubeforge's first apply of such an object its kubectl entries become kubeforge's
Apply entry (their field sets united) - what `kubectl apply --server-side` does for its own upgrade
from client-side apply (k8s.io/client-go/util/csaupgrade). kubeforge's apply then owns every field
the old release set, so the ones the new release dropped, and the last-applied annotation, go.

Objects the old release had and the new one lacks are deleted after the upgrade, in teardown order
(custom resources, webhooks, workloads, namespaces, CRDs last), only those listed, after confirmation.
"""
from __future__ import annotations

import copy
from typing import Any

MANAGER = "kubeforge"
# (field manager, operation) that kubectl's apply leaves; kubeforge takes them over.
KUBECTL_MANAGERS = (("kubectl-client-side-apply", "Update"), ("kubectl", "Apply"))


def transferable(live: dict) -> list[dict]:
    """The managedFields entries of kubectl's apply on a live object (not its subresources)."""
    return [e for e in (live.get("metadata") or {}).get("managedFields") or []
            if (e.get("manager"), e.get("operation")) in KUBECTL_MANAGERS and not e.get("subresource")]


def union_fields(a: dict, b: dict) -> dict:
    """Union of two FieldsV1 tries ({"f:spec": {"f:replicas": {}}, ".": {}})."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = union_fields(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else copy.deepcopy(v)
    return out


def transferred(live: dict, manager: str = MANAGER) -> list[dict] | None:
    """The object's managedFields with kubectl's apply entries merged into `manager`'s Apply entry,
    or None when kubectl owns nothing. Entries recorded at another apiVersion than the newest
    kubectl entry are left as they are (their field sets are not comparable)."""
    entries = list((live.get("metadata") or {}).get("managedFields") or [])
    take = transferable(live)
    if not take:
        return None
    version = take[0].get("apiVersion")      # the server lists the most recent entry first
    merged = [e for e in take if e.get("apiVersion") == version]
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
                 and not e.get("subresource") and e.get("apiVersion") == version), None)
    fields: dict = dict((mine or {}).get("fieldsV1") or {})
    for e in merged:
        fields = union_fields(fields, e.get("fieldsV1") or {})
    entry = {"manager": manager, "operation": "Apply", "apiVersion": version, "fieldsType": "FieldsV1",
             "fieldsV1": fields, **({"time": merged[0]["time"]} if merged[0].get("time") else {})}
    drop = {id(e) for e in merged} | ({id(mine)} if mine else set())
    out, placed = [], False
    for e in entries:
        if id(e) in drop:
            if not placed:
                out.append(entry)
                placed = True
            continue
        out.append(e)
    return out


def take_over(cluster: Any, obj: dict, manager: str = MANAGER, tries: int = 3) -> bool:
    """Give `manager` the fields kubectl's apply owns on the live copy of obj. True if it did."""
    md = obj["metadata"]
    for _ in range(tries):
        live = cluster.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        if not live:
            return False
        fields = transferred(live, manager)
        if fields is None:
            return False
        # resourceVersion makes the patch conditional: a concurrent writer (a controller updating
        # the object) fails it with 409 instead of having its fields lost; read again and retry.
        try:
            cluster.patch(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"),
                          {"metadata": {"managedFields": fields,
                                        "resourceVersion": live["metadata"]["resourceVersion"]}})
            return True
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise
    from kubeforge.errors import CheckFailed
    from kubeforge.lifecycle.upgrade import describe

    raise CheckFailed(f"{describe(obj)} kept changing while kubeforge took over its fields ({tries} tries)",
                      fix="rerun kubeforge upgrade; applied waves stay applied")


class Adopting:
    """A cluster whose apply() first takes over what kubectl's apply owns on the object; every
    other call goes to the cluster as it is. The upgrade's apply path runs on it unchanged."""

    def __init__(self, cluster: Any, manager: str = MANAGER):
        self._cluster = cluster
        self.manager = manager
        self.adopted: list[str] = []

    def apply(self, obj: dict, namespace: str | None = None, **kw: Any) -> dict:
        from kubeforge.lifecycle.upgrade import describe

        if not kw.get("dry_run") and take_over(self._cluster, obj, self.manager):
            self.adopted.append(describe(obj))
        return self._cluster.apply(obj, namespace, **kw) if namespace else self._cluster.apply(obj, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)


# -- prune ----------------------------------------------------------------------------------
def prune_plan(rendered: Any, items: list[dict]) -> Any:
    """Teardown steps (kubeforge/lifecycle/teardown.py order) over exactly the objects to prune."""
    from kubeforge.lifecycle import teardown as td
    from kubeforge.model import Rendered, RenderedComponent

    by: dict[str, list[dict]] = {}
    for it in items:
        by.setdefault(it["component"], []).append(it["obj"])
    comps = {n: RenderedComponent(n, rc.version, rc.wave, by.get(n, [])) for n, rc in rendered.components.items()}
    plan = td.plan_teardown(Rendered(rendered.plan, comps))
    plan.steps = [s for s in plan.steps if s.phase != td.LEFTOVERS]
    return plan


def prune(cluster: Any, rendered: Any, items: list[dict], wait_s: float = 180.0, echo: Any = print):
    """Delete the listed objects in teardown order; returns teardown's report."""
    from kubeforge.lifecycle import teardown as td

    class Listed(td.Executor):
        # Only what is listed (and, for a CRD that goes, its instances first): teardown's discovery of
        # labelled or runtime objects would find the new release's own objects.
        def resolve(self, step):
            return super().resolve(step) if step.phase == td.CUSTOM_RESOURCES else list(step.objects)

    ex = Listed(cluster, rendered, wait_s=wait_s, echo=echo)
    return td.report(ex.run(prune_plan(rendered, items)))
