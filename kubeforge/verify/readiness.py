"""Readiness checks derived from the rendered objects, the same way for every component.

No component writes these by hand: its CRDs must be Established, its Deployments, StatefulSets
and DaemonSets available, its webhook configurations must carry a CA bundle and point at a
Service with ready endpoints, its pods must not crash-loop or keep restarting, and its namespaces'
Pod Security labels must reject a privileged pod. The `*_problems` functions are the logic (pure,
over the object dicts the API returns); the check functions poll them until clean or out of time.
"""
from __future__ import annotations

from typing import Any

from kubeforge.verify.checks import READINESS, Check

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
RESTART_WINDOW_S = 20.0   # restart counts are sampled this far apart to see them rising


# -- logic over object dicts --------------------------------------------------------------
def _conditions(obj: dict) -> dict[str, dict]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def crd_problems(name: str, live: dict | None) -> list[str]:
    if live is None:
        return [f"CRD {name} is missing"]
    cond = _conditions(live)
    out = []
    for t in ("Established", "NamesAccepted"):
        c = cond.get(t)
        if not c or c.get("status") != "True":
            why = f" ({c.get('reason')}: {c.get('message')})" if c else ""
            out.append(f"CRD {name} is not {t}{why}")
    return out


def workload_problems(kind: str, ref: str, live: dict | None) -> list[str]:
    """Deployment/StatefulSet/DaemonSet fully rolled out and available."""
    if live is None:
        return [f"{kind} {ref} is missing"]
    spec, st = live.get("spec") or {}, live.get("status") or {}
    gen, seen = live.get("metadata", {}).get("generation"), st.get("observedGeneration")
    if gen is not None and (seen is None or seen < gen):
        return [f"{kind} {ref}: controller has not observed generation {gen} yet"]
    if kind == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        avail, upd = st.get("numberAvailable", 0) or 0, st.get("updatedNumberScheduled", 0) or 0
        if avail < want or upd < want:
            return [f"DaemonSet {ref}: {avail}/{want} available, {upd}/{want} updated"]
        return []
    want = spec.get("replicas", 1)
    ready_field = "availableReplicas" if kind == "Deployment" else "readyReplicas"
    have = st.get(ready_field, 0) or 0
    upd = st.get("updatedReplicas", 0) or 0
    if have < want or upd < want:
        return [f"{kind} {ref}: {have}/{want} available, {upd}/{want} updated"]
    if kind == "Deployment":
        avail = _conditions(live).get("Available")
        if avail and avail.get("status") != "True":
            return [f"Deployment {ref}: Available={avail.get('status')} ({avail.get('message')})"]
    return []


def webhook_services(obj: dict) -> list[tuple[str, str, str]]:
    """(webhook name, service namespace, service name) for each service-backed webhook."""
    out = []
    for wh in obj.get("webhooks") or []:
        svc = (wh.get("clientConfig") or {}).get("service")
        if svc:
            out.append((wh.get("name", ""), svc.get("namespace", ""), svc.get("name", "")))
    return out


def webhook_problems(kind: str, name: str, live: dict | None,
                     ready_endpoints: dict[tuple[str, str], int]) -> list[str]:
    """Every webhook has a caBundle (service-backed ones) and its Service has ready endpoints.

    ready_endpoints: (namespace, service) -> number of ready endpoint addresses.
    """
    if live is None:
        return [f"{kind} {name} is missing"]
    out = []
    for wh in live.get("webhooks") or []:
        cc = wh.get("clientConfig") or {}
        svc = cc.get("service")
        if svc and not cc.get("caBundle"):
            out.append(f"{kind} {name}: webhook {wh.get('name')} has no caBundle "
                       "(the CA injector or the controller has not filled it in)")
        if svc and ready_endpoints.get((svc.get("namespace"), svc.get("name")), 0) < 1:
            out.append(f"{kind} {name}: webhook {wh.get('name')}: Service "
                       f"{svc.get('namespace')}/{svc.get('name')} has no ready endpoints")
    return out


def apiservice_problems(name: str, live: dict | None) -> list[str]:
    """An aggregated API is Available (its backend answers the API server)."""
    if live is None:
        return [f"APIService {name} is missing"]
    c = _conditions(live).get("Available")
    if not c or c.get("status") != "True":
        why = f" ({c.get('reason')}: {c.get('message')})" if c else ""
        return [f"APIService {name} is not Available{why}"]
    return []


def created_namespace_problems(owner: str, namespace: str, live: dict | None) -> list[str]:
    """The namespace a custom resource's controller creates (kubeforge.ordering.created_namespace)
    exists and is not terminating, so what kubeforge renders into it can be applied."""
    if live is None:
        return [f"namespace {namespace} does not exist yet (the controller of {owner} creates it)"]
    terminating = (live.get("status") or {}).get("phase") == "Terminating"
    if terminating or (live.get("metadata") or {}).get("deletionTimestamp"):
        return [f"namespace {namespace} (of {owner}) is terminating"]
    return []


