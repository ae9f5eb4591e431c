"""Platform monitors, generated from the plan: for each enabled component that exports metrics,
the ServiceMonitor/PodMonitor that scrapes it, a Role that lets Prometheus discover targets in its
namespace (kube-prometheus grants only default, kube-system and monitoring), a NetworkPolicy where
its namespace denies ingress from other namespaces, and one `platform.rules` alert pair per
component. Istio's and Knative's monitors and dashboards are upstream's (knative-extensions and
Istio's samples); the others are written here from what the rendered upstream objects expose.

Every monitor adds the label kubeforge_component to its series, so alerts and `kubeforge verify`
can tell which component a target belongs to. kubeforge.validate checks all of it at render time:
each monitor selects a real Service/pod port, Prometheus may list the namespace, and a
NetworkPolicy that isolates a target admits Prometheus.

Not monitored: the storage provisioner, the device plugin and GFD (no metrics endpoint), KServe's
llmisvc controller (it binds its metrics to 127.0.0.1), the DCGM exporter (gpu-monitoring's).
"""
from __future__ import annotations

import copy
import json
from typing import Any, NamedTuple

from kubeforge import monitoring

LABEL = "kubeforge_component"
RULE_NAME = "platform-rules"
GROUP = "platform.rules"
NETPOL = "kubeforge-allow-prometheus"
CLUSTER_ACCESS = "kubeforge-prometheus-pods"
# kube-rbac-proxy / controller-runtime secure metrics: Prometheus authenticates with its token;
# the serving certificates are self-signed by the controllers, so the name cannot be verified.
_SECURE = {"scheme": "https", "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
           "tlsConfig": {"insecureSkipVerify": True}}


class Target(NamedTuple):
    namespace: str
    kind: str = "ServiceMonitor"               # or PodMonitor
    selector: dict = {}                         # read only
    ports: tuple[str, ...] = ()
    secure: bool = False
    upstream: str = ""                          # raw source id with upstream monitors instead
    netpol: tuple[int, ...] = ()                # the namespace isolates its pods: admit these ports
    # kubeflow: isolated only in multi-user mode (kubeflow-namespace multiUser: upstream's
    # NetworkPolicies); then admit these container ports.
    netpol_multi_user: tuple[int, ...] = ()
    cluster_wide: bool = False                  # the monitor reaches every namespace (sidecars)
    dashboards: tuple[str, ...] = ()            # raw source ids of dashboards


TARGETS: dict[str, list[Target]] = {
    "cert-manager": [Target("cert-manager", selector={"app.kubernetes.io/instance": "cert-manager"},
                            ports=("tcp-prometheus-servicemonitor", "http-metrics", "metrics"))],
    # istiod (15014), gateways' and sidecars' merged stats (15020, envoy 15090). istio-system
    # admits only its own namespace (kubeflow/manifests' default-allow-same-namespace).
    "istio": [Target("istio-system", upstream="istio-monitors", netpol=(15014, 15020, 15090), cluster_wide=True,
                     dashboards=("istio-control-plane-dashboard", "istio-mesh-dashboard",
                                 "istio-service-dashboard", "istio-workload-dashboard"))],
    "knative-serving": [Target("knative-serving", upstream="knative-serving-monitors", netpol=(9090,),
                               dashboards=("knative-serving-dashboards",))],
    "kserve": [Target("kubeflow", selector={"control-plane": "kserve-controller-manager"}, ports=("https",),
                      secure=True, netpol_multi_user=(8443,))],
    "katib": [Target("kubeflow", selector={"katib.kubeflow.org/component": "controller"}, ports=("metrics",),
                     netpol_multi_user=(8080,))],
    "training-operator": [Target("kubeflow", selector={"app": "training-operator"}, ports=("monitoring-port",),
                                 netpol_multi_user=(8080,))],
    # Argo 3.7.3 serves its metrics over TLS (a self-signed certificate) and ships no Service for
    # them: a PodMonitor on the controller's `metrics` port.
    "argo-workflows": [Target("argo", kind="PodMonitor", selector={"app": "workflow-controller"}, ports=("metrics",),
                              secure=True)],
}


def _relabel(comp: str) -> dict:
    return {"action": "replace", "targetLabel": LABEL, "replacement": comp}


def _monitor(comp: str, t: Target) -> dict:
    endpoints = []
    for p in t.ports:
        ep: dict[str, Any] = {"port": p, "interval": "30s", "relabelings": [_relabel(comp)]}
        if t.secure:
            ep.update(copy.deepcopy(_SECURE))
            if t.kind == "PodMonitor":      # PodMonitors take the token from the pod's account
                ep.pop("bearerTokenFile")
        endpoints.append(ep)
    key = "endpoints" if t.kind == "ServiceMonitor" else "podMetricsEndpoints"
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": t.kind,
            "metadata": {"name": comp, "namespace": monitoring.NAMESPACE},
            "spec": {"namespaceSelector": {"matchNames": [t.namespace]},
                     "selector": {"matchLabels": dict(t.selector)}, key: endpoints}}


