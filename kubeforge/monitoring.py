"""What the monitoring components agree on (kube-prometheus, gpu-monitoring, platform-monitors):
where Prometheus runs and as whom, how a component hands Grafana its dashboards, and the access
Prometheus needs in a namespace it scrapes. Pure functions over plain objects, no imports at load.
"""
from __future__ import annotations

from typing import Any

NAMESPACE = "monitoring"
PROMETHEUS_SA = "prometheus-k8s"            # kube-prometheus's Prometheus `k8s` runs as this account
# A component that lists this capability ships its dashboards in one ConfigMap in NAMESPACE,
# named by dashboards_configmap(); kube-prometheus mounts it into Grafana.
DASHBOARDS = "grafana-dashboards"
ACCESS_ROLE = "kubeforge-prometheus"        # the Role/RoleBinding that lets Prometheus discover targets


def dashboards_configmap(component: str) -> str:
    return f"grafana-dashboards-{component}"


def dashboards_object(component: str, dashboards: dict[str, dict]) -> dict[str, Any]:
    """The ConfigMap of a component's dashboards: file name -> dashboard JSON (compact: a
    ConfigMap holds at most 1 MiB)."""
    import json

    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": dashboards_configmap(component), "namespace": NAMESPACE},
            "data": {f: json.dumps(d, separators=(",", ":"), sort_keys=True) for f, d in sorted(dashboards.items())}}


def discovery_rules(upstream_roles: list[dict]) -> list[dict]:
    """The rules kube-prometheus gives prometheus-k8s in the namespaces it watches
    (manifests/prometheus-roleSpecificNamespaces.yaml, a RoleList): one place for that fact."""
    items = [i for o in upstream_roles for i in (o.get("items") or [o])]
    rules = [i["rules"] for i in items if i.get("kind") == "Role"]
    if not rules or any(r != rules[0] for r in rules):
        raise ValueError("prometheus-roleSpecificNamespaces.yaml no longer holds one set of Role rules")
    return rules[0]


def access(namespace: str, rules: list[dict]) -> list[dict[str, Any]]:
    """Role + RoleBinding that let Prometheus discover and scrape targets in `namespace`
    (kube-prometheus itself only grants default, kube-system and monitoring)."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": ACCESS_ROLE, "namespace": namespace}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": ACCESS_ROLE, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCESS_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS_SA, "namespace": NAMESPACE}]},
    ]