def ready_endpoint_count(slices: list[dict]) -> int:
    n = 0
    for s in slices:
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True) is not False:
                n += len(ep.get("addresses") or [])
    return n


# -- the same judgements, read from a cluster (verify's checks and kubeforge apply's waits) -----
def live_workload_problems(cluster: Any, kind: str, namespace: str | None, name: str,
                           why: bool = False) -> list[str]:
    """workload_problems of the live object; why=True adds the first unready pod's waiting reason."""
    live = cluster.get("apps/v1", kind, name, namespace)
    out = workload_problems(kind, f"{namespace}/{name}", live)
    if out and why and live:
        from kubeforge.verify.context import _waiting_reason

        labels = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        sel = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = cluster.list("v1", "Pod", namespace, label_selector=sel) if sel else []
        unready = [p for p in pods if not _pod_ready(p)]
        if unready:
            out = [f"{out[0]} (pod {unready[0]['metadata']['name']}: {_waiting_reason(unready[0])})", *out[1:]]
        elif not pods:
            out = [f"{out[0]} (no pod yet)", *out[1:]]
    return out


def _pod_ready(pod: dict) -> bool:
    return _conditions(pod).get("Ready", {}).get("status") == "True"


def live_webhook_problems(cluster: Any, kind: str, name: str) -> list[str]:
    """webhook_problems of the live configuration, with its Services' ready endpoints."""
    live = cluster.get("admissionregistration.k8s.io/v1", kind, name)
    eps = {}
    for _wh, ns, svc in webhook_services(live or {}):
        slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", ns,
                              label_selector=f"kubernetes.io/service-name={svc}")
        eps[(ns, svc)] = ready_endpoint_count(slices)
    return webhook_problems(kind, name, live, eps)


def restart_counts(pods: list[dict]) -> dict[str, int]:
    out = {}
    for p in pods:
        ref = f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            out[f"{ref}:{cs.get('name')}"] = cs.get("restartCount", 0) or 0
    return out


def pod_problems(before: list[dict], after: list[dict]) -> list[str]:
    """CrashLoopBackOff now, or restart counts that rose between two samples."""
    out = []
    for p in after:
        ref = f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                last = ((cs.get("lastState") or {}).get("terminated") or {})
                out.append(f"pod {ref} container {cs.get('name')} is in CrashLoopBackOff "
                           f"(last exit {last.get('exitCode')}: {last.get('reason')})")
    first = restart_counts(before)
    for key, n in restart_counts(after).items():
        if key in first and n > first[key]:
            out.append(f"container {key} restarted {n - first[key]} time(s) while being watched "
                       f"(restartCount {first[key]} -> {n})")
    return out


def enforces_pod_security(ns_obj: dict) -> str | None:
    """The enforced level when it should reject a privileged pod (baseline/restricted), else None."""
    level = (ns_obj.get("metadata", {}).get("labels") or {}).get("pod-security.kubernetes.io/enforce")
    return level if level in ("baseline", "restricted") else None


def privileged_pod(namespace: str, image: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kubeforge-psa-probe", "namespace": namespace},
        "spec": {"containers": [{"name": "probe", "image": image,
                                 "securityContext": {"privileged": True}}]},
    }


def pod_security_verdict(error: Exception | None) -> str | None:
    """None when the API rejected the privileged pod for Pod Security; a problem otherwise."""
    if error is None:
        return "a privileged pod was admitted"
    body = str(getattr(error, "body", "") or error)
    if getattr(error, "status", None) == 403 and "PodSecurity" in body:
        return None
    return f"the privileged pod was rejected, but not by Pod Security: {body[:300]}"


# -- selection from the rendered objects --------------------------------------------------
def _ref(obj: dict) -> str:
    md = obj.get("metadata", {})
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else md["name"]


def _of(objs: list[dict], *kinds: str) -> list[dict]:
    return [o for o in objs if o.get("kind") in kinds]


def pod_selectors(objs: list[dict]) -> list[tuple[str, str]]:
    """(namespace, label selector) for the pods of the rendered workloads."""
    out = []
    for o in _of(objs, *WORKLOAD_KINDS):
        labels = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if labels:
            sel = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            out.append((o["metadata"].get("namespace", "default"), sel))
    return out


HEALTH_KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}


