"""`kubeforge teardown`: remove a platform in an order that lets every finalizer finish.

Order (the rules tests/lifecycle check for every profile):
  components in reverse plan order; for each component
    1. custom resources   - what it rendered plus, on a cluster, every instance of its CRDs, while
                            its controllers still run so their finalizers complete; it also waits
                            for the namespaces they made to go (a Profile's, kubeforge.ordering.
                            created_namespace), which their owner's deletion takes with it;
    2. webhooks           - its webhook configurations, including ones its controllers created at
                            runtime (found on the cluster by label, owner or backing Service), so no
                            admission call hangs on a Service about to go away;
    3. workloads          - APIServices first (an unavailable aggregated API blocks namespace
                            deletion cluster-wide), then controllers, Services, config, RBAC;
    4. namespaces         - the namespaces it owns;
  then CRDs of every component, last, unless --keep-crds.
Each step deletes, waits with a bound, and reports what is stuck with the finalizer that blocks it.
Finalizers are removed only with --force-finalizers. Works the same whether Pulumi or
`kubeforge render | kubectl apply` installed the platform: objects are found by their identity and
the kubeforge labels, not by the installer's state.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from kubeforge.model import LABEL_COMPONENT, LABEL_PART_OF, PART_OF
from kubeforge.ordering import apply_order, created_namespace, is_custom

CUSTOM_RESOURCES, WEBHOOKS, WORKLOADS, NAMESPACES, CRDS, LEFTOVERS = (
    "custom-resources", "webhooks", "workloads", "namespaces", "crds", "verify-leftovers")
PHASES = (CUSTOM_RESOURCES, WEBHOOKS, WORKLOADS, NAMESPACES)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
ADMISSION = "admissionregistration.k8s.io/v1"
CRD_API = "apiextensions.k8s.io/v1"
# Found by label on the cluster in every workloads step: objects of an older render, or of a
# component rendered only by Pulumi (Helm charts).
LABELLED_WORKLOAD_KINDS = (
    ("apiregistration.k8s.io/v1", "APIService"), ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"), ("v1", "Service"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"))
PROTECTED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @classmethod
    def of(cls, obj: dict) -> Ref:
        md = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))


@dataclass
class Step:
    component: str                 # "*" for the final CRD step and the verify leftovers
    phase: str
    objects: list[Ref] = field(default_factory=list)
    # custom-resources: every instance of these (apiVersion, kind) on the cluster, too
    all_instances_of: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    by_label: bool = False         # not rendered here: find the objects on the cluster by label
    # not deleted, waited for: what goes with the objects (namespaces their controllers created)
    awaits: list[Ref] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [str(r) for r in self.objects]
        lines += [f"{r} (goes with its owner)" for r in self.awaits]
        if self.by_label:
            lines.append(f"everything of this phase labelled {LABEL_COMPONENT}={self.component} on the cluster")
        for api, kind in self.all_instances_of:
            lines.append(f"every {kind} ({api}) on the cluster")
        return lines


@dataclass
class TeardownPlan:
    profile: str
    steps: list[Step]
    keep_crds: bool
    components: list[str] | None = None     # only these components of the profile (None: all)

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "keep_crds": self.keep_crds, "components": self.components,
                "steps": [{"component": s.component, "phase": s.phase, "note": s.note,
                           "objects": s.describe()} for s in self.steps]}


# -- planning (pure) ----------------------------------------------------------------------
def crd_kinds(crd: dict) -> list[tuple[str, str]]:
    """(apiVersion, kind) to list a CRD's instances with: its storage version."""
    spec = crd.get("spec", {})
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "v1")
    return [(f"{spec['group']}/{storage}", spec["names"]["kind"])]


