"""How verify reaches the Kubeflow gateway from where it runs, as a user's browser would.

$KUBEFORGE_GATEWAY_URL (e.g. https://kubeflow.example.com) names the gateway as users reach it
(a LoadBalancer, an Ingress, TLS in front). Without it, verify tunnels to an ingress-gateway pod
that the rendered `kubeflow-gateway` Gateway selects, on the pod port behind the Gateway's
server port: a port-forward through the API server, one per connection, so the check needs
nothing but the kubeconfig (no LoadBalancer, no DNS).
"""
from __future__ import annotations

import os
from typing import Any

from kubeforge.verify.context import CheckError
from kubeforge.verify.httpflow import Browser

GATEWAY_URL_ENV = "KUBEFORGE_GATEWAY_URL"
GATEWAY_NAME = "kubeflow-gateway"
TUNNEL_BASE = "http://kubeflow.gateway"   # Host the tunnel sends (the Gateway accepts hosts "*")


def kubeflow_gateway(objects: list[dict]) -> dict:
    """The rendered kubeflow-gateway Gateway among a component's objects."""
    for o in objects:
        if o.get("kind") == "Gateway" and o["metadata"]["name"] == GATEWAY_NAME:
            return o
    raise CheckError(f"the render has no Gateway {GATEWAY_NAME} (kubeflow-istio-resources): nothing to log in through")


def http_port(gateway: dict) -> int:
    for server in gateway["spec"].get("servers") or []:
        if (server.get("port") or {}).get("protocol", "").upper() == "HTTP":
            return int(server["port"]["number"])
    raise CheckError(f"Gateway {GATEWAY_NAME} has no HTTP server port")


def _selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _ready(pod: dict) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def ingress_target(gateway: dict, pods: list[dict], services: list[dict]) -> tuple[str, str, int]:
    """(namespace, pod, container port) answering the Gateway's HTTP server: a ready pod the
    Gateway's selector picks, and the port its Service maps the server port to."""
    selector = gateway["spec"].get("selector") or {}
    port = http_port(gateway)
    ready = [p for p in pods if _selected(selector, p["metadata"].get("labels") or {}) and _ready(p)]
    if not ready:
        seen = len([p for p in pods if _selected(selector, p["metadata"].get("labels") or {})])
        raise CheckError(f"no ready ingress-gateway pod matches the {GATEWAY_NAME} selector {selector} "
                         f"({seen} pod(s) match, none Running and Ready)")
    pod = sorted(ready, key=lambda p: p["metadata"]["name"])[0]
    ns, labels = pod["metadata"]["namespace"], pod["metadata"].get("labels") or {}
    for svc in services:
        if svc["metadata"].get("namespace") != ns or not _selected(svc["spec"].get("selector") or {}, labels):
            continue
        for sp in svc["spec"].get("ports") or []:
            if int(sp["port"]) != port:
                continue
            target = sp.get("targetPort", sp["port"])
            if isinstance(target, int) or str(target).isdigit():
                return ns, pod["metadata"]["name"], int(target)
            for c in pod["spec"].get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == target:
                        return ns, pod["metadata"]["name"], int(cp["containerPort"])
    raise CheckError(f"no Service in {ns} maps port {port} of the {GATEWAY_NAME} to pod {pod['metadata']['name']}")


def browsers(ctx: Any) -> Any:
    """new() -> a fresh Browser (own cookie jar) on the gateway; one per caller of a check."""
    url = os.environ.get(GATEWAY_URL_ENV)
    if url:
        insecure = os.environ.get("KUBEFORGE_GATEWAY_INSECURE", "") in ("1", "true")
        return lambda: Browser(url.rstrip("/"), verify_tls=not insecure)
    gw = kubeflow_gateway(ctx.objects)
    selector = ",".join(f"{k}={v}" for k, v in (gw["spec"].get("selector") or {}).items())
    pods = ctx.cluster.list("v1", "Pod", label_selector=selector)
    services = [s for ns in sorted({p["metadata"]["namespace"] for p in pods})
                for s in ctx.cluster.list("v1", "Service", ns)]
    ns, pod, port = ingress_target(gw, pods, services)
    dial = ctx.cluster.pod_dialer(ns, pod, port)
    return lambda: Browser(TUNNEL_BASE, dial=dial)