def health_objects(health: dict) -> list[dict]:
    """component.yaml `health` (crds: [names]; deployments, statefulsets, daemonsets: ["ns/name"])
    as the object stubs the checks below select by."""
    out = [{"kind": "CustomResourceDefinition", "metadata": {"name": n}} for n in health.get("crds") or []]
    for key, kind in HEALTH_KINDS.items():
        out += [{"kind": kind, "metadata": {"namespace": ref.split("/", 1)[0], "name": ref.split("/", 1)[1]}}
                for ref in health.get(key) or [] if "/" in ref]
    return out


def derive(component: str, objs: list[dict], health: dict | None = None, chart_rendered: bool = True) -> list[Check]:
    """The readiness checks of one component, from its rendered objects (none when nothing to check).

    chart_rendered=False: the component's Helm chart was not rendered here (no `helm`), so only its
    generated objects are in `objs` (a Namespace, a ConfigMap); `health` from component.yaml stands
    in for the chart's objects.
    """
    out = []
    if not chart_rendered and health:
        have = {(o.get("kind"), (o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name"))
                for o in objs}
        objs = list(objs) + [o for o in health_objects(health)
                             if (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) not in have]

    def add(short: str, fn: Any, description: str, timeout: float = 300.0) -> None:
        out.append(Check(name=f"{component}/{short}", component=component, kind=READINESS, fn=fn,
                         timeout=timeout, description=description))

    crds = [o["metadata"]["name"] for o in _of(objs, "CustomResourceDefinition")]
    if crds:
        add("crds-established", lambda ctx: _check_crds(ctx, crds),
            f"{len(crds)} CRD(s) Established and NamesAccepted", timeout=120)
    workloads = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                 for o in _of(objs, *WORKLOAD_KINDS)]
    if workloads:
        add("workloads-available", lambda ctx: _check_workloads(ctx, workloads),
            f"{len(workloads)} Deployment/StatefulSet/DaemonSet(s) rolled out and available", timeout=600)
    hooks = [(o["kind"], o["metadata"]["name"]) for o in _of(objs, *WEBHOOK_KINDS)]
    if hooks:
        add("webhooks-ready", lambda ctx: _check_webhooks(ctx, hooks),
            f"{len(hooks)} webhook configuration(s) have a caBundle and ready endpoints", timeout=300)
    selectors = pod_selectors(objs)
    if selectors:
        add("pods-healthy", lambda ctx: _check_pods(ctx, selectors),
            "no CrashLoopBackOff, no restarts while watched", timeout=120)
    psa = [(o["metadata"]["name"], enforces_pod_security(o)) for o in _of(objs, "Namespace")
           if enforces_pod_security(o)]
    if psa:
        add("pod-security", lambda ctx: _check_pod_security(ctx, psa),
            "namespaces with baseline/restricted enforcement reject a privileged pod", timeout=60)
    return out


# -- the check bodies (need a live cluster) ------------------------------------------------
def _check_crds(ctx: Any, names: list[str]) -> str:
    ctx.wait_clean("CRDs Established", lambda: [
        p for n in names
        for p in crd_problems(n, ctx.cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", n))])
    return f"{len(names)} CRDs established"


def _check_workloads(ctx: Any, workloads: list[tuple[str, str | None, str]]) -> str:
    ctx.wait_clean("workloads available", lambda: [
        p for kind, ns, name in workloads for p in live_workload_problems(ctx.cluster, kind, ns, name)])
    return f"{len(workloads)} workloads available"


def _check_webhooks(ctx: Any, hooks: list[tuple[str, str]]) -> str:
    ctx.wait_clean("webhook configurations ready", lambda: [
        p for kind, name in hooks for p in live_webhook_problems(ctx.cluster, kind, name)])
    return f"{len(hooks)} webhook configurations ready"


def _check_pods(ctx: Any, selectors: list[tuple[str, str]]) -> str:
    def sample() -> list[dict]:
        return [p for ns, sel in selectors for p in ctx.cluster.list("v1", "Pod", ns, label_selector=sel)]
    before = sample()
    ctx.sleep(min(RESTART_WINDOW_S, max(ctx.remaining() / 3, 1)))
    after = sample()
    problems = pod_problems(before, after)
    if problems:
        ctx.fail("; ".join(problems))
    return f"{len(after)} pods healthy"


def _check_pod_security(ctx: Any, namespaces: list[tuple[str, str]]) -> str:
    problems = []
    for ns, level in namespaces:
        try:
            ctx.cluster.create(privileged_pod(ns, ctx.image("pause")), dry_run=True)
            err = None
        except Exception as exc:  # ApiException from the admission chain
            err = exc
        verdict = pod_security_verdict(err)
        if verdict:
            problems.append(f"namespace {ns} (enforce={level}): {verdict}")
    if problems:
        ctx.fail("; ".join(problems))
    return f"{len(namespaces)} namespaces reject privileged pods"