def plan_teardown(rendered: Any, keep_crds: bool = False, components: list[str] | None = None) -> TeardownPlan:
    """The ordered steps for a rendered platform (no cluster needed). Components rendered without
    their Helm charts (rendered.unrendered: no `helm` here) get the same phases, resolved on the
    cluster by label. `components`: only these (check_removable first), in the same order and
    phases, their CRDs last; verify's leftovers belong to the whole platform and stay."""
    unrendered = rendered.unrendered
    order = [n for n in teardown_component_order(rendered.plan) if components is None or n in components]
    steps: list[Step] = [] if components is not None else \
        [Step("*", LEFTOVERS, note="namespaces kept by `kubeforge verify --keep-on-failure`")]
    crd_steps: list[Ref] = []
    for name in reversed(order):
        # A Helm chart not rendered here: its generated objects are known, the chart's are found
        # on the cluster by label, in every phase.
        by_label = name in unrendered
        chart = " (and the Helm chart's objects, found on the cluster by label)" if by_label else ""
        objs = rendered.components[name].objects
        crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
        crs = [o for o in objs if is_custom(o)]
        # reverse apply order inside a phase: dependents go before what they depend on
        made = [Ref("v1", "Namespace", ns) for o in crs if (ns := created_namespace(o))]
        steps.append(Step(name, CUSTOM_RESOURCES, [Ref.of(o) for o in reversed(apply_order(crs))],
                          [k for c in crds for k in crd_kinds(c)], note=chart.strip(" ()"), by_label=by_label,
                          awaits=made))
        steps.append(Step(name, WEBHOOKS, [Ref.of(o) for o in objs if o["kind"] in WEBHOOK_KINDS],
                          note="plus webhook configurations its controllers created at runtime" + chart,
                          by_label=by_label))
        rest = [o for o in objs if o["kind"] not in (*WEBHOOK_KINDS, "Namespace", "CustomResourceDefinition")
                and not is_custom(o)]
        steps.append(Step(name, WORKLOADS, [Ref.of(o) for o in _reverse_apply(rest)], note=chart.strip(" ()"),
                          by_label=by_label))
        steps.append(Step(name, NAMESPACES, [Ref.of(o) for o in objs if o["kind"] == "Namespace"
                                             and o["metadata"]["name"] not in PROTECTED_NAMESPACES],
                          note=chart.strip(" ()"), by_label=by_label))
        crd_steps.extend(Ref.of(o) for o in crds)
    if not keep_crds:
        steps.append(Step("*", CRDS, crd_steps, note="last: nothing that uses them is left"))
        steps += [Step(n, CRDS, note="Helm chart not rendered here: found on the cluster by label", by_label=True)
                  for n in reversed(order) if n in unrendered]
    return TeardownPlan(rendered.plan.profile.name, [s for s in steps if s.objects or s.all_instances_of
                                                       or s.by_label or s.phase == LEFTOVERS], keep_crds,
                        list(reversed(order)) if components is not None else None)


def check_removable(plan: Any, names: list[str]) -> None:
    """Tearing down some components of a profile: each is in it, and none that stays needs one."""
    from kubeforge.errors import KubeforgeError

    unknown = [n for n in names if n not in plan.components]
    if unknown:
        raise KubeforgeError(f"{', '.join(unknown)} is not a component of profile {plan.profile.name}",
                             field="--component", fix=f"use one of: {', '.join(plan.components)}")
    for name, pc in plan.components.items():
        needed = [d for d in pc.depends_on if d in names]
        if name not in names and needed:
            raise KubeforgeError(
                f"{name} stays and needs {', '.join(needed)} (profile {plan.profile.name})", field="--component",
                fix=f"tear down {name} too (--component {name})")


def teardown_component_order(plan: Any) -> list[str]:
    """Plan (install) order; teardown walks it backwards."""
    return [n for wave in plan.waves for n in wave]


def _reverse_apply(objs: list[dict]) -> list[dict]:
    """APIServices first, then the reverse of the apply order (workloads before their config)."""
    api = [o for o in objs if o["kind"] == "APIService"]
    other = [o for o in objs if o["kind"] != "APIService"]
    return api + list(reversed(apply_order(other)))