def _upstream(comp: str, t: Target, ctx: Any) -> list[dict]:
    """Upstream's monitors, moved to `monitoring` (beside the others) with their targets' namespace
    stated, and labelled with the component."""
    from kubeforge.kustomize import parse

    out = []
    for o in parse(ctx.source_bytes(t.upstream)):
        o = copy.deepcopy(o)
        spec = o["spec"]
        if not (o["kind"] == "PodMonitor" and spec.get("namespaceSelector", {}).get("any")):
            # istiod only runs in istio-system; only sidecars are everywhere
            spec["namespaceSelector"] = {"matchNames": [t.namespace]}
        o["metadata"] = {"name": f"{comp}-{o['metadata']['name']}", "namespace": monitoring.NAMESPACE,
                         "labels": dict(o["metadata"].get("labels") or {})}
        for ep in spec.get("endpoints") or spec.get("podMetricsEndpoints") or []:
            ep["relabelings"] = [*(ep.get("relabelings") or []), _relabel(comp)]
        out.append(o)
    return out


def _netpol_ports(t: Target, ctx: Any) -> tuple[int, ...]:
    kf = ctx.plan.components.get("kubeflow-namespace")
    multi_user = t.namespace == "kubeflow" and kf is not None and kf.values.get("multiUser")
    return t.netpol + (t.netpol_multi_user if multi_user else ())


def _netpols(targets: list[tuple[str, Target]], ctx: Any) -> list[dict]:
    """One policy per namespace, admitting every target's ports there."""
    ports: dict[str, set[int]] = {}
    for _, t in targets:
        if _netpol_ports(t, ctx):
            ports.setdefault(t.namespace, set()).update(_netpol_ports(t, ctx))
    return [_netpol(ns, tuple(sorted(p))) for ns, p in sorted(ports.items())]


def _netpol(namespace: str, ports: tuple[int, ...]) -> dict:
    """Admit kube-prometheus' Prometheus pods (in `monitoring`) on the metrics ports."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": NETPOL, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                         "kubernetes.io/metadata.name": monitoring.NAMESPACE}},
                         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                         "ports": [{"port": p, "protocol": "TCP"} for p in ports]}]}}


def _cluster_access(rules: list[dict]) -> list[dict]:
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": CLUSTER_ACCESS}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": CLUSTER_ACCESS},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ACCESS},
             "subjects": [{"kind": "ServiceAccount", "name": monitoring.PROMETHEUS_SA,
                           "namespace": monitoring.NAMESPACE}]}]


def _alerts(comps: list[str]) -> dict:
    rules = [{"alert": "KubeforgeComponentTargetDown", "expr": f'up{{{LABEL}!=""}} == 0', "for": "10m",
              "labels": {"severity": "warning"},
              "annotations": {"summary": "{{ $labels." + LABEL + " }} target {{ $labels.instance }} is down",
                              "description": "Prometheus has not been able to scrape it for 10 minutes: the "
                                             "component's pod is down, restarting or unreachable."}}]
    for c in comps:
        rules.append({"alert": "KubeforgeComponentMetricsAbsent", "expr": f'absent(up{{{LABEL}="{c}"}})',
                      "for": "15m", "labels": {"severity": "warning", LABEL: c},
                      "annotations": {"summary": "no {{ $labels." + LABEL + " }} target is scraped",
                                      "description": "Prometheus finds nothing to scrape for the component: its "
                                                     "monitor selects no running pod, or discovery is not allowed."}})
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": RULE_NAME, "namespace": monitoring.NAMESPACE,
                         "labels": {"prometheus": "k8s", "role": "alert-rules"}},
            "spec": {"groups": [{"name": GROUP, "rules": rules}]}}


def _dashboards(ids: list[str], ctx: Any) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for sid in ids:
        doc = json.loads(ctx.source_bytes(sid))
        if doc.get("kind") == "ConfigMap":     # knative-extensions ships its dashboards as a ConfigMap
            out.update({k: json.loads(v) for k, v in doc["data"].items()})
        else:
            out[f"{sid.removesuffix('-dashboard')}.json"] = doc
    return out


def enabled_targets(ctx: Any) -> list[tuple[str, Target]]:
    return [(c, t) for c in sorted(TARGETS) if ctx.enabled(c) for t in TARGETS[c]]


def generate(ctx: Any) -> list[dict]:
    from kubeforge.kustomize import parse

    rules = monitoring.discovery_rules(parse(ctx.source_bytes("platform-prometheus-roles")))
    targets = enabled_targets(ctx)
    out: list[dict] = []
    for comp, t in targets:
        out += _upstream(comp, t, ctx) if t.upstream else [_monitor(comp, t)]
    for ns in sorted({t.namespace for _, t in targets}):
        out += monitoring.access(ns, rules)
    out += _netpols(targets, ctx)
    if any(t.cluster_wide for _, t in targets):
        out += _cluster_access(rules)
    if targets:
        out.append(_alerts(sorted({c for c, _ in targets})))
    # Always there (maybe empty): kube-prometheus mounts it for every component that provides dashboards.
    out.append(monitoring.dashboards_object(ctx.component.name,
                                            _dashboards([d for _, t in targets for d in t.dashboards], ctx)))
    return out
