"""kube-prometheus as a real install needs it (the upstream manifests are a demo's defaults):

- the upstream Lists (Roles, RoleBindings, dashboard ConfigMaps) become their items: one object,
  one resource, as `kubectl apply` would expand them;
- Grafana's admin password is the install's own (a generated Secret), not admin/admin;
- the Prometheus datasource has an explicit uid and the conventional name, so dashboards that name
  it (Istio's) resolve and the render-time check can follow every reference;
- dashboards that other components provide (`provides: [grafana-dashboards]`, a ConfigMap
  `grafana-dashboards-<component>`) are mounted, in one Grafana folder per component;
- no prometheus-adapter when metrics-server serves metrics.k8s.io (the profile's cluster.apis);
- alerts with only a `message` get it as their `summary` too;
- no alert groups for the kube-scheduler and kube-controller-manager, whose monitors are left out
  (no Service on kubeadm or the managed clouds: they would only ever say "down");
- replicas, retention and storage from the values; with one replica no PodDisruptionBudget for
  Prometheus (minAvailable 1 of 1 blocks every node drain, the driver upgrade's included).
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from kubeforge import monitoring
from kubeforge.errors import KubeforgeError

NS = monitoring.NAMESPACE
DATASOURCE = {"name": "Prometheus", "uid": "prometheus"}
ADMIN_SECRET = "grafana-admin"
DASHBOARDS_ROOT = "/grafana-dashboard-definitions"
KUBEFORGE_DASHBOARDS = f"{DASHBOARDS_ROOT}/kubeforge"
NO_SERVICE_GROUPS = ("kubernetes-system-scheduler", "kubernetes-system-controller-manager")
ADAPTER = "prometheus-adapter"
PART_OF = "app.kubernetes.io/part-of"
METRICS_API = "metrics.k8s.io"


def generate(ctx: Any) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": ADMIN_SECRET, "namespace": NS},
             "stringData": {"admin-user": "admin", "admin-password": ctx.secret("grafana-admin-password")}}]


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    objs = [copy.deepcopy(i) for o in objects for i in _items(o)]
    if ctx.profile.cluster.provides(METRICS_API):
        objs = [o for o in objs if _labels(o).get("app.kubernetes.io/name") != ADAPTER]
    replicas = ctx.values["replicas"]
    if replicas < 2:
        objs = [o for o in objs if not (o["kind"] == "PodDisruptionBudget"
                                        and o["metadata"]["name"] == "prometheus-k8s")]
    providers = _dashboard_components(ctx)
    for o in objs:
        kind, name = o["kind"], o["metadata"]["name"]
        if kind == "PrometheusRule":
            o["spec"]["groups"] = [g for g in o["spec"]["groups"] if g["name"] not in NO_SERVICE_GROUPS]
            _summaries(o)
        elif kind == "ServiceMonitor":
            # kubeforge labels every object part-of=kubeforge (transforms.common_labels), Services
            # included: a selector on upstream's part-of=kube-prometheus would select nothing.
            _d(o["spec"].get("selector")).get("matchLabels", {}).pop(PART_OF, None)
        elif kind == "Prometheus":
            _prometheus(o, ctx)
        elif kind == "Alertmanager":
            o["spec"]["replicas"] = replicas
        elif kind == "Secret" and name == "grafana-datasources":
            _datasource(o)
        elif kind == "ConfigMap" and name == "grafana-dashboards" and providers:
            _providers(o)
        elif kind == "Deployment" and name == "grafana":
            _grafana(o, providers, _datasources_text(objs))
    return objs


def _items(o: dict) -> list[dict]:
    if o.get("kind", "").endswith("List") and isinstance(o.get("items"), list):
        return o["items"]
    return [o]


def _d(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _labels(o: dict) -> dict:
    return (o.get("metadata") or {}).get("labels") or {}


def _dashboard_components(ctx: Any) -> list[str]:
    return sorted(n for n, pc in ctx.plan.components.items()
                  if monitoring.DASHBOARDS in pc.component.provides)


def _summaries(rule: dict) -> None:
    """Alerts that carry their text only as `message` (Grafana's GrafanaRequestsFailing) get it as
    the `summary` that receivers show and kubeforge's rule check asks for."""
    for g in rule["spec"]["groups"]:
        for r in g.get("rules") or []:
            ann = r.get("annotations") or {}
            if r.get("alert") and not ann.get("summary") and ann.get("message"):
                ann["summary"] = ann["message"]


def _prometheus(o: dict, ctx: Any) -> None:
    spec = o["spec"]
    spec["replicas"] = ctx.values["replicas"]
    spec["retention"] = ctx.values["retention"]
    size = ctx.values.get("storage")
    if size:
        spec["storage"] = {"volumeClaimTemplate": {"spec": {
            "storageClassName": ctx.profile.storage.default, "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}}}}}


def _datasource(o: dict) -> None:
    text = o.get("stringData", {}).get("datasources.yaml")
    try:
        doc = json.loads(text)
        (ds,) = [d for d in doc["datasources"] if d.get("type") == "prometheus"]
    except (TypeError, ValueError, KeyError) as e:
        raise KubeforgeError(f"upstream grafana-datasources changed shape ({e})",
                             file="components/kube-prometheus/generate.py", field="transform",
                             fix="adapt the datasource rewrite to the new upstream file") from None
    ds.update(DATASOURCE, isDefault=True)
    o["stringData"]["datasources.yaml"] = json.dumps(doc, indent=4, sort_keys=True)


def _datasources_text(objs: list[dict]) -> str:
    return next(o["stringData"]["datasources.yaml"] for o in objs
                if o["kind"] == "Secret" and o["metadata"]["name"] == "grafana-datasources")


def _providers(o: dict) -> None:
    doc = json.loads(o["data"]["dashboards.yaml"])
    doc["providers"].append({"name": "kubeforge", "orgId": 1, "type": "file",
                             "options": {"path": KUBEFORGE_DASHBOARDS, "foldersFromFilesStructure": True}})
    o["data"]["dashboards.yaml"] = json.dumps(doc, indent=4, sort_keys=True)


def _grafana(o: dict, providers: list[str], datasources: str) -> None:
    pod = o["spec"]["template"]
    (c,) = [c for c in pod["spec"]["containers"] if c["name"] == "grafana"]
    c["env"] = [e for e in c.get("env") or [] if e["name"] not in ("GF_SECURITY_ADMIN_USER",
                                                                  "GF_SECURITY_ADMIN_PASSWORD")]
    for var, key in (("GF_SECURITY_ADMIN_USER", "admin-user"), ("GF_SECURITY_ADMIN_PASSWORD", "admin-password")):
        c["env"].append({"name": var, "valueFrom": {"secretKeyRef": {"name": ADMIN_SECRET, "key": key}}})
    ann = pod["metadata"].setdefault("annotations", {})
    # A changed datasource (or dashboard set) restarts Grafana, as upstream's checksums intend.
    ann["checksum/grafana-datasources"] = hashlib.sha256(datasources.encode()).hexdigest()[:32]
    if providers:
        ann["checksum/grafana-dashboardproviders"] = hashlib.sha256(" ".join(providers).encode()).hexdigest()[:32]
    for comp in providers:
        cm = monitoring.dashboards_configmap(comp)
        c["volumeMounts"].append({"mountPath": f"{KUBEFORGE_DASHBOARDS}/{comp}", "name": cm, "readOnly": True})
        # optional: that component comes after this one (it needs the operator's CRDs and this
        # namespace); Grafana must start without it and picks the dashboards up when they arrive.
        pod["spec"]["volumes"].append({"name": cm, "configMap": {"name": cm, "optional": True}})
