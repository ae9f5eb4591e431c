"""Apply a rendered platform to a cluster in the order the Pulumi stack encodes, in one pass:
`kubeforge apply` (install or update without Pulumi) and the apply step of `kubeforge upgrade`.

Wave by wave in plan order; inside a wave, the phases of kubeforge.ordering.apply_phase over the
stack's own object edges (kubeforge.pulumi.graph), each followed by a bounded wait:
  crds              Namespaces and CRDs                          -> CRDs Established
  workloads         all that needs nothing of its wave but those -> Deployments/StatefulSets/DaemonSets available
  webhooks          webhook configurations, APIServices          -> caBundle set, Service endpoints ready
  custom-resources  custom resources of the wave's controllers and webhooks
                                                                 -> the namespaces they create exist
  in-created-namespaces  what goes into those namespaces (a Profile's contributor bindings)
Every object goes by server-side apply as field manager `kubeforge`; a field another manager owns
is a conflict (reported) unless force_conflicts. Applying the same render again changes nothing
(every object reports unchanged: the server keeps its resourceVersion), so a rerun after an
interruption or a failure picks up where the first run stopped.

A dry run sends every object with dryRun=All: the server admits or refuses each one and persists
nothing. Nothing is created, so nothing is waited for, and an object whose namespace or CRD this
apply would create first is reported as `skipped` with what it needs, not sent.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from kubeforge.errors import CheckFailed, KubeforgeError
from kubeforge.ordering import APPLY_PHASES, apply_order, apply_phase, created_namespace
from kubeforge.verify.cluster import FIELD_MANAGER, ApiRejected

PULUMI_MANAGER_PREFIX = "pulumi"
CRD_API = "apiextensions.k8s.io/v1"
CREATED, CONFIGURED, UNCHANGED, ERROR, SKIPPED = "created", "configured", "unchanged", "error", "skipped"


# -- who installed it ---------------------------------------------------------------------
def installer(live: dict) -> str:
    """'pulumi' when Pulumi's field manager owns fields of the object, 'kubeforge' when
    `kubeforge apply` does (field manager kubeforge), else 'kubectl'."""
    managers = [str(mf.get("manager", "")) for mf in (live.get("metadata") or {}).get("managedFields") or []]
    if any(m.startswith(PULUMI_MANAGER_PREFIX) for m in managers):
        return "pulumi"
    return "kubeforge" if FIELD_MANAGER in managers else "kubectl"


def detect_installer(cluster: Any, rendered: Any) -> str:
    for rc in rendered.components.values():
        for o in rc.objects:
            if o["kind"] in ("Deployment", "Namespace"):
                live = cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
                if live:
                    return installer(live)
    return "kubectl"


# -- the order (pure) ---------------------------------------------------------------------
@dataclass
class WavePlan:
    wave: int
    components: list[str]
    phases: dict[str, list[tuple[str, dict]]]    # phase -> (component, object), apply order


def plan_apply(rendered: Any, components: list[str] | None = None) -> list[WavePlan]:
    """The waves and phases to apply (only `components` when given, e.g. what an upgrade changes).
    KubeforgeError when an object needs one of a later wave: no order could apply it in one pass."""
    from kubeforge.pulumi.graph import build_graph, object_key

    graph = build_graph(rendered)
    wave_of = {n: pc.wave for n, pc in rendered.plan.components.items()}
    out = []
    for i, wave in enumerate(rendered.plan.waves):
        names = [n for n in wave if components is None or n in components]
        if not names:
            continue
        phase_of: dict[str, str] = {}
        items: list[tuple[str, dict, str]] = []
        batch = [o for n in names for o in rendered.components[n].objects]
        created = {ns for o in batch if (ns := created_namespace(o))}
        for obj in apply_order(batch):
            node = graph.nodes[object_key(obj)]
            deps = [graph.nodes[d] for d in node.deps]
            for d in deps:
                if wave_of[d.component] > i:
                    raise KubeforgeError(
                        f"{node.key} ({node.component}, wave {i}) needs {d.key} of {d.component} (wave "
                        f"{wave_of[d.component]}): it cannot be applied before that exists",
                        file=f"components/{node.component}/component.yaml", field="requires",
                        fix=f"add {d.component} to requires (or after) of {node.component}")
            # Edges into waves already applied are met by their gates; so are edges to components
            # this run does not apply (an upgrade of some): they are installed.
            same = [d.kind for d in deps if wave_of[d.component] == i and d.component in names]
            phase_of[node.key] = apply_phase(obj, same, created)
            items.append((node.component, obj, node.key))
        phases: dict[str, list[tuple[str, dict]]] = {p: [] for p in APPLY_PHASES}
        rank = {p: n for n, p in enumerate(APPLY_PHASES)}
        for comp, obj, key in items:
            for d in graph.nodes[key].deps:
                if d in phase_of and rank[phase_of[d]] > rank[phase_of[key]]:
                    raise KubeforgeError(f"{key} is ordered after {d} but would be applied in an earlier "
                                         f"phase ({phase_of[key]} before {phase_of[d]})", field="ordering",
                                         fix="kubeforge.ordering.apply_phase disagrees with the stack's "
                                             "graph: report this as a bug")
            phases[phase_of[key]].append((comp, obj))
        out.append(WavePlan(i, names, phases))
    return out


# -- results ------------------------------------------------------------------------------
@dataclass
class ObjectResult:
    component: str
    wave: int
    phase: str
    object: str
    action: str            # created | configured | unchanged | error | skipped (dry run)
    message: str = ""


@dataclass
class WaitResult:
    wave: int
    phase: str
    what: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class ApplyResult:
    profile: str
    cluster: str
    dry_run: bool
    objects: list[ObjectResult] = field(default_factory=list)
    waits: list[WaitResult] = field(default_factory=list)
    stopped: str = ""      # why it stopped before the end (a refused object, a wait, an interrupt)

    @property
    def errors(self) -> list[ObjectResult]:
        return [o for o in self.objects if o.action == ERROR]

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.errors

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.action for o in self.objects))

    def as_dict(self) -> dict[str, Any]:
        comps: dict[str, dict[str, Any]] = {}
        for o in self.objects:
            c = comps.setdefault(o.component, {"wave": o.wave, "objects": 0})
            c["objects"] += 1
            c[o.action] = c.get(o.action, 0) + 1
        return {"ok": self.ok, "profile": self.profile, "cluster": self.cluster, "dry_run": self.dry_run,
                "stopped": self.stopped or None, "counts": self.counts(), "components": comps,
                "waits": [asdict(w) for w in self.waits],
                "errors": [asdict(o) for o in self.errors],
                "skipped": [asdict(o) for o in self.objects if o.action == SKIPPED]}


def _ref(obj: dict) -> str:
    md = obj.get("metadata", {})
    return f"{obj['kind']} {md['namespace'] + '/' if md.get('namespace') else ''}{md['name']}"


def _content(obj: dict | None) -> dict | None:
    """What a dry run compares: the object without what the server writes on every change."""
    if obj is None:
        return None
    md = {k: v for k, v in (obj.get("metadata") or {}).items()
          if k not in ("managedFields", "resourceVersion", "generation")}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": md}


# -- the run ------------------------------------------------------------------------------
class Applier:
    """One pass over the waves. clock/sleep default to real time; an in-process stand-in cluster
    passes its own so its controllers advance while a wait sleeps."""

    def __init__(self, cluster: Any, *, dry_run: bool = False, force_conflicts: bool = False,
                 wait_s: float = 300.0, echo: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None,
                 interval: float = 3.0):
        self.cluster = cluster
        self.dry_run = dry_run
        self.force = force_conflicts
        self.wait_s = wait_s
        self.echo = echo
        self.clock = clock
        self.sleep = sleep
        self.interval = interval

    def run(self, rendered: Any, components: list[str] | None = None) -> ApplyResult:
        waves = plan_apply(rendered, components)
        result = ApplyResult(rendered.plan.profile.name, getattr(self.cluster, "server", ""), self.dry_run)
        self._creates = _creates(rendered, components)
        self._plan = rendered.plan
        try:
            for wp in waves:
                if not self._wave(rendered, wp, result):
                    break
        except KeyboardInterrupt:
            result.stopped = (f"interrupted after {len(result.objects)} object(s); what was applied stays "
                              "applied and reports unchanged on the next run")
        except Exception as exc:
            if not _lost_connection(exc):
                raise
            result.stopped = (f"lost the API server after {len(result.objects)} object(s) "
                              f"({getattr(exc, 'reason', None) or exc.__class__.__name__}); what was applied "
                              "stays applied and reports unchanged on the next run")
        return result

    def _wave(self, rendered: Any, wp: WavePlan, result: ApplyResult) -> bool:
        totals = Counter(c for items in wp.phases.values() for c, _ in items)
        started: dict[str, float] = {}
        self.echo(f"wave {wp.wave}: {', '.join(wp.components)}")
        for phase in APPLY_PHASES:
            items = wp.phases[phase]
            if not items:
                continue
            refused = 0
            for comp, obj in items:
                if comp not in started:
                    started[comp] = self.clock()
                    self.echo(f"  [wave {wp.wave}] {comp}: {'checking' if self.dry_run else 'applying'} "
                              f"{totals[comp]} objects")
                res = self._apply_one(comp, wp.wave, phase, obj)
                result.objects.append(res)
                if res.action == ERROR:
                    refused += 1
                    self.echo(f"  {comp}: REFUSED {res.object}: {res.message}")
            if refused and not self.dry_run:
                result.stopped = (f"wave {wp.wave} {phase}: {refused} object(s) refused by the API server "
                                  "(listed above); nothing after them was applied")
                return False
            if not self.dry_run and not self._gate(wp.wave, phase, [o for _, o in items], result):
                return False
        for comp in wp.components:
            mine = [o for o in result.objects if o.component == comp and o.wave == wp.wave]
            c = Counter(o.action for o in mine)
            took = self.clock() - started.get(comp, self.clock())
            parts = [f"{c[a]} {a}" for a in (CREATED, CONFIGURED, UNCHANGED, SKIPPED, ERROR) if c[a]]
            self.echo(f"  {comp}: {len(mine)}/{totals[comp]} {'checked' if self.dry_run else 'applied'}"
                      f" ({', '.join(parts) or 'nothing'}) ({took:.1f}s)")
        return True

    def _apply_one(self, comp: str, wave: int, phase: str, obj: dict) -> ObjectResult:
        md = obj["metadata"]
        res = ObjectResult(comp, wave, phase, _ref(obj), "")
        if self.dry_run:
            need = self._needs(obj)
            if need:
                res.action, res.message = SKIPPED, f"needs {need}, which this apply creates first"
                return res
        before = self.cluster.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        try:
            after = self.cluster.apply(obj, force=self.force, dry_run=self.dry_run)
        except ApiRejected as exc:
            res.action, res.message = ERROR, f"{exc.status} {exc.reason}: {exc.message}"
            return res
        if before is None:
            res.action = CREATED
        elif self.dry_run:
            res.action = UNCHANGED if _content(after) == _content(before) else CONFIGURED
        else:
            rv = (before.get("metadata") or {}).get("resourceVersion")
            res.action = UNCHANGED if (after.get("metadata") or {}).get("resourceVersion") == rv else CONFIGURED
        return res

    def _needs(self, obj: dict) -> str | None:
        """Dry run: the namespace or CRD of this apply that the object needs and the cluster lacks."""
        ns = obj["metadata"].get("namespace")
        if ns and ns in self._creates["namespaces"] and self.cluster.get("v1", "Namespace", ns) is None:
            return f"namespace {ns}"
        group = obj["apiVersion"].rpartition("/")[0]
        crd = self._creates["crds"].get((group, obj["kind"]))
        if crd and self.cluster.resource(obj["apiVersion"], obj["kind"]) is None:
            return f"CRD {crd}"
        return None

    # -- waits -----------------------------------------------------------------------------
    def _gate(self, wave: int, phase: str, objs: list[dict], result: ApplyResult) -> bool:
        from kubeforge.verify.readiness import (
            WEBHOOK_KINDS,
            WORKLOAD_KINDS,
            apiservice_problems,
            crd_problems,
            created_namespace_problems,
            live_webhook_problems,
            live_workload_problems,
        )

        c = self.cluster
        checks: list[tuple[str, Callable[[], list[str]]]] = []
        crds = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
        if crds:
            checks.append((f"{len(crds)} CRD(s) Established", lambda: [
                p for n in crds for p in crd_problems(n, c.get(CRD_API, "CustomResourceDefinition", n))]))
        work = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                for o in objs if o["kind"] in WORKLOAD_KINDS]
        if work:
            checks.append((f"{len(work)} workload(s) available", lambda: [
                p for k, ns, n in work for p in live_workload_problems(c, k, ns, n, why=True)]))
        hooks = [(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in WEBHOOK_KINDS]
        if hooks:
            checks.append((f"{len(hooks)} webhook configuration(s) serving (caBundle set, endpoints ready)",
                           lambda: [p for k, n in hooks for p in live_webhook_problems(c, k, n)]))
        made = [(_ref(o), ns) for o in objs if (ns := created_namespace(o))]
        if made:
            checks.append((f"{len(made)} namespace(s) their custom resources create", lambda: [
                p for ref, ns in made for p in created_namespace_problems(ref, ns, c.get("v1", "Namespace", ns))]))
        apis = [o["metadata"]["name"] for o in objs if o["kind"] == "APIService"]
        if apis:
            checks.append((f"{len(apis)} APIService(s) Available", lambda: [
                p for n in apis for p in apiservice_problems(
                    n, c.get("apiregistration.k8s.io/v1", "APIService", n))]))
        if not checks:
            return True
        from kubeforge.verify.context import CheckContext, CheckError

        what = ", ".join(w for w, _ in checks)
        self.echo(f"  wave {wave} {phase}: waiting for {what} (up to {self.wait_s:.0f}s)")
        ctx = CheckContext(cluster=c, plan=self._plan, component="", objects=[], timeout=self.wait_s * 2,
                           clock=self.clock, sleep=self.sleep)
        t0 = self.clock()
        try:
            ctx.wait_clean(what, lambda: [p for _, probe in checks for p in probe()],
                           timeout=self.wait_s, interval=self.interval)
        except CheckError as exc:
            took = self.clock() - t0
            result.waits.append(WaitResult(wave, phase, what, round(took, 1), False, str(exc)))
            result.stopped = f"wave {wave} {phase}: {exc}"
            self.echo(f"  wave {wave} {phase}: NOT READY after {took:.0f}s: {exc}")
            return False
        took = self.clock() - t0
        result.waits.append(WaitResult(wave, phase, what, round(took, 1), True))
        self.echo(f"  wave {wave} {phase}: ready ({took:.1f}s)")
        for o in objs:   # the new kinds are served now: drop cached "not served" answers
            if o["kind"] == "CustomResourceDefinition":
                for v in o["spec"].get("versions") or []:
                    c.forget(f"{o['spec']['group']}/{v['name']}", o["spec"]["names"]["kind"])
        return True


def _lost_connection(exc: Exception) -> bool:
    """A connection to the API server that broke mid-run (urllib3 or socket errors)."""
    try:
        import urllib3

        if isinstance(exc, urllib3.exceptions.HTTPError):
            return True
    except ImportError:
        pass
    return isinstance(exc, OSError)


def _creates(rendered: Any, components: list[str] | None) -> dict[str, Any]:
    objs = [o for n, rc in rendered.components.items() if components is None or n in components
            for o in rc.objects]
    return {"namespaces": {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
            | {ns for o in objs if (ns := created_namespace(o))},
            "crds": {(o["spec"]["group"], o["spec"]["names"]["kind"]): o["metadata"]["name"]
                     for o in objs if o["kind"] == "CustomResourceDefinition"}}


# -- upgrade ------------------------------------------------------------------------------
def apply_upgrade(cluster: Any, rendered: Any, changed: list[str], echo: Any = print,
                  wait_s: float = 600.0, **timing: Any) -> None:
    """The apply step of `kubeforge upgrade` on a cluster installed without Pulumi: the changed
    components, in the same waves and phases as an install. A new release takes over the fields
    the old one set, whoever applied it (kubectl or kubeforge): conflicts are forced. timing: the
    Applier's clock/sleep (a stand-in cluster's in tests)."""
    res = Applier(cluster, force_conflicts=True, wait_s=wait_s, echo=echo, **timing).run(rendered, components=changed)
    if not res.ok:
        raise CheckFailed(f"upgrade stopped: {res.stopped}",
                          fix="fix the cause and rerun kubeforge upgrade; applied waves stay applied")