def runtime_webhooks(component: str, rendered_objs: list[dict], live_webhooks: list[dict],
                     live_uids: set[str]) -> list[dict]:
    """Webhook configurations on the cluster that belong to the component although it did not
    render them: labelled with it, owned by one of its objects, or backed by one of its Services."""
    rendered = {(o["kind"], o["metadata"]["name"]) for o in rendered_objs if o["kind"] in WEBHOOK_KINDS}
    services = {(o["metadata"].get("namespace"), o["metadata"]["name"])
                for o in rendered_objs if o["kind"] == "Service"}
    out = []
    for wh in live_webhooks:
        md = wh.get("metadata", {})
        if (wh["kind"], md["name"]) in rendered:
            continue
        labelled = (md.get("labels") or {}).get(LABEL_COMPONENT) == component
        owned = any(ref.get("uid") in live_uids for ref in md.get("ownerReferences") or [])
        backed = any(((w.get("clientConfig") or {}).get("service") or {}).get("namespace") is not None and
                     (w["clientConfig"]["service"].get("namespace"), w["clientConfig"]["service"].get("name"))
                     in services for w in wh.get("webhooks") or [])
        if labelled or owned or backed:
            out.append(wh)
    return out


# -- execution (live) ---------------------------------------------------------------------
@dataclass
class Stuck:
    object: str
    finalizers: list[str]
    detail: str = ""


@dataclass
class StepResult:
    component: str
    phase: str
    deleted: int = 0
    stuck: list[Stuck] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)


def stuck_detail(obj: dict) -> Stuck:
    """Why an object is still there: its finalizers, and for namespaces what they still hold."""
    md = obj.get("metadata", {})
    fins = list(md.get("finalizers") or []) + list((obj.get("spec") or {}).get("finalizers") or [])
    detail = ""
    if obj.get("kind") == "Namespace":
        msgs = [c.get("message", "") for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("status") == "True" and c.get("type") in
                ("NamespaceContentRemaining", "NamespaceFinalizersRemaining", "NamespaceDeletionDiscoveryFailure")]
        detail = "; ".join(m for m in msgs if m)
    return Stuck(str(Ref.of(obj)), fins, detail)


# Finalizers the control plane serves (kube-controller-manager, the API server): always running.
CONTROL_PLANE_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
_WORKLOAD_APIS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"))


def control_plane_finalizer(name: str) -> bool:
    domain = name.split("/", 1)[0]
    return name in CONTROL_PLANE_FINALIZERS or domain.endswith("kubernetes.io") or domain.endswith("k8s.io")


class Executor:
    def __init__(self, cluster: Any, rendered: Any, *, force_finalizers: bool = False,
                 wait_s: float = 180.0, echo: Any = print, clock: Any = time.monotonic,
                 sleep: Any = time.sleep):
        self.cluster = cluster
        self.rendered = rendered
        self.force = force_finalizers
        self.wait_s = wait_s
        self.echo = echo
        self.clock = clock
        self.sleep = sleep
        self.rounds = 0          # wait rounds slept, all steps together
        self._forced_once: set[str] = set()

    def resolve(self, step: Step) -> list[Ref]:
        """The step's objects as they are on the cluster now (rendered ones plus live discoveries)."""
        refs = list(step.objects)
        if step.phase == LEFTOVERS:
            from kubeforge.verify.context import VERIFY_LABEL

            refs = [Ref.of(o) for o in self.cluster.list("v1", "Namespace", label_selector=f"{VERIFY_LABEL}=true")]
        elif step.phase == CUSTOM_RESOURCES:
            kinds = list(step.all_instances_of)
            if step.by_label:
                kinds += [k for c in self.cluster.list(CRD_API, "CustomResourceDefinition",
                                                       label_selector=self._selector(step.component))
                          for k in crd_kinds(c)]
            for api, kind in kinds:
                refs += [Ref.of(dict(o, apiVersion=api, kind=kind)) for o in self.cluster.list(api, kind)]
        elif step.phase in (NAMESPACES, CRDS) and step.by_label:
            api, kind = ("v1", "Namespace") if step.phase == NAMESPACES else (CRD_API, "CustomResourceDefinition")
            refs += [Ref.of(dict(o, apiVersion=api, kind=kind))
                     for o in self.cluster.list(api, kind, label_selector=self._selector(step.component))
                     if o["metadata"]["name"] not in PROTECTED_NAMESPACES]
        elif step.phase == WEBHOOKS:
            objs = self.rendered.components[step.component].objects
            live = [dict(o, kind=k, apiVersion=ADMISSION) for k in WEBHOOK_KINDS
                    for o in self.cluster.list(ADMISSION, k)]
            refs += [Ref.of(o) for o in runtime_webhooks(step.component, objs, live, self._uids(step.component))]
        elif step.phase == WORKLOADS:
            # Objects labelled for the component that this render no longer has (an older version).
            known = set(refs)
            for api, kind in LABELLED_WORKLOAD_KINDS:
                for o in self.cluster.list(api, kind, label_selector=self._selector(step.component)):
                    r = Ref.of(dict(o, apiVersion=api, kind=kind))
                    if r not in known:
                        refs.insert(0 if kind == "APIService" else len(refs), r)
        return list(dict.fromkeys(refs))

    @staticmethod
    def _selector(component: str) -> str:
        return f"{LABEL_PART_OF}={PART_OF},{LABEL_COMPONENT}={component}"

    def _uids(self, component: str) -> set[str]:
        uids = set()
        for o in self.rendered.components[component].objects:
            if o["kind"] in ("Deployment", "Namespace", "Service", "ClusterRole", "CustomResourceDefinition"):
                live = self.cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"],
                                        o["metadata"].get("namespace"))
                if live:
                    uids.add(live["metadata"]["uid"])
        return uids

    def run(self, plan: TeardownPlan) -> list[StepResult]:
        results = []
        for step in plan.steps:
            res = self.run_step(step)
            results.append(res)
            if res.stuck:
                break  # going on would strand them for good (their controller or CRD goes next)
        return results

    def run_step(self, step: Step) -> StepResult:
        res = StepResult(step.component, step.phase)
        refs = self.resolve(step)
        waits = list(refs) + self._released_volumes(refs) + [r for r in step.awaits if r not in refs]
        for r in refs:
            if self.cluster.delete(r.api_version, r.kind, r.name, r.namespace):
                res.deleted += 1
        remaining = self._wait_gone(waits, self.wait_s, res)
        if remaining and self.force:
            for obj in remaining:
                self._remove_finalizers(obj)
                if str(Ref.of(obj)) not in res.forced:
                    res.forced.append(str(Ref.of(obj)))
            remaining = self._wait_gone([Ref.of(o) for o in remaining], min(60.0, self.wait_s))
        res.stuck = [stuck_detail(o) for o in remaining]
        self.echo(f"{step.component:20} {step.phase:17} deleted {res.deleted}"
                  + (f", forced {len(res.forced)}" if res.forced else "")
                  + (f", STUCK {len(res.stuck)}" if res.stuck else ""))
        return res

    def _released_volumes(self, refs: list[Ref]) -> list[Ref]:
        """PVs that deleting these claims frees with reclaimPolicy Delete: wait for them too, so the
        provisioner (torn down later) is still there to clean them up."""
        out = []
        for r in refs:
            if r.kind != "PersistentVolumeClaim":
                continue
            pvc = self.cluster.get("v1", "PersistentVolumeClaim", r.name, r.namespace) or {}
            volume = (pvc.get("spec") or {}).get("volumeName")
            pv = self.cluster.get("v1", "PersistentVolume", volume) if volume else None
            if pv and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
                out.append(Ref("v1", "PersistentVolume", volume))
        return out

    def _wait_gone(self, refs: list[Ref], bound: float, res: StepResult | None = None) -> list[dict]:
        """Wait up to `bound` for the objects to go. With --force-finalizers (res given), an object
        held only by finalizers whose controller is gone is forced at once: nobody would ever
        remove them, so waiting out the bound would change nothing."""
        end = self.clock() + bound
        while True:
            left = []
            for r in refs:
                o = self.cluster.get(r.api_version, r.kind, r.name, r.namespace)
                if o:
                    left.append(dict(o, apiVersion=r.api_version, kind=r.kind))
            if left and self.force and res is not None:
                running: dict[str, bool] = {}
                for o in [o for o in left if self._orphaned(o, running)]:
                    self._remove_finalizers(o)
                    res.forced.append(str(Ref.of(o)))
            if not left or self.clock() > end:
                return left
            self.rounds += 1
            self.sleep(2)

    def _orphaned(self, obj: dict, running: dict[str, bool]) -> bool:
        """Being deleted and held only by finalizers of a component none of whose workloads runs
        (control-plane finalizers always have their controller). A namespace: when what it still
        holds is held that way."""
        md = obj.get("metadata", {})
        if "deletionTimestamp" not in md or str(Ref.of(obj)) in self._forced_once:
            return False
        if obj["kind"] == "Namespace":
            inside = [dict(o, apiVersion=api, kind=kind) for api, kind, namespaced in self.cluster.served_kinds()
                      if namespaced for o in self.cluster.list(api, kind, md["name"])]
            held = [o for o in inside if o["metadata"].get("finalizers")]
            return bool(held) and len(held) == len(inside) and all(self._orphaned(o, running) for o in held)
        fins = md.get("finalizers") or []
        if not fins or any(control_plane_finalizer(f) for f in fins):
            return False
        owner = self._owner(obj)
        if owner is None:
            return False
        if owner not in running:
            running[owner] = self._controller_runs(owner)
        return not running[owner]

    def _owner(self, obj: dict) -> str | None:
        """The component whose controllers serve the object: its label, else the CRD's component."""
        comp = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT)
        if comp:
            return comp
        group, kind = obj["apiVersion"].rpartition("/")[0], obj["kind"]
        for name, rc in self.rendered.components.items():
            for o in rc.objects:
                if o["kind"] == "CustomResourceDefinition" and (o["spec"]["group"], o["spec"]["names"]["kind"]) \
                        == (group, kind):
                    return name
        return None

    def _controller_runs(self, component: str) -> bool:
        for api, kind in _WORKLOAD_APIS:
            for w in self.cluster.list(api, kind, label_selector=self._selector(component)):
                st = w.get("status") or {}
                if "deletionTimestamp" not in w["metadata"] and \
                        (st.get("readyReplicas") or st.get("availableReplicas") or st.get("numberReady") or 0) > 0:
                    return True
        return False

    def _remove_finalizers(self, obj: dict) -> None:
        md = obj["metadata"]
        self._forced_once.add(str(Ref.of(obj)))
        self.cluster.patch(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"),
                           {"metadata": {"finalizers": None}})
        if obj["kind"] == "Namespace":
            # A terminating namespace waits on what it still holds: strip those finalizers too, then
            # its own spec.finalizers through the finalize subresource.
            for api, kind, namespaced in self.cluster.served_kinds():
                if not namespaced:
                    continue
                for o in self.cluster.list(api, kind, md["name"]):
                    if o["metadata"].get("finalizers"):
                        self.cluster.patch(api, kind, o["metadata"]["name"], md["name"],
                                           {"metadata": {"finalizers": None}})
            self.cluster.finalize_namespace(md["name"])


def remove_components(cluster: Any, rendered: Any, names: list[str], *, wait_s: float = 180.0,
                      echo: Any = print) -> list[StepResult]:
    """Tear down only `names` of a rendered platform (what an upgrade drops): their custom
    resources, webhooks, workloads, namespaces, then their CRDs."""
    return Executor(cluster, rendered, wait_s=wait_s, echo=echo).run(plan_teardown(rendered, components=names))


def report(results: list[StepResult]) -> dict[str, Any]:
    stuck = [asdict(s) | {"component": r.component, "phase": r.phase} for r in results for s in r.stuck]
    return {"ok": not stuck, "steps": [asdict(r) for r in results], "stuck": stuck}
